"""Stage specifications and what every running stage has in common.

A :class:`StageSpec` is what ``PoolChain.add*`` records: immutable, validated,
reused by every execution. When a run starts, each spec becomes a
:class:`StageRuntime` (thread, process or generic-executor flavour) with its own
input queue and lanes. A stage hands its successes to an :class:`Outlet`: the
next stage's input queue, cut into batches of the size that stage wants, or
for the last stage the run's output queue; it measures their bytes on the way
(for the byte budget, see ``_sizes.py``).
"""

from __future__ import annotations

import abc
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ori.errors import OriValidationError
from ori.errors.validation import check_callable, describe

from ._chunking import Sizer
from ._context import Batch, Indices, Message, RunContext
from ._errors import StageLabel
from ._sizes import batch_nbytes
from ._stats import StageMeter

DEFAULT_MAX_CONCURRENCY = 100  # add_asyncpool: coroutines of one stage running at once


def default_thread_workers() -> int:
    """The number of threads ``ThreadPoolExecutor()`` would use."""
    return min(32, usable_cpus() + 4)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if process_cpu_count is not None:
        return int(process_cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class StageSpec(abc.ABC):
    """One validated ``add*`` call: immutable, reused by every execution.

    Each stage kind has its subclass, next to its runtime: it checks its own
    arguments (a ``create`` class method), knows its default worker count and
    how to name itself, checks itself again before a run (:meth:`check_run`)
    and builds its runtime (:meth:`build`) and its single-threaded function
    (:meth:`sequential`). Nothing dispatches on a kind name.
    """

    function: Callable[[Any], Any]
    max_workers: int | None = None
    timeout: float | None = None
    # Error policy of this stage (None: the chain's) and retries per item.
    on_error: str | None = None
    retries: int = 0

    @property
    @abc.abstractmethod
    def kind_name(self) -> str:
        """How labels name the kind: ``"thread pool"``, ``"process pool"``..."""

    @abc.abstractmethod
    def default_workers(self) -> int:
        """The lanes (or tasks, or coroutines) of the stage when max_workers is None."""

    @abc.abstractmethod
    def build(self, label: StageLabel, ctx: RunContext) -> StageRuntime:
        """This stage's runtime for one run."""

    def check_run(self) -> None:  # noqa: B027 - optional hook
        """Check again what may have changed since add time (raises OriValidationError)."""

    def sequential(self) -> tuple[Callable[[Any], Any], Callable[[], None] | None]:
        """What the single-threaded modes call per item, and how to clean up after."""
        return self.function, None

    @property
    def workers(self) -> int:
        """How many lanes the stage runs."""
        return self.max_workers if self.max_workers is not None else self.default_workers()

    @property
    def function_name(self) -> str:
        name = getattr(self.function, "__name__", None)
        return str(name) if name else type(self.function).__name__

    def label(self, number: int, total: int) -> StageLabel:
        return StageLabel(number, total, self.kind_name, self.function_name)


Setup = tuple[Callable[..., Any], tuple[Any, ...]]


def check_initializer(initializer: Any, initargs: object) -> Setup | None:
    """The checked ``(initializer, initargs)`` of a thread or process stage, or None."""
    if initializer is None:
        if initargs != ():
            raise OriValidationError(
                "initargs were given without an initializer; pass initializer= too "
                "(or leave initargs empty)"
            )
        return None
    check_callable(initializer, "initializer")
    if isinstance(initargs, (str, bytes)) or not isinstance(initargs, Iterable):
        raise OriValidationError(
            f"initargs must be a tuple of arguments for the initializer, got {describe(initargs)}"
        )
    return initializer, tuple(initargs)


class Outlet:
    """Where a stage puts its successes.

    To another stage, a batch larger than that stage's current batch size is
    cut, so that several of its lanes can share it; to the consumer it goes
    whole.
    """

    __slots__ = ("_meter", "_queue", "_sizer")

    def __init__(
        self, target: queue.SimpleQueue[Any], sizer: Sizer | None, meter: StageMeter
    ) -> None:
        self._queue = target
        self._sizer = sizer
        self._meter = meter

    def put(self, indices: Indices, values: list[Any], nbytes: int | None = None) -> None:
        """Hand on a batch of results; *nbytes* is their size if already known."""
        if nbytes is None:
            nbytes = batch_nbytes(values)
        self._meter.count_out(len(indices), nbytes)  # before the put: never seen leaving early
        sizer = self._sizer
        if sizer is None or len(indices) <= sizer.size:
            self._queue.put((indices, values))
            return
        size = sizer.size
        put = self._queue.put
        for start in range(0, len(indices), size):
            put((indices[start : start + size], values[start : start + size]))


class StageRuntime(abc.ABC):
    """One stage of one run: an input queue, lanes, and the way to stop them.

    Life cycle, all driven from the consumer's thread except ``begin_stop`` and
    ``finish_stop`` (whichever thread closes the run): ``start_processes`` for
    every stage, then ``start_threads`` for every stage (so that forked workers
    are created before the run has threads), then ``begin_stop`` for every
    stage, then ``finish_stop`` for every stage.
    """

    sizer: Sizer

    def __init__(self, spec: StageSpec, label: StageLabel, ctx: RunContext) -> None:
        self.spec = spec
        self.label = label
        self.ctx = ctx
        self.in_queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.workers = spec.workers
        self.meter = ctx.stats.add_stage(label, self.workers)
        ctx.retries.allow(label.number, spec.retries, self.submit)
        self.outlet: Outlet = Outlet(ctx.out_queue, None, self.meter)

    def connect(self, downstream: StageRuntime | None) -> None:
        """Send successes to *downstream*, or to the consumer when None."""
        if downstream is None:
            self.outlet = Outlet(self.ctx.out_queue, None, self.meter)
        else:
            self.outlet = Outlet(downstream.in_queue, downstream.sizer, self.meter)

    def submit(self, batch: Batch) -> None:
        """Queue a batch of items for this stage (any thread)."""
        self.in_queue.put(batch)

    def capacity(self) -> int:
        """Items this stage can work on at once at its current batch size."""
        return self.workers * self.sizer.size

    def start_processes(self) -> None:  # noqa: B027 - optional hook
        """Start worker processes, if the stage has any."""

    @abc.abstractmethod
    def start_threads(self) -> None:
        """Start the lanes."""

    @abc.abstractmethod
    def lane_count(self) -> int:
        """How many lanes may be waiting on the input queue."""

    def begin_stop(self) -> None:
        """Wake every lane so that it exits; never blocks."""
        for _ in range(self.lane_count()):
            self.in_queue.put(None)

    @abc.abstractmethod
    def finish_stop(self, deadline: float) -> None:
        """Wait until *deadline* (monotonic) for lanes and workers to exit."""

    def next_deadline(self) -> float | None:
        """The earliest moment the consumer must call :meth:`check_overdue`."""
        return None

    def check_overdue(self, now: float) -> None:  # noqa: B027 - optional hook
        """Report items that ran past their timeout (stages whose lanes cannot)."""

    @abc.abstractmethod
    def lanes_alive(self) -> bool:
        """False when a lane died without being told to: an Ori bug."""


class SingleThreadStage(StageRuntime):
    """A stage served by one thread of its own (an event loop, a dispatcher).

    Subclasses give the thread's body (:meth:`_thread_main`) and the suffix of
    its name; starting, waking, joining and the health check are shared.
    """

    thread_suffix = "thread"

    def __init__(self, spec: StageSpec, label: StageLabel, ctx: RunContext) -> None:
        super().__init__(spec, label, ctx)
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def _thread_main(self) -> None:
        """The stage's one thread: serve the input queue until told to stop."""

    def lane_count(self) -> int:
        return 1 if self._thread is not None else 0

    def start_threads(self) -> None:
        self._thread = threading.Thread(
            target=self._thread_main,
            name=f"{self.ctx.name}-stage{self.label.number}-{self.thread_suffix}",
            daemon=True,
        )
        self._thread.start()

    def finish_stop(self, deadline: float) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))

    def lanes_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
