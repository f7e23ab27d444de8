"""Lambdas and closures in process stages (cloudpickle extra), initializers, start_method."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys

import poolchain_workers as sw
import pytest
from poolchain_children import python_c

from ori.errors import OriError, OriNoInteractiveProcessPools, OriValidationError
from ori.poolchain import PoolChain
from ori.poolchain._pickling import ByValue, for_workers

try:
    import cloudpickle  # noqa: F401
except ImportError:  # pragma: no cover - the dev requirements install the extra
    HAVE_CLOUDPICKLE = False
else:
    HAVE_CLOUDPICKLE = True
needs_cloudpickle = pytest.mark.skipif(
    not HAVE_CLOUDPICKLE, reason="needs the cloudpickle extra (requirements-dev installs it)"
)

START_METHODS = multiprocessing.get_all_start_methods()
INSTALL = "pip install 'ori-poolchain[cloudpickle]'"


class MyPool(concurrent.futures.ThreadPoolExecutor):
    """Any Executor subclass other than the two Ori replaces."""


# -- lambdas and closures ---------------------------------------------------------


@needs_cloudpickle
def test_lambdas_and_closures_through_spawned_process_stages() -> None:
    factor = 7

    def times_factor(x: int) -> int:  # a closure over a local
        return x * factor

    chain = (
        PoolChain()
        .add_processpool(lambda x: x + 1, max_workers=2, start_method="spawn")
        .add(
            times_factor,
            executor_class=concurrent.futures.ProcessPoolExecutor,
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
        )
    )
    assert chain.execute_eager(range(20)) == [(x + 1) * 7 for x in range(20)]
    # The single-threaded mode agrees.
    assert chain.execute_eager_single_threaded([1, 2]) == [14, 21]


@needs_cloudpickle
@pytest.mark.parametrize("method", START_METHODS)
def test_lambda_with_initializer_lambda_under_every_start_method(method: str) -> None:
    seen: list[str] = []
    chain = PoolChain().add_processpool(
        lambda x: (x, len(seen)),
        max_workers=1,
        start_method=method,
        initializer=lambda: None,
    )
    assert chain.execute_eager([1, 2]) == [(1, 0), (2, 0)]


@needs_cloudpickle
def test_only_functions_that_need_it_go_by_value() -> None:
    spawn = multiprocessing.get_context("spawn")
    assert for_workers(sw.pid_of, spawn) is sw.pid_of  # by reference: unchanged
    assert for_workers(abs, spawn) is abs
    wrapped = for_workers(lambda x: x * 3, spawn)
    assert isinstance(wrapped, ByValue)
    import pickle

    assert pickle.loads(pickle.dumps(wrapped))(5) == 15  # the worker gets the function
    if "fork" in START_METHODS:
        function = lambda x: x  # noqa: E731
        assert for_workers(function, multiprocessing.get_context("fork")) is function


@needs_cloudpickle
def test_python_c_functions_and_lambdas_work_under_every_start_method() -> None:
    done = python_c(
        """
        import multiprocessing
        from ori.poolchain import PoolChain

        def triple(x):
            return 3 * x

        offset = 100
        for method in multiprocessing.get_all_start_methods():
            chain = (
                PoolChain()
                .add_processpool(triple, max_workers=1, start_method=method)
                .add_processpool(lambda x: x + offset, max_workers=1, start_method=method)
            )
            print(method, chain.execute_eager([1, 2]))
        """
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.splitlines()) == {f"{m} [103, 106]" for m in START_METHODS}


def test_without_cloudpickle_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # as if not installed
    for add in (
        lambda chain: chain.add_processpool(lambda x: x),
        lambda chain: chain.add(lambda x: x, executor_class=concurrent.futures.ProcessPoolExecutor),
        lambda chain: chain.add_processpool(sw.pid_of, initializer=lambda: None),
    ):
        with pytest.raises(OriValidationError) as info:
            add(PoolChain())
        assert INSTALL in str(info.value)
        assert "define it with 'def' at the top level of a module" in str(info.value)


def test_without_cloudpickle_python_c_functions_are_refused_with_the_install_hint() -> None:
    done = python_c(
        """
        import sys
        sys.modules["cloudpickle"] = None
        from ori.errors import OriNoInteractiveProcessPools
        from ori.poolchain import PoolChain

        def triple(x):
            return 3 * x

        try:
            PoolChain().add_processpool(triple, start_method="spawn")
        except OriNoInteractiveProcessPools as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert INSTALL in done.stdout
    assert issubclass(OriNoInteractiveProcessPools, Exception)


# -- initializer ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_process_initializer_runs_once_per_worker(method: str) -> None:
    if method not in START_METHODS:
        pytest.skip(f"no {method} start method here")
    chain = PoolChain().add_processpool(
        sw.use_setup,
        max_workers=2,
        chunksize=1,
        start_method=method,
        initializer=sw.set_up,
        initargs=("n=", 10),
    )
    results = chain.execute_eager(range(30))
    assert [text for _, _, text in results] == [f"n={10 * x}" for x in range(30)]
    assert {calls for _, calls, _ in results} == {1}  # once per worker, not per item
    assert 1 <= len({pid for pid, _, _ in results}) <= 2


def test_thread_initializer_runs_once_per_lane_thread() -> None:
    chain = PoolChain().add_threadpool(
        sw.use_thread_setup, max_workers=3, initializer=sw.set_up_thread, initargs=["db"]
    )
    assert chain.execute_eager(range(50)) == [("db", 1, x) for x in range(50)]


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_initializer_that_raises_fails_the_run_naming_the_stage(kind: str) -> None:
    chain = PoolChain().add_threadpool(abs)
    if kind == "process":
        chain.add_processpool(sw.pid_of, max_workers=2, initializer=sw.broken_setup)
    else:
        chain.add_threadpool(sw.pid_of, max_workers=2, initializer=sw.broken_setup)
    with pytest.raises(OriError) as info:
        chain.execute_eager(range(100))
    message = str(info.value)
    assert "initializer broken_setup of stage 2" in message
    assert "RuntimeError: the model file is missing" in message
    cause = info.value.__cause__
    assert cause is not None
    assert "the model file is missing" in str(cause)
    # The chain stays usable once the initializer is fixed (nothing is left behind:
    # the autouse fixture checks threads and processes).
    assert PoolChain().add_processpool(abs, max_workers=1).execute_eager([-1]) == [1]


def test_initializer_validation() -> None:
    with pytest.raises(OriValidationError, match="initializer must be a callable"):
        PoolChain().add_processpool(abs, initializer="setup")  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="initargs must be a tuple"):
        PoolChain().add_processpool(abs, initializer=sw.set_up, initargs=5)  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="initargs were given without an initializer"):
        PoolChain().add_threadpool(abs, initargs=(1,))
    with pytest.raises(OriValidationError, match="only applies to thread and process stages"):
        PoolChain().add(abs, executor_class=MyPool, initializer=sw.set_up)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(OriValidationError, match="only applies to thread and process"):
            PoolChain().add(abs, executor=pool, initializer=sw.set_up)


# -- start_method -----------------------------------------------------------------


def test_start_method_is_validated() -> None:
    with pytest.raises(OriValidationError, match="start_method must be one of"):
        PoolChain().add_processpool(abs, start_method="thread")
    with pytest.raises(OriValidationError, match="either mp_context or start_method"):
        PoolChain().add_processpool(
            abs, start_method="spawn", mp_context=multiprocessing.get_context("spawn")
        )
    with pytest.raises(OriValidationError, match="only applies to process stages"):
        PoolChain().add(
            abs, executor_class=concurrent.futures.ThreadPoolExecutor, start_method="spawn"
        )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(OriValidationError, match="start_method does not apply"):
            PoolChain().add(abs, executor=pool, start_method="spawn")


def test_start_method_selects_the_context() -> None:
    chain = PoolChain().add_processpool(abs, start_method="spawn")
    assert chain._specs[0].mp_context is multiprocessing.get_context("spawn")
    assert chain.execute_eager([-3]) == [3]
