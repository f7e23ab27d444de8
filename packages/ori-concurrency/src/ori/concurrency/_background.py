"""The background-function wrapper and the three public constructors.

A :class:`BackgroundFunction` holds the wrapped function and a lazily created
executor. Calling it submits the function to the executor and returns the
Future. Process pools are run by :class:`~._process_calls.ProcessCaller`,
which sends each call as bytes it pickles itself, rebuilds exceptions that
cannot be pickled, and replaces the pool after a worker crash (see that
module for the data flow).
"""

from __future__ import annotations

import concurrent.futures
import functools
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

from ._process_calls import ProcessCaller, lookup

P = ParamSpec("P")
R = TypeVar("R")

__all__ = (
    "BackgroundFunction",
    "run_in_background",
    "run_in_background_process",
    "run_in_background_thread",
)

_EXTRA = "ori-concurrency"  # the distribution whose cloudpickle extra sends functions by value


def _check_process_function(func: Callable[..., Any], start_method: str | None) -> None:
    check_process_function(func, start_method, by_value_extra=_EXTRA)


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
        self._processes: ProcessCaller | None = None
        if issubclass(executor_class, concurrent.futures.ProcessPoolExecutor):
            self._processes = ProcessCaller(function, self, executor_class, executor_kwargs)
        functools.update_wrapper(self, function)

    @property
    def executor(self) -> concurrent.futures.Executor:
        """The executor the calls run in, created on first use.

        Thread and process pools start no workers until work arrives, so
        wrapping a function costs nothing until it is called. A process pool
        that broke (a worker died) is replaced by a fresh one on the next
        call, so this may return a different executor after a crash.
        """
        if self._processes is not None:
            # The start method may have been chosen after decoration time.
            _check_process_function(self.function, self._start_method)
            return self._processes.executor
        with self._lock:
            if self._executor is None:
                self._executor = self._executor_class(**self._executor_kwargs)
            return self._executor

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[R]:
        """Submit one call and return its Future without waiting for it.

        Takes exactly the arguments of the wrapped function. For a process
        executor they are pickled and sent to a worker, so they must be
        picklable. Whatever the function returns or raises comes out of the
        Future's ``result()``, with the exception's own type; from a process,
        the worker's traceback is chained to it as an
        :class:`~ori.errors.RemoteTraceback`. An exception that cannot be
        pickled arrives as the nearest class of its MRO that can (see
        :func:`ori.errors.remote.portable_exception`).

        A process wrapper survives its workers: if one dies, the calls its
        pool held fail with :class:`~ori.errors.OriWorkerCrashedError` and the
        next call runs in a fresh pool.

        Returns:
            A :class:`concurrent.futures.Future` for this call's result. For a
            process wrapper, ``result()`` raises
            :class:`~ori.errors.OriWorkerCrashedError` when a worker died
            (the message names the function and the exit code or signal, or
            says that the worker died while starting up and why that happens).

        Raises:
            RuntimeError: the executor was shut down with ``executor.shutdown()``
                (after :meth:`shutdown` a fresh executor is created instead).
            OriNoInteractiveProcessPools: the first call of a process wrapper
                finds that the start method chosen since wrapping cannot import
                the function.
            TypeError, pickle.PicklingError: an argument of a process call
                cannot be pickled (a note names the function).
        """
        if self._processes is not None:
            _check_process_function(self.function, self._start_method)
            return self._processes.submit(args, kwargs)
        return self.executor.submit(self.function, *args, **kwargs)

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
        if self._processes is not None:
            self._processes.shutdown(wait, cancel_futures=cancel_futures)
            return
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        # A wrapper stored at module level pickles by name, like the function did.
        return (lookup, (self.__module__, self.__qualname__))

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
            _check_process_function(f, start_method)
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
