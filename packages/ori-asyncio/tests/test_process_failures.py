"""asyncify_process (and asyncify with a process pool) when things go wrong:
exceptions that do not pickle, dead workers, workers that never start, lambdas."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import multiprocessing.context
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import asyncio_workers as workers
import pytest

from ori.asyncio import asyncify, asyncify_process, sync
from ori.errors import OriValidationError, OriWorkerCrashedError, RemoteTraceback

START_METHODS = multiprocessing.get_all_start_methods()
TESTS_DIR = Path(__file__).resolve().parent
REPEATS = 3  # a fault path that hangs one time in three shows up here


def test_exception_that_cannot_be_rebuilt_keeps_its_nearest_class(
    start_method_context: multiprocessing.context.BaseContext,
    text_of: Callable[[BaseException], str],
) -> None:
    with asyncify_process(
        workers.raise_two_args, mp_context=start_method_context, max_workers=1
    ) as call:
        for _ in range(REPEATS):
            with pytest.raises(ValueError) as caught:
                sync(call("over quota", 7))
            assert type(caught.value) is ValueError
            assert str(caught.value).startswith("asyncio_workers.TwoArgsError: over quota (code 7)")
            assert "raise TwoArgsError(what, code)" in text_of(caught.value)
            assert "terminated abruptly" not in text_of(caught.value)


def test_worker_traceback_is_chained_as_a_remote_traceback(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    with asyncify_process(workers.fail, mp_context=start_method_context, max_workers=1) as call:
        with pytest.raises(ValueError, match="from the worker") as caught:
            sync(call("from the worker"))
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail" in cause.traceback_text


def test_crash_names_the_function_and_the_next_call_works(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    with asyncify_process(
        workers.exit_or_cube, mp_context=start_method_context, max_workers=1
    ) as call:
        for _ in range(REPEATS):
            before = call.executor
            with pytest.raises(OriWorkerCrashedError) as caught:
                sync(call(-1))
            assert "running exit_or_cube died (exit code 5)" in str(caught.value)
            assert call.executor is not before  # a fresh pool, without being asked
            assert sync(call(3)) == 27


def test_lambdas_go_by_value_with_cloudpickle(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    pytest.importorskip("cloudpickle", reason="needs the cloudpickle extra (requirements-dev)")
    offset = 100
    with asyncify_process(
        lambda x: x + offset, mp_context=start_method_context, max_workers=1
    ) as call:

        async def main() -> list[int]:
            return list(await asyncio.gather(*(call(i) for i in range(3))))

        assert sync(main()) == [100, 101, 102]


def test_without_cloudpickle_lambdas_are_refused_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # as if not installed
    with pytest.raises(OriValidationError) as caught:
        asyncify_process(lambda x: x)
    assert str(caught.value).endswith(
        "or install cloudpickle, which sends such functions by value: "
        "pip install 'ori-asyncio[cloudpickle]'"
    )


def test_asyncify_with_a_process_pool_rebuilds_exceptions(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=start_method_context) as pool:
        call = asyncify(workers.raise_two_args, executor=pool)
        with pytest.raises(ValueError, match="TwoArgsError: late"):
            sync(call("late", 1))
        assert sync(asyncify(workers.cube, executor=pool)(4)) == 64  # the pool survived


UNGUARDED = """
    import multiprocessing, sys
    from ori.asyncio import asyncify_process, sync
    from asyncio_workers import cube

    multiprocessing.set_start_method(sys.argv[1], force=True)
    print(sync(asyncify_process(cube, max_workers=1)(3)))
"""


@pytest.mark.parametrize("method", [m for m in START_METHODS if m != "fork"])
@pytest.mark.parametrize("attempt", range(REPEATS))
def test_unguarded_main_script_says_to_add_the_guard(
    tmp_path: Path, method: str, attempt: int
) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(UNGUARDED))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), *sys.path]))
    done = subprocess.run(
        [sys.executable, str(script), method],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ori.errors.OriWorkerCrashedError: "), done.stderr
    assert "died while starting up" in last
    assert f"start method {method!r}" in last
    assert 'if __name__ == "__main__":' in last
    assert "item" not in last
