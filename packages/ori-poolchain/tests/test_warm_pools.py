"""``with PoolChain() ... as chain:`` keeps worker processes warm between executions."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
import time

import poolchain_workers as sw
import pytest

from ori.errors import OriInvalidStateError
from ori.poolchain import PoolChain

METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _pid_chain(workers: int = 2) -> PoolChain:
    return PoolChain().add_processpool(
        sw.pid_and_double, max_workers=workers, chunksize=1, start_method=METHOD
    )


def test_many_small_runs_reuse_the_same_workers_and_exit_stops_them() -> None:
    chain = _pid_chain()
    pids: set[int] = set()
    with chain as entered:
        assert entered is chain
        for run in range(15):
            results = chain.execute_eager(range(run, run + 6))
            assert [value for _, value in results] == [2 * x for x in range(run, run + 6)]
            pids.update(pid for pid, _ in results)
        assert chain._pools is not None
        assert chain._pools.idle_count() == 2
    assert 1 <= len(pids) <= 2  # the same (at most two) workers served every run
    assert multiprocessing.active_children() == []
    assert not any(_alive(pid) for pid in pids)
    # Outside the with, each execution has its own workers again.
    first = {pid for pid, _ in chain.execute_eager(range(6))}
    assert first.isdisjoint(pids)


def test_a_worker_done_with_its_last_chunk_is_kept_however_fast_the_run_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The consumer may close the run the moment it has the last results, while
    # the lane is still finishing its bookkeeping for that chunk: the worker is
    # idle by then and must stay warm, not be interrupted as if it were busy.
    from ori.poolchain import _process_stage

    original = _process_stage.ProcessStage._await_replies

    def slow_bookkeeping(self: object, *args: object, **kwargs: object) -> bool:
        done = original(self, *args, **kwargs)  # type: ignore[arg-type]
        time.sleep(0.3)
        return done

    monkeypatch.setattr(_process_stage.ProcessStage, "_await_replies", slow_bookkeeping)
    chain = _pid_chain()
    pids: set[int] = set()
    with chain:
        for _ in range(3):
            pids.update(pid for pid, _ in chain.execute_eager(range(4)))
    assert 1 <= len(pids) <= 2, f"{len(pids)} workers served a stage of max_workers=2"


def test_initializer_runs_once_per_worker_for_the_whole_block() -> None:
    chain = PoolChain().add_processpool(
        sw.use_setup,
        max_workers=1,
        start_method=METHOD,
        initializer=sw.set_up,
        initargs=("#", 1),
    )
    with chain:
        outputs = [chain.execute_eager([x]) for x in range(5)]
    assert [out[0][2] for out in outputs] == [f"#{x}" for x in range(5)]
    assert {out[0][1] for out in outputs} == {1}  # set up once, not per execution
    assert len({out[0][0] for out in outputs}) == 1


def test_broken_off_run_leaves_no_stale_reply_for_the_next_one() -> None:
    chain = _pid_chain().add_threadpool(lambda pair: pair[1])
    with chain:
        for round_number in range(3):
            for _ in chain.execute_lazy(range(1000)):
                break  # workers are busy with later items when the run closes
            start = 1000 * (round_number + 1)
            assert chain.execute_eager(range(start, start + 40)) == [
                2 * x for x in range(start, start + 40)
            ]


def test_failed_run_followed_by_a_normal_one() -> None:
    chain = PoolChain().add_processpool(sw.double_unless_three, max_workers=2, start_method=METHOD)
    with chain:
        with pytest.raises(ValueError, match="three"):
            chain.execute_eager(range(200))
        assert chain.execute_eager([10, 11, 12]) == [20, 22, 24]
        assert chain.execute_eager(range(4, 50)) == [2 * x for x in range(4, 50)]


def test_a_warm_worker_that_died_between_runs_is_replaced() -> None:
    chain = _pid_chain(workers=1)
    with chain:
        [(pid, _)] = chain.execute_eager([1])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # the kill lands (the pool still holds the zombie)
        results = chain.execute_eager([2, 3])
        assert [value for _, value in results] == [4, 6]
        assert {p for p, _ in results} != {pid}


def test_concurrent_execution_gets_its_own_workers() -> None:
    chain = _pid_chain()
    with chain:
        warm = {pid for pid, _ in chain.execute_eager(range(10))}
        first = chain.execute_lazy(range(30))
        assert next(first)[1] == 0
        other = chain.execute_eager(range(10))  # while `first` is still open
        assert [value for _, value in other] == [2 * x for x in range(10)]
        assert {pid for pid, _ in other}.isdisjoint(warm)
        assert [value for _, value in first] == [2 * x for x in range(1, 30)]
        # Both are over: the warm workers serve the next execution again.
        assert {pid for pid, _ in chain.execute_eager(range(10))} <= warm


def test_concurrent_executions_from_threads() -> None:
    chain = _pid_chain()
    errors: list[BaseException] = []
    outputs: dict[int, list[int]] = {}

    def execute(number: int) -> None:
        try:
            outputs[number] = [v for _, v in chain.execute_eager(range(number, number + 20))]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with chain:
        threads = [threading.Thread(target=execute, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert outputs == {n: [2 * x for x in range(n, n + 20)] for n in range(3)}


def test_exit_closes_a_run_still_open() -> None:
    chain = _pid_chain()
    with chain:
        run = chain.execute_lazy(itertools.count())
        assert next(run)[1] == 0
    assert list(run) == []  # closed by __exit__
    assert multiprocessing.active_children() == []


def test_nested_with_is_refused_and_chain_can_be_entered_again() -> None:
    chain = PoolChain().add_threadpool(abs)
    with chain:
        with pytest.raises(OriInvalidStateError, match="already inside a 'with'"):
            chain.__enter__()
        assert chain.execute_eager([-1, -2]) == [1, 2]
    with chain:
        assert chain.execute_eager([-3]) == [3]
    assert chain._pools is None
