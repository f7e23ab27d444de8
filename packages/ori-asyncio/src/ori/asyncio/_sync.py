"""``sync()`` and ``syncify()``: where an awaitable runs when blocking code asks for it.

The route depends on the loop the awaitable must run on and on what the
calling thread is doing::

    event_loop given (or the awaitable is a Future bound to a loop)?
      no  -> a loop running in this thread?  no  -> cached loop, this thread  (run_here + tidy)
                                             yes -> fresh loop, helper thread (run_in_helper)
      yes -> closed                               -> OriInvalidStateError
             running in this thread               -> OriInvalidStateError (it would deadlock)
             running in another thread            -> submit there and wait    (run_remote)
             idle, this thread runs no loop       -> run it here             (run_here)
             idle, this thread runs another loop  -> run it in a helper       (run_in_helper)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast, overload

from ori.errors import OriInvalidStateError, OriValidationError
from ori.errors.validation import check_callable, describe

from . import _loops
from ._awaitables import as_coroutine, check_awaitable, discard, loop_of
from ._compat import running_loop
from ._drive import left_running, run_here, run_in_helper, run_remote

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ("sync", "syncify")


def _run_cached(coro: Coroutine[Any, Any, T]) -> T:
    holder = _loops.cached_holder()
    try:
        result = run_here(holder.loop, coro)
    except BaseException:
        if left_running(holder.loop):
            # Forced out (a second Ctrl-C) while the awaitable was still
            # running: do not run its loop again, start afresh next time.
            _loops.discard_cached(holder)
        else:
            _loops.tidy(holder)
        raise
    _loops.tidy(holder)
    return result


def _run_on(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T]) -> T:
    if loop.is_closed():
        discard(awaitable)
        raise OriInvalidStateError(
            f"sync() cannot run the awaitable on {loop!r}: the event loop is closed; "
            "pass an open loop, or event_loop=None to let sync() choose one"
        )
    running_here = running_loop()
    if running_here is loop:
        discard(awaitable)
        raise OriInvalidStateError(
            "sync() was asked to run the awaitable on the event loop that is running "
            "in this very thread, which would block that loop forever (a deadlock); "
            "use 'await' here instead, or pass event_loop=None to run it on a separate "
            "loop in a helper thread"
        )
    if loop.is_running():
        return run_remote(loop, awaitable)
    coro = as_coroutine(awaitable)
    if running_here is None:
        return run_here(loop, coro)
    return run_in_helper(loop, coro, finalize=None)


def sync(awaitable: Awaitable[T], event_loop: asyncio.AbstractEventLoop | None = None) -> T:
    """Run an awaitable to completion from synchronous code and return its result.

    ``sync(coro)`` is what ``await coro`` would give, usable where ``await`` is
    not: in ordinary functions, in worker threads, after ``asyncio.run()``, and
    even inside code that an event loop is running. It blocks the calling
    thread until the awaitable is done and may be called from any thread.

    Where the awaitable runs:

    * No *event_loop*, and no loop running in this thread: on a loop cached
      for this thread, so repeated calls are cheap. Each call is
      self-contained, as with ``asyncio.run()`` and in its order: tasks the
      awaitable leaves running are cancelled and awaited, async generators
      it abandoned (``async for ...: return``) are finalized to the end,
      async generators it left open are closed, and threads of the loop's
      default executor are joined before ``sync()`` returns. The cached loop
      is never made the thread's current loop and is closed when the thread
      ends.
    * No *event_loop*, but a loop is running in this thread (sync code called
      from async code, a notebook): on a new loop in a helper thread, while
      this thread, *and therefore the loop running in it*, is blocked. Objects
      that belong to the blocked loop (its futures, locks, queues,
      connections) cannot be awaited this way; asyncio raises RuntimeError
      when they are used, and sync() adds a note explaining why. An asyncio
      Future or Task of that loop is refused up front.
    * *event_loop* running in another thread (see :class:`LoopThread`): the
      awaitable is submitted to it thread-safely and this thread waits.
    * *event_loop* idle: it is run until the awaitable is done, in this thread
      (or in a helper thread if this thread is running another loop). Other
      tasks on it make progress meanwhile and are left as they are.

    An asyncio Future or Task passed without *event_loop* runs on its own loop.

    The caller's :mod:`contextvars` are visible inside the awaitable (changes
    made inside do not flow back). Exceptions propagate with their own type.

    KeyboardInterrupt: on the first Ctrl-C the awaitable is cancelled, its
    ``finally`` blocks and ``except CancelledError`` handlers run, and then
    KeyboardInterrupt is raised. A second Ctrl-C raises KeyboardInterrupt at
    once without waiting for that cleanup. If the program installed its own
    SIGINT handler (``asyncio.run()`` does on Python 3.11+), that handler is
    left in charge, and sync() reacts when it raises KeyboardInterrupt.

    Args:
        awaitable: a coroutine object (``fetch(url)``, not ``fetch``), an
            asyncio Task or Future, or any object with ``__await__``.
        event_loop: the loop to run the awaitable on; ``None`` lets sync()
            choose as described above.

    Returns:
        What ``await awaitable`` returns.

    Raises:
        TypeError: *awaitable* is not awaitable, for instance an ``async def``
            function that was not called; the message says what to pass.
        OriValidationError: *event_loop* is not an asyncio event loop, or the
            Future passed belongs to a different loop than *event_loop*.
        OriInvalidStateError: *event_loop* (or the loop of the Future passed) is closed,
            or is the loop running in the calling thread, which would
            deadlock, or was closed or stopped before the awaitable finished.
        KeyboardInterrupt: Ctrl-C was pressed during the call (after the
            awaitable was cancelled, see above).
        BaseException: whatever the awaitable raises, unchanged, including
            ``asyncio.CancelledError`` if it was cancelled by other means.

    A coroutine that is refused before it starts (a closed loop, a deadlock)
    is closed, so Python does not warn that it was never awaited.
    """
    if type(awaitable) is types.CoroutineType and event_loop is None:
        # The common case, kept short: a coroutine, no loop given.
        coroutine = cast("Coroutine[Any, Any, T]", awaitable)
        if running_loop() is None:
            return _run_cached(coroutine)
        return run_in_helper(asyncio.new_event_loop(), coroutine, finalize=_loops.finalize)
    check_awaitable(awaitable)
    own_loop = loop_of(awaitable)
    if event_loop is None:
        if own_loop is None:
            coro = as_coroutine(awaitable)
            if running_loop() is None:
                return _run_cached(coro)
            return run_in_helper(asyncio.new_event_loop(), coro, finalize=_loops.finalize)
        event_loop = own_loop
    elif not isinstance(event_loop, asyncio.AbstractEventLoop):
        discard(awaitable)
        raise OriValidationError(
            f"event_loop must be an asyncio event loop or None, got {describe(event_loop)}; "
            "with a LoopThread pass its loop: 'with LoopThread() as loop: sync(coro, loop)'"
        )
    elif own_loop is not None and own_loop is not event_loop:
        raise OriValidationError(
            f"the Future or Task passed to sync() belongs to {own_loop!r}, not to the "
            f"event_loop given ({event_loop!r}); omit event_loop to wait on its own loop"
        )
    if own_loop is not None and isinstance(awaitable, asyncio.Future) and awaitable.done():
        done: asyncio.Future[T] = awaitable
        return done.result()
    return _run_on(event_loop, awaitable)


@overload
def syncify(
    async_fn: Callable[P, Awaitable[T]], *, event_loop: asyncio.AbstractEventLoop | None = None
) -> Callable[P, T]: ...


@overload
def syncify(
    async_fn: None = None, *, event_loop: asyncio.AbstractEventLoop | None = None
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, T]]: ...


def syncify(
    async_fn: Callable[P, Awaitable[T]] | None = None,
    *,
    event_loop: asyncio.AbstractEventLoop | None = None,
) -> Callable[P, T] | Callable[[Callable[P, Awaitable[T]]], Callable[P, T]]:
    """Turn an async function into a blocking one with the same signature.

    Calling the result calls *async_fn* and runs the awaitable it returns
    with :func:`sync`, so everything said there applies: it blocks the calling
    thread, works from any thread and inside running loops, and Ctrl-C cancels
    the call. Usable bare (``@syncify``) or with a loop
    (``@syncify(event_loop=loop_thread.loop)``).

    Args:
        async_fn: the ``async def`` function (or any callable returning an
            awaitable) to wrap.
        event_loop: passed to :func:`sync` on every call; ``None`` lets it choose.

    Returns:
        A function taking the same arguments and returning the awaited result
        (or a decorator producing one, when *async_fn* is omitted). Its name,
        docstring and signature are those of *async_fn*.

    Raises:
        OriValidationError: *async_fn* is not callable (a coroutine object
            instead of the function, say) or is an async generator function
            (use :func:`iterate` for those), or *event_loop* is not a loop.
    """
    if event_loop is not None and not isinstance(event_loop, asyncio.AbstractEventLoop):
        raise OriValidationError(
            f"event_loop must be an asyncio event loop or None, got {describe(event_loop)}"
        )

    def wrap(fn: Callable[P, Awaitable[T]]) -> Callable[P, T]:
        check_callable(fn, "async_fn")
        if inspect.isasyncgenfunction(fn):
            raise OriValidationError(
                f"async_fn {fn.__qualname__!r} is an async generator function, which "
                "yields many values; consume it with ori.asyncio.iterate(fn(...)) instead"
            )

        @functools.wraps(fn)
        def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
            return sync(fn(*args, **kwargs), event_loop)

        return blocking

    if async_fn is None:
        return wrap
    return wrap(async_fn)
