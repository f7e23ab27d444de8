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
from typing import Any

import poolchain_workers as w
import pytest
from poolchain_children import ready_child
from poolchain_kinds import Kind

from ori.poolchain import PoolChain

TESTS_DIR = Path(__file__).resolve().parent

CHILD = """
import concurrent.futures, itertools, multiprocessing, sys, threading
sys.path.insert(0, {tests!r})
from poolchain_children import consume_announcing_ready
from poolchain_kinds import KINDS
from ori.poolchain import PoolChain


if __name__ == "__main__":
    own = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="users-own")
    kind = {{k.name: k for k in KINDS}}[{kind!r}]
    chain = kind.stage(PoolChain(), "sleepy_identity", own)
    try:
        consume_announcing_ready(lambda: chain.execute_lazy(itertools.count()), after=5)
    except KeyboardInterrupt:
        own.shutdown()
        left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        print("INTERRUPTED", multiprocessing.active_children(), left, flush=True)
        sys.exit(0)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_leaves_nothing_behind(stage_kind: Kind, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD).format(tests=str(TESTS_DIR), kind=stage_kind.name))
    with ready_child(script) as child:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "INTERRUPTED [] []", out + err


def test_break_leaves_nothing_behind(stage_kind: Kind, stage_backend: Any) -> None:
    before = set(threading.enumerate())
    chain = stage_kind.stage(PoolChain(), "sleepy_identity", stage_backend)
    seen = []
    run = chain.execute_lazy(itertools.count())
    for value in run:
        seen.append(value)
        if len(seen) == 5:
            break
    run.close()
    assert seen == [0, 1, 2, 3, 4]
    w.wait_for_no_run_threads()
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert [t for t in left if not t.name.startswith("users-own")] == []


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
