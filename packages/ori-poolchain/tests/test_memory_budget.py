"""max_memory: how it is written, checked, measured and kept, and what stats show."""

from __future__ import annotations

import array
import itertools
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator

import poolchain_workers as mw
import pytest

from ori.errors import OriValidationError
from ori.poolchain import ChainStats, PoolChain, PoolChainRun
from ori.poolchain._budget import DEFAULT_MAX_MEMORY, check_max_memory, format_bytes
from ori.poolchain._sizes import SMALL_ITEM_BYTES, batch_nbytes, item_nbytes

MiB = mw.MiB
START_METHODS = multiprocessing.get_all_start_methods()


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    """Poll *condition* until it holds (True) or *seconds* passed (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def settled(run: PoolChainRun) -> ChainStats:
    """The run's stats once its input stopped moving for a while (the chain is full)."""
    last = -1
    still = 0
    deadline = time.monotonic() + 30
    while still < 20 and time.monotonic() < deadline:
        pulled = run.stats.items_in
        still = still + 1 if pulled == last else 0
        last = pulled
        time.sleep(0.01)
    return run.stats


# -- how it is written -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4096, 4096),
        (1, 1),
        ("256MiB", 256 * MiB),
        ("1GB", 10**9),
        ("1gb", 10**9),
        ("64mib", 64 * MiB),
        (" 1.5 GiB ", 3 << 29),
        ("512 kB", 512_000),
        ("0.5KiB", 512),
        ("100", 100),
        ("100 B", 100),
        ("2TiB", 2 << 40),
        (".5 MB", 500_000),
        (None, None),
    ],
)
def test_max_memory_accepts_ints_and_amounts_with_units(value: object, expected: int) -> None:
    assert check_max_memory(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        True,
        False,
        1.5,
        1e9,
        "",
        "MiB",
        "12 parsecs",
        "1.5.2MB",
        "0.1B",
        "0 KiB",
        "-5MB",
        "1e9",
        "1 M",
        [],
        b"1MB",
    ],
)
def test_bad_max_memory_is_refused_before_anything_starts(value: object) -> None:
    read: list[int] = []

    def source() -> Iterator[int]:
        read.append(1)
        yield 1

    chain = PoolChain().add_threadpool(mw.same)
    before = set(threading.enumerate())
    for execute in (chain.execute_lazy, chain.execute_eager):
        with pytest.raises(OriValidationError, match="max_memory") as caught:
            execute(source(), max_memory=value)  # type: ignore[arg-type]
        message = str(caught.value)
        assert "MiB" in message or "at least 1 byte" in message  # says how to write it
    assert read == []
    assert set(threading.enumerate()) == before
    assert chain.stats is None


def test_the_default_budget_is_256_mib_and_shown_in_stats() -> None:
    assert 256 * MiB == DEFAULT_MAX_MEMORY
    chain = PoolChain().add_threadpool(mw.same)
    assert chain.execute_eager(range(10)) == list(range(10))
    stats = chain.stats
    assert stats is not None
    assert stats.max_memory == 256 * MiB
    assert "max_memory 256 MiB" in stats.report()
    chain.execute_eager(range(10), max_memory=None)
    stats = chain.stats
    assert stats is not None
    assert stats.max_memory is None
    assert "no max_memory" in stats.report()


def test_format_bytes() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(64 * MiB) == "64 MiB"
    assert format_bytes(300 * MiB) == "300 MiB"
    assert format_bytes(3 << 30) == "3 GiB"


# -- how items are measured ---------------------------------------------------------


def test_sizes_of_the_kinds_of_items() -> None:
    assert batch_nbytes([]) == 0
    assert batch_nbytes([1, 2.0, None]) == 3 * SMALL_ITEM_BYTES
    assert batch_nbytes([b"abc", b"de"]) == 5
    assert batch_nbytes(["abc", "de"]) == 5
    assert batch_nbytes([bytearray(10), bytearray(6)]) == 16
    assert batch_nbytes([memoryview(bytes(1000))]) == 1000
    assert batch_nbytes([memoryview(array.array("d", [0.0] * 10))]) == 80
    # Records count their fields, one level deep.
    record = ("name", bytes(MiB))
    assert MiB < item_nbytes(record) < MiB + 200
    assert MiB < item_nbytes({"body": bytes(MiB)}) < MiB + 400
    assert batch_nbytes([b"x", record]) == 1 + item_nbytes(record)
    assert batch_nbytes([1, record]) == SMALL_ITEM_BYTES + item_nbytes(record)
    # A str batch with something without len() inside falls back to item by item.
    assert batch_nbytes(["ab", 7, "cd"]) == 4 + SMALL_ITEM_BYTES


def test_a_broken_nbytes_counts_as_small() -> None:
    class Broken:
        @property
        def nbytes(self) -> int:
            raise RuntimeError("no")

    assert item_nbytes(Broken()) == SMALL_ITEM_BYTES


# -- the budget holds -----------------------------------------------------------------


@pytest.mark.parametrize("method", START_METHODS)
def test_big_items_stay_within_the_budget(method: str) -> None:
    # The chain: a fast thread stage makes 1 MiB items from counting
    # numbers, then a process stage, then a thread stage; the consumer stops
    # taking results, so the chain fills up to its bound and must stay there.
    budget = 16 * MiB
    chain = (
        PoolChain()
        .add_threadpool(mw.megabyte, max_workers=4)
        .add_processpool(mw.same, max_workers=2, start_method=method)
        .add_threadpool(mw.same, max_workers=2)
    )
    with chain.execute_lazy(itertools.count(), max_memory="16MiB") as run:
        assert len(next(run)) == MiB
        assert wait_for(lambda: run.stats.peak_bytes_in_flight >= budget // 2)
        stats = settled(run)
        assert stats.peak_bytes_in_flight <= 1.25 * budget, stats.report()
        assert stats.items_in - stats.items_out <= 1.25 * budget / MiB, stats.report()
        taken = [len(item) for item in itertools.islice(run, 60)]
    assert taken == [MiB] * 60
    final = run.stats
    assert final.peak_bytes_in_flight <= 1.25 * budget, final.report()
    assert final.max_memory == budget


def test_records_with_a_big_field_are_counted_whole() -> None:
    budget = 8 * MiB
    chain = PoolChain().add_threadpool(mw.tagged, max_workers=4)
    with chain.execute_lazy(itertools.count(), max_memory=budget) as run:
        assert next(run)[0] == 0
        stats = settled(run)
        assert stats.items_in - stats.items_out <= 1.25 * budget / MiB, stats.report()
        assert stats.peak_bytes_in_flight <= 1.25 * budget


def test_without_a_budget_only_the_window_bounds_big_items() -> None:
    # The same chain with max_memory=None reads far more ahead: what the
    # budget test above holds back is real.
    chain = PoolChain().add_threadpool(mw.megabyte, max_workers=4)
    with chain.execute_lazy(itertools.count(), max_memory=None) as run:
        next(run)
        stats = settled(run)
    assert stats.items_in - stats.items_out > 16


def test_an_item_larger_than_the_budget_goes_through_alone() -> None:
    made = 0
    taken = 0
    most_ahead = 0

    def make(n: int) -> bytes:
        nonlocal made, most_ahead
        made += 1
        most_ahead = max(most_ahead, made - taken)
        return bytes(4 * MiB)

    chain = PoolChain().add_threadpool(make, max_workers=1).add_threadpool(len, max_workers=3)
    for size in chain.execute_lazy(range(30), max_memory="1MiB"):
        assert size == 4 * MiB
        taken += 1
    assert taken == made == 30
    # The item being made and, at most, the one the caller holds.
    assert most_ahead <= 2
    stats = chain.stats
    assert stats is not None
    assert stats.items_out == 30


@pytest.mark.parametrize("ordered", [True, False])
def test_both_bounds_apply(ordered: bool) -> None:
    # Small items: the item window binds, the default budget does not.
    pulled = 0

    def source() -> Iterator[int]:
        nonlocal pulled
        for i in range(3000):
            pulled += 1
            yield i

    taken = 0
    chain = PoolChain().add_threadpool(mw.same, max_workers=2)
    with chain.execute_lazy(source(), ordered=ordered, max_in_flight=10) as run:
        for _ in run:
            taken += 1
            assert pulled - taken <= 10 + 256  # handed out a batch at a time
    assert taken == 3000
    # Big items: the budget binds long before a large window would.
    chain = PoolChain().add_threadpool(mw.megabyte, max_workers=2)
    with chain.execute_lazy(
        itertools.count(), ordered=ordered, max_in_flight=1000, max_memory="4MiB"
    ) as run:
        next(run)
        stats = settled(run)
        assert stats.items_in - stats.items_out <= 5, stats.report()


def test_peak_bytes_of_a_finished_run_and_the_report() -> None:
    chain = PoolChain().add_threadpool(mw.megabyte, max_workers=2).add_threadpool(mw.length)
    assert chain.execute_eager(range(20), max_memory="8MiB") == [MiB] * 20
    stats = chain.stats
    assert stats is not None
    assert 0 < stats.peak_bytes_in_flight <= 10 * MiB
    assert stats.bytes_in_flight == 0  # nothing is in flight after the end
    assert "peak " in stats.report()
    assert "(max_memory 8 MiB)" in stats.report()


def test_one_thread_at_a_time_weighs_an_input_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # An input in memory is read by the consumer (nudge) and by the feeder
    # thread when nobody consumes; both update the running size averages, which
    # two threads at once could corrupt (a division by zero ended a run on
    # free-threaded 3.13). A slowed-down update makes any overlap show.
    from ori.poolchain import _feeder

    update = _feeder._Point.update
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def slow_update(point: object, items: int, nbytes: int) -> None:
        nonlocal inside, overlaps
        with guard:
            inside += 1
            overlaps += inside > 1
        try:
            time.sleep(0.0005)
            update(point, items, nbytes)  # type: ignore[arg-type]
        finally:
            with guard:
                inside -= 1

    monkeypatch.setattr(_feeder._Point, "update", slow_update)
    chain = PoolChain().add_threadpool(mw.sleepy_identity, max_workers=3)
    for _ in range(3):
        assert chain.execute_eager(list(range(60)), max_in_flight=6) == list(range(60))
    assert overlaps == 0
