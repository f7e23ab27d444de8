"""One execution of a chain: the iterator the user holds, and its teardown.

Data flow::

    source --(feeder thread pulls, tags indices)--> stage 1 queue --> lanes
        --> stage 2 queue --> lanes --> ... --> output queue --(consumer)-->
        reorder by index (ordered runs) --> ready --> caller

The feeder (``_feeder.py``) is the only thread that touches the source (for an
input already in memory, which cannot block, the consumer reads it through the
feeder's admission instead), and it lets items in only while the item window
and the byte budget have room
(backpressure: the queues can then be unbounded and no put ever blocks). The
consumer (whichever thread iterates) does the rest on the user's side: it
reorders results, applies the error policy (``_on_error``: raise, skip or a
Failure in the item's place; retries happen earlier, in ``RunContext.report``),
watches thread-stage deadlines and tells the feeder when it made room. It only
ever waits on the output queue, so a source that blocks never holds back
results that are done. Stages never block on each other, so nothing can
deadlock, and memory is bounded by the window and the budget whatever the
length of the input.

Everything the run starts is owned by a :class:`_Closer` that the lanes never
see; ``close()``, the end of iteration, an error, KeyboardInterrupt, garbage
collection of the iterator (``weakref.finalize``) and interpreter exit all reach
its idempotent ``close()``.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from ori.errors import OriError

from ._budget import DEFAULT_MAX_MEMORY
from ._context import Message, RunContext, SourceEnd
from ._errors import ErrorRecord, RunFailure, exception_for
from ._feeder import FLUSH_SECONDS, Feeder
from ._policy import Failure
from ._progress import ProgressDisplay, ProgressSetup
from ._stages import StageRuntime, StageSpec
from ._stats import ChainStats, RunStats
from ._typing import Result
from ._warm import WarmPools

CLOSE_SECONDS = 2.0  # how long close() waits for busy lanes before abandoning them
HEALTH_CHECK_SECONDS = 1.0
LINGER_ITEMS = 1024  # next_batch(linger=...) stops lingering once this many are ready


def _build(spec: StageSpec, number: int, total: int, ctx: RunContext) -> StageRuntime:
    return spec.build(spec.label(number, total), ctx)


class _Failed:
    """A failed item waiting in the reorder buffer for its turn."""

    __slots__ = ("record",)

    def __init__(self, record: ErrorRecord) -> None:
        self.record = record


_SKIPPED = object()  # in the reorder buffer: an item dropped by on_error="skip"


@dataclass(frozen=True)
class RunOptions:
    """How one execution runs: the checked keywords of ``execute_lazy``."""

    ordered: bool = True
    # None: the window follows the stages' capacities (see Feeder._window).
    max_in_flight: int | None = None
    max_memory: int | None = DEFAULT_MAX_MEMORY  # bytes; None: no byte budget
    progress: ProgressSetup | None = None
    on_error: str = "raise"  # the chain's policy; a stage's own wins
    pools: WarmPools | None = None  # the chain's warm pools, inside its with block


class _Closer:
    """Tears a run down; shared with nothing that could keep the iterator alive."""

    __slots__ = ("_closed", "_ctx", "_feeder", "_stages", "progress")

    def __init__(self, ctx: RunContext, stages: list[StageRuntime], feeder: Feeder) -> None:
        self._ctx = ctx
        self._stages = stages
        self._feeder = feeder
        self._closed = False
        self.progress: ProgressDisplay | None = None

    def close(self) -> None:
        if self._closed:
            return
        self._ctx.stopping = True
        self._feeder.stop()
        for stage in self._stages:
            stage.begin_stop()
        self._ctx.out_queue.put(None)  # wakes a consumer blocked in another thread
        deadline = time.monotonic() + CLOSE_SECONDS
        for stage in self._stages:
            stage.finish_stop(deadline)
        self._feeder.join(deadline)
        self._ctx.stats.finish()
        if self._ctx.pools is not None:
            self._ctx.pools.release(self._ctx)
        if self.progress is not None:
            self.progress.close()
        self._closed = True


class _Engine:
    """The consumer's side of a run: source, window, reorder buffer, error policy.

    It hands results out a batch (a list) at a time through :meth:`next_batch`;
    the run's iterator (``itertools.chain``) hands out the items of each batch,
    so iterating costs what iterating a list does. Nothing here refers to the
    :class:`PoolChainRun` or its iterator, so when the user drops both, the
    engine is collected and its finalizer closes the run.
    """

    def __init__(
        self,
        specs: Sequence[StageSpec],
        source: Iterator[Any],
        options: RunOptions,
        *,
        first: int = 1,
        total: int | None = None,
        start: bool = True,
    ) -> None:
        # A chain with operators runs one engine per segment of stages (see
        # _segments.py): *first* and *total* number its stages within the whole
        # chain, and *start* False leaves starting to the caller (start_processes
        # for every segment before start_threads for any).
        self.ctx = ctx = RunContext()
        ctx.stats.max_memory = options.max_memory
        # The policy of each stage: its own, else the chain's.
        self._policies = [spec.on_error or options.on_error for spec in specs]
        self._first = first
        pools = options.pools
        if total is None:
            total = len(specs)
        if pools is not None and pools.acquire(ctx):
            ctx.pools = pools
        try:
            self.stages = stages = [
                _build(spec, number, total, ctx) for number, spec in enumerate(specs, first)
            ]
        except BaseException:
            if pools is not None:
                pools.release(ctx)
            raise
        for stage, downstream in zip(stages, [*stages[1:], None], strict=True):
            stage.connect(downstream)
        if options.max_in_flight is not None:
            for stage in stages:
                stage.sizer.cap(options.max_in_flight // (2 * stage.workers))
        self._feeder = Feeder(
            source,
            stages,
            ctx,
            max_in_flight=options.max_in_flight,
            max_memory=options.max_memory,
        )
        self._closer = _Closer(ctx, stages, self._feeder)
        if ctx.pools is not None:
            # Weakly: the pools must not keep a dropped run from being collected.
            ctx.pools.attach(ctx, weakref.WeakMethod(self.close))
        self._finalizer = weakref.finalize(self, self._closer.close)
        self._ordered = options.ordered
        # Stages whose deadlines the consumer watches (thread stages with a timeout).
        self._watch = [stage for stage in stages if stage.next_deadline() is not None]
        self._next_check = 0.0
        self._ready: collections.deque[list[Any]] = collections.deque()
        self._pending: dict[int, Any] = {}  # index -> result or _Failed
        self._ranges: dict[int, tuple[int, list[Any]]] = {}  # start -> (stop, results)
        self._waiting = 0  # results in _pending and _ranges (done, waiting for their turn)
        self._next_index = 0  # ordered: the next index to move to _ready
        self._pulled = 0  # items the input had, once it ended (SourceEnd)
        self._handed_out = 0  # items in batches returned by next_batch()
        self._out: list[Any] | None = None  # the last batch returned (see close)
        self._skipped = 0  # items dropped by on_error="skip"
        self._exhausted = False
        self._source_error: BaseException | None = None
        self._failure: ErrorRecord | None = None
        self.closed = False
        self._progress = options.progress
        if start:
            # Worker processes first: under the fork start method the run then
            # forks before it has any thread of its own.
            self.start_processes()
            self.start_threads()

    def start_processes(self) -> None:
        """Start the stages' worker processes (closes the run if that fails)."""
        try:
            for stage in self.stages:
                stage.start_processes()
        except BaseException:
            self.close()
            raise

    def start_threads(self) -> None:
        """Start lanes, progress bars and the feeder (closes the run if that fails)."""
        try:
            for stage in self.stages:
                stage.start_threads()
            if self._progress is not None:
                display = ProgressDisplay(self._progress, self.ctx.stats, self.ctx.name)
                self._closer.progress = display
                display.start()
            self._feeder.start()
        except BaseException:
            self.close()
            raise

    def next_batch(self, timeout: float | None = None, linger: float = 0.0) -> list[Any] | None:
        """The next non-empty list of results, or None when the run is over.

        Blocks until results are ready, or with *timeout* (seconds) at most
        that long, returning an empty list if nothing was ready by then.
        With *linger*, once results are ready it waits up to that long for
        the results of items still in the chain while fewer than LINGER_ITEMS
        are ready, then returns all of them (results stay in the run's window
        while it lingers, so the bounds of the run hold). Raises the failure
        the policy says to raise, or the source's exception once everything
        before it is out.
        Any exception (KeyboardInterrupt included) closes the run first.
        """
        if self.closed:
            return None
        ready = self._ready
        feeder = self._feeder
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.closed:  # close() may come from another thread
                self._drain()
                self.ctx.stats.tick()
                if ready:
                    if linger > 0.0:
                        self._linger(linger)
                        if len(ready) > 1:
                            batch = list(itertools.chain.from_iterable(ready))
                            ready.clear()
                            return self._hand_out(batch)
                    return self._hand_out(ready.popleft())
                if self._failure is not None:
                    raise self._raise_failure()
                if self._exhausted and self._pulled == self._handed_out + self._skipped:
                    error = self._source_error
                    self.close()
                    if error is not None:
                        self._source_error = None
                        raise error
                    return None
                if deadline is None:
                    self._wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return []
                    self._wait(left)
                feeder.waiting = self._waiting
                feeder.nudge()
            return None
        except BaseException:
            self.close()
            raise

    def _hand_out(self, batch: list[Any]) -> list[Any]:
        """Count *batch* as out of the run and tell the feeder it made room."""
        self._out = batch
        self._handed_out += len(batch)
        self.ctx.stats.handed_out = self._handed_out
        feeder = self._feeder
        feeder.waiting = self._waiting
        feeder.nudge()
        return batch

    def _linger(self, seconds: float) -> None:
        """Accept more results for up to *seconds* while few are ready (see next_batch)."""
        ready = self._ready
        until = time.monotonic() + seconds
        get = self.ctx.out_queue.get
        while (count := sum(map(len, ready))) < LINGER_ITEMS and self._failure is None:
            left = until - time.monotonic()
            if left <= 0 or self.closed:
                return
            # Only results of items already in the chain are worth waiting for:
            # nothing new enters while nothing is handed out (the window is
            # full, or an input in memory waits for this thread's nudge).
            in_flight = self.ctx.stats.pulled - self._handed_out - self._skipped
            if in_flight <= count + self._waiting:
                return
            try:
                message = get(timeout=left)
            except queue.Empty:
                return
            self._accept(message)

    def _drain(self) -> None:
        """Accept everything already in the output queue, without blocking."""
        get = self.ctx.out_queue.get_nowait
        with contextlib.suppress(queue.Empty):
            while True:
                self._accept(get())
        if self._watch and time.monotonic() >= self._next_check:
            self._check_deadlines()

    def _wait(self, limit: float = HEALTH_CHECK_SECONDS) -> None:
        """Block for the next output message, waking up for stage deadlines."""
        wait_for = min(limit, HEALTH_CHECK_SECONDS)
        if self._watch:
            wait_for = max(0.0, min(wait_for, self._next_check - time.monotonic()))
        feeder = self._feeder
        if feeder.stuck():  # items the source yielded wait for it: send them on soon
            feeder.flush()
            wait_for = min(wait_for, FLUSH_SECONDS)
        try:
            message = self.ctx.out_queue.get(timeout=wait_for)
        except queue.Empty:
            feeder.flush()
            if self._watch:
                self._check_deadlines()
            for stage in self.stages:
                if not stage.lanes_alive() and not self.ctx.stopping:
                    raise OriError(
                        f"internal error: a lane of {stage.label} stopped unexpectedly; "
                        "please report this as an Ori bug"
                    ) from None
            return
        self._accept(message)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        next_check = float("inf")
        for stage in self._watch:
            stage.check_overdue(now)
            deadline = stage.next_deadline()
            if deadline is not None:
                next_check = min(next_check, deadline)
        self._next_check = next_check

    def _accept(self, message: Message) -> None:
        if message is None:  # close() woke us up
            return
        if type(message) is not tuple:
            if type(message) is SourceEnd:
                self._exhausted = True
                self._pulled = message.pulled
                self._source_error = message.error
                return
            assert isinstance(message, ErrorRecord)
            self._on_error(message)
            return
        indices, values = message
        if not self._ordered:
            self._ready.append(values)
            return
        if type(indices) is range:
            # Contiguous batches wait whole, keyed by their first index: the
            # reorder costs one dict operation per batch, not per item.
            if indices.start == self._next_index and self._failure is None:
                self._ready.append(values)
                self._next_index = indices.stop
                if self._ranges or self._pending:
                    self._advance()
            else:
                self._ranges[indices.start] = (indices.stop, values)
                self._waiting += len(values)
            return
        pending = self._pending
        for index, value in zip(indices, values, strict=True):
            pending[index] = value
        self._waiting += len(values)
        self._advance()

    def _advance(self) -> None:
        """Move results that are next in input order from the buffers to _ready."""
        pending = self._pending
        ranges = self._ranges
        ready = self._ready
        index = self._next_index
        batch: list[Any] = []
        while self._failure is None:
            if index in ranges:
                if batch:
                    ready.append(batch)
                    batch = []
                index, values = ranges.pop(index)
                self._waiting -= len(values)
                ready.append(values)
            elif index in pending:
                value = pending.pop(index)
                if value is _SKIPPED:
                    self._waiting -= 1
                    index += 1
                    continue
                if type(value) is _Failed:
                    self._failure = value.record
                    break
                batch.append(value)
                self._waiting -= 1
                index += 1
            else:
                break
        if batch:
            ready.append(batch)
        self._next_index = index

    # -- the error policy: the one place that decides what a failure does ------

    def _on_error(self, record: ErrorRecord) -> None:
        if isinstance(record, RunFailure):  # not one item's failure: raise it now
            self._feeder.stop()
            self._ready.clear()
            self._failure = record
            return
        policy = self._policies[record.stage.number - self._first]
        # KeyboardInterrupt, SystemExit and the like always end the run.
        if policy != "raise" and isinstance(record.exception, Exception):
            if policy == "skip":
                self._skipped += 1
                self.ctx.stats.skipped = self._skipped
                self._dropped(record)
                value: Any = _SKIPPED
            else:
                value = self._returned(record)
            if not self._ordered:
                if value is not _SKIPPED:
                    self._ready.append([value])
                return
            self._pending[record.index] = value
            self._waiting += 1
            self._advance()
            return
        # Raise: the run ends at the first failed item in delivery order, so no
        # further input is needed.
        self._feeder.stop()
        if self._ordered:
            self._pending[record.index] = _Failed(record)
            self._advance()
        elif self._failure is None:
            self._failure = record

    def _raise_failure(self) -> BaseException:
        record = self._failure
        assert record is not None
        self._failure = None
        self.close()
        return self._exception(record)

    # Hooks for the engines of a chain with operators (_segments.py), which
    # name failures by the original input index and tag results with indices.

    def _exception(self, record: ErrorRecord) -> BaseException:
        """The exception a failed item raises (with the note naming it)."""
        return exception_for(record)

    def _returned(self, record: ErrorRecord) -> Any:
        """What takes a failed item's place under on_error="return"."""
        return Failure(record.index, record.value, str(record.stage), exception_for(record))

    def _dropped(self, record: ErrorRecord) -> None:
        """A failed item was dropped under on_error="skip"."""

    def close(self) -> None:
        self.closed = True
        # Results of the last batch not yet taken are dropped: the caller's
        # iterator (itertools.chain, or the async run's) may be inside that
        # list when another thread closes the run, and an emptied list ends
        # it at no cost per item. A run that ends by itself has used it up.
        out, self._out = self._out, None
        if out is not None:
            out.clear()
        self._ready.clear()
        self._pending.clear()
        self._ranges.clear()
        self._closer.close()
        self._finalizer.detach()


class RunEngine(Protocol):
    """What a :class:`PoolChainRun` drives: an :class:`_Engine`, or for a chain
    with operators a ``_segments.SegmentedEngine`` (one engine per segment)."""

    ctx: RunContext
    closed: bool
    stages: list[StageRuntime]

    def next_batch(self, timeout: float | None = None, linger: float = 0.0) -> list[Any] | None: ...

    def close(self) -> None: ...


def _results(engine: RunEngine) -> Iterator[Any]:
    """Every result of *engine*, a batch at a time.

    ``itertools.chain`` hands out the items of each batch in C: no Python frame
    of Ori runs between two results, so iterating costs about half of what a
    generator would, and a KeyboardInterrupt can only land in the caller's own
    code or inside ``next_batch()`` (which closes the run before re-raising).
    """
    return itertools.chain.from_iterable(iter(engine.next_batch, None))


class PoolChainRun(Iterator[Result]):
    """The iterator returned by :meth:`PoolChain.execute_lazy`: one running chain.

    Generic in what it yields: a ``PoolChainRun[str]`` comes from a chain
    whose last step returns ``str`` (``PoolChainRun[str | Failure[int]]``
    when failures may be returned); the type parameter changes nothing at run
    time.

    Iterate it from one thread at a time. Each ``next()`` blocks until the next
    result is ready (input order by default, completion order for
    ``ordered=False``). Work starts as soon as the run is created and goes on
    while the caller is busy, up to ``max_in_flight`` items and ``max_memory``
    bytes ahead. An input that could block is read by a feeder thread of the
    run, so a next() never waits for the input while results are done.

    ``iter(run)`` returns the run's internal iterator rather than the run
    itself, so that ``for`` loops run at C speed per item; both share one
    position, and ``next(run)`` works as well.

    The run ends, and every thread and worker process it started is stopped,
    when the results run out, when an item fails under the ``"raise"`` error
    policy (the exception is re-raised from ``next()``; ``"skip"`` and
    ``"return"`` go on), on :meth:`close`, on leaving a ``with`` block, on
    KeyboardInterrupt inside ``next()``, or when the run is garbage collected
    (e.g. after ``break`` out of a ``for`` loop). After that, ``next()``
    raises StopIteration.

    :attr:`stats` shows what each stage did so far (or in total, once the run
    ended): a :class:`ChainStats` snapshot.
    """

    def __init__(self, engine: RunEngine) -> None:
        """Wrap a started run; use :meth:`PoolChain.execute_lazy`, which validates first."""
        self._engine = engine
        self._results: Iterator[Result] = _results(engine)

    @property
    def stats(self) -> ChainStats:
        """A snapshot of this run's per-stage statistics (see :class:`ChainStats`).

        Any thread may read it, during the run or after it ended; each access
        takes a new snapshot (a few microseconds, never blocks on the stages).
        After the run ends, the final figures stay available.
        """
        return self._engine.ctx.stats.snapshot()

    @property
    def _run_stats(self) -> RunStats:
        """The live counters behind :attr:`stats` (for the chain's own use)."""
        return self._engine.ctx.stats

    def __iter__(self) -> Iterator[Result]:
        """The run's results; shares its position with ``next(run)``."""
        return self._results

    def __next__(self) -> Result:
        return next(self._results)

    def close(self) -> None:
        """Stop the run and everything it started; idempotent, any thread.

        Blocks until lanes and worker processes have exited, at most a few
        seconds: busy worker processes are terminated, idle ones are told to
        exit. A thread-stage call that is still running cannot be interrupted;
        its (daemon) thread exits as soon as the call returns and the result is
        discarded. Results not yet taken are dropped.
        """
        self._engine.close()

    def __enter__(self) -> PoolChainRun[Result]:
        """Return the run itself; leaving the block calls :meth:`close`."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the run (see :meth:`close`); exceptions propagate unchanged."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._engine.closed else "running"
        stages = len(self._engine.stages)
        return f"<PoolChainRun {self._engine.ctx.name} {state}, {stages} stages>"
