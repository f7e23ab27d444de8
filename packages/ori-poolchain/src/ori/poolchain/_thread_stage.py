"""Thread stages: lanes that call the stage function in their own thread.

Data flow of one lane::

    in_queue --(indices, values)--> fn(value) for each --> outlet (next stage)
                                         \\--> ErrorRecord --> run output queue

A thread cannot be interrupted, so a lane cannot enforce its own timeout. When
the stage has one, each lane publishes ``current = (index, value, start)``
before each call, and the consumer, which wakes up in time for the earliest
deadline, calls :meth:`ThreadStage.check_overdue`. An overdue item is *claimed*
under the lane's lock, reported as :class:`~ori.errors.OriTimeoutError`, and a
new lane replaces the stuck one so the stage keeps its capacity. The stuck
thread (a daemon) finishes its call whenever the function returns, sees the
claim, throws the late result away, hands the rest of its batch back to the
queue and exits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ori.errors.validation import check_callable, check_positive_int, check_positive_number

from ._chunking import THREAD_GIVE_BACK_SECONDS, thread_sizer
from ._context import STOP, Indices, RunContext, setup_failure
from ._errors import ErrorRecord, StageLabel, timeout_record
from ._stages import StageRuntime, StageSpec, check_initializer, default_thread_workers, usable_cpus

_Token = tuple[int, Any, float]  # (input index, argument, monotonic start)
_SLICE = 8  # items per map() call between two looks at the clock


@dataclass(frozen=True, kw_only=True)
class ThreadSpec(StageSpec):
    """``add_threadpool`` (and ``add_cpupool`` without the GIL): lanes on threads."""

    # Called as initializer(*initargs) once per lane thread before its first item.
    initializer: Callable[..., Any] | None = None
    initargs: tuple[Any, ...] = ()
    cpu_bound: bool = False  # add_cpupool: one lane per CPU, and a label that says so

    @classmethod
    def create(
        cls,
        function: Callable[[Any], Any],
        *,
        max_workers: object,
        timeout: object,
        initializer: object = None,
        initargs: object = (),
        cpu_bound: bool = False,
    ) -> ThreadSpec:
        check_callable(function, "function")
        workers = check_positive_int(max_workers, "max_workers")
        seconds = check_positive_number(timeout, "timeout")
        setup = check_initializer(initializer, initargs)
        return cls(
            function=function,
            max_workers=workers,
            timeout=seconds,
            initializer=None if setup is None else setup[0],
            initargs=() if setup is None else setup[1],
            cpu_bound=cpu_bound,
        )

    @property
    def kind_name(self) -> str:
        return "cpu pool on threads" if self.cpu_bound else "thread pool"

    def default_workers(self) -> int:
        return usable_cpus() if self.cpu_bound else default_thread_workers()

    def build(self, label: StageLabel, ctx: RunContext) -> StageRuntime:
        return ThreadStage(self, label, ctx)


class _Lane:
    """One lane of a thread stage: its thread and the call it is making.

    ``current`` is the token of the running call (when the stage has a
    timeout); ``claimed`` the token the consumer's watchdog took over because
    it ran late, after which the lane throws that call's result away.
    """

    __slots__ = ("claimed", "current", "lock", "thread")

    def __init__(self) -> None:
        self.current: _Token | None = None
        self.claimed: _Token | None = None
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def finish(self, token: _Token) -> bool:
        """Mark *token*'s call as done; False if the watchdog claimed it first."""
        with self.lock:
            if self.claimed is token:
                return False
            self.current = None
            return True


class ThreadStage(StageRuntime):
    """A stage whose lanes are threads of this process."""

    spec: ThreadSpec

    def __init__(self, spec: ThreadSpec, label: StageLabel, ctx: RunContext) -> None:
        super().__init__(spec, label, ctx)
        self.sizer = thread_sizer()
        self._lanes: list[_Lane] = []
        self._retired: list[_Lane] = []
        self._lane_numbers = 0

    def lane_count(self) -> int:
        return len(self._lanes)

    def start_threads(self) -> None:
        for _ in range(self.workers):
            self._start_lane()

    def _start_lane(self) -> None:
        lane = _Lane()
        self._lane_numbers += 1
        lane.thread = threading.Thread(
            target=self._lane_main,
            args=(lane,),
            name=f"{self.ctx.name}-stage{self.label.number}-thread{self._lane_numbers}",
            daemon=True,
        )
        self._lanes.append(lane)
        lane.thread.start()

    def _lane_main(self, lane: _Lane) -> None:
        get = self.in_queue.get
        ctx = self.ctx
        timed = self.spec.timeout is not None
        add_busy = self.meter.add_busy
        clock = time.perf_counter
        try:
            if self.spec.initializer is not None and not self._set_up():
                return
            while True:
                message = get()
                if message is STOP or ctx.stopping:
                    return
                assert isinstance(message, tuple)
                indices, values = message
                began = clock()
                if timed:
                    going_on = self._run_timed(lane, indices, values)
                    add_busy(clock() - began)
                    if not going_on:
                        return
                else:
                    self._run_batch(indices, values)
                    add_busy(clock() - began)
        except BaseException as exc:  # an Ori bug: fail the run rather than hang it
            ctx.fail(self.label, exc)

    def _set_up(self) -> bool:
        """Run the stage's initializer in this lane; False (run failed) if it raised."""
        try:
            self.spec.initializer(*self.spec.initargs)  # type: ignore[misc]
        except BaseException as exc:
            self.ctx.out_queue.put(setup_failure(self.spec.initializer, self.label, exc))
            return False
        return True

    def _run_batch(self, indices: Indices, values: list[Any]) -> None:
        """The hot path: call the function on each value, no timeout to watch.

        Runs map() over short slices; a batch still busy after
        THREAD_GIVE_BACK_SECONDS gives its unstarted items back to the queue.
        """
        function = self.spec.function
        results: list[Any] = []
        extend = results.extend
        failed: list[int] = []
        size = len(values)
        clock = time.perf_counter
        started = clock()
        start = 0
        while start < size:
            try:
                extend(map(function, values[start : start + _SLICE]))
                start += _SLICE
            except BaseException as exc:
                start = len(results)  # extend() kept what came before the failure
                results.append(None)
                failed.append(start)
                report = ErrorRecord(
                    index=indices[start], stage=self.label, exception=exc, value=values[start]
                )
                self.ctx.report(report)
                del exc, report
                start += 1
            if start < size and clock() - started > THREAD_GIVE_BACK_SECONDS:
                self.in_queue.put((indices[start:], values[start:]))
                break
        done = len(results)
        self.sizer.report(done, clock() - started)
        if not failed:
            self.outlet.put(indices[:done] if done < size else indices, results)
        elif len(failed) < done:
            skip = set(failed)
            keep = [p for p in range(done) if p not in skip]
            self.outlet.put([indices[p] for p in keep], [results[p] for p in keep])

    def _run_timed(self, lane: _Lane, indices: Indices, values: list[Any]) -> bool:
        """Run a batch publishing each call for the watchdog; False if retired."""
        function = self.spec.function
        report = self.ctx.report
        done_indices: list[int] = []
        done_values: list[Any] = []
        for position, value in enumerate(values):
            index = indices[position]
            token = (index, value, time.monotonic())
            lane.current = token
            try:
                result = function(value)
            except BaseException as exc:
                if not lane.finish(token):
                    self._retire(indices, values, position, done_indices, done_values)
                    return False
                report(ErrorRecord(index=index, stage=self.label, exception=exc, value=value))
                del exc
                continue
            if not lane.finish(token):
                self._retire(indices, values, position, done_indices, done_values)
                return False
            done_indices.append(index)
            done_values.append(result)
        if done_indices:
            self.outlet.put(done_indices, done_values)
        return True

    def _retire(
        self,
        indices: Indices,
        values: list[Any],
        position: int,
        done_indices: list[int],
        done_values: list[Any],
    ) -> None:
        """A claimed lane's exit: keep finished work, give back unstarted work."""
        if self.ctx.stopping:
            return
        if done_indices:
            self.outlet.put(done_indices, done_values)
        if position + 1 < len(indices):
            self.in_queue.put((indices[position + 1 :], values[position + 1 :]))

    def next_deadline(self) -> float | None:
        timeout = self.spec.timeout
        if timeout is None:
            return None
        starts = [token[2] for lane in self._lanes if (token := lane.current) is not None]
        return min(starts) + timeout if starts else time.monotonic() + timeout

    def check_overdue(self, now: float) -> None:
        timeout = self.spec.timeout
        if timeout is None:
            return
        for lane in list(self._lanes):
            token = lane.current
            if token is None or now - token[2] < timeout:
                continue
            with lane.lock:
                if lane.current is not token or lane.claimed is token:
                    continue
                lane.claimed = token
            self._lanes.remove(lane)
            self._retired.append(lane)
            index, value, _ = token
            aftermath = (
                "a thread cannot be stopped, so the call goes on in the background and its "
                "result is discarded"
            )
            self.ctx.report(timeout_record(self.label, index, value, timeout, aftermath))
            if not self.ctx.stopping:
                self._start_lane()

    def finish_stop(self, deadline: float) -> None:
        # Lanes retired by a timeout are stuck in a call that nothing can end:
        # they are left to exit on their own whenever it returns.
        current = threading.current_thread()
        for lane in self._lanes:
            thread = lane.thread
            if thread is None or thread is current:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))

    def lanes_alive(self) -> bool:
        return all(lane.thread is not None and lane.thread.is_alive() for lane in self._lanes)
