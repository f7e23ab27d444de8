"""Per-stage statistics: exact counts, busy time, queue depth, bottleneck, report."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gc
import io
import itertools
import threading
import time
from collections.abc import Iterator

import poolchain_workers as workers
import pytest

from ori.errors import OriTimeoutError, OriWorkerCrashedError
from ori.poolchain import ChainStats, PoolChain, PoolChainRun, StageStats


def counts(stats: ChainStats) -> list[tuple[int, int, int]]:
    return [(s.items_in, s.items_out, s.items_failed) for s in stats.stages]


def assert_consistent(stats: ChainStats) -> None:
    """What every snapshot must satisfy, whatever the timing."""
    assert stats.stages[0].items_in == stats.items_in
    for before, after in itertools.pairwise(stats.stages):
        assert after.items_in == before.items_out
    for stage in stats.stages:
        done = stage.items_out + stage.items_failed
        assert stage.queue_depth == stage.items_in - done
        assert stage.peak_queue_depth >= stage.queue_depth
        assert 0.0 <= stage.utilisation <= 1.0
        assert stage.busy_seconds >= 0.0
        if done:
            assert stage.average_item_seconds == pytest.approx(stage.busy_seconds / done)
        else:
            assert stage.average_item_seconds is None


def three_stages() -> PoolChain:
    return (
        PoolChain()
        .add_threadpool(lambda x: x + 1, max_workers=3)
        .add_processpool(workers.square, max_workers=2)
        .add_threadpool(str, max_workers=2)
    )


def test_counts_are_exact_for_a_clean_run() -> None:
    chain = three_stages()
    assert chain.stats is None
    results = chain.execute_eager(range(50))
    assert results == [str((x + 1) ** 2) for x in range(50)]
    stats = chain.stats
    assert stats is not None
    assert counts(stats) == [(50, 50, 0)] * 3
    assert [s.queue_depth for s in stats.stages] == [0, 0, 0]
    assert (stats.items_in, stats.items_out, stats.running) == (50, 50, False)
    assert [s.number for s in stats.stages] == [1, 2, 3]
    assert [s.kind for s in stats.stages] == ["thread pool", "process pool", "thread pool"]
    assert [s.function for s in stats.stages] == ["<lambda>", "square", "str"]
    assert [s.workers for s in stats.stages] == [3, 2, 2]
    assert stats.stages[1].name == "stage 2/3 (process pool, square)"
    assert stats.elapsed > 0
    assert_consistent(stats)
    # A finished run's statistics are frozen: every read returns the same snapshot.
    assert chain.stats is stats


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_counts_are_exact_with_an_error_in_one_stage(kind: str) -> None:
    chain = PoolChain().add_threadpool(lambda x: x, max_workers=2)
    if kind == "thread":
        chain.add_threadpool(workers.fail_on_nine, max_workers=2)
    else:
        chain.add_processpool(workers.fail_on_nine, max_workers=2)
    chain.add_threadpool(str, max_workers=2)
    # The last item fails, so (in input order) everything else is through first.
    with pytest.raises(ValueError, match="nine"):
        chain.execute_eager(range(10))
    stats = chain.stats
    assert stats is not None
    assert counts(stats) == [(10, 10, 0), (10, 9, 1), (9, 9, 0)]
    assert (stats.items_in, stats.items_out, stats.running) == (10, 9, False)
    assert_consistent(stats)


def test_an_error_in_the_middle_leaves_consistent_counts() -> None:
    chain = PoolChain().add_threadpool(workers.fail_on_nine, max_workers=4).add_threadpool(str)
    run = chain.execute_lazy(range(1000))
    with pytest.raises(ValueError):
        list(run)
    stats = run.stats
    assert stats.stages[0].items_failed == 1
    assert stats.stages[1].items_failed == 0
    assert stats.items_out == 9  # results before the failing item, in input order
    assert stats.items_in <= 1000
    assert_consistent(stats)


def test_a_crashed_worker_counts_as_a_failure_of_its_stage() -> None:
    chain = PoolChain().add_processpool(workers.exit_on_nine, max_workers=2, chunksize=1)
    with pytest.raises(OriWorkerCrashedError):
        chain.execute_eager(range(10))
    stats = chain.stats
    assert stats is not None
    assert counts(stats) == [(10, 9, 1)]


def test_a_thread_stage_timeout_counts_as_a_failure_of_its_stage() -> None:
    release = threading.Event()

    def stuck_on_nine(x: int) -> int:
        if x == 9:
            release.wait(30)
        return x

    chain = PoolChain().add_threadpool(stuck_on_nine, max_workers=2, timeout=0.3)
    chain.add_threadpool(str)
    try:
        with pytest.raises(OriTimeoutError):
            chain.execute_eager(range(10))
    finally:
        release.set()
    stats = chain.stats
    assert stats is not None
    assert counts(stats) == [(10, 9, 1), (9, 9, 0)]


def test_counting_loses_nothing_with_many_lanes() -> None:
    # Many threads count at once, each in its own cell: no increment may be lost.
    n = 20_000
    chain = (
        PoolChain()
        .add_threadpool(lambda x: x, max_workers=16)
        .add_processpool(workers.square, max_workers=2)
        .add_threadpool(lambda x: x, max_workers=16)
    )
    assert sum(chain.execute_eager(range(n), ordered=False)) == sum(x * x for x in range(n))
    stats = chain.stats
    assert stats is not None
    assert counts(stats) == [(n, n, 0)] * 3


@pytest.mark.parametrize("kind", ["thread", "process", "executor"])
def test_bottleneck_is_the_stage_whose_workers_are_busiest(kind: str) -> None:
    n = 24
    chain = PoolChain().add_threadpool(lambda x: x + 1, max_workers=4)
    if kind == "thread":
        chain.add_threadpool(workers.slow_identity, max_workers=1)
    elif kind == "process":
        chain.add_processpool(workers.slow_identity, max_workers=1, chunksize=1)
    else:

        class OwnPool(concurrent.futures.ThreadPoolExecutor):
            pass

        chain.add(workers.slow_identity, executor_class=OwnPool, max_workers=1)
    chain.add_threadpool(str, max_workers=4)
    assert chain.execute_eager(range(n)) == [str(x + 1) for x in range(n)]
    stats = chain.stats
    assert stats is not None
    bottleneck = stats.bottleneck
    assert bottleneck is not None
    assert bottleneck.number == 2
    # Each item sleeps at least SLOW_SECONDS; the stage reports at least that.
    slow = stats.stages[1]
    assert slow.busy_seconds >= n * workers.SLOW_SECONDS * 0.95
    assert slow.average_item_seconds is not None
    assert slow.average_item_seconds >= workers.SLOW_SECONDS * 0.95
    assert slow.utilisation > max(stats.stages[0].utilisation, stats.stages[2].utilisation)
    assert_consistent(stats)


def test_report_names_every_stage_and_the_bottleneck() -> None:
    chain = (
        PoolChain()
        .add_threadpool(lambda x: x, max_workers=2)
        .add_threadpool(workers.slow_identity, max_workers=1)
        .add_threadpool(workers.square, max_workers=2)
    )
    chain.execute_eager(range(12))
    stats = chain.stats
    assert stats is not None
    text = stats.report()
    assert str(stats) == text
    lines = text.splitlines()
    assert lines[0].startswith("PoolChain run, finished after ")
    assert "12 items read, 12 results" in lines[0]
    assert lines[1].split() == [
        "stage",
        "workers",
        "in",
        "out",
        "failed",
        "queue",
        "peak",
        "busy",
        "s",
        "avg",
        "ms",
        "busy",
        "%",
    ]
    assert lines[2].startswith("1/3 thread pool: <lambda>")
    assert lines[3].startswith("2/3 thread pool: slow_identity")
    assert lines[3].endswith("<- bottleneck")
    assert lines[4].startswith("3/3 thread pool: square")
    assert lines[5].startswith("bottleneck: stage 2/3 (thread pool, slow_identity), busy ")
    row = lines[3].split()
    assert row[4:8] == ["1", "12", "12", "0"]  # workers, in, out, failed

    out = io.StringIO()
    chain.print_stats(file=out)
    assert out.getvalue() == text + "\n"


def test_stats_of_an_empty_input() -> None:
    chain = three_stages()
    assert chain.execute_eager([]) == []
    stats = chain.stats
    assert stats is not None
    assert counts(stats) == [(0, 0, 0)] * 3
    assert stats.bottleneck is None
    assert stats.report().endswith("bottleneck: none (no stage did any work)")
    assert_consistent(stats)


def test_print_stats_before_any_run(capsys: pytest.CaptureFixture[str]) -> None:
    chain = PoolChain().add_threadpool(str)
    chain.print_stats()
    assert capsys.readouterr().out == "PoolChain: no run yet\n"
    # The single-threaded modes keep no statistics.
    assert chain.execute_eager_single_threaded([1, 2]) == ["1", "2"]
    assert chain.stats is None


def test_report_before_any_stage_finished_and_when_no_stage_is_saturated() -> None:
    idle = StageStats(1, 1, "thread pool", "f", 4, 3, 0, 0, 3, 3, 0.0, None, 0.0)
    stats = ChainStats((idle,), 0.5, 3, 0, True)
    assert stats.bottleneck is None
    text = stats.report()
    assert text.startswith("PoolChain run, running after 0.50 s: 3 items read, 0 results")
    assert "bottleneck: none yet" in text
    assert " - " in text.splitlines()[2]  # no average yet

    lazy = dataclasses.replace(
        idle,
        items_out=3,
        queue_depth=0,
        busy_seconds=3.75,
        average_item_seconds=1.25,
        utilisation=0.05,
    )
    stats = ChainStats((lazy,), 2.0, 3, 3, False)
    assert stats.bottleneck == lazy
    text = stats.report()
    assert "busy only 5% of the time: the input" in text
    assert text.splitlines()[2].split()[-5:] == ["3.75", "1250", "5%", "<-", "bottleneck"]


def test_snapshots_are_frozen_data() -> None:
    chain = PoolChain().add_threadpool(str)
    chain.execute_eager([1])
    stats = chain.stats
    assert stats is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.items_in = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.stages[0].items_out = 5  # type: ignore[misc]


def test_stats_are_live_during_a_run_and_final_after_it() -> None:
    gate = threading.Event()
    entered = threading.Event()

    def held(x: int) -> int:
        entered.set()
        gate.wait(30)
        return x

    chain = PoolChain().add_threadpool(lambda x: x, max_workers=2)
    chain.add_threadpool(held, max_workers=1)
    run = chain.execute_lazy(range(40), max_in_flight=10)
    try:
        assert entered.wait(30)
        deadline = time.monotonic() + 30
        while run.stats.stages[0].items_out < 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        live = run.stats
        assert live.running
        assert chain.stats is not None
        assert chain.stats.running
        # The window is full: stage 1 has handed everything to the held stage.
        assert live.items_in == 10
        assert live.stages[0].items_out == 10
        assert live.stages[1].items_out == 0
        assert live.stages[1].queue_depth == 10
        assert live.stages[1].peak_queue_depth == 10
        assert_consistent(live)
    finally:
        gate.set()
    assert list(run) == list(range(40))
    final = run.stats
    assert not final.running
    assert counts(final) == [(40, 40, 0), (40, 40, 0)]
    assert final.stages[1].peak_queue_depth == 10
    assert final.elapsed >= live.elapsed


def test_stats_after_break_on_an_infinite_input() -> None:
    chain = PoolChain().add_threadpool(lambda x: x * 2).add_processpool(workers.square)
    run = chain.execute_lazy(itertools.count())
    taken = list(itertools.islice(run, 100))
    assert taken == [(2 * x) ** 2 for x in range(100)]
    run.close()
    stats = run.stats
    assert not stats.running
    assert stats.items_out >= 100
    assert stats.items_in >= stats.items_out
    assert_consistent(stats)
    assert run.stats is stats


def test_stats_of_a_run_dropped_without_close() -> None:
    chain = PoolChain().add_threadpool(lambda x: x)

    def consume_part() -> None:
        run = chain.execute_lazy(itertools.count())
        next(run)

    consume_part()
    gc.collect()  # closes the run
    stats = chain.stats
    assert stats is not None
    assert not stats.running
    assert stats.items_out >= 1
    assert_consistent(stats)


def test_chain_stats_follow_the_latest_run() -> None:
    chain = PoolChain().add_threadpool(str)
    chain.execute_eager(range(3))
    first = chain.stats
    run = chain.execute_lazy(range(7))
    assert isinstance(run, PoolChainRun)
    assert list(run) == [str(x) for x in range(7)]
    second = chain.stats
    assert first is not None
    assert second is not None
    assert (first.items_in, second.items_in) == (3, 7)


def test_stats_of_a_source_that_raises() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise RuntimeError("source broke")

    chain = PoolChain().add_threadpool(lambda x: x)
    with pytest.raises(RuntimeError, match="source broke"):
        chain.execute_eager(source())
    stats = chain.stats
    assert stats is not None
    assert counts(stats) == [(5, 5, 0)]
    assert stats.items_out == 5
