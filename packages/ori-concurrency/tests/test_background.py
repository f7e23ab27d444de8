from __future__ import annotations

import concurrent.futures
import inspect
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import concurrency_workers as workers
import pytest

import ori.concurrency
from ori.concurrency import (
    BackgroundFunction,
    run_in_background,
    run_in_background_process,
    run_in_background_thread,
)
from ori.errors import OriValidationError

START_METHODS = multiprocessing.get_all_start_methods()
TESTS_DIR = Path(__file__).resolve().parent


def test_all_matches_public_names() -> None:
    public = {n for n in dir(ori.concurrency) if not n.startswith("_")}
    assert set(ori.concurrency.__all__) == public
    for name in ori.concurrency.__all__:
        assert getattr(ori.concurrency, name).__module__ == "ori.concurrency"


def test_thread_wrapper_returns_future_and_keeps_signature() -> None:
    def add(a: int, b: int = 2) -> int:
        """Adds."""
        return a + b

    wrapper = run_in_background_thread(add)
    try:
        future = wrapper(1, b=5)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(timeout=10) == 6
        assert inspect.signature(wrapper) == inspect.signature(add)
        assert wrapper.__name__ == "add"
        assert wrapper.__doc__ == "Adds."
        assert isinstance(wrapper.executor, concurrent.futures.ThreadPoolExecutor)
    finally:
        wrapper.shutdown()


def test_thread_wrapper_runs_in_another_thread() -> None:
    wrapper = run_in_background_thread(threading.get_ident)
    try:
        assert wrapper().result(timeout=10) != threading.get_ident()
    finally:
        wrapper.shutdown()


def test_max_workers_reaches_executor() -> None:
    wrapper = run_in_background_thread(workers.square, max_workers=3)
    try:
        assert wrapper.executor._max_workers == 3  # type: ignore[attr-defined]
    finally:
        wrapper.shutdown()


def test_run_in_background_with_custom_executor_subclass() -> None:
    class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
        submitted = 0

        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            CountingExecutor.submitted += 1
            return super().submit(fn, *args, **kwargs)

    wrapper = run_in_background(workers.square, executor_class=CountingExecutor, max_workers=2)
    try:
        assert [wrapper(i).result(timeout=10) for i in range(4)] == [0, 1, 4, 9]
        assert CountingExecutor.submitted == 4
        assert isinstance(wrapper.executor, CountingExecutor)
    finally:
        wrapper.shutdown()


def test_exceptions_keep_their_type() -> None:
    wrapper = run_in_background_thread(workers.fail_with_value_error)
    try:
        with pytest.raises(ValueError, match="boom"):
            wrapper("boom").result(timeout=10)
    finally:
        wrapper.shutdown()


def test_process_wrapper_runs_in_another_process() -> None:
    wrapper = run_in_background_process(workers.worker_pid, max_workers=1)
    try:
        assert wrapper().result(timeout=60) != os.getpid()
        assert isinstance(wrapper.executor, concurrent.futures.ProcessPoolExecutor)
    finally:
        wrapper.shutdown()


def test_process_exceptions_keep_their_type() -> None:
    wrapper = run_in_background_process(workers.fail_with_value_error, max_workers=1)
    try:
        with pytest.raises(ValueError, match="remote"):
            wrapper("remote").result(timeout=60)
    finally:
        wrapper.shutdown()


@pytest.mark.parametrize("method", START_METHODS)
def test_plain_wrap_under_every_start_method(method: str) -> None:
    wrapper = run_in_background_process(
        workers.square, max_workers=2, mp_context=multiprocessing.get_context(method)
    )
    try:
        assert [f.result(timeout=60) for f in [wrapper(i) for i in range(5)]] == [
            0,
            1,
            4,
            9,
            16,
        ]
    finally:
        wrapper.shutdown()


@pytest.mark.parametrize("method", START_METHODS)
def test_decorated_module_function_under_every_start_method(method: str) -> None:
    # The decorated name refers to the wrapper, not the function: pickling by
    # reference must still reach the original function inside the worker.
    context = multiprocessing.get_context(method)
    wrapper = run_in_background_process(
        workers.decorated_bare.function, mp_context=context, max_workers=1
    )
    # Rebuild the decorated form with this start method and the module-level name.
    decorated = BackgroundFunction(
        workers.decorated_bare.function,
        concurrent.futures.ProcessPoolExecutor,
        {"max_workers": 1, "mp_context": context},
    )
    workers_decorated = workers.decorated_bare
    try:
        workers.decorated_bare = decorated  # type: ignore[assignment]
        value, pid = decorated(20, offset=2).result(timeout=60)
        assert value == 42
        assert pid != os.getpid()
    finally:
        workers.decorated_bare = workers_decorated  # type: ignore[assignment]
        decorated.shutdown()
        wrapper.shutdown()


def test_decorators_bare_and_with_arguments() -> None:
    try:
        assert isinstance(workers.decorated_bare, BackgroundFunction)
        assert workers.decorated_bare(5, offset=1).result(timeout=60)[0] == 11
        assert workers.decorated_with_args(1).result(timeout=60)[0] == 2
        assert workers.decorated_with_args.executor._max_workers == 2  # type: ignore[attr-defined]
        assert workers.decorated_thread(1).result(timeout=10) == 0
        assert workers.decorated_thread_with_args(2).result(timeout=10) == 6
        assert inspect.signature(workers.decorated_bare).parameters["offset"].default == 0
        assert workers.decorated_bare.__doc__ == "Doubles x in a worker process."
    finally:
        for wrapper in (
            workers.decorated_bare,
            workers.decorated_with_args,
            workers.decorated_thread,
            workers.decorated_thread_with_args,
        ):
            wrapper.shutdown()


@pytest.mark.parametrize("method", START_METHODS)
def test_decorated_script_with_global_start_method(method: str, tmp_path: Path) -> None:
    # The everyday shape: a script sets the start method and decorates at module level.
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import multiprocessing, os
            from ori.concurrency import run_in_background_process

            @run_in_background_process
            def cube(x):
                return x ** 3, os.getpid()

            if __name__ == "__main__":
                multiprocessing.set_start_method({method!r})
                value, pid = cube(3).result(timeout=60)
                assert value == 27 and pid != os.getpid(), (value, pid)
                print("ok")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_wrapper_pickles_by_name() -> None:
    copy = pickle.loads(pickle.dumps(workers.decorated_thread))
    assert copy is workers.decorated_thread


def test_shutdown_is_idempotent_and_wrapper_recovers() -> None:
    wrapper = run_in_background_thread(workers.square)
    first = wrapper.executor
    assert wrapper(3).result(timeout=10) == 9
    wrapper.shutdown()
    wrapper.shutdown()
    assert wrapper(4).result(timeout=10) == 16
    assert wrapper.executor is not first
    wrapper.shutdown()


def test_executor_shutdown_directly() -> None:
    wrapper = run_in_background_process(workers.square, max_workers=1)
    assert wrapper(2).result(timeout=60) == 4
    wrapper.executor.shutdown()
    with pytest.raises(RuntimeError):
        wrapper(2)


def test_wrapping_starts_nothing() -> None:
    before = threading.active_count()
    wrapper = run_in_background_process(workers.square)
    wrapper2 = run_in_background_thread(workers.square)
    assert threading.active_count() == before
    assert wrapper._processes is not None
    assert wrapper._processes._pool is None
    assert wrapper2._executor is None
    wrapper.shutdown()
    wrapper2.shutdown()


@pytest.mark.parametrize("bad", [42, "square", [workers.square]])
@pytest.mark.parametrize(
    "make",
    [
        run_in_background_thread,
        run_in_background_process,
        lambda f: run_in_background(f, executor_class=concurrent.futures.ThreadPoolExecutor),
    ],
)
def test_non_callable_func(bad: object, make: object) -> None:
    with pytest.raises(OriValidationError, match="func must be a callable"):
        make(bad)  # type: ignore[operator]


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True, False])
@pytest.mark.parametrize("make", [run_in_background_thread, run_in_background_process])
def test_bad_max_workers(bad: object, make: object) -> None:
    with pytest.raises(OriValidationError, match="max_workers must be a positive int"):
        make(workers.square, max_workers=bad)  # type: ignore[operator]
    with pytest.raises(OriValidationError, match="max_workers"):
        make(max_workers=bad)  # type: ignore[operator]


@pytest.mark.parametrize("bad", [int, dict, object, 3, "ThreadPoolExecutor", None])
def test_bad_executor_class(bad: object) -> None:
    with pytest.raises(OriValidationError, match="executor_class"):
        run_in_background(workers.square, executor_class=bad)  # type: ignore[arg-type]


def test_executor_instance_is_refused_with_hint() -> None:
    with concurrent.futures.ThreadPoolExecutor() as pool:
        with pytest.raises(OriValidationError, match="pass the class itself"):
            run_in_background(workers.square, executor_class=pool)  # type: ignore[arg-type]


def test_bad_mp_context() -> None:
    with pytest.raises(OriValidationError, match="mp_context"):
        run_in_background_process(workers.square, mp_context="spawn")  # type: ignore[arg-type]


def test_lambda_in_process_pool_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # without the cloudpickle extra
    with pytest.raises(OriValidationError, match="lambda or a function defined inside"):
        run_in_background_process(lambda x: x)


def _run_code(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), *sys.path]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize("method", [m for m in START_METHODS if m != "fork"])
def test_python_c_process_refused_up_front(method: str) -> None:
    done = _run_code(
        f"""
        import multiprocessing, sys
        sys.modules["cloudpickle"] = None  # without the cloudpickle extra
        from ori.concurrency import run_in_background_process
        from ori.errors import OriNoInteractiveProcessPools
        multiprocessing.set_start_method({method!r})
        def f(x):
            return x
        try:
            run_in_background_process(f)
        except OriNoInteractiveProcessPools as exc:
            print("refused:", exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:")
    assert "save it in a .py file" in done.stdout
    assert "pip install 'ori-concurrency[cloudpickle]'" in done.stdout


@pytest.mark.skipif("fork" not in START_METHODS, reason="fork exists on POSIX only")
def test_python_c_process_works_with_fork() -> None:
    done = _run_code(
        """
        import multiprocessing
        from ori.concurrency import run_in_background_process
        def f(x):
            return x * 2
        w = run_in_background_process(f, mp_context=multiprocessing.get_context("fork"))
        print(w(21).result(timeout=60))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


def test_program_that_never_shuts_down_exits_promptly() -> None:
    done = _run_code(
        """
        import time
        from ori.concurrency import run_in_background_process, run_in_background_thread
        from concurrency_workers import square
        t = run_in_background_thread(square)
        p = run_in_background_process(square)
        assert t(3).result() == 9 and p(4).result() == 16
        print(time.monotonic())
        """,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_doctest_in_module_docstring() -> None:
    import doctest

    failures, tried = doctest.testmod(ori.concurrency, verbose=False)
    assert tried > 0
    assert failures == 0
