"""The public API: names, the reference example, results, validation."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys
import threading
from typing import Any

import poolchain_workers as workers
import pytest

import ori.poolchain
from ori.errors import OriValidationError
from ori.poolchain import PoolChain, PoolChainRun


def test_all_matches_public_names() -> None:
    public = {name for name in dir(ori.poolchain) if not name.startswith("_")}
    assert set(ori.poolchain.__all__) == public
    for name in ori.poolchain.__all__:
        assert getattr(ori.poolchain, name).__module__ == "ori.poolchain"


def test_reference_example() -> None:
    results = (
        PoolChain()
        .add_threadpool(lambda num: num * 10)
        .add_processpool(str, chunksize=2, max_workers=3)
        .add_threadpool(lambda s: s + " is a number", timeout=5)
    ).execute_eager([1, 2, 3, 4, 5])
    assert results == [
        "10 is a number",
        "20 is a number",
        "30 is a number",
        "40 is a number",
        "50 is a number",
    ]


def test_add_methods_return_the_chain() -> None:
    chain = PoolChain()
    assert chain.add_threadpool(workers.double) is chain
    assert chain.add_processpool(workers.double, max_workers=1) is chain
    assert chain.add(workers.double, executor_class=concurrent.futures.ThreadPoolExecutor) is chain
    assert "thread pool(double)" in repr(chain)
    assert "process pool(double)" in repr(chain)


def test_execute_lazy_returns_a_closable_iterator() -> None:
    run = PoolChain().add_threadpool(workers.double, max_workers=2).execute_lazy(range(5))
    assert isinstance(run, PoolChainRun)
    assert "running" in repr(run)
    assert next(run) == 0
    assert next(iter(run)) == 2, "iter() and next() share one position"
    assert list(run) == [4, 6, 8]
    assert "closed" in repr(run)
    with pytest.raises(StopIteration):
        next(run)


@pytest.mark.parametrize("size", [0, 1, 2, 17, 500])
def test_mixed_chain_keeps_input_order(size: int) -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=3)
        .add_processpool(workers.square, max_workers=2)
        .add_threadpool(workers.negate, max_workers=2)
    )
    expected = [-((x + 1) ** 2) for x in range(size)]
    assert chain.execute_eager(range(size)) == expected
    assert chain.execute_eager_single_threaded(range(size)) == expected
    assert list(chain.execute_lazy_single_threaded(range(size))) == expected


def test_unordered_gives_every_result_once() -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.double, max_workers=4)
        .add_processpool(workers.increment, max_workers=2)
    )
    results = chain.execute_eager(range(300), ordered=False)
    assert sorted(results) == [2 * x + 1 for x in range(300)]


def test_unordered_yields_in_completion_order() -> None:
    first_out = threading.Event()

    def slow_zero(x: int) -> int:
        if x == 0:
            assert first_out.wait(30), "item 1 never came out before item 0"
        return x

    run = PoolChain().add_threadpool(slow_zero, max_workers=2).execute_lazy([0, 1], ordered=False)
    with run:
        assert next(run) == 1
        first_out.set()
        assert next(run) == 0


# The second run starts its workers while the first run's threads are up: they
# come from the forkserver, never from a fork beside those threads (conftest checks).
def test_chain_can_be_executed_again_and_concurrently() -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.double, max_workers=2)
        .add_processpool(workers.increment, max_workers=1)
    )
    assert chain.execute_eager(range(10)) == [2 * x + 1 for x in range(10)]
    assert chain.execute_eager(range(3)) == [1, 3, 5]
    first = chain.execute_lazy(range(20))
    second = chain.execute_lazy(range(20, 40))
    with first, second:
        assert list(second) == [2 * x + 1 for x in range(20, 40)]
        assert list(first) == [2 * x + 1 for x in range(20)]


def test_any_iterable_is_accepted() -> None:
    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    assert chain.execute_eager(iter([1, 2])) == [2, 4]
    assert chain.execute_eager(x for x in range(3)) == [0, 2, 4]
    assert chain.execute_eager({5: "a"}) == [10]
    assert chain.execute_eager("ab") == ["aa", "bb"]


def test_custom_executor_class_runs_through_submit() -> None:
    class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
        submitted = 0
        # The stage's lanes submit from several threads at once: without the lock,
        # two `+= 1` can interleave and lose a count (it happens without the GIL).
        count_lock = threading.Lock()

        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            with CountingExecutor.count_lock:
                CountingExecutor.submitted += 1
            return super().submit(fn, *args, **kwargs)

    chain = PoolChain().add(workers.double, executor_class=CountingExecutor, max_workers=3)
    assert chain.execute_eager(range(20)) == [2 * x for x in range(20)]
    assert CountingExecutor.submitted == 20
    # max_workers=None: the executor's own default
    chain = PoolChain().add(workers.increment, executor_class=CountingExecutor)
    assert chain.execute_eager([1]) == [2]


def test_process_pool_subclass_runs_through_submit() -> None:
    class MyProcessPool(concurrent.futures.ProcessPoolExecutor):
        pass

    chain = PoolChain().add(workers.square, executor_class=MyProcessPool, max_workers=1)
    assert chain.execute_eager([1, 2, 3]) == [1, 4, 9]


def test_generic_executor_error_keeps_its_type() -> None:
    class Plain(concurrent.futures.ThreadPoolExecutor):
        pass

    chain = PoolChain().add(workers.fail_on_three, executor_class=Plain, max_workers=2)
    with pytest.raises(ValueError, match="three is not allowed") as info:
        chain.execute_eager(range(6))
    assert "stage 1/1 (Plain, fail_on_three) on input item 3" in "".join(
        getattr(info.value, "__notes__", [])
    )


# -- validation ------------------------------------------------------------------

BAD_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"max_workers": 0}, "max_workers must be a positive int"),
    ({"max_workers": 1.5}, "max_workers must be a positive int"),
    ({"max_workers": True}, "max_workers must be a positive int"),
    ({"timeout": 0}, "timeout must be"),
    ({"timeout": -1}, "timeout must be"),
    ({"timeout": "5"}, "timeout must be"),
    ({"timeout": float("nan")}, "timeout must be"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS)
@pytest.mark.parametrize("method", ["add_threadpool", "add_processpool", "add"])
def test_bad_arguments_are_refused_at_add_time(
    method: str, kwargs: dict[str, Any], message: str
) -> None:
    chain = PoolChain()
    extra: dict[str, Any] = {}
    if method == "add":
        extra["executor_class"] = concurrent.futures.ThreadPoolExecutor
    with pytest.raises(OriValidationError, match=message):
        getattr(chain, method)(workers.double, **kwargs, **extra)
    assert repr(chain) == "<PoolChain []>", "a refused stage must not be added"


@pytest.mark.parametrize("chunksize", [0, -3, 2.0, "2", False])
def test_bad_chunksize_is_refused(chunksize: object) -> None:
    with pytest.raises(OriValidationError, match="chunksize must be a positive int"):
        PoolChain().add_processpool(workers.double, chunksize=chunksize)  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="chunksize must be a positive int"):
        PoolChain().add(
            workers.double,
            executor_class=concurrent.futures.ProcessPoolExecutor,
            chunksize=chunksize,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("function", [None, 3, "print"])
def test_non_callable_function_is_refused(function: object) -> None:
    with pytest.raises(OriValidationError, match="function must be a callable"):
        PoolChain().add_threadpool(function)  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="function must be a callable"):
        PoolChain().add_processpool(function)  # type: ignore[arg-type]


def test_executor_instance_is_refused() -> None:
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        with pytest.raises(OriValidationError, match="pass the class itself"):
            PoolChain().add(workers.double, executor_class=executor)  # type: ignore[arg-type]
    finally:
        executor.shutdown()


@pytest.mark.parametrize("cls", [int, object, "ThreadPoolExecutor", None])
def test_non_executor_class_is_refused(cls: object) -> None:
    with pytest.raises(OriValidationError, match=r"subclass of concurrent\.futures\.Executor"):
        PoolChain().add(workers.double, executor_class=cls)  # type: ignore[arg-type]


def test_lambda_and_closure_are_refused_for_process_stages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # without the extra
    with pytest.raises(OriValidationError, match="lambda") as info:
        PoolChain().add_processpool(lambda x: x)
    assert "define it with 'def' at the top level of a module" in str(info.value)

    def nested(x: int) -> int:
        return x

    with pytest.raises(OriValidationError, match="inside another function"):
        PoolChain().add(nested, executor_class=concurrent.futures.ProcessPoolExecutor)
    # The same functions are fine in thread stages.
    assert PoolChain().add_threadpool(lambda x: x).add_threadpool(nested).execute_eager([1]) == [1]


def test_mp_context_is_checked() -> None:
    with pytest.raises(OriValidationError, match="mp_context must be a multiprocessing context"):
        PoolChain().add_processpool(workers.double, mp_context="spawn")  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="only applies to process stages"):
        PoolChain().add(
            workers.double,
            executor_class=concurrent.futures.ThreadPoolExecutor,
            mp_context=multiprocessing.get_context("spawn"),
        )


def test_empty_chain_is_refused_at_execute_time() -> None:
    chain = PoolChain()
    for call in (
        chain.execute_lazy,
        chain.execute_eager,
        chain.execute_lazy_single_threaded,
        chain.execute_eager_single_threaded,
    ):
        with pytest.raises(OriValidationError, match="no stages"):
            call([1, 2])


def test_execute_arguments_are_checked() -> None:
    chain = PoolChain().add_threadpool(workers.double)
    with pytest.raises(OriValidationError, match="iterable must be an iterable"):
        chain.execute_lazy(5)  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="iterable must be an iterable"):
        chain.execute_lazy_single_threaded(None)  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="ordered must be True or False"):
        chain.execute_eager([1], ordered="yes")  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="max_in_flight must be a positive int"):
        chain.execute_eager([1], max_in_flight=0)


def test_generic_executor_timeout() -> None:
    release = threading.Event()

    def stuck(x: int) -> int:
        if x == 1:
            release.wait(30)
        return x

    class Plain(concurrent.futures.ThreadPoolExecutor):
        pass

    chain = PoolChain().add(stuck, executor_class=Plain, max_workers=2, timeout=0.2)
    try:
        with pytest.raises(TimeoutError, match="did not finish input item 1"):
            chain.execute_eager(range(4))
    finally:
        release.set()


def test_a_worker_that_cannot_start_fails_the_execute_call_cleanly() -> None:
    spawn = multiprocessing.get_context("spawn")
    chain = (
        PoolChain()
        .add_threadpool(workers.double)
        .add_processpool(workers.HoldsALock(), max_workers=1, mp_context=spawn)
    )
    with pytest.raises(OriValidationError, match="cannot be pickled"):
        chain.execute_lazy(range(3))
    # The thread stage's lanes and everything else were stopped (no_leaks checks).
