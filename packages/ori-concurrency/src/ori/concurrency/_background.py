"""The background-function wrapper and the three public constructors.

A :class:`BackgroundFunction` holds the wrapped function and a lazily created
executor. Calling it submits the function to the executor and returns the
Future. For process executors the function is not pickled directly: a
decorated module-level function's name now refers to the wrapper, so pickle
by reference would find the wrapper instead of the function. The work is sent
as :class:`_ByName`, which carries only the module and qualified name and
unwraps the wrapper again inside the worker.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
import multiprocessing
import multiprocessing.context
import threading
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ori.errors.validation import (
    check_callable,
    check_executor_class,
    check_mp_context,
    check_positive_int,
    check_process_function,
)

P = ParamSpec("P")
R = TypeVar("R")

__all__ = (
    "BackgroundFunction",
    "run_in_background",
    "run_in_background_process",
    "run_in_background_thread",
)


class _ByName:
    """A picklable reference to a module-level function, resolved in the worker."""

    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    def __reduce__(self) -> tuple[type[_ByName], tuple[str, str]]:
        return (_ByName, (self.module, self.qualname))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = _lookup(self.module, self.qualname)
        if isinstance(target, BackgroundFunction):
            target = target.function
        return target(*args, **kwargs)


def _lookup(module: str, qualname: str) -> Any:
    """Import *module* and return the object its dotted *qualname* names."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _resolves_to(module: str, qualname: str, expected: object) -> bool:
    """True when ``module.qualname`` currently names *expected* in this process."""
    try:
        return _lookup(module, qualname) is expected
    except (ImportError, AttributeError):
        return False


class BackgroundFunction(Generic[P, R]):
    """A function that runs in an executor and returns a Future when called.

    Created by :func:`run_in_background`, :func:`run_in_background_thread` and
    :func:`run_in_background_process`; not meant to be instantiated directly.
    It keeps the wrapped function's name, docstring and signature
    (:func:`functools.wraps`), so ``inspect.signature`` and help() show the
    original.

    Calling it never blocks on the function itself: the call is submitted to
    :attr:`executor` and the :class:`concurrent.futures.Future` returned at once.
    It may be called from any thread.

    A wrapper stored under its function's name at the top level of a module
    pickles by that name, like the function would.

    Attributes:
        function: the wrapped function, unchanged; call it to run in the
            current thread.
    """

    __qualname__: str  # copied from the wrapped function by functools.update_wrapper

    def __init__(
        self,
        function: Callable[P, R],
        executor_class: type[concurrent.futures.Executor],
        executor_kwargs: dict[str, Any],
        start_method: str | None = None,
    ) -> None:
        self.function = function
        self._start_method = start_method
        self._executor_class = executor_class
        self._executor_kwargs = executor_kwargs
        self._executor: concurrent.futures.Executor | None = None
        self._lock = threading.Lock()
        self._is_process_pool = issubclass(executor_class, concurrent.futures.ProcessPoolExecutor)
        functools.update_wrapper(self, function)

    @property
    def executor(self) -> concurrent.futures.Executor:
        """The executor the calls run in, created on first use.

        Thread and process pools start no workers until work arrives, so
        wrapping a function costs nothing until it is called.
        """
        with self._lock:
            if self._executor is None:
                if self._is_process_pool:
                    # The start method may have been chosen after decoration time.
                    check_process_function(self.function, self._start_method)
                self._executor = self._executor_class(**self._executor_kwargs)
            return self._executor

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[R]:
        """Submit one call and return its Future without waiting for it.

        Takes exactly the arguments of the wrapped function. For a process
        executor they are pickled and sent to a worker, so they must be
        picklable. Whatever the function returns or raises comes out of the
        Future's ``result()``, with the exception's own type.

        Returns:
            A :class:`concurrent.futures.Future` for this call's result.

        Raises:
            RuntimeError: the executor was shut down with ``executor.shutdown()``
                (after :meth:`shutdown` a fresh executor is created instead).
            OriNoInteractiveProcessPools: the first call of a process wrapper
                finds that the start method chosen since wrapping cannot import
                the function.
        """
        return self.executor.submit(self._target(), *args, **kwargs)

    def _target(self) -> Callable[..., R]:
        """The object to submit: the function itself, or a by-name reference."""
        func = self.function
        if not self._is_process_pool:
            return func
        module = getattr(func, "__module__", None)
        qualname = getattr(func, "__qualname__", None)
        if (
            isinstance(module, str)
            and isinstance(qualname, str)
            and "<" not in qualname
            and _resolves_to(module, qualname, self)
        ):
            return _ByName(module, qualname)
        return func

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut down the executor, if one was created.

        Idempotent and safe to call from any thread. A later call of the
        wrapper creates a new executor, so the wrapper stays usable.

        Args:
            wait: block until calls already submitted have finished (the
                default); ``False`` returns at once and lets them finish in the
                background.
            cancel_futures: cancel the calls that have not started yet; their
                Futures report cancelled.
        """
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        # A wrapper stored at module level pickles by name, like the function did.
        return (_lookup, (self.__module__, self.__qualname__))

    def __repr__(self) -> str:
        return f"<BackgroundFunction {self.__qualname__} on {self._executor_class.__name__}>"


def _make(
    func: Callable[P, R] | None,
    executor_class: type[concurrent.futures.Executor],
    executor_kwargs: dict[str, Any],
    start_method: str | None,
) -> BackgroundFunction[P, R] | Callable[[Callable[P, R]], BackgroundFunction[P, R]]:
    def wrap(f: Callable[P, R]) -> BackgroundFunction[P, R]:
        check_callable(f, "func")
        if issubclass(executor_class, concurrent.futures.ProcessPoolExecutor):
            check_process_function(f, start_method)
        return BackgroundFunction(f, executor_class, executor_kwargs, start_method)

    if func is None:
        return wrap
    return wrap(func)


def _worker_kwargs(max_workers: object) -> dict[str, Any]:
    checked = check_positive_int(max_workers, "max_workers")
    return {} if checked is None else {"max_workers": checked}


@overload
def run_in_background(
    func: Callable[P, R],
    *,
    executor_class: type[concurrent.futures.Executor],
    max_workers: int | None = None,
) -> BackgroundFunction[P, R]: ...


@overload
def run_in_background(
    func: None = None,
    *,
    executor_class: type[concurrent.futures.Executor],
    max_workers: int | None = None,
) -> Callable[[Callable[P, R]], BackgroundFunction[P, R]]: ...


def run_in_background(
    func: Callable[P, R] | None = None,
    *,
    executor_class: type[concurrent.futures.Executor],
    max_workers: int | None = None,
) -> BackgroundFunction[P, R] | Callable[[Callable[P, R]], BackgroundFunction[P, R]]:
    """Wrap *func* so that each call runs in an executor of *executor_class*.

    The wrapper takes the same arguments as *func* and returns a
    :class:`concurrent.futures.Future` for its result. Without *func* this
    returns a decorator: ``@run_in_background(executor_class=...)``.

    Args:
        func: the function to run in the background.
        executor_class: a :class:`concurrent.futures.Executor` subclass (the
            class, not an instance) constructed with ``max_workers`` as its only
            argument, e.g. ``ThreadPoolExecutor``.
        max_workers: upper bound on concurrent calls; ``None`` uses the
            executor's own default.

    Returns:
        A :class:`BackgroundFunction` (or a decorator producing one).

    Raises:
        OriValidationError: *func* is not callable, *executor_class* is not an
            Executor subclass, *max_workers* is not a positive int, or a process
            executor was given a lambda or nested function.
        OriNoInteractiveProcessPools: a process executor was given a function
            from an interactive session that its workers cannot import.
    """
    cls = check_executor_class(executor_class)
    return _make(func, cls, _worker_kwargs(max_workers), None)


@overload
def run_in_background_thread(
    func: Callable[P, R], *, max_workers: int | None = None
) -> BackgroundFunction[P, R]: ...


@overload
def run_in_background_thread(
    func: None = None, *, max_workers: int | None = None
) -> Callable[[Callable[P, R]], BackgroundFunction[P, R]]: ...


def run_in_background_thread(
    func: Callable[P, R] | None = None, *, max_workers: int | None = None
) -> BackgroundFunction[P, R] | Callable[[Callable[P, R]], BackgroundFunction[P, R]]:
    """Wrap *func* so that each call runs in a background thread.

    Threads suit work that waits (network, disk, subprocesses); pure-Python
    computation is serialised by the GIL, so use
    :func:`run_in_background_process` for that. Usable bare
    (``@run_in_background_thread``) or with arguments
    (``@run_in_background_thread(max_workers=4)``).

    Args:
        func: the function to run in the background.
        max_workers: most threads running calls at once; ``None`` uses
            :class:`~concurrent.futures.ThreadPoolExecutor`'s default.

    Returns:
        A :class:`BackgroundFunction` whose calls return Futures.

    Raises:
        OriValidationError: *func* is not callable or *max_workers* is not a
            positive int.
    """
    return _make(func, concurrent.futures.ThreadPoolExecutor, _worker_kwargs(max_workers), None)


@overload
def run_in_background_process(
    func: Callable[P, R],
    *,
    max_workers: int | None = None,
    mp_context: multiprocessing.context.BaseContext | None = None,
) -> BackgroundFunction[P, R]: ...


@overload
def run_in_background_process(
    func: None = None,
    *,
    max_workers: int | None = None,
    mp_context: multiprocessing.context.BaseContext | None = None,
) -> Callable[[Callable[P, R]], BackgroundFunction[P, R]]: ...


def run_in_background_process(
    func: Callable[P, R] | None = None,
    *,
    max_workers: int | None = None,
    mp_context: multiprocessing.context.BaseContext | None = None,
) -> BackgroundFunction[P, R] | Callable[[Callable[P, R]], BackgroundFunction[P, R]]:
    """Wrap *func* so that each call runs in a background worker process.

    Processes run Python code in parallel on several cores. The function is
    sent to the workers by module and name, and its arguments and result are
    pickled, so it must be defined at the top level of a module (decorating it
    there is fine) and its arguments and result must be picklable.

    Args:
        func: the function to run in the background.
        max_workers: most worker processes; ``None`` means one per CPU.
        mp_context: a :mod:`multiprocessing` context choosing the start method
            (``multiprocessing.get_context("spawn")``); ``None`` uses the
            interpreter's default.

    Returns:
        A :class:`BackgroundFunction` whose calls return Futures.

    Raises:
        OriValidationError: *func* is not callable, is a lambda or a nested
            function, *max_workers* is not a positive int, or *mp_context* is
            not a multiprocessing context.
        OriNoInteractiveProcessPools: *func* was defined in an interactive
            session and the workers are not forked, so they could not import it.
    """
    kwargs = _worker_kwargs(max_workers)
    start_method: str | None = None
    context = check_mp_context(mp_context)
    if context is not None:
        kwargs["mp_context"] = context
        start_method = context.get_start_method()
    return _make(func, concurrent.futures.ProcessPoolExecutor, kwargs, start_method)
