"""Event loops that Ori owns: one cached loop per thread, and how loops are retired.

``sync()`` without a loop reuses a per-thread loop instead of building and
tearing down a new one per call, which is where ``asyncio.run()`` spends its
time. That loop:

* is never installed as the thread's current loop (``set_event_loop`` is not
  called), so ``asyncio.get_event_loop()`` and ``asyncio.run()`` behave as if
  Ori were not there;
* owns no thread: it runs only inside ``sync()`` calls, in the calling thread;
* is tidied after every call as ``asyncio.run()`` would before closing, in
  its order: callbacks the awaitable left queued run (among them the
  ``aclose()`` that the finalizer of an async generator it abandoned queued,
  e.g. after ``async for ...: return``), tasks the awaitable left behind are
  cancelled and awaited (those ``aclose()`` tasks are awaited, not
  cancelled, so ``finally`` blocks and ``async with`` exits run in full),
  async generators still open are closed, and the default executor, if the
  call used it, is shut down (joining its threads) and replaced by a fresh,
  thread-less one. A task factory counts the tasks each call starts, so that
  calls which start none skip the search for leftovers
  (``asyncio.all_tasks()`` walks every task in the process), and an empty
  ready queue skips the extra pass of the loop: a call that leaves nothing
  behind pays a few attribute reads;
* is closed when its thread exits (the thread-local holder's finaliser), at
  interpreter exit for the main thread, and at once if a second Ctrl-C left a
  task in an unknown state on it;
* is never touched in a forked child: the child makes its own, and the
  inherited one is left alone, because closing it there would unregister the
  parent's file descriptors from the epoll instance the two processes share.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ._compat import finalizes_an_async_generator, nothing_queued, take_open_async_generators

T = TypeVar("T")

# Rounds of "cancel the leftovers, run what their ending queued" after one call;
# each round only happens if the previous one started new tasks.
_CLEANUP_ROUNDS = 3


class _TrackedExecutor(concurrent.futures.ThreadPoolExecutor):
    """The cached loop's default executor; remembers whether anything used it."""

    used = False

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        self.used = True
        return super().submit(fn, *args, **kwargs)


def _new_executor() -> _TrackedExecutor:
    return _TrackedExecutor(thread_name_prefix="ori.asyncio-default-executor")


# Loops inherited through fork(): kept referenced so that their __del__ (which
# closes them) never runs in the child.
_inherited_through_fork: list[asyncio.AbstractEventLoop] = []


class _Holder:
    """One thread's cached loop, its default executor, and the process it belongs to."""

    __slots__ = ("executor", "loop", "pid", "tasks_started")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.executor = _new_executor()
        self.loop.set_default_executor(self.executor)
        # asyncio.all_tasks() walks every live task of every loop in the
        # process; counting the tasks started here tells more cheaply whether
        # a call can have left any behind.
        self.tasks_started = 0
        self.loop.set_task_factory(self._new_task)

    def _new_task(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        self.tasks_started += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    def close(self) -> None:
        loop = self.loop
        if os.getpid() != self.pid:
            _inherited_through_fork.append(loop)
        elif not loop.is_closed() and not loop.is_running():
            loop.close()


class _CloseAtThreadExit:
    """Referenced only by the thread-local storage, so it dies exactly when the thread ends.

    The holder itself may outlive the thread (a traceback that escaped the
    thread keeps the frames that used it), but its loop is closed regardless.
    """

    __slots__ = ("holder",)

    def __init__(self, holder: _Holder) -> None:
        self.holder = holder

    def __del__(self) -> None:
        # Runs in the ending thread when its thread-local storage is cleared.
        with contextlib.suppress(Exception):
            self.holder.close()


_local = threading.local()


def cached_holder() -> _Holder:
    """This thread's cached loop, created on first use (or after a fork)."""
    holder: _Holder | None = getattr(_local, "holder", None)
    if holder is None or holder.pid != os.getpid() or holder.loop.is_closed():
        if holder is not None and holder.pid != os.getpid():
            _inherited_through_fork.append(holder.loop)
        holder = _Holder()
        _local.holder = holder
        _local.closer = _CloseAtThreadExit(holder)
    return holder


def discard_cached(holder: _Holder) -> None:
    """Forget and close this thread's cached loop after it was left in an unknown state."""
    if getattr(_local, "holder", None) is holder:
        del _local.holder
        del _local.closer
    holder.close()


def current_cached_loop() -> asyncio.AbstractEventLoop | None:
    """This thread's cached loop if it has one (for tests and diagnostics)."""
    holder: _Holder | None = getattr(_local, "holder", None)
    return None if holder is None else holder.loop


@atexit.register
def _close_main_thread_loop() -> None:
    holder: _Holder | None = getattr(_local, "holder", None)
    if holder is not None:
        holder.close()


def _report(loop: asyncio.AbstractEventLoop, tasks: list[asyncio.Task[Any]], when: str) -> None:
    for task in tasks:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            loop.call_exception_handler(
                {"message": f"unhandled exception in a task {when}", "exception": exc, "task": task}
            )


async def _gather(awaitables: Sequence[Awaitable[Any]]) -> list[Any]:
    # Gathering inside the loop: gather() outside one would look up the
    # thread's current loop, which Ori never sets.
    return await asyncio.gather(*awaitables, return_exceptions=True)


def run_queued_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    """Run, in one non-blocking pass, the callbacks already queued on the idle *loop*.

    The finalizer of an async generator that was dropped while it was still
    open (``async for ...: return``) does not close it: it queues a callback
    that starts ``aclose()`` as a task. Such callbacks would otherwise wait
    for the next run of the loop. Loops without a ready queue (other
    implementations) always get the pass.
    """
    if nothing_queued(loop):
        return
    loop.stop()  # stop() first: run_forever() then makes exactly one pass
    loop.run_forever()


def cancel_leftovers(loop: asyncio.AbstractEventLoop, when: str) -> None:
    """Cancel every unfinished task on the idle *loop* and run it until they finish.

    Tasks that finalize an async generator are awaited, not cancelled:
    cancelling one before its first step would skip the generator's cleanup.
    """
    tasks = list(asyncio.all_tasks(loop))
    if not tasks:
        return
    for task in tasks:
        if not finalizes_an_async_generator(task):
            task.cancel()
    loop.run_until_complete(_gather(tasks))
    _report(loop, tasks, when)


def _close_open_asyncgens(loop: asyncio.AbstractEventLoop) -> None:
    # shutdown_asyncgens() would close them but also stop the loop from
    # accepting new ones, which a reused loop must keep doing, so this closes
    # them the same way and leaves the loop usable.
    closing = take_open_async_generators(loop)
    if not closing:
        return
    results = loop.run_until_complete(_gather([agen.aclose() for agen in closing]))
    for agen, result in zip(closing, results, strict=True):
        if isinstance(result, Exception):
            loop.call_exception_handler(
                {
                    "message": "an error occurred while closing an async generator after sync()",
                    "exception": result,
                    "asyncgen": agen,
                }
            )


def tidy(holder: _Holder) -> None:
    """Bring the cached loop back to a clean state after one ``sync()`` call.

    If this is interrupted (a Ctrl-C during cleanup), the loop is discarded.
    """
    loop = holder.loop
    try:
        run_queued_callbacks(loop)
        ours = 1  # the task sync() itself started
        for _ in range(_CLEANUP_ROUNDS):
            if holder.tasks_started <= ours:
                break
            # Cancelled tasks may drop async generators of their own, whose
            # aclose() is queued as they end: another round awaits those.
            holder.tasks_started = 0
            cancel_leftovers(loop, "left running by the awaitable passed to sync()")
            run_queued_callbacks(loop)
            ours = 1  # the gathering task cancel_leftovers() started
        _close_open_asyncgens(loop)
        holder.tasks_started = 0
        if holder.executor.used:
            old, holder.executor = holder.executor, _new_executor()
            loop.set_default_executor(holder.executor)
            old.shutdown(wait=True)
    except BaseException:
        discard_cached(holder)
        raise


def finalize(loop: asyncio.AbstractEventLoop) -> None:
    """Shut down a loop Ori created for one job, as ``asyncio.run()`` does, and close it."""
    try:
        run_queued_callbacks(loop)
        cancel_leftovers(loop, "left running at shutdown")
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def join(thread: threading.Thread) -> None:
    """``thread.join()`` in short slices, so that Ctrl-C can interrupt it on every Python."""
    while thread.is_alive():
        thread.join(0.25)
