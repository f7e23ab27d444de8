"""``to_thread()`` and ``asyncify()``: blocking functions awaited from async code.

A call takes a token from its :class:`ThreadLimiter`, then runs the function
in an executor (the running loop's default one unless another is given)
inside a copy of the caller's contextvars, and awaits the result without
blocking the loop. The token is released when the function has really
finished in its thread, not when the awaiting task is cancelled (the thread
keeps running the function; Python cannot stop it), or at once if the call
was cancelled before a thread picked it up. Process executors get the
function and arguments as they are (contexts cannot be pickled) and release
the token when the executor's future is done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final, Generic, ParamSpec, TypeVar, overload

from ori.errors import OriValidationError
from ori.errors.validation import check_positive_int, check_process_function, describe

from ._awaitables import check_blocking_function
from ._compat import executor_start_method
from ._limiter import ThreadLimiter, default_thread_limiter
from ._process_calls import ByReference, Call, call_in

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ("DEFAULT_LIMITER", "asyncify", "to_thread")


class _DefaultLimiter:
    """Type of :data:`DEFAULT_LIMITER`."""

    def __repr__(self) -> str:
        return "DEFAULT_LIMITER"


DEFAULT_LIMITER: Final = _DefaultLimiter()
"""Sentinel for ``limiter=``: use :func:`default_thread_limiter` (thread executors only)."""

LimiterOption = ThreadLimiter | int | _DefaultLimiter | None

# States of a _LimitedCall; the token is released exactly once, by whoever
# moves the call to _RELEASED.
_PENDING, _RUNNING, _ABANDONED, _FINISHED, _RELEASED = range(5)


class _LimitedCall(Generic[R]):
    """One call for a thread executor: runs in the caller's context, releases its token once.

    Normally the awaiting task releases the token when the result arrives, in
    the loop's own thread (waking the next waiter there costs nothing). If the
    task stops waiting early (cancelled), the token is released at once when
    no thread has picked the call up, else by the worker thread when the
    function returns.
    """

    __slots__ = ("_args", "_context", "_fn", "_kwargs", "_limiter", "_lock", "_state")

    def __init__(
        self,
        limiter: ThreadLimiter,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._limiter = limiter
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._state = _PENDING

    def __call__(self) -> R:
        # Runs in the worker thread.
        with self._lock:
            if self._state != _PENDING:  # abandoned: nobody will read the result
                return None  # type: ignore[return-value]
            self._state = _RUNNING
        try:
            return self._context.run(self._fn, *self._args, **self._kwargs)
        finally:
            with self._lock:
                abandoned = self._state == _ABANDONED
                self._state = _RELEASED if abandoned else _FINISHED
            if abandoned:
                self._limiter.release()

    def done_waiting(self) -> None:
        """The awaiting task is done with the call (result, error or cancellation)."""
        with self._lock:
            state = self._state
            if state == _RUNNING:
                self._state = _ABANDONED  # the worker thread releases when it returns
                return
            if state == _RELEASED:  # pragma: no cover - defensive
                return
            self._state = _RELEASED  # pending (never ran) or finished
        self._limiter.release()


def _resolve_limiter(limiter: object, executor: object) -> ThreadLimiter | None:
    if isinstance(limiter, _DefaultLimiter):
        if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
            return None  # a process pool caps itself with max_workers
        return default_thread_limiter()
    if limiter is None or isinstance(limiter, ThreadLimiter):
        return limiter
    if isinstance(limiter, int) and not isinstance(limiter, bool):
        check_positive_int(limiter, "limiter", allow_none=False)
        return ThreadLimiter(limiter)
    raise OriValidationError(
        f"limiter must be a ThreadLimiter, a positive int (a cap for this function "
        f"alone) or None (no cap), got {describe(limiter)}"
    )


def _check_executor(executor: object) -> concurrent.futures.Executor | None:
    if executor is None or isinstance(executor, concurrent.futures.Executor):
        return executor
    if isinstance(executor, type) and issubclass(executor, concurrent.futures.Executor):
        raise OriValidationError(
            f"executor must be an Executor instance, got the class {executor.__name__}; "
            f"create one (executor={executor.__name__}(...)) and shut it down when done"
        )
    raise OriValidationError(
        "executor must be a concurrent.futures.Executor instance such as "
        f"ThreadPoolExecutor(), or None for the loop's default, got {describe(executor)}"
    )


async def _call(
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    executor: concurrent.futures.Executor | None,
    limiter: ThreadLimiter | None,
) -> R:
    loop = asyncio.get_running_loop()
    if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        return await _call_in_process(fn, args, kwargs, executor, limiter)
    if limiter is None:
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await loop.run_in_executor(executor, call)
    await limiter.acquire()
    limited = _LimitedCall(limiter, fn, args, kwargs)
    try:
        return await loop.run_in_executor(executor, limited)
    finally:
        limited.done_waiting()


async def _call_in_process(
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    executor: concurrent.futures.ProcessPoolExecutor,
    limiter: ThreadLimiter | None,
) -> R:
    # Sent as a ByReference call: exceptions that cannot be pickled arrive as
    # the nearest class that can, with the worker's traceback chained.
    if limiter is not None:
        await limiter.acquire()
    try:
        label = getattr(fn, "__qualname__", None) or repr(fn)
        future = call_in(executor, Call(ByReference(fn), label, args, kwargs))
    except BaseException:
        if limiter is not None:
            limiter.release()
        raise
    if limiter is not None:
        future.add_done_callback(lambda _: limiter.release())
    return await asyncio.wrap_future(future)


async def to_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run the blocking ``fn(*args, **kwargs)`` in a thread and await its result.

    Like :func:`asyncio.to_thread` (the running loop's default executor, the
    caller's contextvars copied into the thread), plus a cap: the call holds
    a token of :func:`default_thread_limiter` while it runs, so at most that
    many blocking calls occupy threads at once across all loops. Must be
    awaited inside a running event loop; it never blocks the loop.

    Cancelling the awaiting task (or Ctrl-C through :func:`sync`) stops the
    wait, but a function already running in its thread runs to the end; its
    token is released only then.

    Raises:
        OriValidationError: *fn* is not callable, or is an async function
            (await it directly instead).
        BaseException: whatever *fn* raises, unchanged.
    """
    check_blocking_function(fn, "fn")
    return await _call(fn, args, kwargs, None, default_thread_limiter())


@overload
def asyncify(
    fn: Callable[P, R],
    *,
    executor: concurrent.futures.Executor | None = None,
    limiter: LimiterOption = DEFAULT_LIMITER,
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def asyncify(
    fn: None = None,
    *,
    executor: concurrent.futures.Executor | None = None,
    limiter: LimiterOption = DEFAULT_LIMITER,
) -> Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]: ...


def asyncify(
    fn: Callable[P, R] | None = None,
    *,
    executor: concurrent.futures.Executor | None = None,
    limiter: LimiterOption = DEFAULT_LIMITER,
) -> (
    Callable[P, Coroutine[Any, Any, R]]
    | Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]
):
    """Turn a blocking function into an async one that runs it in an executor.

    ``await asyncify(fn)(*args)`` runs ``fn(*args)`` in a thread (or a worker
    process, see *executor*) without blocking the event loop, and returns its
    result or raises its exception. The wrapper is an ``async def`` function
    with *fn*'s name, docstring and signature; usable bare (``@asyncify``) or
    with options (``@asyncify(limiter=4)``). Calls must be awaited inside a
    running event loop.

    Cancelling an awaiting task stops the wait but cannot stop *fn* once it
    runs in its thread; the limiter token is released when *fn* returns.

    Args:
        fn: the blocking function.
        executor: where calls run. ``None`` uses the running loop's default
            thread pool. A :class:`~concurrent.futures.ThreadPoolExecutor`
            runs them in its threads with the caller's contextvars. A
            :class:`~concurrent.futures.ProcessPoolExecutor` runs them in its
            worker processes, for CPU-bound work: *fn* must then be a
            module-level function, arguments and results are pickled, and
            contextvars do not travel. You own the executor and shut it down
            (see :func:`asyncify_process` for a wrapper that owns its pool).
        limiter: the cap on concurrent calls. The default is the process-wide
            :func:`default_thread_limiter` for thread executors and no extra
            cap for process pools (they have ``max_workers``). Pass a
            :class:`ThreadLimiter` to share a cap between functions, an int
            for a cap of this function alone, or ``None`` for no cap.

    Returns:
        The async wrapper (or a decorator producing one when *fn* is omitted).

    Raises:
        OriValidationError: *fn* is not callable, is already async, or (with a
            process pool) is a lambda or nested function; *executor* is not an
            Executor instance; *limiter* is not a ThreadLimiter, positive int
            or None.
        OriNoInteractiveProcessPools: with a process pool, *fn* was defined
            interactively and its workers could not import it.
    """
    checked_executor = _check_executor(executor)
    checked_limiter = _resolve_limiter(limiter, checked_executor)

    def wrap(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
        check_blocking_function(func, "fn")
        if isinstance(checked_executor, concurrent.futures.ProcessPoolExecutor):
            check_process_function(func, executor_start_method(checked_executor))

        @functools.wraps(func)
        async def in_executor(*args: P.args, **kwargs: P.kwargs) -> R:
            return await _call(func, args, kwargs, checked_executor, checked_limiter)

        return in_executor

    if fn is None:
        return wrap
    return wrap(fn)
