"""Starting worker processes: the ready handshake, its deadline, and failed starts.

A worker that dies or hangs before it reported ready blames no input item: it is
replaced, and repeated failures end the run with OriWorkerStartError, whose
message names the start method and the likely cause. Under fork, workers needed
while the run's threads are running come from the forkserver, never from a fork
beside those threads.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import poolchain_hang_workers as hang
import poolchain_workers as pw
import poolchain_workers as starts
import pytest
from poolchain_children import TESTS_DIR, python_c

from ori.errors import OriError, OriValidationError, OriWorkerStartError
from ori.poolchain import PoolChain, _process_stage
from ori.poolchain._starting import single_threaded

START_METHODS = multiprocessing.get_all_start_methods()
NOT_FORKED = [m for m in ("spawn", "forkserver") if m in START_METHODS]
needs_fork = pytest.mark.skipif("fork" not in START_METHODS, reason="needs the fork start method")
GUARD = 'if __name__ == "__main__":'


def run_script(directory: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run *code* as a script file (so that ``__main__`` has a file), like a user would."""
    script = directory / "script.py"
    script.write_text(textwrap.dedent(code))
    path = os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=path),
        cwd=directory,
    )


# -- an unguarded main module --------------------------------------------------

UNGUARDED = """
    import sys

    from poolchain_workers import double
    from ori.poolchain import PoolChain

    chain = PoolChain().add_processpool(double, max_workers=2, start_method=sys.argv[1])
    print("RESULTS", chain.execute_eager(range(5)))
"""


@pytest.mark.parametrize("method", NOT_FORKED)
def test_unguarded_main_is_named_as_the_cause_and_no_item_is_blamed(
    tmp_path: Path, method: str
) -> None:
    done = run_script(tmp_path, UNGUARDED, method)
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ori.errors.OriWorkerStartError: "), done.stderr[-3000:]
    assert f"start method {method!r}" in last_line
    assert GUARD in last_line
    assert "script.py" in last_line
    assert "input item 0" not in last_line
    assert "RESULTS" not in done.stdout


def test_the_guarded_script_runs_under_every_start_method(tmp_path: Path) -> None:
    guarded = UNGUARDED.replace("\n    chain =", f"\n    {GUARD}\n        chain =").replace(
        '\n    print("RESULTS"', '\n        print("RESULTS"'
    )
    for method in START_METHODS:
        done = run_script(tmp_path, guarded, method)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split("RESULTS", 1)[1].strip() == str([2 * x for x in range(5)])


# -- a worker that cannot load its function -------------------------------------


@pytest.fixture
def module_only_here() -> Iterator[types.ModuleType]:
    """A module that exists in this process only: workers that import it fail."""
    module = types.ModuleType("ori_test_module_only_here")
    exec("def triple(x):\n    return 3 * x\n", module.__dict__)
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


@pytest.mark.parametrize("method", NOT_FORKED)
def test_an_import_error_in_the_worker_fails_the_run_not_an_item(
    module_only_here: types.ModuleType, method: str
) -> None:
    chain = PoolChain(on_error="return").add_processpool(
        module_only_here.triple, max_workers=2, start_method=method
    )
    with pytest.raises(OriWorkerStartError) as info:
        chain.execute_eager(range(10))
    message = str(info.value)
    assert f"start method {method!r}" in message
    assert "could not load the stage function before it ran any item" in message
    assert "ModuleNotFoundError" in message
    assert "ori_test_module_only_here" in str(info.value.__cause__)


@needs_fork
def test_forked_workers_inherit_a_module_that_exists_only_here() -> None:
    # In a fresh interpreter, so that no thread of an earlier test can still be
    # exiting (Ori would then start the workers from the forkserver instead).
    done = python_c(
        """
        import sys, types
        from ori.poolchain import PoolChain

        module = types.ModuleType("ori_test_module_only_here")
        exec("def triple(x):\\n    return 3 * x\\n", module.__dict__)
        sys.modules[module.__name__] = module
        chain = PoolChain().add_processpool(module.triple, start_method="fork")
        print(chain.execute_eager(range(10)))
        """
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str([3 * x for x in range(10)])


# -- a failing initializer ---------------------------------------------------------


@pytest.mark.parametrize("method", START_METHODS)
def test_a_failing_initializer_says_no_item_ran_and_names_the_start_method(method: str) -> None:
    chain = PoolChain(on_error="skip").add_processpool(
        pw.double, max_workers=2, initializer=pw.fail_on_three, initargs=(3,), start_method=method
    )
    with pytest.raises(OriError) as info:
        chain.execute_eager(range(10))
    message = str(info.value)
    assert "initializer fail_on_three of stage 1/1" in message
    assert f"in a worker process (start method {method!r}) before it ran any item" in message


# -- a function that cannot be pickled ---------------------------------------------


@pytest.mark.parametrize("method", NOT_FORKED)
def test_an_unpicklable_function_is_refused_naming_the_stage_and_the_fix(method: str) -> None:
    chain = PoolChain().add_threadpool(abs).add_processpool(pw.HoldsALock(), start_method=method)
    with pytest.raises(OriValidationError) as info:
        chain.execute_eager(range(3))
    message = str(info.value)
    assert "the function HoldsALock" in message
    assert "stage 2/2" in message
    assert f"started with {method!r}" in message
    assert "lock" in message
    assert "top level of a module" in message


# -- the start deadline ------------------------------------------------------------


@pytest.mark.parametrize("method", NOT_FORKED)
def test_workers_that_never_get_ready_are_killed_and_end_the_run(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setattr(_process_stage, "READY_DEADLINE_SECONDS", 1.0)
    chain = PoolChain(on_error="skip").add_processpool(
        hang.identity, max_workers=2, start_method=method
    )
    hang.HANG_FLAG.touch()
    try:
        with pytest.raises(OriWorkerStartError) as info:
            chain.execute_eager(range(10))
    finally:
        hang.HANG_FLAG.unlink()
    message = str(info.value)
    assert "did not report ready within 1 s and was killed" in message
    assert f"{_process_stage.MAX_START_FAILURES} times in a row" in message
    assert f"start method {method!r}" in message


@needs_fork
@pytest.mark.parametrize("attempt", range(3))
def test_a_fork_that_deadlocked_is_replaced_by_a_forkserver_worker(attempt: int) -> None:
    # Every worker forked from the script itself hangs before it runs a line of
    # Ori, as a fork beside a thread that held a lock would; the replacements
    # come from the forkserver (started beside the lane threads) and finish the run.
    # The two hung forks already count two of the three failed starts in a row
    # that end a run, so the forkserver's own boot (a fresh interpreter, slow on
    # a loaded machine) is done first: the test times worker starts, not that.
    done = python_c(
        """
        import os, time
        from multiprocessing import forkserver
        from ori.poolchain import PoolChain, _process_stage
        from poolchain_workers import double

        forkserver.ensure_running()
        _process_stage.READY_DEADLINE_SECONDS = 2.0
        script = os.getpid()
        def hang_if_forked_from_the_script():
            if os.getppid() == script:
                time.sleep(3600)
        os.register_at_fork(after_in_child=hang_if_forked_from_the_script)
        chain = PoolChain().add_processpool(double, max_workers=2, start_method="fork")
        print(chain.execute_eager(range(20)))
        print(chain.stats.stages[0].workers_lost)
        """
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results, lost = done.stdout.split("\n")[:2]
    assert results == str([2 * x for x in range(20)])
    assert int(lost) >= 1  # the deadlocked forks were killed and counted


# -- fork beside running threads ----------------------------------------------------


def test_single_threaded_sees_other_threads() -> None:
    # A fresh interpreter has one thread (here a thread of an earlier test may
    # still be exiting in the kernel on a busy machine).
    done = python_c(
        """
        import threading
        from ori.poolchain._starting import single_threaded
        print(single_threaded())
        thread = threading.Thread(target=print, args=("joined",))
        thread.start()
        thread.join()
        print(single_threaded())
        """
    )
    assert done.stdout.split() == ["True", "joined", "True"], done.stderr[-3000:]
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not single_threaded()
    finally:
        release.set()
        thread.join()


@needs_fork
@pytest.mark.parametrize("attempt", range(10))
def test_replacement_workers_are_never_forked_beside_running_threads(attempt: int) -> None:
    # The chain of the hang report: thread stages around a forked process stage
    # whose worker dies on 1 item in 20. Replacements start while the lanes run,
    # so they must come from the forkserver: their parent is not this process.
    chain = (
        PoolChain(on_error="skip")
        .add_threadpool(pw.increment, max_workers=4)
        .add_processpool(
            starts.parent_and_pid_or_crash, max_workers=2, chunksize=1, start_method="fork"
        )
        .add_threadpool(tuple, max_workers=4)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = chain.execute_eager(range(100))
    assert not [w for w in caught if "fork" in str(w.message)], [str(w.message) for w in caught]
    assert len(results) == 100 - 5  # items 6, 26, 46, 66, 86 (+1 = x % 20 == 7) crashed
    forked_here = {pid for parent, pid in results if parent == os.getpid()}
    from_elsewhere = {pid for parent, pid in results if parent != os.getpid()}
    assert len(forked_here) <= 2  # at most the two first workers, forked before any thread
    assert from_elsewhere  # the replacements (at least 3 more workers ran items)
    assert len(forked_here | from_elsewhere) >= 2 + 3
    assert chain.stats.stages[1].workers_lost == 5
