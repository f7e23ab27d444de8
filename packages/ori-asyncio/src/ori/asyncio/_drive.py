"""Running one awaitable to completion from blocking code, and waiting for it.

Three ways, chosen by :mod:`ori.asyncio._sync`:

* ``run_here``: the loop is idle and this thread has no running loop, so this
  thread runs it until the task is done. A few non-blocking passes of the
  loop come first; most short awaitables finish in them. Only a task that is
  still pending gets the ticker (see below) and a full run.
* ``run_in_helper``: the loop is idle but this thread is busy running another
  loop, so a short-lived helper thread runs it while this thread waits.
* ``run_remote``: the loop is already running in another thread; the task is
  created there with ``call_soon_threadsafe`` and this thread waits.

In each case an interruption of the wait (the first Ctrl-C, via the guard, or
a KeyboardInterrupt raised by another handler) cancels the task, waits for its
cleanup, and only then propagates; a second Ctrl-C stops waiting for cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ori.errors import OriInvalidStateError

from ._awaitables import as_coroutine, discard
from ._compat import is_wrong_loop_error
from ._sigint import SigintGuard

T = TypeVar("T")

# How often a waiting thread checks that the loop it depends on is still open.
_POLL_SECONDS = 0.25

# Non-blocking passes of the loop run_here() makes before it lets the loop block.
_QUICK_PASSES = 3

_WRONG_LOOP_NOTE = (
    "ori.asyncio.sync() ran this awaitable on a separate event loop in a helper "
    "thread, because an event loop was already running in the calling thread. "
    "Objects created on that running loop (futures, locks, queues, connections) "
    "cannot be used from the helper loop: await the code directly instead of "
    "calling sync(), or keep such objects on a LoopThread."
)


def _stop_loop(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and isinstance(future.exception(), (KeyboardInterrupt, SystemExit)):
        # These escape run_forever() by themselves; a stop() queued now would
        # instead end the loop's next run prematurely.
        return
    future.get_loop().stop()


def run_until_done(loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]) -> None:
    """Run *loop* in this thread until *task* is done, without raising its exception."""
    task.add_done_callback(_stop_loop)
    try:
        loop.run_forever()
    finally:
        task.remove_done_callback(_stop_loop)
    if not task.done():
        # Something called loop.stop() before the task finished.
        task.cancel()
        run_until_done(loop, task)
        raise OriInvalidStateError(
            "the event loop was stopped before the awaitable passed to sync() finished; "
            "do not call loop.stop() from inside it"
        )


def cancel_threadsafe(loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]) -> None:
    """Cancel *task* from any thread; nothing happens if its loop is already closed."""
    # A closed loop raises RuntimeError; its task can no longer run anyway.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(task.cancel)


def outcome(task: asyncio.Future[T], guard: SigintGuard | None) -> T:
    """The task's result, its exception, or KeyboardInterrupt if Ctrl-C cancelled it."""
    if guard is not None and guard.interrupted:
        if not task.cancelled():
            task.exception()  # mark it retrieved: KeyboardInterrupt wins
        raise KeyboardInterrupt
    return task.result()


class _Ticker:
    """Keeps a loop from sleeping longer than _POLL_SECONDS at a time.

    Python runs signal handlers between bytecodes. A SIGINT that arrives just
    before the loop enters its selector's system call does not interrupt that
    call, so the handler would wait for the selector's timeout (possibly the
    awaitable's whole sleep). A timer that fires regularly bounds that delay.
    """

    __slots__ = ("_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_later(_POLL_SECONDS, self._tick)

    def _tick(self) -> None:
        self._handle = self._loop.call_later(_POLL_SECONDS, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()


# Loops on which run_here() gave up waiting for a task (a repeated Ctrl-C):
# their owner closes them instead of running them again.
_left_running: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def left_running(loop: asyncio.AbstractEventLoop) -> bool:
    """True (once) if the last run_here() on *loop* left its task unfinished."""
    if loop in _left_running:
        _left_running.discard(loop)
        return True
    return False


def _executing_a_task(loop: asyncio.AbstractEventLoop) -> bool:
    return asyncio.current_task(loop) is not None


def run_here(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro* on *loop* in the calling thread and return its result.

    The caller guarantees that *loop* is open and idle and that this thread is
    not running another loop.
    """
    task = loop.create_task(coro)  # copies the caller's contextvars
    guard = SigintGuard.install(
        functools.partial(cancel_threadsafe, loop, task),
        busy=functools.partial(_executing_a_task, loop),
    )
    ticker: _Ticker | None = None
    try:
        # Calling stop() first makes run_forever() do exactly one pass, which
        # never blocks. Short awaitables finish in a few such passes; only the
        # others need the ticker and a full run of the loop.
        for _ in range(_QUICK_PASSES):
            loop.stop()
            loop.run_forever()
            if task.done():
                break
        else:
            if guard is not None:
                ticker = _Ticker(loop)
            run_until_done(loop, task)
    except BaseException:
        # A KeyboardInterrupt raised by a signal handler while the loop itself
        # or another task was running: cancel the awaitable and let its finally
        # blocks run. If the guard raised it for a repeated Ctrl-C, give up on
        # the cleanup.
        if task.done():
            # The awaitable itself raised KeyboardInterrupt or SystemExit, which
            # asyncio lets escape the loop. It is propagating now: mark it seen.
            if not task.cancelled():
                task.exception()
        elif guard is None or not guard.forced:
            task.cancel()
            run_until_done(loop, task)
        raise
    finally:
        if ticker is not None:
            ticker.cancel()
        if guard is not None:
            guard.uninstall()
        if not task.done():
            _left_running.add(loop)
    return outcome(task, guard)


def start_and_wait(
    start: Callable[[], None],
    began: Callable[[], bool],
    done: threading.Event,
    cancel: Callable[[], None],
    check: Callable[[], None] | None = None,
) -> SigintGuard | None:
    """Call *start*, block until *done* is set; on interruption *cancel* and await the cleanup.

    The SIGINT guard goes in before *start*, so that a first Ctrl-C cannot
    interrupt *start* half-way. A KeyboardInterrupt from another handler
    still can: then the work is cancelled, and waited for only if *began*
    says it is under way (else nothing would ever set *done*). *check* runs
    every few tenths of a second while waiting and may raise to stop the wait
    (the loop being waited on was closed).
    """
    guard = SigintGuard.install(cancel)
    try:
        try:
            start()
            _wait(done, check)
        except BaseException:
            if guard is None or not guard.forced:
                cancel()
                if began():
                    _wait(done, check)
            raise
    finally:
        if guard is not None:
            guard.uninstall()
    return guard


def _wait(done: threading.Event, check: Callable[[], None] | None) -> None:
    while not done.wait(_POLL_SECONDS):
        if check is not None:
            check()


def _note_wrong_loop(task: asyncio.Future[Any]) -> None:
    """Explain a loop-affinity error raised inside a helper loop (Python 3.11+)."""
    if task.cancelled() or sys.version_info < (3, 11):
        return
    exc = task.exception()
    if exc is not None and is_wrong_loop_error(exc):
        exc.add_note(_WRONG_LOOP_NOTE)


def run_in_helper(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    *,
    finalize: Callable[[asyncio.AbstractEventLoop], None] | None,
) -> T:
    """Run *coro* on the idle *loop* in a helper thread; block until it is done.

    *finalize*, if given, runs in the helper thread afterwards (it shuts down
    and closes a loop created for this call). The helper thread has ended when
    this returns normally.
    """
    task = loop.create_task(coro)  # copies the caller's contextvars
    done = threading.Event()
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            run_until_done(loop, task)
        except BaseException as exc:
            # KeyboardInterrupt or SystemExit raised by the awaitable escape the
            # loop; they are also the task's outcome, re-raised by outcome().
            if not task.done():
                failures.append(exc)
        finally:
            try:
                if finalize is not None:
                    finalize(loop)
            except BaseException as exc:  # pragma: no cover - defensive
                failures.append(exc)
            finally:
                done.set()

    helper = threading.Thread(target=drive, name="ori.asyncio-sync-helper", daemon=True)
    guard = start_and_wait(
        helper.start,
        lambda: helper.is_alive() or done.is_set(),
        done,
        functools.partial(cancel_threadsafe, loop, task),
    )
    helper.join()
    if failures:
        raise failures[0]
    _note_wrong_loop(task)
    return outcome(task, guard)


class _Remote:
    """The task created for one ``run_remote`` call, owned by the loop's thread."""

    __slots__ = ("cancel_requested", "done", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.cancel_requested = False
        self.done = threading.Event()

    def start(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> None:
        # Runs in the loop's thread, inside a copy of the caller's context.
        if self.cancel_requested:
            coro.close()
            self.done.set()
            return
        self.task = loop.create_task(coro)
        self.task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self.done.set()

    def cancel(self) -> None:
        # Runs in the loop's thread, after start() because both were queued in order.
        if self.task is not None:
            self.task.cancel()
        else:
            self.cancel_requested = True


def run_remote(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T]) -> T:
    """Run *awaitable* on *loop*, which is running in another thread; block until done."""
    coro = as_coroutine(awaitable)
    remote = _Remote()
    queued: list[bool] = []

    def start() -> None:
        try:
            loop.call_soon_threadsafe(remote.start, loop, coro, context=contextvars.copy_context())
            queued.append(True)
        except RuntimeError:
            discard(coro)
            raise OriInvalidStateError(
                f"cannot run the awaitable on {loop!r}: the event loop was closed"
            ) from None

    def cancel() -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(remote.cancel)

    def check() -> None:
        if loop.is_closed() and not remote.done.is_set():
            if remote.task is None:
                discard(coro)
            raise OriInvalidStateError(
                f"the event loop {loop!r} was closed before the awaitable passed to sync() finished"
            )

    guard = start_and_wait(start, lambda: bool(queued), remote.done, cancel, check)
    task: asyncio.Task[T] | None = remote.task
    if task is None:  # cancelled before it started
        if guard is not None and guard.interrupted:
            raise KeyboardInterrupt
        raise asyncio.CancelledError
    return outcome(task, guard)
