"""Error policies, retries and worker failures: every item accounted for exactly once."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
import sys
import threading
import time
from pathlib import Path
from typing import Any

import poolchain_workers as pw
import poolchain_workers as workers
import pytest

from ori.errors import OriTimeoutError, OriValidationError, OriWorkerCrashedError
from ori.poolchain import ChainStats, Failure, PoolChain

# Tests that replace worker processes while the run's threads are up use
# forkserver (forking a multi-threaded process is deprecated from 3.12 on).
REPLACEABLE = multiprocessing.get_context(
    "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
)


def accounted(stats: ChainStats | None, items: int) -> ChainStats:
    """The run's stats, after checking that every input item is counted once."""
    assert stats is not None
    assert not stats.running
    assert stats.items_in == items
    assert stats.items_out + stats.items_skipped == items
    return stats


# -- worker processes that die or hang --------------------------------------------


def test_one_in_ten_items_crash_their_worker_under_skip() -> None:
    chain = PoolChain(on_error="skip").add_processpool(
        pw.exit_on_tens, max_workers=2, mp_context=REPLACEABLE
    )
    results = chain.execute_eager(range(40))
    assert results == [2 * x for x in range(40) if x % 10 != 3]  # exactly 9 in 10, in order
    stats = accounted(chain.stats, 40)
    assert stats.items_skipped == 4
    assert stats.items_failed == 4
    assert stats.stages[0].items_failed == 4
    # A death inside a slice of several items costs one more while the slice
    # runs again item by item to find the guilty one.
    assert 4 <= stats.stages[0].workers_lost <= 8
    assert stats.items_out == 36


def test_crashes_under_return_are_failures_in_place() -> None:
    chain = PoolChain().add_processpool(pw.exit_on_tens, max_workers=2, mp_context=REPLACEABLE)
    results = chain.execute_eager(range(20), on_error="return")
    assert len(results) == 20
    for x, result in enumerate(results):
        if x % 10 == 3:
            assert isinstance(result, Failure)
            assert (result.index, result.item) == (x, x)
            assert isinstance(result.exception, OriWorkerCrashedError)
            assert f"while running input item {x}" in str(result.exception)
            assert "exit code 3" in str(result.exception)
        else:
            assert result == 2 * x
    assert accounted(chain.stats, 20).items_failed == 2


@pytest.mark.parametrize(
    ("function", "index", "how"),
    [
        (pw.sigkill_on_four, 4, "killed by SIGKILL"),
        (pw.segfault_on_five, 5, "killed by SIGSEGV"),
    ],
)
def test_signals_and_segfaults_name_the_item(function: Any, index: int, how: str) -> None:
    chain = PoolChain().add_processpool(function, max_workers=2, mp_context=REPLACEABLE)
    with pytest.raises(OriWorkerCrashedError, match=f"while running input item {index}") as info:
        chain.execute_eager(range(10))
    assert how in str(info.value)
    results = chain.execute_eager(range(10), on_error="return")
    assert [type(r) is Failure for r in results] == [x == index for x in range(10)]
    assert [r for r in results if type(r) is not Failure] == [x for x in range(10) if x != index]


def test_a_stuck_item_under_return_is_a_failure_in_its_place() -> None:
    chain = PoolChain(on_error="return").add_processpool(
        pw.hang_on_five, max_workers=2, timeout=0.5, mp_context=REPLACEABLE
    )
    started = time.monotonic()
    results = chain.execute_eager(range(12))
    assert time.monotonic() - started < 60  # catches a hang only
    assert results[:5] == [0, 1, 2, 3, 4]
    assert results[6:] == list(range(6, 12))
    failure = results[5]
    assert isinstance(failure, Failure)
    assert failure.index == 5
    assert failure.item == 5
    assert failure.stage == "stage 1/1 (process pool, hang_on_five)"
    assert isinstance(failure.exception, OriTimeoutError)
    assert "did not finish input item 5 within its 0.5 s timeout" in str(failure.exception)
    assert "killed and replaced" in str(failure.exception)
    stats = accounted(chain.stats, 12)
    assert stats.items_failed == 1
    assert stats.stages[0].workers_lost == 1


def test_a_stuck_item_under_skip_in_a_later_stage_loses_no_other_item() -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .add_processpool(
            pw.hang_on_five, max_workers=2, timeout=0.5, chunksize=3, mp_context=REPLACEABLE
        )
        .add_threadpool(workers.negate, max_workers=2)
    )
    results = chain.execute_eager(range(15), on_error="skip", ordered=False)
    assert sorted(results) == sorted(-(x + 1) for x in range(15) if x + 1 != 5)
    stats = accounted(chain.stats, 15)
    assert stats.items_skipped == 1
    assert stats.stages[1].items_failed == 1


def test_thread_stage_timeout_under_return_is_reported_promptly() -> None:
    # Item 1 blocks until the test releases it, after the run: the run can
    # only end if the timeout was reported while the call was still going on.
    release = threading.Event()

    def block_on_one(x: int) -> int:
        if x == 1:
            release.wait(60)
        return x

    chain = PoolChain().add_threadpool(block_on_one, max_workers=2, timeout=0.2)
    try:
        results = chain.execute_eager(range(4), on_error="return")
        assert not release.is_set()
    finally:
        release.set()  # the stuck call returns; its (daemon) thread exits
    assert results[0] == 0
    assert results[2:] == [2, 3]
    assert isinstance(results[1], Failure)
    assert isinstance(results[1].exception, OriTimeoutError)
    assert "a thread cannot be stopped" in str(results[1].exception)


def test_an_outside_kill_that_does_not_repeat_is_counted_not_failed(tmp_path: Path) -> None:
    # Without a timeout a worker publishes its slice of items; after a death the
    # slice runs again item by item, and an item that does not kill its worker
    # again keeps its result: the death shows in workers_lost only.
    chain = PoolChain(on_error="return").add_processpool(
        pw.flaky_exit, max_workers=1, chunksize=4, mp_context=REPLACEABLE
    )
    results = chain.execute_eager([(str(tmp_path), x) for x in range(8)])
    assert results == list(range(8))
    stats = accounted(chain.stats, 8)
    assert stats.items_failed == 0
    assert stats.stages[0].workers_lost == 1


# -- policies: every stage kind, per stage, unordered, single-threaded ------------


def _expected_return(results: list[Any]) -> None:
    assert len(results) == 12
    for x, result in enumerate(results):
        if x % 3 == 0:
            assert isinstance(result, Failure)
            assert result.index == x
            assert result.item == x
            assert isinstance(result.exception, ValueError)
        else:
            assert result == x


def test_user_owned_executor_stage_policy() -> None:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        chain = PoolChain().add(pw.fail_on_threes, executor=pool, on_error="return")
        _expected_return(chain.execute_eager(range(12)))
        chain = PoolChain().add(pw.fail_on_threes, executor=pool, on_error="skip")
        assert chain.execute_eager(range(12)) == [x for x in range(12) if x % 3]


def test_stage_policy_overrides_the_chain() -> None:
    chain = (
        PoolChain(on_error="raise")
        .add_threadpool(pw.fail_on_threes, max_workers=2, on_error="skip")
        .add_threadpool(workers.fail_on_multiple_of_seven, max_workers=2, on_error="return")
        .add_threadpool(workers.negate, max_workers=2)
    )
    for results in (chain.execute_eager(range(15)), chain.execute_eager_single_threaded(range(15))):
        kept = [x for x in range(15) if x % 3]
        assert len(results) == len(kept)
        for x, result in zip(kept, results, strict=True):
            if x % 7 == 0:
                assert isinstance(result, Failure)
                assert result.index == x
                assert result.stage == "stage 2/3 (thread pool, fail_on_multiple_of_seven)"
                assert isinstance(result.exception, KeyError)
            else:
                assert result == -x
    stats = accounted(chain.stats, 15)
    assert stats.items_skipped == 5
    assert [stage.items_failed for stage in stats.stages] == [5, 2, 0]
    # The chain's policy applies to stages without their own ("raise" here).
    strict = PoolChain(on_error="skip").add_threadpool(pw.fail_on_threes, on_error="raise")
    with pytest.raises(ValueError):
        strict.execute_eager(range(5))
    # An execute method's policy replaces the chain's, not a stage's own.
    with pytest.raises(ValueError):
        strict.execute_eager(range(5), on_error="return")


def exit_on_two(x: int) -> int:
    if x == 2:
        raise SystemExit(f"stop at {x}")
    return x


def test_system_exit_from_a_stage_ends_the_run_whatever_the_policy() -> None:
    chain = PoolChain(on_error="skip").add_threadpool(exit_on_two, max_workers=2, retries=3)
    with pytest.raises(SystemExit, match="stop at 2"):
        chain.execute_eager(range(5))
    with pytest.raises(SystemExit, match="stop at 2"):
        chain.execute_eager_single_threaded(range(5))


def test_unordered_return_yields_every_item_once() -> None:
    chain = PoolChain().add_processpool(pw.fail_on_threes, max_workers=2)
    results = chain.execute_eager(range(30), ordered=False, on_error="return")
    failures = sorted(r.index for r in results if isinstance(r, Failure))
    values = sorted(r for r in results if not isinstance(r, Failure))
    assert failures == list(range(0, 30, 3))
    assert values == [x for x in range(30) if x % 3]


def test_lazy_run_with_skip_ends_and_counts() -> None:
    chain = PoolChain(on_error="skip").add_threadpool(pw.always_fail, max_workers=2)
    with chain.execute_lazy(iter(range(50))) as run:
        assert list(run) == []
        stats = run.stats
    assert stats.items_skipped == 50
    assert stats.items_out == 0
    assert "50 failed, 50 skipped" in stats.report()


def test_failure_is_a_small_frozen_value() -> None:
    error = ValueError("bad")
    failure = Failure(3, "x" * 200, "stage 1/1 (thread pool, f)", error)
    text = repr(failure)
    assert text.startswith("Failure(index=3, item='xxx")
    assert "stage='stage 1/1 (thread pool, f)'" in text
    assert "ValueError('bad')" in text
    assert len(text) < 200
    assert failure == Failure(3, "x" * 200, "stage 1/1 (thread pool, f)", error)
    with pytest.raises(AttributeError):
        failure.index = 4  # type: ignore[misc]
    assert Failure.__module__ == "ori.poolchain"
    copy = pickle.loads(pickle.dumps(failure))
    assert copy.index == 3
    assert isinstance(copy.exception, ValueError)


def test_failure_exception_carries_the_note() -> None:
    chain = PoolChain().add_threadpool(pw.fail_on_threes, max_workers=1)
    failure = chain.execute_eager([3], on_error="return")[0]
    assert isinstance(failure, Failure)
    if sys.version_info >= (3, 11):
        notes = "\n".join(failure.exception.__notes__)
        assert "raised in stage 1/1 (thread pool, fail_on_threes) on input item 0" in notes


# -- retries ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["thread", "process", "executor"])
def test_retries_succeed_for_a_transient_error(tmp_path: Path, kind: str) -> None:
    chain = PoolChain()
    if kind == "thread":
        chain.add_threadpool(pw.flaky, max_workers=2, retries=1)
    elif kind == "process":
        chain.add_processpool(pw.flaky, max_workers=2, retries=1)
    else:
        chain.add(
            pw.flaky,
            executor_class=concurrent.futures.ThreadPoolExecutor,
            max_workers=2,
            retries=2,
        )
    items = [(str(tmp_path), x) for x in range(10)]
    assert chain.execute_eager(items) == list(range(10))
    stats = accounted(chain.stats, 10)
    assert stats.items_failed == 0
    assert stats.stages[0].items_out == 10
    assert len(list(tmp_path.iterdir())) == 10  # every item did fail once


def test_retries_single_threaded(tmp_path: Path) -> None:
    chain = PoolChain().add_threadpool(pw.flaky, retries=1)
    assert chain.execute_eager_single_threaded([(str(tmp_path), x) for x in range(4)]) == [
        0,
        1,
        2,
        3,
    ]


def test_retries_run_out_then_the_policy_applies(tmp_path: Path) -> None:
    calls = []

    def failing(x: int) -> int:
        calls.append(x)
        raise OSError(x)

    chain = PoolChain().add_threadpool(failing, max_workers=1, retries=2, on_error="return")
    results = chain.execute_eager([7])
    assert calls == [7, 7, 7]
    assert isinstance(results[0], Failure)
    assert isinstance(results[0].exception, OSError)
    assert accounted(chain.stats, 1).items_failed == 1
    calls.clear()
    assert chain.execute_eager_single_threaded([7])[0].index == 0
    assert calls == [7, 7, 7]


def test_a_crashed_worker_is_retried(tmp_path: Path) -> None:
    chain = PoolChain().add_processpool(
        pw.flaky_exit, max_workers=1, chunksize=1, retries=1, mp_context=REPLACEABLE
    )
    assert chain.execute_eager([(str(tmp_path), x) for x in range(5)]) == list(range(5))
    stats = accounted(chain.stats, 5)
    assert stats.items_failed == 0
    assert stats.stages[0].workers_lost == 1


def test_retries_in_a_later_stage_keep_counts_exact(tmp_path: Path) -> None:
    chain = (
        PoolChain()
        .add_threadpool(lambda x: (str(tmp_path), x), max_workers=2)
        .add_asyncpool(pw.async_fail_on_threes_pair, max_concurrency=3, retries=1)
    )
    assert chain.execute_eager(range(9)) == list(range(9))
    stats = accounted(chain.stats, 9)
    assert [(s.items_in, s.items_out, s.items_failed) for s in stats.stages] == [
        (9, 9, 0),
        (9, 9, 0),
    ]


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["ignore", "RAISE", 1, True])
def test_bad_on_error_values_are_refused(value: Any) -> None:
    with pytest.raises(OriValidationError, match="on_error must be 'raise', 'skip' or 'return'"):
        PoolChain(on_error=value)
    with pytest.raises(OriValidationError, match="on_error must be"):
        PoolChain().add_threadpool(abs, on_error=value)
    with pytest.raises(OriValidationError, match="on_error must be"):
        PoolChain().add_asyncpool(pw.async_fail_on_threes, on_error=value)
    chain = PoolChain().add_threadpool(abs)
    with pytest.raises(OriValidationError, match="on_error must be"):
        chain.execute_eager([1], on_error=value)
    with pytest.raises(OriValidationError, match="on_error must be"):
        chain.execute_lazy_single_threaded([1], on_error=value)


@pytest.mark.parametrize("value", [-1, 1.5, "2", None, True])
def test_bad_retries_are_refused(value: Any) -> None:
    with pytest.raises(OriValidationError, match="retries must be an int >= 0"):
        PoolChain().add_processpool(abs, retries=value)
    with pytest.raises(OriValidationError, match="retries must be an int >= 0"):
        PoolChain().add(abs, executor_class=concurrent.futures.ThreadPoolExecutor, retries=value)


# -- busy time of the asyncio and future stages -----------------------------------


def test_asyncio_and_executor_instance_stages_record_busy_time() -> None:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        chain = (
            PoolChain()
            .add_asyncpool(pw.async_nap, max_concurrency=4)
            .add(workers.sleepy_identity, executor=pool)
        )
        assert chain.execute_eager(range(8)) == list(range(8))
    stats = accounted(chain.stats, 8)
    assert stats.stages[0].busy_seconds >= 8 * 0.009
    assert stats.stages[1].busy_seconds >= 8 * 0.009
