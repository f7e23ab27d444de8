"""Per-stage statistics of one run: counted where the work happens, read by anyone.

Data flow::

    lane thread, per batch      items and bytes handed on (Outlet.put), busy --> its own _Cell
    feeder, per slice           items and bytes read from the input        --> RunStats
    any thread, per failure     RunContext.report                          --> its own _Cell
    consumer, per batch         items read from the input, items handed out --> RunStats
    consumer / progress thread  sample() every few ms                      --> peak queue depths
    anyone                      snapshot()                                 --> ChainStats (frozen)
    close()                     finish(): the last snapshot is frozen and kept

Every thread writes only its own cell of a stage (plain numbers found through a
``threading.local``), so counting takes no lock and loses no increment, and it
costs a few attribute operations per batch rather than per item. Readers add
the cells up. Items entering stage *k* are the items stage *k - 1* handed on
(for the first stage, the items read from the input), so nothing has to count
them twice; a stage's queue depth is what entered it minus what it finished.
The bytes in flight follow from the same counts: each stage's depth times the
average size of the items entering it (measured where they were produced, see
``_sizes.py``), plus the results waiting for the consumer times theirs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ._budget import format_bytes
from ._errors import StageLabel

SAMPLE_SECONDS = 0.005  # the consumer looks at queue depths at most this often
SATURATED = 0.5  # a bottleneck busier than this is named as the one to widen
_NAME_WIDTH = 24


@dataclass(frozen=True)
class StageStats:
    """What one stage of a run did, at the moment of a snapshot.

    Attributes:
        number: the stage's position in the chain, from 1.
        total: how many stages the chain has.
        kind: ``"thread pool"``, ``"process pool"``, ``"asyncio"``, ``"dask"``,
            ``"cpu pool on threads"`` or ``"cpu pool on processes"`` (what
            :meth:`~ori.poolchain.PoolChain.add_cpupool` picked), or the
            executor's class name.
        function: the name of the stage's function.
        workers: its threads or worker processes.
        items_in: items handed to the stage (read from the input for the
            first stage, handed on by the previous stage otherwise).
        items_out: items it finished and handed on.
        items_failed: items it reported as failed (exceptions, timeouts,
            crashed workers) once their ``retries`` ran out, whatever the
            error policy then did with them. A retry that succeeds counts
            once, in ``items_out``.
        queue_depth: items handed to it and not finished: waiting in its queue
            or being worked on. After the run, the items it never finished.
        peak_queue_depth: the highest queue depth seen (sampled every few
            milliseconds while the run is consumed, and at every snapshot).
        busy_seconds: the time its workers spent on items. For thread and
            executor stages, the time lanes spent from taking a batch to
            handing it on; for process stages, the compute time the workers
            report (or, for a chunk whose worker died or was killed, the time
            the lane waited for it). A batch counts once it is done.
        average_item_seconds: ``busy_seconds`` per finished item (out or
            failed), or None before any item finished.
        utilisation: ``busy_seconds / (elapsed * workers)``, from 0 to 1: the
            share of the run's time its workers were busy.
        workers_lost: process stages: worker processes that died or were
            killed while running items (timeouts, crashes), or that failed to
            start (died or hung before they were ready), and were replaced.
            A death that running the items again does not repeat (e.g. a
            SIGKILL from outside) is counted here and is not a failure: the
            items it interrupted ran again and their results are kept.
    """

    number: int
    total: int
    kind: str
    function: str
    workers: int
    items_in: int
    items_out: int
    items_failed: int
    queue_depth: int
    peak_queue_depth: int
    busy_seconds: float
    average_item_seconds: float | None
    utilisation: float
    workers_lost: int = 0

    @property
    def name(self) -> str:
        """How errors and reports name the stage: ``stage 2/3 (process pool, crunch)``."""
        return str(StageLabel(self.number, self.total, self.kind, self.function))


@dataclass(frozen=True)
class ChainStats:
    """A snapshot of a run's statistics: per stage, plus the run as a whole.

    Get one from :attr:`PoolChainRun.stats` (during or after a run) or
    :attr:`PoolChain.stats` (the chain's most recent run). It is plain,
    immutable data: reading it costs nothing and takes no lock.

    Attributes:
        stages: one :class:`StageStats` per stage, in chain order.
        elapsed: seconds since the run started (until it ended, once it has).
        items_in: items read from the input.
        items_out: results handed to the caller (with ``on_error="return"``,
            :class:`~ori.poolchain.Failure` objects included).
        running: True while the run has not been closed.
        items_failed: items that failed in any stage after their retries
            (the sum of the stages' ``items_failed``), whatever the error
            policy did with them.
        items_skipped: failed items that ``on_error="skip"`` dropped. Once a
            run has ended without raising, every input item is either one of
            ``items_out`` or one of these: ``items_in == items_out +
            items_skipped``.
        bytes_in_flight: the bytes of the items between "read from the input"
            and "handed out" at the moment of the snapshot (0 once the run
            ended): each stage's queue depth times the average size of the
            items entering it, measured where they were produced (``len()``
            of bytes and str, ``.nbytes`` of buffers, the pickled size of
            process-stage results, ``sys.getsizeof`` otherwise).
        peak_bytes_in_flight: the highest ``bytes_in_flight`` seen (sampled
            every few milliseconds while the run is consumed, and at every
            snapshot).
        max_memory: the run's byte budget (``max_memory`` of the execute
            method) in bytes, or None when it had none.
    """

    stages: tuple[StageStats, ...]
    elapsed: float
    items_in: int
    items_out: int
    running: bool
    items_failed: int = 0
    items_skipped: int = 0
    bytes_in_flight: int = 0
    peak_bytes_in_flight: int = 0
    max_memory: int | None = None

    @property
    def bottleneck(self) -> StageStats | None:
        """The stage whose workers were busiest, or None if none has worked yet.

        "Busiest" is the highest busy time per worker, i.e. the highest
        :attr:`StageStats.utilisation`. In a streaming chain every stage moves
        at the pace of the slowest one, and the slowest one is the one whose
        workers have no idle time: giving it more workers (or a faster
        function) is what speeds the whole chain up, while the other stages
        wait on it. Raw busy time alone would mislead: a stage with eight
        workers can do eight times the work of a one-worker stage in the
        same time. When even the bottleneck's utilisation is low, no stage
        limits the run: the input, the code consuming the results, or
        ``max_in_flight`` or ``max_memory`` sets the pace.
        """
        busiest: StageStats | None = None
        for stage in self.stages:
            if stage.busy_seconds > 0 and (
                busiest is None or stage.utilisation > busiest.utilisation
            ):
                busiest = stage
        return busiest

    def report(self) -> str:
        """The statistics as a small text table, ready to print.

        A first line with the items read and handed out and the bytes in
        flight (now and at the peak, and the budget), then one row per stage
        (workers, items in / out / failed, current and peak queue depth, busy
        seconds, average milliseconds per item, utilisation), followed by a
        line naming the bottleneck. Never blocks.
        """
        state = "running" if self.running else "finished"
        lines = [
            f"PoolChain run, {state} after {self.elapsed:.2f} s: "
            f"{self.items_in} items read, {self.items_out} results"
            + (f", {self.items_failed} failed" if self.items_failed else "")
            + (f", {self.items_skipped} skipped" if self.items_skipped else "")
            + f"; {self._memory_text()}"
        ]
        header = ["stage", "workers", "in", "out", "failed", "queue", "peak"]
        header += ["busy s", "avg ms", "busy %"]
        rows = [header]
        bottleneck = self.bottleneck
        for stage in self.stages:
            function = stage.function
            if len(function) > _NAME_WIDTH:
                function = function[: _NAME_WIDTH - 3] + "..."
            average = stage.average_item_seconds
            rows.append(
                [
                    f"{stage.number}/{stage.total} {stage.kind}: {function}",
                    str(stage.workers),
                    str(stage.items_in),
                    str(stage.items_out),
                    str(stage.items_failed),
                    str(stage.queue_depth),
                    str(stage.peak_queue_depth),
                    f"{stage.busy_seconds:.2f}",
                    "-" if average is None else _milliseconds(average),
                    f"{stage.utilisation:.0%}",
                ]
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
        for number, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            line = "  ".join(cells)
            if bottleneck is not None and number == bottleneck.number:
                line += "  <- bottleneck"
            lines.append(line.rstrip())
        if bottleneck is None and self.running:
            lines.append("bottleneck: none yet (no stage has finished a batch)")
        elif bottleneck is None:
            lines.append("bottleneck: none (no stage did any work)")
        elif bottleneck.utilisation >= SATURATED:
            lines.append(
                f"bottleneck: {bottleneck.name}, busy {bottleneck.utilisation:.0%} of the "
                "time; more workers there (or a faster function) would speed the chain up"
            )
        else:
            lines.append(
                f"bottleneck: {bottleneck.name}, but it was busy only "
                f"{bottleneck.utilisation:.0%} of the time: the input, the code consuming "
                "the results, max_in_flight or max_memory set the pace"
            )
        return "\n".join(lines)

    def _memory_text(self) -> str:
        if self.max_memory is None:
            budget = "no max_memory"
        else:
            budget = f"max_memory {format_bytes(self.max_memory)}"
        now = f"{format_bytes(self.bytes_in_flight)} now, " if self.running else ""
        return f"in flight {now}peak {format_bytes(self.peak_bytes_in_flight)} ({budget})"

    def __str__(self) -> str:
        return self.report()


def _milliseconds(seconds: float) -> str:
    """Three significant digits, never in exponent form above a microsecond."""
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3g}"


class _Cell:
    """One thread's counts for one stage; only that thread writes them."""

    __slots__ = ("busy", "failed", "nbytes", "out")

    def __init__(self) -> None:
        self.out = 0
        self.nbytes = 0  # of the items handed on
        self.failed = 0
        self.busy = 0.0


class StageMeter:
    """The counters of one stage of one run (any thread may count)."""

    __slots__ = ("_cells", "_local", "_lock", "label", "lost", "workers")

    def __init__(self, label: StageLabel, workers: int) -> None:
        self.label = label
        self.workers = workers  # kept up to date by the stage (an executor may say later)
        self._local = threading.local()
        self._cells: list[_Cell] = []
        self._lock = threading.Lock()
        self.lost = 0  # worker processes lost (rare: counted under the lock)

    def _cell(self) -> _Cell:
        try:
            cell: _Cell = self._local.cell
        except AttributeError:
            cell = self._local.cell = _Cell()
            with self._lock:  # once per thread and stage
                self._cells.append(cell)
        return cell

    def count_out(self, items: int, nbytes: int) -> None:
        """*items* weighing *nbytes* finished and were handed on."""
        cell = self._cell()
        cell.out += items
        cell.nbytes += nbytes

    def count_failed(self) -> None:
        """One item failed."""
        self._cell().failed += 1

    def count_lost_worker(self) -> None:
        """A worker process died or was killed and is being replaced."""
        with self._lock:
            self.lost += 1

    def add_busy(self, seconds: float) -> None:
        """A lane (or worker) spent *seconds* on a batch."""
        self._cell().busy += seconds

    def totals(self) -> tuple[int, int, float, int]:
        """(items out, items failed, busy seconds, bytes out) summed over every thread."""
        out = failed = nbytes = 0
        busy = 0.0
        for cell in list(self._cells):
            out += cell.out
            failed += cell.failed
            busy += cell.busy
            nbytes += cell.nbytes
        return out, failed, busy, nbytes

    def output(self) -> tuple[int, int]:
        """(items handed on, their bytes) summed over every thread."""
        out = nbytes = 0
        for cell in list(self._cells):
            out += cell.out
            nbytes += cell.nbytes
        return out, nbytes


class RunStats:
    """The live statistics of one run; turns into a frozen snapshot at close.

    Held by the run's :class:`~._context.RunContext` (so lanes reach it) and by
    the chain that started the run (for :attr:`PoolChain.stats`); it refers to
    the stage runtimes only until :meth:`finish`, and never to the iterator.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.max_memory: int | None = None  # the run's byte budget, for the report
        # Written under the feeder's lock (by the feeder, or by the consumer
        # sending on the items of a slice whose source blocked).
        self.pulled = 0
        self.pulled_bytes = 0
        self.handed_out = 0  # written by the consumer only
        self.skipped = 0  # written by the consumer only
        self._meters: list[StageMeter] = []
        self._peaks: list[int] = []
        self._peak_bytes = 0
        # Reentrant: a garbage-collected run may be finished (closed) by the
        # very thread that is taking one of its snapshots.
        self._lock = threading.RLock()
        self._next_sample = 0.0
        self._final: ChainStats | None = None

    def add_stage(self, label: StageLabel, workers: int) -> StageMeter:
        """Register the next stage (in chain order) and return its meter."""
        meter = StageMeter(label, workers)
        self._meters.append(meter)
        self._peaks.append(0)
        return meter

    def count_failure(self, number: int) -> None:
        """Stage *number* (from 1) reported a failed item (any thread)."""
        for meter in self._meters:  # a handful of stages; failures are rare
            if meter.label.number == number:
                meter.count_failed()
                return

    def tick(self) -> None:
        """Sample queue depths and bytes if the last sample is a few ms old (any thread)."""
        now = time.perf_counter()
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_SECONDS
            with self._lock:
                self._count(self._meters)

    def snapshot(self) -> ChainStats:
        """The statistics now (while running) or at the end (once closed)."""
        final = self._final
        if final is not None:
            return final
        return self._measure(running=True)

    def finish(self) -> None:
        """Freeze the final snapshot and let go of the stages (idempotent)."""
        with self._lock:
            if self._final is None:
                self._final = self._build(running=False)
                self._meters = []

    def _count(
        self, meters: list[StageMeter]
    ) -> tuple[float, int, int, int, list[tuple[int, int, int, float, int]]]:
        """(elapsed, pulled, handed out, bytes in flight, per stage (in, out, failed, busy, peak)).

        Updates the peaks; call with the lock held.
        """
        elapsed = time.perf_counter() - self.started
        # Later stages first and the input count last: whatever moves on
        # meanwhile, an item is never seen leaving a stage before it was seen
        # entering it, so depths are never negative.
        handed_out = self.handed_out
        totals = [meter.totals() for meter in reversed(meters)]
        totals.reverse()
        pulled = entered = self.pulled
        entered_bytes = self.pulled_bytes
        counts: list[tuple[int, int, int, float, int]] = []
        peaks = self._peaks
        in_flight = 0.0
        for position, (out, failed, busy, nbytes) in enumerate(totals):
            depth = entered - out - failed
            if depth > peaks[position]:
                peaks[position] = depth
            if depth > 0:
                in_flight += depth * entered_bytes / entered
            counts.append((entered, out, failed, busy, peaks[position]))
            entered, entered_bytes = out, nbytes
        waiting = entered - handed_out  # results not yet handed out
        if waiting > 0:
            in_flight += waiting * entered_bytes / entered
        bytes_in_flight = int(in_flight)
        if bytes_in_flight > self._peak_bytes:
            self._peak_bytes = bytes_in_flight
        return elapsed, pulled, handed_out, bytes_in_flight, counts

    def _measure(self, running: bool) -> ChainStats:
        with self._lock:
            final = self._final
            if final is not None:
                return final
            return self._build(running)

    def _build(self, running: bool) -> ChainStats:
        meters = self._meters
        elapsed, pulled, handed_out, bytes_in_flight, counts = self._count(meters)
        stages: list[StageStats] = []
        for meter, (entered, out, failed, busy, peak) in zip(meters, counts, strict=True):
            workers = meter.workers
            done = out + failed
            capacity = elapsed * workers
            stages.append(
                StageStats(
                    # The label's numbers: a segment of a chain with operators
                    # (_segments.py) holds stages numbered within the whole chain.
                    number=meter.label.number,
                    total=meter.label.total,
                    kind=meter.label.kind,
                    function=meter.label.function,
                    workers=workers,
                    items_in=entered,
                    items_out=out,
                    items_failed=failed,
                    queue_depth=max(0, entered - done),
                    peak_queue_depth=peak,
                    busy_seconds=busy,
                    average_item_seconds=busy / done if done else None,
                    utilisation=min(1.0, busy / capacity) if capacity > 0 else 0.0,
                    workers_lost=meter.lost,
                )
            )
        return ChainStats(
            stages=tuple(stages),
            elapsed=elapsed,
            items_in=pulled,
            items_out=handed_out,
            running=running,
            items_failed=sum(stage.items_failed for stage in stages),
            items_skipped=self.skipped,
            bytes_in_flight=bytes_in_flight if running else 0,
            peak_bytes_in_flight=self._peak_bytes,
            max_memory=self.max_memory,
        )
