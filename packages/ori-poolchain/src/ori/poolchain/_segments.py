"""A run of a chain with operators: one engine per segment of stages.

Data flow (``A.flatten().B.C.batch(10)``, ``A``, ``B``, ``C`` stages)::

    source --feeder 1--> [engine 1: A] --next_batch--> flatten --feeder 2-->
        [engine 2: B, C] --next_batch--> batch(10) --consumer--> caller

The operators cut the chain into segments of ordinary stages. Each segment
runs as its own :class:`~._run._Engine`, over its own index space, unchanged:
its items are whatever the operators before it made of the previous segment's
results. The source of segment *k + 1* is a generator over segment *k*'s
results in delivery order (input order, or completion order for
``ordered=False``) with the operators between them applied, and segment
*k + 1*'s feeder thread is the one that reads it, so an upstream segment that
waits never holds back results a downstream one has finished, and everything
streams: an element goes on as soon as it exists. Operators after the last
stage run in the caller's thread, as it asks for results.

What crosses a boundary is a stream of ``(origin, value)`` pairs
(``_operators.py``): *origin* is the index of the original input item. Each
segment after the first keeps ``origins``, its own index -> original index,
written when its feeder reads an item and pruned when the result is handed on
or skipped, so it holds only the items in flight (infinite inputs keep flat
memory); its engine names failures by the original index through it.

A failure that an earlier segment returned (``on_error="return"``) is not fed
to later stages: the feeding generator sets it aside in ``passing``, keyed by
the segment index it comes before, and the segment's output puts it back in
its place (ordered) or at once (unordered). Under ``"raise"`` the exception
crosses boundaries as the next segment's source exception, which an engine
raises after the results before it: the order of the input is kept.

Closing (``close()``, the end, an error, garbage collection, KeyboardInterrupt)
closes every engine, downstream first, then waits for the feeder threads that
were reading an upstream engine (which now returns at once).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from ._context import Message, RunContext
from ._errors import ErrorRecord, RunFailure, exception_for
from ._feeder import _close_generator
from ._operators import (
    PAUSE,
    BatchSpec,
    Carried,
    Clock,
    OperatorLabel,
    OperatorRun,
    OperatorSpec,
    Pair,
    Step,
    Stream,
    plan,
)
from ._policy import Failure
from ._run import CLOSE_SECONDS, RunEngine, RunOptions, _Engine
from ._stages import StageRuntime, StageSpec
from ._stats import ChainStats, RunStats
from ._warm import PooledWorker, WarmPools

PASSING_POLL_SECONDS = 0.01  # how often a failure set aside looks whether its turn came
MAX_HANDOUT = 1024  # the most results one next_batch() returns from operators after the last stage

# (segment index the failure comes before, its original index, the failure)
_Passing = tuple[int, int, Carried]


class _SegmentEngine(_Engine):
    """The engine of one segment: hands out ``(index, result)`` pairs.

    Failures are named by the original input index (through ``origins``, None
    for a first segment that reads the input itself), and a returned failure
    becomes a :class:`Carried` pair so that later segments let it pass.
    """

    def __init__(
        self,
        specs: Sequence[StageSpec],
        source: Iterator[Any],
        options: RunOptions,
        *,
        first: int,
        total: int,
        origins: dict[int, int] | None,
    ) -> None:
        self.origins = origins
        self.raised_index: int | None = None  # the segment index of a failure it raised
        # The consumer (the next segment's feeder thread) and the composite's
        # close() may both close this engine: one at a time.
        self._close_lock = threading.RLock()
        super().__init__(specs, source, options, first=first, total=total, start=False)

    def _accept(self, message: Message) -> None:
        if type(message) is tuple:
            indices, values = message
            message = (indices, list(zip(indices, values, strict=True)))
        super()._accept(message)

    def _origin(self, index: int) -> int:
        origins = self.origins
        return index if origins is None else origins.get(index, index)

    def _exception(self, record: ErrorRecord) -> BaseException:
        if isinstance(record, RunFailure):
            return exception_for(record)
        return exception_for(dataclasses.replace(record, index=self._origin(record.index)))

    def _returned(self, record: ErrorRecord) -> Any:
        origin = self._origin(record.index)
        failure = Failure(origin, record.value, str(record.stage), self._exception(record))
        return (record.index, Carried(failure))

    def _dropped(self, record: ErrorRecord) -> None:
        if self.origins is not None:
            self.origins.pop(record.index, None)

    def _raise_failure(self) -> BaseException:
        if self._failure is not None:
            self.raised_index = self._failure.index
        return super()._raise_failure()

    @property
    def delivered(self) -> int:
        """Ordered runs: every segment index below this was handed out or skipped."""
        return self._next_index

    def close(self) -> None:
        with self._close_lock:
            super().close()

    def join_feeder(self, deadline: float) -> None:
        """Wait until *deadline* for the feeder thread (it may be inside an upstream engine)."""
        thread = self._feeder._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


class _Output:
    """A segment's results as ``(original index, value)`` pairs, failures set aside put back."""

    def __init__(self, engine: _SegmentEngine, passing: collections.deque[_Passing]) -> None:
        self.engine = engine
        self._passing = passing
        self._ordered = engine._ordered
        self._error: BaseException | None = None  # raised at the next pull

    def _take(self, up_to: int | None) -> list[Pair]:
        """The failures set aside before segment index *up_to* (None: all of them)."""
        passing = self._passing
        out: list[Pair] = []
        while passing and (up_to is None or passing[0][0] <= up_to):
            _, origin, carried = passing.popleft()
            out.append((origin, carried))
        return out

    def pull(self, timeout: float | None, linger: float = 0.0) -> list[Pair] | None:
        """The next pairs; [] if *timeout* ran out first; None at the end."""
        error = self._error
        if error is not None:
            self._error = None
            raise error
        engine = self.engine
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._passing:  # look again soon whether their turn came
                wait = PASSING_POLL_SECONDS if wait is None else min(wait, PASSING_POLL_SECONDS)
            try:
                batch = engine.next_batch(wait, linger)
            except Exception as exc:
                # Failures set aside before the one raised go first (all of
                # them before a source exception, which comes after everything).
                early = self._take(engine.raised_index)
                if early:
                    self._error = exc
                    return early
                raise
            if batch is None:
                return self._take(None) or None
            if batch:
                return self._pairs(batch)
            early = self._take(engine.delivered if self._ordered else None)
            if early or (deadline is not None and time.monotonic() >= deadline):
                return early

    def _pairs(self, batch: list[Any]) -> list[Pair]:
        origins = self.engine.origins
        passing = self._passing
        out = [] if self._ordered else self._take(None)
        for index, value in batch:
            if passing and self._ordered and passing[0][0] <= index:
                out += self._take(index)
            origin = index if origins is None else origins.pop(index)
            out.append((origin, value))
            if passing and self._ordered and passing[0][0] <= index + 1:
                out += self._take(index + 1)
        return out


def _timed(operator: OperatorSpec) -> bool:
    return isinstance(operator, BatchSpec) and operator.timeout is not None


def _counting(stream: Stream, read: _Count) -> Stream:
    try:
        for origin, value in stream:
            if value is not PAUSE:
                read.value += 1
            yield origin, value
    finally:
        stream.close()


def _numbered(source: Iterator[Any], read: _Count) -> Stream:
    """The input items with their indices (closing a generator input when done)."""
    try:
        for pair in enumerate(source):
            read.value += 1
            yield pair
    finally:
        _close_generator(source)


READ_AHEAD = 1024  # items a _SourceReader may hold that nobody took yet
_END = object()


class _SourceReader:
    """Reads the input in a thread of its own, for a timed ``batch()`` before any stage.

    The batch must see time pass while the input blocks (a live source), so
    the input cannot be read by the thread that runs the batch: this thread
    reads it into a queue (at most READ_AHEAD items ahead) and :meth:`pull`
    waits on the queue with a timeout, like on an upstream engine. It closes a
    generator input in its own thread, as the feeder does.
    """

    def __init__(self, source: Iterator[Any], name: str) -> None:
        self._source: Iterator[Any] | None = source
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._room = threading.Semaphore(READ_AHEAD)
        self._stopped = False
        self._ended = False
        self._thread = threading.Thread(target=self._main, name=f"{name}-reader", daemon=True)
        self._started = False

    def _main(self) -> None:
        source = self._source
        assert source is not None
        self._source = None  # only this frame holds it: closed here
        try:
            for pair in enumerate(source):
                while not self._room.acquire(timeout=0.05):
                    if self._stopped:
                        return
                if self._stopped:
                    return
                self._queue.put(pair)
            self._queue.put(_END)
        except BaseException as exc:  # raised after the items before it
            self._queue.put(_Raised(exc))
        finally:
            _close_generator(source)
            del source

    def pull(self, timeout: float | None) -> list[Pair] | None:
        if self._ended:
            return None
        if not self._started:
            self._started = True
            self._thread.start()
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        pairs: list[Pair] = []
        item = first
        while True:
            if item is _END:
                self._ended = True
                return pairs or None
            if type(item) is _Raised:
                self._ended = True
                if pairs:
                    self._queue.put(item)  # after the items before it
                    self._ended = False
                    return pairs
                raise item.error
            pairs.append(item)
            self._room.release()
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return pairs

    def stop(self, deadline: float) -> None:
        self._stopped = True
        self._queue.put(_END)
        if self._started and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Puller(Protocol):
    def pull(self, timeout: float | None) -> list[Pair] | None: ...


def _read(output: _Puller, clock: Clock) -> Stream:
    """A segment's results as a stream, with a pause after each batch or timed-out wait."""
    while True:
        pairs = output.pull(clock.timeout())
        if pairs is None:
            return
        yield from pairs
        yield -1, PAUSE


def _feed(
    stream: Stream, origins: dict[int, int], passing: collections.deque[_Passing]
) -> Iterator[Any]:
    """A segment's source: the stream's items, remembering where each came from.

    Carried failures are set aside, not fed to the stages (see _Output).
    """
    count = 0
    try:
        for origin, value in stream:
            if value is PAUSE:
                continue
            if type(value) is Carried:
                passing.append((count, origin, value))
                continue
            origins[count] = origin  # before the engine can see the item
            count += 1
            yield value
    finally:
        stream.close()


def _applied(
    stream: Stream,
    operators: list[tuple[OperatorSpec, OperatorLabel]],
    policy: str,
    clock: Clock,
    runs: list[OperatorRun],
) -> Stream:
    for operator, label in operators:
        run = OperatorRun(label, policy, clock)
        runs.append(run)
        stream = operator.apply(stream, run)
    return stream


class _SharedPools(WarmPools):
    """The chain's warm pools as every segment of one run sees them: one owner, the run."""

    def __init__(self, pools: WarmPools, owner: object) -> None:
        super().__init__()
        self._pools = pools
        self._run = owner

    def acquire(self, run: object) -> bool:
        return True  # the composite run acquired them

    def attach(self, run: object, close: Callable[[], Callable[[], None] | None]) -> None:
        pass  # the composite run attached its own close

    def release(self, run: object) -> None:
        pass  # the composite run releases them once every segment closed

    def status_array(self, spec: object, workers: int, make: Callable[[], Any]) -> Any:
        return self._pools.status_array(spec, workers, make)

    def take(self, run: object, spec: object, workers: int, slot: int) -> Any:
        return self._pools.take(self._run, spec, workers, slot)

    def give_back(
        self, run: object, spec: object, workers: int, slot: int, worker: PooledWorker
    ) -> bool:
        return self._pools.give_back(self._run, spec, workers, slot, worker)


class _CompositeStats(RunStats):
    """The statistics of every segment, as one run's (see :class:`ChainStats`)."""

    def __init__(self, parts: list[RunStats], runs: list[OperatorRun]) -> None:
        super().__init__()
        self._parts = parts
        self._runs = runs
        self.input_count: Callable[[], int] | None = None  # items read from the input

    def tick(self) -> None:
        pass  # every segment samples its own

    def snapshot(self) -> ChainStats:
        final = self._final
        if final is not None:
            return final
        with self._lock:
            return self._merge()

    def finish(self) -> None:
        with self._lock:
            if self._final is None:
                self._final = self._merge()

    def _merge(self) -> ChainStats:
        snaps = [part.snapshot() for part in self._parts]
        count = self.input_count
        return ChainStats(
            stages=tuple(stage for snap in snaps for stage in snap.stages),
            elapsed=time.perf_counter() - self.started,
            items_in=snaps[0].items_in if count is None else count(),
            items_out=self.handed_out,
            running=any(snap.running for snap in snaps),
            items_failed=sum(snap.items_failed for snap in snaps)
            + sum(run.failed for run in self._runs),
            items_skipped=sum(snap.items_skipped for snap in snaps)
            + sum(run.skipped for run in self._runs),
            bytes_in_flight=sum(snap.bytes_in_flight for snap in snaps),
            peak_bytes_in_flight=sum(snap.peak_bytes_in_flight for snap in snaps),
            max_memory=self.max_memory,
        )


class _Closer:
    """Closes every segment of a run; shared with nothing that keeps the run alive."""

    def __init__(self, owner: RunContext, pools: WarmPools | None) -> None:
        self.engines: list[_SegmentEngine] = []
        self.tail: Stream | None = None
        self.reader: _SourceReader | None = None
        self._owner = owner
        self._pools = pools
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            for engine in reversed(self.engines):  # downstream first: nobody asks for more
                engine.close()
            deadline = time.monotonic() + CLOSE_SECONDS
            for engine in self.engines[1:]:  # their feeders read the engine before
                engine.join_feeder(deadline)
            if self.reader is not None:
                self.reader.stop(deadline)  # wakes engine 1's feeder, waiting on it
                self.engines[0].join_feeder(deadline)
            tail = self.tail
            if tail is not None:
                # ValueError: running in the consumer's thread, it ends there.
                with contextlib.suppress(ValueError):
                    tail.close()
        finally:
            if self._pools is not None:
                self._pools.release(self._owner)
            self._owner.stats.finish()


class SegmentedEngine:
    """A run of a chain with operators: the same contract as :class:`~._run._Engine`.

    :meth:`next_batch` returns the next list of results (None at the end,
    ``[]`` if a *timeout* ran out) and :meth:`close` is idempotent from any
    thread.
    """

    def __init__(self, steps: Sequence[Step], source: Iterator[Any], options: RunOptions) -> None:
        parts, trailing = plan(list(steps))
        total = sum(len(part.stages) for part in parts)
        count = len(parts)
        self.ctx = owner = RunContext()
        # Each segment gets its share of the bounds: the run as a whole stays
        # within max_in_flight items and max_memory bytes.
        window = options.max_in_flight
        budget = options.max_memory
        window_share = None if window is None else max(1, window // count)
        budget_share = None if budget is None else max(1, budget // count)
        pools: WarmPools | None = None
        if options.pools is not None and options.pools.acquire(owner):
            pools = _SharedPools(options.pools, owner)
            options.pools.attach(owner, weakref.WeakMethod(self.close))
        self._closer = closer = _Closer(owner, options.pools if pools is not None else None)
        self._finalizer = weakref.finalize(self, closer.close)
        runs: list[OperatorRun] = []
        self.closed = False
        self._handed_out = 0
        self._out: list[Any] | None = None  # the last batch returned (see close)
        self._tail_error: BaseException | None = None
        self._tail_clock = Clock()
        policy = options.on_error
        read = _Count()
        outputs: list[_Output] = []
        stats: list[RunStats] = []
        try:
            for number, part in enumerate(parts):
                progress = options.progress
                if progress is not None and (number or part.operators):
                    progress = dataclasses.replace(progress, total=None)  # counts changed
                part_options = dataclasses.replace(
                    options,
                    progress=progress,
                    pools=pools,
                    max_in_flight=window_share,
                    max_memory=budget_share,
                )
                origins: dict[int, int] | None = None
                passing: collections.deque[_Passing] = collections.deque()
                segment_source: Iterator[Any] = source
                if number or part.operators:
                    clock = Clock()
                    if number:
                        stream = _read(outputs[-1], clock)
                    elif any(_timed(operator) for operator, _ in part.operators):
                        closer.reader = reader = _SourceReader(source, owner.name)
                        stream = _counting(_read(reader, clock), read)
                    else:
                        stream = _numbered(source, read)
                    stream = _applied(stream, part.operators, policy, clock, runs)
                    origins = {}
                    segment_source = _feed(stream, origins, passing)
                engine = _SegmentEngine(
                    part.stages,
                    segment_source,
                    part_options,
                    first=part.first,
                    total=total,
                    origins=origins,
                )
                closer.engines.append(engine)
                outputs.append(_Output(engine, passing))
                stats.append(engine.ctx.stats)
            composite = _CompositeStats(stats, runs)
            composite.max_memory = budget
            if parts[0].operators:
                composite.input_count = read
            owner.stats = composite
            self._last = outputs[-1]
            self._tail: Stream | None = None
            if trailing:
                self._tail = _applied(
                    _read(outputs[-1], self._tail_clock), trailing, policy, self._tail_clock, runs
                )
                closer.tail = self._tail
            # Worker processes of every segment before any thread of the run.
            for engine in closer.engines:
                engine.start_processes()
            for engine in closer.engines:
                engine.start_threads()
        except BaseException:
            owner.stats = _CompositeStats(stats, runs)
            self.close()
            raise
        self.stages: list[StageRuntime] = [
            stage for engine in closer.engines for stage in engine.stages
        ]

    def next_batch(self, timeout: float | None = None, linger: float = 0.0) -> list[Any] | None:
        """The next non-empty list of results, None at the end ([] if *timeout* ran out).

        *linger* as for the one-engine run (the last segment's engine lingers;
        a chain that ends with an operator hands out what that operator made).
        """
        if self.closed:
            return None
        try:
            if self._tail is None:
                pairs = self._last.pull(timeout, linger)
                if pairs is None:
                    self.close()
                    return None
                values = [_unwrap(value) for _, value in pairs]
            else:
                tail_values = self._from_tail(timeout)
                if tail_values is None:
                    self.close()
                    return None
                values = tail_values
            self._handed_out += len(values)
            self.ctx.stats.handed_out = self._handed_out
            self._out = values
            return values
        except BaseException:
            self.close()
            raise

    def _from_tail(self, timeout: float | None) -> list[Any] | None:
        error = self._tail_error
        if error is not None:
            self._tail_error = None
            raise error
        tail = self._tail
        assert tail is not None
        clock = self._tail_clock
        deadline = None if timeout is None else time.monotonic() + timeout
        if deadline is not None:
            clock.set(self, deadline)
        out: list[Any] = []
        try:
            for _, value in tail:
                if value is PAUSE:
                    if out or (deadline is not None and time.monotonic() >= deadline):
                        return out
                    continue
                out.append(_unwrap(value))
                if len(out) >= MAX_HANDOUT:
                    return out
        except Exception as exc:  # raised after the results before it
            if out:
                self._tail_error = exc
                return out
            raise
        finally:
            clock.clear(self)
        return out or None

    def close(self) -> None:
        """Stop every segment and everything it started; idempotent, any thread."""
        self.closed = True
        out, self._out = self._out, None
        if out is not None:
            out.clear()  # results not yet taken are dropped (see _Engine.close)
        self._closer.close()
        self._finalizer.detach()


class _Count:
    """How many input items the first segment's operators read (one thread writes)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


def start_engine(steps: Sequence[Step], source: Iterator[Any], options: RunOptions) -> RunEngine:
    """Start the run of *steps*: one engine, or one per segment when there are operators."""
    stages = [step for step in steps if isinstance(step, StageSpec)]
    if len(stages) == len(steps):  # no operators: exactly the one-engine path
        return _Engine(stages, source, options)
    return SegmentedEngine(steps, source, options)


def _unwrap(value: Any) -> Any:
    return value.failure if type(value) is Carried else value
