"""Stages that submit to something the user owns: an Executor instance, a dask cluster.

Data flow (one dispatcher thread per stage, however many tasks are in flight)::

    in_queue --batches--> pending items --chunks of sizer.size-->
        backend.submit(run_chunk, function, chunk) --> future
    future done --(done callback, any thread)--> in_queue: the task's number
        --> dispatcher: results to the outlet, failures to the consumer

The dispatcher keeps at most ``window`` tasks submitted (twice the workers the
stage may use, so each has one running and one waiting; once with a timeout,
so that a task's time since submission is its run time). ``Executor.map`` and
``Client.map`` would instead submit the whole input at once. The stage never
shuts its backend down: on close it cancels the tasks it submitted (a task that
already started on a ``concurrent.futures`` executor cannot be stopped and
finishes in the background; its result is dropped) and leaves.

A task that fails as a whole (the executor is broken, a value cannot be
pickled, a dask worker died) fails its item when it held one; a chunk is split
and its items sent again one by one, so that only the guilty item fails.
"""

from __future__ import annotations

import abc
import collections
import functools
import itertools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from ori.errors import OriValidationError
from ori.errors.validation import check_positive_int, check_positive_number

from ._backend import Backend
from ._chunking import PROCESS_MAX_CHUNK, Sizer
from ._context import STOP, Indices, Message, RunContext, concat
from ._errors import ErrorRecord, StageLabel, timeout_record
from ._stages import SingleThreadStage, StageRuntime, StageSpec


def check_task_limits(
    max_workers: object, timeout: object, chunksize: object, method: str
) -> tuple[int | None, float | None, int | None]:
    """Check the limits of a stage that submits tasks: (workers, seconds, chunk size).

    Each must be positive or None, and since a timeout is per item while these
    stages can only time whole tasks, a timeout needs one item per task.
    """
    workers = check_positive_int(max_workers, "max_workers")
    seconds = check_positive_number(timeout, "timeout")
    chunksize = check_positive_int(chunksize, "chunksize")
    if seconds is not None and chunksize is not None and chunksize > 1:
        raise OriValidationError(
            f"{method} cannot combine timeout with chunksize={chunksize}: the timeout is "
            "per item, and a task can only be timed as a whole, so with a timeout items "
            "are sent one per task; drop chunksize (or set it to 1)"
        )
    return workers, seconds, chunksize


@dataclass(frozen=True, kw_only=True)
class SubmitSpec(StageSpec):
    """A stage that submits tasks to something the user owns (and never shuts down)."""

    backend: Any  # the user's Executor instance or distributed.Client
    chunksize: int | None = None  # None: automatic
    thread_suffix: ClassVar[str] = "dispatcher"  # the name of the stage's thread ends so

    @abc.abstractmethod
    def make_backend(self) -> Backend:
        """What this run submits to (it may check the user's object again)."""

    def build(self, label: StageLabel, ctx: RunContext) -> StageRuntime:
        return SubmitStage(self, label, ctx)


class _Task:
    __slots__ = ("deadline", "future", "indices", "values")

    def __init__(self, indices: Indices, values: list[Any], deadline: float) -> None:
        self.indices = indices
        self.values = values
        self.deadline = deadline
        self.future: Any = None


# Items waiting to be submitted: (indices, values, alone); "alone" items were
# in a task that failed as a whole and go one per task to find the guilty one.
_Pending = collections.deque[tuple[Indices, list[Any], bool]]


class SubmitStage(SingleThreadStage):
    """A stage whose tasks run on a backend the user owns, through futures."""

    spec: SubmitSpec

    def __init__(self, spec: SubmitSpec, label: StageLabel, ctx: RunContext) -> None:
        super().__init__(spec, label, ctx)
        self.backend = spec.make_backend()
        timed = spec.timeout is not None
        self.window = self.workers if timed else 2 * self.workers
        self.sizer = Sizer(
            1 if timed else spec.chunksize,
            target_seconds=self.backend.target_seconds,
            maximum=PROCESS_MAX_CHUNK,
        )
        self.thread_suffix = spec.thread_suffix

    def _thread_main(self) -> None:
        ctx = self.ctx
        in_flight: dict[int, _Task] = {}  # task number -> task, in submission order
        pending: _Pending = collections.deque()
        try:
            self._dispatch(in_flight, pending)
        except BaseException as exc:  # an Ori bug: fail the run rather than hang it
            ctx.fail(self.label, exc)
        finally:
            if in_flight:
                self.backend.cancel([task.future for task in in_flight.values()])
            in_flight.clear()
            pending.clear()

    def _dispatch(
        self,
        in_flight: dict[int, _Task],
        pending: _Pending,
    ) -> None:
        get = self.in_queue.get
        get_nowait = self.in_queue.get_nowait
        ctx = self.ctx
        timeout = self.spec.timeout
        numbers = itertools.count()
        while True:
            wait: float | None = None
            if timeout is not None and in_flight:
                first = next(iter(in_flight.values()))
                wait = max(0.0, first.deadline - time.monotonic())
            message: Any
            try:
                message = get(timeout=wait) if wait is not None else get()
            except queue.Empty:
                message = _NOTHING
            # Take everything already queued before submitting, so that small
            # batches from upstream fill whole chunks.
            while message is not _NOTHING:
                if message is STOP or ctx.stopping:
                    return
                if type(message) is int:  # a task's number, from its done callback
                    task = in_flight.pop(message, None)
                    if task is not None:  # else it timed out earlier
                        self._finish(task, pending)
                elif type(message) is tuple:
                    indices, values = message
                    pending.append((indices, values, False))
                try:
                    message = get_nowait()
                except queue.Empty:
                    message = _NOTHING
            if timeout is not None and in_flight:
                self._expire(in_flight, timeout)
            while pending and len(in_flight) < self.window and not ctx.stopping:
                number = next(numbers)
                indices, values = self._next_chunk(pending)
                task = _Task(indices, values, time.monotonic() + (timeout or 0.0))
                try:
                    task.future = self.backend.submit(self.spec.function, values)
                except Exception as exc:
                    self._submit_failed(task, exc, pending)
                    continue
                in_flight[number] = task
                put = self.in_queue.put
                # The callback runs in the backend's thread (or here, if the
                # task is already done): it only hands the number back.
                task.future.add_done_callback(functools.partial(_done, put, cast(Message, number)))

    def _next_chunk(self, pending: _Pending) -> tuple[Indices, list[Any]]:
        """Up to ``sizer.size`` items from the front of *pending*, across batches."""
        size = self.sizer.size
        indices, values, alone = pending.popleft()
        if alone:
            return indices, values
        while len(indices) < size and pending and not pending[0][2]:
            more_indices, more_values, _ = pending.popleft()
            indices = concat(indices, more_indices)
            values = values + more_values
        if len(indices) > size:
            pending.appendleft((indices[size:], values[size:], False))
            indices, values = indices[:size], values[:size]
        return indices, values

    def _submit_failed(
        self,
        task: _Task,
        exc: Exception,
        pending: _Pending,
    ) -> None:
        """Fail the first item of a chunk that could not be submitted; retry the rest."""
        record = ErrorRecord(
            index=task.indices[0], stage=self.label, exception=exc, value=task.values[0]
        )
        self.ctx.report(record)
        if len(task.indices) > 1:
            pending.appendleft((task.indices[1:], task.values[1:], False))

    def _finish(self, task: _Task, pending: _Pending) -> None:
        try:
            results, errors, seconds = self.backend.outcome(task.future)
        except BaseException as exc:  # the task itself failed, not one item
            if len(task.indices) > 1:
                # Which item is to blame? Send them again, one per task.
                for index, value in reversed(list(zip(task.indices, task.values, strict=True))):
                    pending.appendleft(([index], [value], True))
                return
            record = ErrorRecord(
                index=task.indices[0], stage=self.label, exception=exc, value=task.values[0]
            )
            self.ctx.report(record)
            return
        self.sizer.report(len(task.values), seconds)
        self.meter.add_busy(seconds)  # the compute time the task measured
        indices = task.indices
        if errors:
            failed = set()
            for position, error, text in errors:
                failed.add(position)
                remote = text if error.__traceback__ is None else None
                value = task.values[position]
                record = ErrorRecord(
                    index=indices[position],
                    stage=self.label,
                    exception=error,
                    value=value,
                    remote_traceback=remote,
                )
                self.ctx.report(record)
            keep = [p for p in range(len(indices)) if p not in failed]
            if not keep:
                return
            indices = [indices[p] for p in keep]
            results = [results[p] for p in keep]
        self.outlet.put(indices, results)

    def _expire(self, in_flight: dict[int, _Task], timeout: float) -> None:
        """Report and cancel the tasks past their deadline (the oldest come first)."""
        now = time.monotonic()
        overdue: list[_Task] = []
        for number, task in list(in_flight.items()):
            if task.deadline > now:
                break
            del in_flight[number]
            overdue.append(task)
        if not overdue:
            return
        self.backend.cancel([task.future for task in overdue])
        for task in overdue:
            index, value = task.indices[0], task.values[0]
            aftermath = self.backend.abandon_note
            self.ctx.report(timeout_record(self.label, index, value, timeout, aftermath))


_NOTHING = object()  # the dispatcher woke up for a deadline, not for a message


def _done(put: Callable[[Message], None], number: Message, _future: Any) -> None:
    put(number)
