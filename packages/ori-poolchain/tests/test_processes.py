"""Process stages under every start method, interactive functions, chunking."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any, cast

import poolchain_workers as workers
import pytest
from poolchain_children import python_c

from ori.errors import OriNoInteractiveProcessPools
from ori.poolchain import PoolChain
from ori.poolchain._chunking import PROCESS_TARGET_BYTES, Sizer, process_sizer, thread_sizer

START_METHODS = multiprocessing.get_all_start_methods()


@pytest.mark.parametrize("method", START_METHODS)
def test_module_functions_and_builtins_under_every_start_method(method: str) -> None:
    context = multiprocessing.get_context(method)
    chain = (
        PoolChain()
        .add_processpool(workers.square, max_workers=2, mp_context=context)
        .add_threadpool(workers.increment, max_workers=2)
        .add_processpool(str, max_workers=1, mp_context=context, chunksize=3)
        .add_processpool(workers.pid_and_value, max_workers=2, mp_context=context)
    )
    results = chain.execute_eager(range(40))
    assert [value for _, value in results] == [str(x * x + 1) for x in range(40)]
    assert os.getpid() not in {pid for pid, _ in results}


@pytest.mark.parametrize("method", START_METHODS)
def test_errors_under_every_start_method(method: str) -> None:
    chain = PoolChain().add_processpool(
        workers.fail_on_three, max_workers=1, mp_context=multiprocessing.get_context(method)
    )
    with pytest.raises(ValueError, match="three is not allowed"):
        chain.execute_eager(range(5))


def test_worker_processes_are_started_per_run_and_reused_within_it() -> None:
    chain = PoolChain().add_processpool(workers.pid_of, max_workers=2, chunksize=1)
    first = set(chain.execute_eager(range(50)))
    second = set(chain.execute_eager(range(50)))
    assert 1 <= len(first) <= 2
    assert 1 <= len(second) <= 2
    assert not first & second, "each execution starts (and stops) its own workers"


def test_python_c_function_refused_up_front_unless_forked() -> None:
    done = python_c(
        """
        import sys
        sys.modules["cloudpickle"] = None  # without the cloudpickle extra
        import multiprocessing
        from ori.errors import OriNoInteractiveProcessPools
        from ori.poolchain import PoolChain

        def triple(x):
            return 3 * x

        for method in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context(method)
            try:
                chain = PoolChain().add_processpool(triple, max_workers=1, mp_context=context)
            except OriNoInteractiveProcessPools as exc:
                assert "python -c" in str(exc), exc
                print(method, "refused")
            else:
                print(method, chain.execute_eager([1, 2]))
        """
    )
    assert done.returncode == 0, done.stderr
    lines = set(done.stdout.splitlines())
    expected = {
        "fork": "fork [3, 6]",
        "spawn": "spawn refused",
        "forkserver": "forkserver refused",
    }
    assert lines == {expected[m] for m in START_METHODS}


def test_python_c_default_start_method_works_or_refuses_up_front() -> None:
    done = python_c(
        """
        import sys
        sys.modules["cloudpickle"] = None  # without the cloudpickle extra
        from ori.errors import OriNoInteractiveProcessPools
        from ori.poolchain import PoolChain

        def triple(x):
            return 3 * x

        try:
            chain = PoolChain().add_processpool(triple, max_workers=1)
        except OriNoInteractiveProcessPools:
            print("refused")
        else:
            print(chain.execute_eager([1, 2]))
        # Builtins and module functions work from python -c under any method.
        import poolchain_workers as w
        print(PoolChain().add_processpool(abs).add_processpool(w.double).execute_eager([-1, 2]))
        """
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first in {"[3, 6]", "refused"}
    assert second == "[2, 4]"


def test_start_method_changed_after_add_is_checked_at_execute_time() -> None:
    done = python_c(
        """
        import sys
        sys.modules["cloudpickle"] = None  # without the cloudpickle extra
        import multiprocessing
        from ori.errors import OriNoInteractiveProcessPools
        from ori.poolchain import PoolChain

        def triple(x):
            return 3 * x

        multiprocessing.set_start_method("fork")
        chain = PoolChain().add_processpool(triple, max_workers=1)
        multiprocessing.set_start_method("spawn", force=True)
        try:
            chain.execute_eager([1])
        except OriNoInteractiveProcessPools:
            print("refused at execute time")
        """
    )
    if "fork" not in START_METHODS:
        pytest.skip("this platform has no fork start method")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused at execute time"


def test_interactive_refusal_is_the_documented_exception() -> None:
    assert issubclass(OriNoInteractiveProcessPools, Exception)


# -- chunk sizing ------------------------------------------------------------------


def test_automatic_chunks_grow_for_fast_functions_and_shrink_for_slow_ones() -> None:
    sizer = process_sizer(None)
    assert sizer.adaptive
    assert sizer.size == 1
    for _ in range(20):
        sizer.report(sizer.size, sizer.size * 1e-7)
    assert sizer.size > 1000, "a trivial function should get big chunks"
    sizer.report(sizer.size, sizer.size * 0.05)  # suddenly 50 ms per item
    assert sizer.size == 1
    sizer = process_sizer(None)
    for _ in range(20):
        sizer.report(sizer.size, sizer.size * 0.05)
    assert sizer.size == 1, "slow items travel one by one"


def test_chunks_are_capped_by_bytes() -> None:
    sizer = process_sizer(None)
    for _ in range(30):
        sizer.report(sizer.size, sizer.size * 1e-7, nbytes=sizer.size * 100_000)
    assert sizer.size == PROCESS_TARGET_BYTES // 100_000


def test_fixed_chunksize_never_changes_and_cap_limits_adaptive() -> None:
    sizer = process_sizer(7)
    sizer.report(7, 100.0)
    sizer.cap(2)
    assert sizer.size == 7
    assert not sizer.adaptive
    capped = Sizer(None, target_seconds=0.01, maximum=10_000)
    capped.cap(16)
    for _ in range(30):
        capped.report(capped.size, 1e-9)
    assert capped.size == 16
    assert thread_sizer().size == 1


def test_a_chunk_that_gets_slow_hands_its_rest_back() -> None:
    # Fast items grow the chunks; the slow ones at the end then land in big
    # chunks, which workers cut short and hand back: nothing lost or doubled.
    items = [0.0] * 3000 + [0.01] * 30 + [0.0] * 100
    chain = PoolChain().add_processpool(workers.sleep_for, max_workers=2)
    assert chain.execute_eager(items) == items


def test_worker_gives_back_the_unstarted_rest_of_a_slow_chunk() -> None:
    from multiprocessing.connection import Connection

    from ori.poolchain import _wire, _worker
    from ori.poolchain._status import WorkerSlot

    sent: list[Any] = []

    class FakeConn:
        def send_bytes(self, data: bytes) -> None:
            sent.append(_wire.decode(data))

    slot = WorkerSlot(bytearray(16), 0)
    values = [0.03] * 10
    for timed in (False, True):
        sent.clear()
        conn = cast(Connection, FakeConn())
        _worker._run_chunk(conn, slot, workers.sleep_for, values, timed, 0.05)
        first, results, errors, _, done = sent[-1]
        assert done
        assert not errors
        assert 1 <= first + len(results) < len(values), "the chunk was cut short"
        assert set(results) == {0.03}


def test_waiting_without_select_poll_still_sees_replies_crashes_and_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Where select.poll does not exist (Windows), lanes wait with
    # multiprocessing.connection.wait: the same three outcomes must come through.
    import types

    from ori.errors import OriTimeoutError, OriWorkerCrashedError
    from ori.poolchain import Failure, _process_stage

    monkeypatch.setattr(_process_stage, "select", types.SimpleNamespace())
    chain = PoolChain().add_processpool(workers.exit_on_two, max_workers=2)
    results = chain.execute_eager(range(6), on_error="return")
    assert [r for r in results if not isinstance(r, Failure)] == [0, 1, 3, 4, 5]
    assert isinstance(results[2], Failure)
    assert isinstance(results[2].exception, OriWorkerCrashedError)
    timed = PoolChain().add_processpool(workers.hang_on_two, max_workers=2, timeout=0.5)
    results = timed.execute_eager(range(4), on_error="return")
    assert results[:2] == [0, 1]
    assert results[3] == 3
    assert isinstance(results[2], Failure)
    assert isinstance(results[2].exception, OriTimeoutError)
