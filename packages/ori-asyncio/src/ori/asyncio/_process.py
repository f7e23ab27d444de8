"""``asyncify_process()``: a CPU-bound function awaited from async code, run in worker processes.

The wrapper owns a :class:`~concurrent.futures.ProcessPoolExecutor`, created
on the first call. Each call submits the function and awaits the executor's
future with :func:`asyncio.wrap_future`, so the loop is never blocked. A
decorated module-level function's name refers to the wrapper, not to the
function, so pickling the function by reference would fail; such calls are
sent as a module-and-name reference that the worker resolves and unwraps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import multiprocessing.context
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ori.errors.validation import (
    check_mp_context,
    check_positive_int,
    check_process_function,
)

from ._awaitables import check_blocking_function

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ("AsyncProcessFunction", "asyncify_process")


def _lookup(module: str, qualname: str) -> Any:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class _ByName:
    """A picklable reference to a module-level function, resolved in the worker."""

    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str) -> None:
        self.module, self.qualname = module, qualname

    def __reduce__(self) -> tuple[type[_ByName], tuple[str, str]]:
        return (_ByName, (self.module, self.qualname))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = _lookup(self.module, self.qualname)
        if isinstance(target, AsyncProcessFunction):
            target = target.function
        return target(*args, **kwargs)


class AsyncProcessFunction(Generic[P, R]):
    """An async callable that runs a blocking function in worker processes.

    Made by :func:`asyncify_process`. ``await f(*args)`` sends the call to
    the pool and waits without blocking the loop; it may be awaited from any
    loop in any thread. Keeps the wrapped function's name, docstring and
    signature. Use it as a context manager, or call :meth:`shutdown`, to stop
    the worker processes.
    """

    # Copied from the wrapped function by functools.update_wrapper.
    __name__: str
    __qualname__: str

    def __init__(
        self,
        function: Callable[P, R],
        max_workers: int | None,
        mp_context: multiprocessing.context.BaseContext | None,
    ) -> None:
        """Wrap *function*; use :func:`asyncify_process`, which validates first."""
        self.function = function
        self._max_workers = max_workers
        self._mp_context = mp_context
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, function)

    @property
    def executor(self) -> concurrent.futures.ProcessPoolExecutor:
        """The process pool the calls run in, created on first use."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self._max_workers, mp_context=self._mp_context
                )
            return self._executor

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one call in a worker process and await its result.

        Cancelling the awaiting task withdraws a call that has not started;
        a call already running in a worker runs to the end and its result is
        dropped.

        Raises:
            concurrent.futures.process.BrokenProcessPool: a worker died (the
                pool is then unusable; :meth:`shutdown` and call again for a
                fresh one).
            BaseException: whatever the function raises, unchanged.
        """
        future = self.executor.submit(self._target(), *args, **kwargs)
        return await asyncio.wrap_future(future)

    def _target(self) -> Callable[..., R]:
        func = self.function
        module = getattr(func, "__module__", None)
        qualname = getattr(func, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
            try:
                decorated = _lookup(module, qualname) is self
            except (ImportError, AttributeError):
                decorated = False
            if decorated:
                return _ByName(module, qualname)
        return func

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the worker processes, if any were started.

        Idempotent and callable from any thread; with ``wait=True`` it blocks
        (do not call it from a running loop with calls still in flight). A
        later call of the wrapper starts a fresh pool.

        Args:
            wait: block until running calls have finished.
            cancel_futures: cancel calls that have not started yet.
        """
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __enter__(self) -> AsyncProcessFunction[P, R]:
        """Return the wrapper itself; leaving the block calls :meth:`shutdown`."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Shut the worker processes down, waiting for running calls."""
        self.shutdown()

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (_lookup, (self.__module__, self.__qualname__))

    def __repr__(self) -> str:
        return f"<AsyncProcessFunction {self.__qualname__}>"


def _make(
    fn: Callable[P, R],
    max_workers: int | None,
    mp_context: multiprocessing.context.BaseContext | None,
) -> AsyncProcessFunction[P, R]:
    check_blocking_function(fn, "fn")
    method = mp_context.get_start_method() if mp_context is not None else None
    check_process_function(fn, method, name="fn")
    return AsyncProcessFunction(fn, max_workers, mp_context)


@overload
def asyncify_process(
    fn: Callable[P, R],
    *,
    max_workers: int | None = None,
    mp_context: multiprocessing.context.BaseContext | None = None,
) -> AsyncProcessFunction[P, R]: ...


@overload
def asyncify_process(
    fn: None = None,
    *,
    max_workers: int | None = None,
    mp_context: multiprocessing.context.BaseContext | None = None,
) -> Callable[[Callable[P, R]], AsyncProcessFunction[P, R]]: ...


def asyncify_process(
    fn: Callable[P, R] | None = None,
    *,
    max_workers: int | None = None,
    mp_context: multiprocessing.context.BaseContext | None = None,
) -> AsyncProcessFunction[P, R] | Callable[[Callable[P, R]], AsyncProcessFunction[P, R]]:
    """Make a CPU-bound function awaitable by running it in worker processes.

    Threads do not help pure-Python computation (the GIL runs one at a time);
    processes do. ``await f(x)`` runs ``fn(x)`` in a worker of a pool that the
    returned :class:`AsyncProcessFunction` owns and starts on first use.
    Usable bare (``@asyncify_process``) or with options. Shut the pool down
    with ``with`` or :meth:`AsyncProcessFunction.shutdown`.

    *fn* must be a module-level function (decorating it there is fine);
    arguments and results are pickled; contextvars do not travel to workers.

    Args:
        fn: the blocking, CPU-bound function.
        max_workers: most worker processes; ``None`` means one per CPU.
        mp_context: a :mod:`multiprocessing` context choosing the start method;
            ``None`` uses the interpreter's default.

    Returns:
        An :class:`AsyncProcessFunction` (or a decorator producing one).

    Raises:
        OriValidationError: *fn* is not callable or is a lambda or nested
            function, *max_workers* is not a positive int, or *mp_context* is
            not a multiprocessing context.
        OriNoInteractiveProcessPools: *fn* was defined interactively and the
            workers are not forked, so they could not import it.
    """
    check_positive_int(max_workers, "max_workers")
    check_mp_context(mp_context)

    def wrap(func: Callable[P, R]) -> AsyncProcessFunction[P, R]:
        return _make(func, max_workers, mp_context)

    if fn is None:
        return wrap
    return wrap(fn)
