"""Asyncio stages: coroutines on an event loop in one thread the run owns.

Data flow::

    in_queue --put() also wakes the loop--> pending items
        --while fewer than max_concurrency run--> one task per item
    task done --> finished list --(once per loop turn)--> outlet (next stage)
             \\--> failures to the consumer

The stage has a single thread, whatever ``max_concurrency`` is: the thread runs
an event loop, and the loop's main coroutine (:meth:`AsyncStage._serve`) starts
tasks from the input, hands their results on and sleeps on an
``asyncio.Event``. Other threads put batches on the stage's input queue, whose
``put`` schedules a wake-up on the loop (at most one outstanding), so the loop
never polls.

A timed-out task is reported at once as :class:`~ori.errors.OriTimeoutError`,
frees its slot, and is cancelled; a coroutine that ignores cancellation goes
on in the background until the run ends. On close the loop cancels every task,
waits a moment for them to unwind, shuts down async generators and the loop's
default executor, and the thread exits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import queue
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ori.errors import OriValidationError
from ori.errors.validation import check_async_function, check_positive_int, check_positive_number

from ._chunking import Sizer
from ._context import STOP, Message, RunContext
from ._errors import ErrorRecord, StageLabel, short_repr, timeout_record
from ._stages import DEFAULT_MAX_CONCURRENCY, SingleThreadStage, StageRuntime, StageSpec

BATCH = 16  # items per message to this stage (a put costs a loop wake-up)
STOP_GRACE_SECONDS = 1.0  # how long cancelled tasks get to unwind on close


class _WakingQueue(queue.SimpleQueue[Message]):
    """A SimpleQueue whose ``put`` also wakes the stage's event loop."""

    __slots__ = ("armed", "loop", "wake")

    def __init__(self) -> None:
        super().__init__()
        self.armed = True  # a look at the queue is due; set False by the loop
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: Callable[[], None] | None = None

    def put(self, item: Message, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if not self.armed:
            self.armed = True
            loop, wake = self.loop, self.wake
            if loop is not None and wake is not None:
                with contextlib.suppress(RuntimeError):  # closed loop: the run is over
                    loop.call_soon_threadsafe(wake)


def not_awaitable(function: Callable[..., Any], result: object) -> OriValidationError:
    """The error for a stage function that returned something that cannot be awaited."""
    name = getattr(function, "__qualname__", None) or type(function).__name__
    return OriValidationError(
        f"the asyncio stage function {name!r} returned {short_repr(result)} "
        f"(type {type(result).__name__}), not an awaitable; define it with 'async def', "
        "or use add_threadpool for a blocking function"
    )


class AsyncStage(SingleThreadStage):
    """A stage whose items are coroutines on one event loop thread."""

    spec: AsyncSpec

    thread_suffix = "asyncio"

    def __init__(self, spec: AsyncSpec, label: StageLabel, ctx: RunContext) -> None:
        super().__init__(spec, label, ctx)
        self._queue = _WakingQueue()
        self.in_queue = self._queue
        self.sizer = Sizer(BATCH, target_seconds=1.0, maximum=BATCH)
        # The rest is touched by the loop thread only.
        self._pending: collections.deque[tuple[int, Any]] = collections.deque()
        # task -> (input index, argument, timeout timer, perf_counter at start)
        self._tasks: dict[
            asyncio.Future[Any], tuple[int, Any, asyncio.TimerHandle | None, float]
        ] = {}
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._finished_indices: list[int] = []
        self._finished_values: list[Any] = []
        self._wakeup: asyncio.Event | None = None

    def capacity(self) -> int:
        return self.workers  # max_concurrency items, whatever the batch size

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # an Ori bug, or a coroutine raised SystemExit
            self.ctx.fail(self.label, exc)
        finally:
            self._queue.loop = None
            loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup = asyncio.Event()
        in_queue = self._queue
        in_queue.wake = wakeup.set
        in_queue.loop = loop
        try:
            while True:
                wakeup.clear()
                in_queue.armed = False  # from now on a put() schedules a wake-up
                if not self._take_input() or self.ctx.stopping:
                    return
                self._flush()
                self._start_tasks(loop)
                await wakeup.wait()
        finally:
            await self._shut_down(loop)

    def _take_input(self) -> bool:
        """Move queued batches to the pending items; False when told to stop."""
        get = self.in_queue.get_nowait
        pending = self._pending
        while True:
            try:
                message = get()
            except queue.Empty:
                return True
            if message is STOP:
                return False
            assert isinstance(message, tuple)
            indices, values = message
            pending.extend(zip(indices, values, strict=True))

    def _start_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        function = self.spec.function
        timeout = self.spec.timeout
        pending = self._pending
        tasks = self._tasks
        limit = self.workers
        while pending and len(tasks) < limit:
            index, value = pending.popleft()
            try:
                awaitable: Awaitable[Any] = function(value)
                if inspect.iscoroutine(awaitable):
                    task: asyncio.Future[Any] = loop.create_task(awaitable)
                elif inspect.isawaitable(awaitable):
                    task = asyncio.ensure_future(awaitable)
                else:
                    raise not_awaitable(function, awaitable)
            except BaseException as exc:  # the synchronous part of the call failed
                self.ctx.report(
                    ErrorRecord(index=index, stage=self.label, exception=exc, value=value)
                )
                del exc
                continue
            timer = None if timeout is None else loop.call_later(timeout, self._expire, task)
            tasks[task] = (index, value, timer, time.perf_counter())
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        entry = self._tasks.pop(task, None)
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup.set()  # a slot is free
        if entry is None:  # timed out earlier, or cancelled on close
            self._abandoned.discard(task)
            if not task.cancelled():
                task.exception()  # retrieved: asyncio must not log it
            return
        index, value, timer, started = entry
        if timer is not None:
            timer.cancel()
        self.meter.add_busy(time.perf_counter() - started)  # the loop thread's own cell
        if task.cancelled():
            if self.ctx.stopping:
                return
            error: BaseException | None = asyncio.CancelledError(
                f"the coroutine for input item {index} was cancelled"
            )
        else:
            error = task.exception()
        if error is not None:
            self.ctx.report(
                ErrorRecord(index=index, stage=self.label, exception=error, value=value)
            )
            return
        self._finished_indices.append(index)
        self._finished_values.append(task.result())

    def _expire(self, task: asyncio.Future[Any]) -> None:
        if task.done() or task not in self._tasks:  # its result is in: let it count
            return
        index, value, _, started = self._tasks.pop(task)
        self.meter.add_busy(time.perf_counter() - started)
        self._abandoned.add(task)
        task.cancel()
        timeout = self.spec.timeout
        assert timeout is not None
        aftermath = "its coroutine was cancelled"
        self.ctx.report(timeout_record(self.label, index, value, timeout, aftermath))
        if self._wakeup is not None:
            self._wakeup.set()  # a slot is free

    def _flush(self) -> None:
        """Send the results finished since the last loop turn on, as one batch."""
        if self._finished_indices:
            indices, values = self._finished_indices, self._finished_values
            self._finished_indices, self._finished_values = [], []
            self.outlet.put(indices, values)

    async def _shut_down(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel every task, give them a moment to unwind, release loop resources."""
        tasks = [*self._tasks, *self._abandoned]
        self._tasks.clear()
        self._pending.clear()
        for task in tasks:
            task.cancel()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: asyncio must not log it
        remaining = max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait_for(loop.shutdown_asyncgens(), remaining + 0.1)
            await asyncio.wait_for(loop.shutdown_default_executor(), remaining + 0.1)
        except (asyncio.TimeoutError, RuntimeError):
            pass  # stuck code in the default executor: nothing more to do


class LoopCaller:
    """Runs an async stage function to completion in the calling thread.

    The single-threaded execute methods call each stage function directly;
    for an asyncio stage this object stands in for the function, running every
    call on one private event loop (created at the first call), so that
    objects bound to a loop, such as client sessions, behave as they do in a
    concurrent run. :meth:`close` closes the loop.
    """

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self._function = function
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, value: Any) -> Any:
        awaitable = self._function(value)
        if not inspect.isawaitable(awaitable):
            raise not_awaitable(self._function, awaitable)
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(_await(awaitable))

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


@dataclass(frozen=True, kw_only=True)
class AsyncSpec(StageSpec):
    """``add_asyncpool``: coroutines on one event loop; ``max_workers`` is the concurrency."""

    kind_name = "asyncio"

    @classmethod
    def create(
        cls, function: Callable[[Any], Any], *, max_concurrency: object, timeout: object
    ) -> AsyncSpec:
        check_async_function(function, "async_function")
        limit = check_positive_int(max_concurrency, "max_concurrency", allow_none=False)
        seconds = check_positive_number(timeout, "timeout")
        return cls(function=function, max_workers=limit, timeout=seconds)

    def default_workers(self) -> int:
        return DEFAULT_MAX_CONCURRENCY

    def build(self, label: StageLabel, ctx: RunContext) -> StageRuntime:
        return AsyncStage(self, label, ctx)

    def sequential(self) -> tuple[Callable[[Any], Any], Callable[[], None] | None]:
        # Each call runs to completion on one private event loop.
        caller = LoopCaller(self.function)
        return caller, caller.close
