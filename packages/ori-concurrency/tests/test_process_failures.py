"""run_in_background_process when things go wrong: exceptions that do not pickle,
dead workers, workers that never start, and functions sent by value."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.context
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import concurrency_workers as workers
import pytest

from ori.concurrency import run_in_background_process
from ori.errors import OriValidationError, OriWorkerCrashedError, RemoteTraceback

START_METHODS = multiprocessing.get_all_start_methods()
TESTS_DIR = Path(__file__).resolve().parent
REPEATS = 3  # a fault path that hangs one time in three shows up here


def test_exception_that_cannot_be_rebuilt_keeps_its_nearest_class(
    start_method_context: multiprocessing.context.BaseContext,
    text_of: Callable[[BaseException], str],
) -> None:
    wrapper = run_in_background_process(
        workers.raise_two_args, mp_context=start_method_context, max_workers=1
    )
    try:
        pool = wrapper.executor
        for _ in range(REPEATS):
            with pytest.raises(ValueError) as caught:
                wrapper("over quota", 7).result(timeout=60)
            exc = caught.value
            assert type(exc) is ValueError  # the nearest class of TwoArgsError's MRO
            assert str(exc).startswith("concurrency_workers.TwoArgsError: over quota (code 7)")
            text = text_of(exc)
            assert "cannot be sent to another process" in text
            assert "raise TwoArgsError(what, code)" in text  # the worker's traceback
            assert "terminated abruptly" not in text
        # Nothing broke: the same pool still serves calls.
        assert wrapper.executor is pool
    finally:
        wrapper.shutdown()


def test_exception_that_does_not_pickle_keeps_its_own_class(
    start_method_context: multiprocessing.context.BaseContext,
    text_of: Callable[[BaseException], str],
) -> None:
    wrapper = run_in_background_process(
        workers.raise_holding_a_lock, mp_context=start_method_context, max_workers=1
    )
    try:
        with pytest.raises(KeyError) as caught:
            wrapper("user-42").result(timeout=60)
        # The instance cannot travel (its lock), but its class can be rebuilt
        # from a message, so the stand-in keeps the class.
        assert type(caught.value) is workers.LockedError
        assert caught.value.args[0].startswith("concurrency_workers.LockedError: 'user-42'")
        assert "cannot pickle" in text_of(caught.value)
    finally:
        wrapper.shutdown()


def test_worker_traceback_is_chained_as_a_remote_traceback(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    wrapper = run_in_background_process(
        workers.fail_with_value_error, mp_context=start_method_context, max_workers=1
    )
    try:
        with pytest.raises(ValueError, match="from the worker") as caught:
            wrapper("from the worker").result(timeout=60)
    finally:
        wrapper.shutdown()
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail_with_value_error" in cause.traceback_text
    assert str(cause).startswith('\n"""\nTraceback (most recent call last):')


def test_result_that_does_not_pickle_fails_that_call_only(
    start_method_context: multiprocessing.context.BaseContext,
    text_of: Callable[[BaseException], str],
) -> None:
    wrapper = run_in_background_process(
        workers.return_a_lock, mp_context=start_method_context, max_workers=1
    )
    try:
        pool = wrapper.executor
        with pytest.raises(TypeError, match="lock") as caught:
            wrapper().result(timeout=60)
        assert "returned a lock object, which cannot be pickled" in text_of(caught.value)
        assert wrapper.executor is pool
    finally:
        wrapper.shutdown()


def test_argument_that_does_not_pickle_is_refused_in_the_caller(
    text_of: Callable[[BaseException], str],
) -> None:
    wrapper = run_in_background_process(workers.square, max_workers=1)
    try:
        with pytest.raises(TypeError, match="lock") as caught:
            wrapper(workers.threading.Lock())  # type: ignore[arg-type]
        assert "arguments of this call of square cannot be pickled" in text_of(caught.value)
        assert wrapper(3).result(timeout=60) == 9
    finally:
        wrapper.shutdown()


@pytest.mark.parametrize(
    ("function", "args", "how"),
    [
        (workers.exit_now, (3,), "exit code 3"),
        (workers.kill_self, (), "killed by SIGKILL"),
    ],
    ids=["os._exit", "SIGKILL"],
)
def test_crash_names_the_function_and_the_next_call_works(
    start_method_context: multiprocessing.context.BaseContext,
    function: object,
    args: tuple[object, ...],
    how: str,
) -> None:
    crasher = run_in_background_process(function, mp_context=start_method_context, max_workers=1)  # type: ignore[call-overload]
    try:
        for _ in range(REPEATS):
            before = crasher.executor
            with pytest.raises(OriWorkerCrashedError) as caught:
                crasher(*args).result(timeout=60)
            message = str(caught.value)
            assert f"running {function.__qualname__} died ({how})" in message  # type: ignore[attr-defined]
            assert "starting up" not in message
            assert crasher.executor is not before  # a fresh pool, without being asked
    finally:
        crasher.shutdown()


def test_the_same_wrapper_recovers_after_a_crash(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    # One wrapper whose function crashes only on some arguments: later calls work.
    wrapper = run_in_background_process(
        workers.exit_or_square, mp_context=start_method_context, max_workers=2
    )
    try:
        for _ in range(REPEATS):
            with pytest.raises(OriWorkerCrashedError, match="exit_or_square"):
                wrapper(-1).result(timeout=60)
            assert [wrapper(i).result(timeout=60) for i in range(4)] == [0, 1, 4, 9]
    finally:
        wrapper.shutdown()


def test_cancelling_a_waiting_call(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    wrapper = run_in_background_process(
        workers.sleep_then, mp_context=start_method_context, max_workers=1
    )
    try:
        running = wrapper(1, 0.5)
        waiting = [wrapper(i, 0.0) for i in range(2, 8)]
        cancelled = [f for f in waiting if f.cancel()]
        assert cancelled, "with one busy worker some calls are still waiting"
        _done, not_done = concurrent.futures.wait([running, *waiting], timeout=60)
        assert not not_done
        assert running.result() == 1
        for future in cancelled:
            assert future.cancelled()
        for future in waiting:
            if future not in cancelled:
                assert future.result() in range(2, 8)
    finally:
        wrapper.shutdown()


def _closure(offset: int) -> object:
    return lambda x: x + offset


def test_lambdas_and_closures_go_by_value_with_cloudpickle(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    pytest.importorskip("cloudpickle", reason="needs the cloudpickle extra (requirements-dev)")
    add_ten = run_in_background_process(
        _closure(10), mp_context=start_method_context, max_workers=1
    )  # type: ignore[call-overload]
    double = run_in_background_process(
        lambda x: 2 * x, mp_context=start_method_context, max_workers=1
    )
    try:
        assert [add_ten(i).result(timeout=60) for i in range(3)] == [10, 11, 12]
        assert double(21).result(timeout=60) == 42
        assert double(5).result(timeout=60) != os.getpid()
    finally:
        add_ten.shutdown()
        double.shutdown()


def test_without_cloudpickle_lambdas_are_refused_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # as if not installed
    with pytest.raises(OriValidationError) as caught:
        run_in_background_process(lambda x: x)
    message = str(caught.value)
    # The same rule and words as a PoolChain process stage, naming this package's extra.
    assert "is a lambda or a function defined inside another function" in message
    assert message.endswith(
        "or install cloudpickle, which sends such functions by value: "
        "pip install 'ori-concurrency[cloudpickle]'"
    )


def _run_script(tmp_path: Path, source: str, method: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), *sys.path]))
    return subprocess.run(
        [sys.executable, str(script), method],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


UNGUARDED = """
    import multiprocessing, sys
    from ori.concurrency import run_in_background_process
    from concurrency_workers import square

    multiprocessing.set_start_method(sys.argv[1], force=True)
    wrapper = run_in_background_process(square, max_workers=1)
    print(wrapper(7).result(timeout=60))
"""


@pytest.mark.parametrize("method", [m for m in START_METHODS if m != "fork"])
@pytest.mark.parametrize("attempt", range(REPEATS))
def test_unguarded_main_script_says_to_add_the_guard(
    tmp_path: Path, method: str, attempt: int
) -> None:
    done = _run_script(tmp_path, UNGUARDED, method)
    assert done.returncode != 0
    assert "leaked semaphore" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ori.errors.OriWorkerCrashedError: "), done.stderr
    # The worker itself says what happened, on its stderr, before it dies.
    assert "was called while this worker process was starting up" in done.stderr
    assert "died while starting up" in last
    assert "before it ran any call" in last
    assert f"start method {method!r}" in last
    assert 'if __name__ == "__main__":' in last
    assert str(tmp_path / "job.py") in last
    assert "item" not in last
    assert "argument" not in last


WORKER_IMPORT_FAILS = """
    import multiprocessing, sys
    if multiprocessing.current_process().name != "MainProcess":  # in a worker
        raise ImportError("a module this script needs is missing in the worker")
    from ori.concurrency import run_in_background_process
    from concurrency_workers import square

    if __name__ == "__main__":
        multiprocessing.set_start_method(sys.argv[1], force=True)
        wrapper = run_in_background_process(square, max_workers=1)
        try:
            wrapper(7).result(timeout=60)
        except Exception as exc:
            print(type(exc).__name__, exc)
        wrapper.shutdown()
"""


@pytest.mark.parametrize("method", [m for m in START_METHODS if m != "fork"])
def test_import_error_in_a_starting_worker_is_not_blamed_on_the_call(
    tmp_path: Path, method: str
) -> None:
    done = _run_script(tmp_path, WORKER_IMPORT_FAILS, method)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OriWorkerCrashedError a worker process for square died while")
    assert f"start method {method!r}" in done.stdout
    assert "a module that fails to import" in done.stdout
    assert "ImportError: a module this script needs is missing" in done.stderr  # the worker's own


def test_the_private_attributes_read_by_process_calls_exist() -> None:
    # _process_calls.py reads private attributes of the standard library: the
    # executor's processes (exit codes of dead workers) and management thread
    # checked here; when a Python release renames one, this fails instead of
    # the messages silently losing their exit code. The third, the
    # bootstrapping flag of a spawned worker, is exercised by the unguarded
    # script tests (the worker's own message on its stderr).
    executor = concurrent.futures.ProcessPoolExecutor(max_workers=1)
    try:
        assert executor.submit(workers.square, 3).result(timeout=60) == 9
        processes = executor._processes  # type: ignore[attr-defined]
        assert all(p.exitcode is None for p in processes.values())
        assert executor._executor_manager_thread is not None  # type: ignore[attr-defined]
    finally:
        executor.shutdown()
