"""Streaming: stages overlap, infinite inputs, bounded read-ahead, source errors."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator

import poolchain_workers as workers
import pytest

from ori.poolchain import PoolChain


def test_an_item_moves_on_before_the_next_one_is_done() -> None:
    # Item 1 in stage 1 waits until stage 2 has seen item 0: only a streaming
    # engine (item 0 leaves stage 1 while item 1 is still in it) can finish.
    second_stage_saw_zero = threading.Event()

    def first(x: int) -> int:
        if x == 1:
            assert second_stage_saw_zero.wait(30), "item 0 did not stream on"
        return x

    def second(x: int) -> int:
        if x == 0:
            second_stage_saw_zero.set()
        return x

    chain = PoolChain().add_threadpool(first, max_workers=1).add_threadpool(second, max_workers=1)
    assert chain.execute_eager([0, 1, 2]) == [0, 1, 2]
    assert second_stage_saw_zero.is_set()


def test_first_result_comes_before_the_input_is_read() -> None:
    pulled: list[int] = []
    release = threading.Event()

    def source() -> Iterator[int]:
        for i in itertools.count():
            pulled.append(i)
            yield i

    def gate(x: int) -> int:
        if x > 0:
            release.wait(30)
        return x

    with (
        PoolChain()
        .add_threadpool(gate, max_workers=2)
        .execute_lazy(source(), max_in_flight=8) as run
    ):
        assert next(run) == 0
        assert len(pulled) <= 8 + 1, "read-ahead must stop at max_in_flight"
        release.set()
        assert [next(run) for _ in range(5)] == [1, 2, 3, 4, 5]


def test_infinite_input_with_processes_and_threads() -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .add_processpool(workers.double, max_workers=2)
        .add_threadpool(workers.negate, max_workers=2)
    )
    run = chain.execute_lazy(itertools.count())
    results = list(itertools.islice(run, 3000))
    run.close()
    assert results == [-2 * (x + 1) for x in range(3000)]


@pytest.mark.parametrize("ordered", [True, False])
def test_read_ahead_never_exceeds_max_in_flight(ordered: bool) -> None:
    pulled = 0

    def source() -> Iterator[int]:
        nonlocal pulled
        for i in range(2000):
            pulled += 1
            yield i

    taken = 0
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=3)
        .add_threadpool(workers.double, max_workers=2)
    )
    with chain.execute_lazy(source(), ordered=ordered, max_in_flight=10) as run:
        for _ in run:
            taken += 1
            # Items handed to the caller a batch at a time count as taken.
            assert pulled - taken <= 10 + 256
    assert taken == 2000


def test_memory_stays_bounded_on_a_long_input() -> None:
    # A slow consumer over a long input: the run must never read far ahead.
    pulled = 0

    def source() -> Iterator[int]:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield i

    with (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .execute_lazy(source(), max_in_flight=50) as run
    ):
        for taken, value in enumerate(run, 1):
            assert value == taken
            if taken % 10_000 == 0:
                assert pulled - taken <= 50 + 256
    assert pulled == 100_000


def test_source_error_comes_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise LookupError("the source broke")

    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    seen: list[int] = []
    with pytest.raises(LookupError, match="the source broke"):
        seen.extend(chain.execute_lazy(source()))
    assert seen == [0, 2, 4, 6, 8]
    seen = []
    with pytest.raises(LookupError):
        seen.extend(chain.execute_lazy(source(), ordered=False))
    assert sorted(seen) == [0, 2, 4, 6, 8]


def test_source_error_in_single_threaded_mode() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise LookupError("the source broke")

    chain = PoolChain().add_threadpool(workers.double)
    gen = chain.execute_lazy_single_threaded(source())
    assert next(gen) == 2
    with pytest.raises(LookupError):
        next(gen)


def test_source_is_read_by_one_feeder_thread_and_finalized_there() -> None:
    readers: set[str] = set()
    finalized_in: list[str] = []

    def source() -> Iterator[int]:
        try:
            for i in range(300):
                readers.add(threading.current_thread().name)
                yield i
        finally:
            finalized_in.append(threading.current_thread().name)

    chain = (
        PoolChain()
        .add_threadpool(workers.double, max_workers=4)
        .add_processpool(workers.increment, max_workers=1)
    )
    assert chain.execute_eager(source()) == [2 * i + 1 for i in range(300)]
    assert len(readers) == 1
    (reader,) = readers
    assert reader.startswith("ori-poolchain-")
    assert reader.endswith("-feeder")
    assert finalized_in == [reader]


def endless_rows(readers: set[str], finalized_in: list[str]) -> Iterator[int]:
    """An input that never ends: only closing it runs its ``finally``."""
    try:
        for i in itertools.count():
            readers.add(threading.current_thread().name)
            yield i
    finally:
        finalized_in.append(threading.current_thread().name)


@pytest.mark.parametrize("repeat", range(10))
def test_an_input_left_early_is_closed_by_its_reader(repeat: int) -> None:
    # Closed, not left to the garbage collector: on free-threaded CPython the
    # thread that created the generator (here the main thread) would free it.
    readers: set[str] = set()
    finalized_in: list[str] = []
    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    with chain.execute_lazy(endless_rows(readers, finalized_in)) as run:
        assert next(run) == 0
    closed_by = time.monotonic() + 10
    while not finalized_in and time.monotonic() < closed_by:
        time.sleep(0.01)
    assert len(readers) == 1
    assert finalized_in == list(readers)


def test_a_generator_holding_a_thread_bound_resource_closes_it_after_a_break() -> None:
    # A sqlite connection may only be used by the thread that opened it: the
    # generator's body, and so its cleanup, must both run in the feeder.
    closed: list[bool] = []

    def rows() -> Iterator[int]:
        connection = sqlite3.connect(":memory:")
        try:
            connection.execute("create table t (x)")
            connection.executemany("insert into t values (?)", [(i,) for i in range(10_000)])
            for (x,) in connection.execute("select x from t order by x"):
                yield x
        finally:
            connection.close()  # raises ProgrammingError in any other thread
            closed.append(True)

    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    with chain.execute_lazy(rows()) as run:
        assert list(itertools.islice(run, 3)) == [0, 2, 4]
    closed_by = time.monotonic() + 10
    while not closed and time.monotonic() < closed_by:
        time.sleep(0.01)
    assert closed == [True]


class ClosableRows:
    """An iterator with a close() of its own (like a file): not Ori's to close."""

    def __init__(self) -> None:
        self.closed = False
        self._count = itertools.count()

    def __iter__(self) -> ClosableRows:
        return self

    def __next__(self) -> int:
        return next(self._count)

    def close(self) -> None:
        self.closed = True


def test_an_iterator_that_is_not_a_generator_is_left_open() -> None:
    rows = ClosableRows()
    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    with chain.execute_lazy(rows) as run:
        assert next(run) == 0
    time.sleep(0.2)  # the feeder has had time to let go of it
    assert not rows.closed
    assert next(rows) > 0  # still usable by its owner


def test_large_batches_keep_order_across_lanes() -> None:
    chain = (
        PoolChain()
        .add_processpool(workers.increment, max_workers=2)
        .add_threadpool(workers.double, max_workers=3)
        .add_processpool(workers.negate, max_workers=2, chunksize=7)
    )
    n = 50_000
    assert chain.execute_eager(range(n)) == [-2 * (x + 1) for x in range(n)]


def test_a_thread_batch_that_gets_slow_hands_its_rest_back() -> None:
    from ori.poolchain._context import RunContext
    from ori.poolchain._thread_stage import ThreadSpec, ThreadStage

    ctx = RunContext()
    spec = ThreadSpec(function=workers.sleep_for, max_workers=1)
    stage = ThreadStage(spec, spec.label(1, 1), ctx)
    stage.connect(None)
    stage._run_batch(range(10), [0.015] * 10)
    done_indices, done_values = ctx.out_queue.get_nowait()  # type: ignore[misc]
    rest_indices, rest_values = stage.in_queue.get_nowait()  # type: ignore[misc]
    assert 1 <= len(done_indices) < 10
    assert list(done_indices) + list(rest_indices) == list(range(10))
    assert done_values + rest_values == [0.015] * 10


def test_a_slow_first_item_does_not_stall_an_ordered_run() -> None:
    # Two workers: the default window is 8 items. Item 0 waits until the
    # source has handed out item 12, which only happens if results waiting
    # behind item 0 do not count fully against the window.
    reached = threading.Event()

    def source() -> Iterator[int]:
        for i in range(40):
            if i == 12:
                reached.set()
            yield i

    def slow_head(x: int) -> int:
        if x == 0:
            assert reached.wait(10), "the run stalled behind its first item"
        time.sleep(0.003)  # slow enough to keep batches (and the window) small
        return x

    chain = PoolChain().add_threadpool(slow_head, max_workers=2)
    assert chain.execute_eager(source()) == list(range(40))
