"""Stages on any other ``concurrent.futures.Executor`` subclass, through ``submit``.

Data flow: each lane takes one item, submits it to the run's executor and waits
for its future, so at most ``workers`` futures exist at a time (``Executor.map``
would submit the whole input at once). A lane waits in short slices so that it
notices close() and the stage timeout, which counts from the moment the future
is running; an overdue future is cancelled if it has not started and otherwise
abandoned (a generic executor offers no way to stop a running call).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ori.errors.validation import (
    check_callable,
    check_positive_int,
    check_positive_number,
    check_process_function,
)

from ._chunking import Sizer
from ._compat import executor_max_workers
from ._context import STOP, RunContext
from ._errors import ErrorRecord, StageLabel, timeout_record
from ._stages import StageRuntime, StageSpec, default_thread_workers, usable_cpus

WAIT_SLICE_SECONDS = 0.1
WORKER_START_SECONDS = 60.0


@dataclass(frozen=True, kw_only=True)
class ExecutorClassSpec(StageSpec):
    """``add(executor_class=...)``: an executor of the user's class that Ori creates per run.

    (ThreadPoolExecutor and ProcessPoolExecutor themselves select Ori's own
    thread and process stages; their subclasses come here.)
    """

    executor_class: type[concurrent.futures.Executor]

    @classmethod
    def create(
        cls,
        function: Callable[[Any], Any],
        executor_class: type[concurrent.futures.Executor],
        *,
        max_workers: object,
        timeout: object,
    ) -> ExecutorClassSpec:
        check_callable(function, "function")
        workers = check_positive_int(max_workers, "max_workers")
        seconds = check_positive_number(timeout, "timeout")
        if issubclass(executor_class, concurrent.futures.ProcessPoolExecutor):
            check_process_function(function, None, name="function")
        return cls(
            function=function, executor_class=executor_class, max_workers=workers, timeout=seconds
        )

    @property
    def kind_name(self) -> str:
        return self.executor_class.__name__

    def default_workers(self) -> int:
        # What the two standard executors would use; another class says its own
        # once created (see ExecutorClassStage.start_threads).
        if issubclass(self.executor_class, concurrent.futures.ProcessPoolExecutor):
            return usable_cpus()
        return default_thread_workers()

    def build(self, label: StageLabel, ctx: RunContext) -> StageRuntime:
        return ExecutorClassStage(self, label, ctx)


class ExecutorClassStage(StageRuntime):
    """A stage run by an executor of a user-chosen class, created per run."""

    spec: ExecutorClassSpec

    def __init__(self, spec: ExecutorClassSpec, label: StageLabel, ctx: RunContext) -> None:
        super().__init__(spec, label, ctx)
        self.sizer = Sizer(1, target_seconds=1.0, maximum=1)
        self._executor: concurrent.futures.Executor | None = None
        self._threads: list[threading.Thread] = []
        self._closer: threading.Thread | None = None

    def lane_count(self) -> int:
        return len(self._threads)

    def _create_executor(self) -> concurrent.futures.Executor:
        """An executor of the stage's class, with its max_workers if the stage has one.

        A process pool starts its workers when the lanes first submit, beside
        the run's threads: where its default start method would fork them, it
        gets the forkserver instead (if its class takes ``mp_context``).
        """
        cls: Callable[..., concurrent.futures.Executor] = self.spec.executor_class
        kwargs: dict[str, Any] = {}
        if self.spec.max_workers is not None:
            kwargs["max_workers"] = self.spec.max_workers
        is_pool = issubclass(self.spec.executor_class, concurrent.futures.ProcessPoolExecutor)
        if is_pool and _fork_is_default():
            try:
                return cls(mp_context=multiprocessing.get_context("forkserver"), **kwargs)
            except TypeError:  # a subclass whose __init__ has no mp_context
                pass
        return cls(**kwargs)

    def start_threads(self) -> None:
        self._executor = self._create_executor()
        if self.spec.max_workers is None:
            self.workers = executor_max_workers(self._executor) or self.workers
            self.meter.workers = self.workers
        for number in range(self.workers):
            thread = threading.Thread(
                target=self._lane_main,
                name=f"{self.ctx.name}-stage{self.label.number}-lane{number + 1}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _lane_main(self) -> None:
        executor = self._executor
        assert executor is not None
        ctx = self.ctx
        try:
            while True:
                message = self.in_queue.get()
                if message is STOP or ctx.stopping:
                    return
                assert isinstance(message, tuple)
                began = time.perf_counter()
                done_indices: list[int] = []
                done_values: list[Any] = []
                for index, value in zip(*message, strict=True):
                    outcome = self._call(executor, index, value)
                    if outcome is _STOPPED:
                        return
                    if outcome is not _FAILED:
                        done_indices.append(index)
                        done_values.append(outcome)
                if done_indices:
                    self.outlet.put(done_indices, done_values)
                self.meter.add_busy(time.perf_counter() - began)
        except BaseException as exc:  # an Ori bug: fail the run rather than hang it
            ctx.fail(self.label, exc)

    def _call(self, executor: concurrent.futures.Executor, index: int, value: Any) -> Any:
        try:
            future = executor.submit(self.spec.function, value)
        except BaseException as exc:
            self.ctx.report(ErrorRecord(index=index, stage=self.label, exception=exc, value=value))
            return _FAILED
        timeout = self.spec.timeout
        # The clock starts when the executor starts the call (a pool may first
        # have to start a worker); a call never started gets WORKER_START_SECONDS.
        submitted = time.monotonic()
        deadline: float | None = None
        while True:
            slice_ = WAIT_SLICE_SECONDS
            if timeout is not None:
                if deadline is None and future.running():
                    deadline = time.monotonic() + timeout
                limit = deadline or submitted + timeout + WORKER_START_SECONDS
                slice_ = min(slice_, max(0.0, limit - time.monotonic()))
            done, _ = concurrent.futures.wait([future], slice_)
            if done:
                break
            if self.ctx.stopping:
                future.cancel()
                return _STOPPED
            if timeout is not None and time.monotonic() >= (
                deadline or submitted + timeout + WORKER_START_SECONDS
            ):
                future.cancel()
                aftermath = "the executor cannot stop a running call, so it was abandoned"
                self.ctx.report(timeout_record(self.label, index, value, timeout, aftermath))
                return _FAILED
        try:
            return future.result()
        except BaseException as exc:
            self.ctx.report(ErrorRecord(index=index, stage=self.label, exception=exc, value=value))
            return _FAILED

    def begin_stop(self) -> None:
        super().begin_stop()
        if self._executor is not None:
            with contextlib.suppress(Exception):
                self._executor.shutdown(wait=False, cancel_futures=True)

    def finish_stop(self, deadline: float) -> None:
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        executor = self._executor
        if executor is None:
            return
        # shutdown(wait=True) has no timeout: wait for it in a helper thread.
        if self._closer is None:
            self._closer = threading.Thread(
                target=executor.shutdown,
                name=f"{self.ctx.name}-stage{self.label.number}-shutdown",
                daemon=True,
            )
            self._closer.start()
        if self._closer is not current:
            self._closer.join(max(0.0, deadline - time.monotonic()))

    def lanes_alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)


_FAILED = object()
_STOPPED = object()


def _fork_is_default() -> bool:
    methods = multiprocessing.get_all_start_methods()
    default = multiprocessing.get_start_method(allow_none=True) or methods[0]
    return default == "fork" and "forkserver" in methods
