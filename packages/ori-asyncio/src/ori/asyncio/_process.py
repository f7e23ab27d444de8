"""``asyncify_process()``: a CPU-bound function awaited from async code, run in worker processes.

The wrapper owns a :class:`~._process_calls.ProcessCaller`, which creates a
:class:`~concurrent.futures.ProcessPoolExecutor` on the first call, sends each
call as bytes it pickles itself, rebuilds exceptions that cannot be pickled
and replaces the pool after a worker crash (see that module). Each call awaits
the caller's future with :func:`asyncio.wrap_future`, so the loop is never
blocked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import multiprocessing.context
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ori.errors.validation import (
    check_mp_context,
    check_positive_int,
    check_process_function,
)

from ._awaitables import check_blocking_function
from ._process_calls import ProcessCaller, lookup

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ("AsyncProcessFunction", "asyncify_process")

EXTRA = "ori-asyncio"  # the distribution whose cloudpickle extra sends functions by value


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
        self._calls = ProcessCaller(
            function,
            self,
            concurrent.futures.ProcessPoolExecutor,
            {"max_workers": max_workers, "mp_context": mp_context},
        )
        functools.update_wrapper(self, function)

    @property
    def executor(self) -> concurrent.futures.ProcessPoolExecutor:
        """The process pool the calls run in, created on first use.

        After a worker crash the next call gets a fresh pool, so this may
        return a different executor then.
        """
        return self._calls.executor

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one call in a worker process and await its result.

        Cancelling the awaiting task withdraws a call that has not started;
        a call already running in a worker runs to the end and its result is
        dropped. The wrapper survives its workers: after a crash the next
        call runs in a fresh pool.

        Raises:
            OriWorkerCrashedError: a worker process died while this call was
                running or waiting (the message names the function and the
                exit code or signal), or died while starting up, before it
                ran any call (the message says so and names the start method).
            TypeError, pickle.PicklingError: an argument cannot be pickled.
            BaseException: whatever the function raises, with its own type and
                the worker's traceback chained as
                :class:`~ori.errors.RemoteTraceback`; an exception that cannot
                be pickled arrives as the nearest class of its MRO that can
                (see :func:`ori.errors.remote.portable_exception`).
        """
        future = self._calls.submit(args, kwargs)
        result: R = await asyncio.wrap_future(future)
        return result

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the worker processes, if any were started.

        Idempotent and callable from any thread; with ``wait=True`` it blocks
        (do not call it from a running loop with calls still in flight). A
        later call of the wrapper starts a fresh pool.

        Args:
            wait: block until running calls have finished.
            cancel_futures: cancel calls that have not started yet.
        """
        self._calls.shutdown(wait, cancel_futures=cancel_futures)

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
        return (lookup, (self.__module__, self.__qualname__))

    def __repr__(self) -> str:
        return f"<AsyncProcessFunction {self.__qualname__}>"


def _make(
    fn: Callable[P, R],
    max_workers: int | None,
    mp_context: multiprocessing.context.BaseContext | None,
) -> AsyncProcessFunction[P, R]:
    check_blocking_function(fn, "fn")
    method = mp_context.get_start_method() if mp_context is not None else None
    check_process_function(fn, method, name="fn", by_value_extra=EXTRA)
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
