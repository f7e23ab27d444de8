"""Ctrl-C and early ``break`` end a run cleanly whatever kind of stage it has.

Each case runs a chain over an infinite input in a child Python process, sends
it a real SIGINT once results flow, and checks that the child saw
KeyboardInterrupt with none of the run's threads or worker processes left.
Dask stages have their own such test in ``test_dask_stage.py``.
"""

from __future__ import annotations

import inspect
import itertools
import signal
import sys
import textwrap
import threading
from pathlib import Path

import poolchain_workers as sw
import poolchain_workers as w
import pytest
from poolchain_children import ready_child

from ori.poolchain import PoolChain

TESTS_DIR = Path(__file__).resolve().parent

STAGES = {
    "thread": "chain.add_threadpool(w.sleepy_identity, max_workers=2)",
    "process": "chain.add_processpool(w.sleepy_identity, max_workers=2)",
    "asyncio": "chain.add_asyncpool(sw.async_sleepy, max_concurrency=4)",
    "executor_class": "chain.add(w.sleepy_identity, executor_class=MyPool, max_workers=2)",
    "executor": "chain.add(w.sleepy_identity, executor=own)",
}

CHILD = """
import concurrent.futures, itertools, multiprocessing, sys, threading
sys.path.insert(0, {tests!r})
import poolchain_workers as sw
import poolchain_workers as w
from ori.poolchain import PoolChain


class MyPool(concurrent.futures.ThreadPoolExecutor):
    pass


if __name__ == "__main__":
    own = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="users-own")
    chain = PoolChain()
    {stage}
    try:
        for count, value in enumerate(chain.execute_lazy(itertools.count())):
            if count == 5:
                print("READY", flush=True)
    except KeyboardInterrupt:
        own.shutdown()
        left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        print("INTERRUPTED", multiprocessing.active_children(), left, flush=True)
        sys.exit(0)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("kind", sorted(STAGES))
def test_ctrl_c_leaves_nothing_behind(kind: str, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD).format(tests=str(TESTS_DIR), stage=STAGES[kind]))
    with ready_child(script) as child:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "INTERRUPTED [] []", out + err


@pytest.mark.parametrize("kind", sorted(STAGES))
def test_break_leaves_nothing_behind(kind: str) -> None:
    import concurrent.futures

    class MyPool(concurrent.futures.ThreadPoolExecutor):
        pass

    own = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="users-own")
    before = set(threading.enumerate())
    chain = PoolChain()
    eval(STAGES[kind], {"chain": chain, "w": w, "sw": sw, "MyPool": MyPool, "own": own})
    seen = []
    run = chain.execute_lazy(itertools.count())
    for value in run:
        seen.append(value)
        if len(seen) == 5:
            break
    run.close()
    assert seen == [0, 1, 2, 3, 4]
    own.shutdown()
    sw.wait_for_no_run_threads()
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


def test_interrupt_in_the_loop_body_closes_the_run_while_the_caller_holds_the_traceback() -> None:
    # A signal usually lands in the caller's own loop body. No frame of Ori is
    # on the stack between two results, so once the loop is left the run is
    # unreferenced and closed at once, even while the caller keeps the
    # exception and its traceback.
    before = set(threading.enumerate())
    caught: KeyboardInterrupt | None = None
    try:
        for value in (
            PoolChain().add_threadpool(w.double, max_workers=2).execute_lazy(range(10_000))
        ):
            if value == 20:
                raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        caught = exc
        left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
        assert left == []
    assert caught is not None
    assert caught.__traceback__ is not None  # the caller still holds the traceback


def test_iterating_a_run_runs_no_python_frame_between_results_of_a_batch() -> None:
    # Where a KeyboardInterrupt can land: only in the caller's code or inside
    # next_batch(), which closes the run before re-raising it.
    run = PoolChain().add_threadpool(w.double, max_workers=2).execute_lazy(range(10_000))
    results = iter(run)
    assert next(results) == 0
    assert not inspect.isgenerator(results)
    assert type(results) is itertools.chain
    run.close()
    assert list(results) == []
