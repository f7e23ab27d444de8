"""add_cpupool: threads without the GIL, processes with it, the same results either way."""

from __future__ import annotations

import os
import sys
import threading

import poolchain_workers as pw
import pytest

from ori.errors import OriTimeoutError, OriValidationError
from ori.poolchain import Failure, PoolChain, _chain
from ori.poolchain._compat import gil_enabled
from ori.poolchain._stages import usable_cpus

free_threaded_only = pytest.mark.skipif(
    gil_enabled(), reason="needs free-threaded CPython with the GIL off (CI's py313t env)"
)
gil_only = pytest.mark.skipif(
    not gil_enabled(), reason="needs the GIL (every CI env but py313t runs it)"
)


@pytest.fixture
def without_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make add_cpupool see a free-threaded interpreter (its choice is made at add time)."""
    monkeypatch.setattr(_chain, "gil_enabled", lambda: False)


@pytest.fixture
def with_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_chain, "gil_enabled", lambda: True)


def test_gil_enabled_follows_the_interpreter() -> None:
    check = getattr(sys, "_is_gil_enabled", None)
    assert gil_enabled() is (True if check is None else check())


@gil_only
def test_with_the_gil_it_runs_on_worker_processes() -> None:
    chain = PoolChain().add_cpupool(pw.pid_of, max_workers=2)
    pids = set(chain.execute_eager(range(200)))
    assert pids
    assert os.getpid() not in pids
    stage = chain.stats.stages[0]
    assert stage.kind == "cpu pool on processes"
    assert stage.workers == 2


@free_threaded_only
def test_without_the_gil_it_runs_on_threads() -> None:
    chain = PoolChain().add_cpupool(lambda x: (threading.get_ident(), x), max_workers=2)
    results = chain.execute_eager(range(50))
    assert [x for _, x in results] == list(range(50))
    assert chain.stats.stages[0].kind == "cpu pool on threads"


@pytest.mark.parametrize("gil", ["with_gil", "without_gil"])
def test_same_results_either_way(gil: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(gil)
    chain = (
        PoolChain()
        .add_threadpool(pw.increment)
        .add_cpupool(pw.busy_work, max_workers=2)
        .add_threadpool(pw.to_str)
    )
    expected = [str(pw.busy_work(x + 1)) for x in range(60)]
    assert chain.execute_eager(range(60)) == expected
    assert chain.execute_eager_single_threaded(range(60)) == expected
    kind = "cpu pool on threads" if gil == "without_gil" else "cpu pool on processes"
    assert chain.stats.stages[1].kind == kind
    assert f"stage 2/3 ({kind}, busy_work)" in chain.stats.stages[1].name


@pytest.mark.usefixtures("without_gil")
def test_on_threads_nothing_is_pickled() -> None:
    lock = threading.Lock()  # neither pickle nor cloudpickle could send it
    chain = PoolChain().add_cpupool(lambda x: (lock.locked(), x * 2))
    assert chain.execute_eager(range(5)) == [(False, 2 * x) for x in range(5)]
    assert chain.stats.stages[0].workers == usable_cpus()


@pytest.mark.usefixtures("without_gil")
def test_on_threads_a_timeout_is_reported_and_the_rest_goes_on() -> None:
    chain = PoolChain().add_cpupool(pw.sleep_for, timeout=0.2, on_error="return")
    results = chain.execute_eager([0.0, 1.0, 0.0])
    assert results[0] == 0.0
    assert results[2] == 0.0
    assert isinstance(results[1], Failure)
    assert isinstance(results[1].exception, OriTimeoutError)


@pytest.mark.parametrize("gil", ["with_gil", "without_gil"])
def test_process_stage_errors_and_policies_apply(gil: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(gil)
    chain = PoolChain().add_cpupool(pw.fail_on_three, on_error="skip", retries=1)
    assert chain.execute_eager(range(6)) == [0, 1, 2, 4, 5]
    assert chain.stats.stages[0].items_failed == 1


@pytest.mark.parametrize("gil", ["with_gil", "without_gil"])
@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"max_workers": 0}, "max_workers must be a positive int"),
        ({"timeout": -1}, "timeout must be"),
        ({"chunksize": "3"}, "chunksize must be a positive int"),
        ({"on_error": "ignore"}, "on_error"),
        ({"retries": -1}, "retries"),
    ],
)
def test_bad_arguments_are_refused_either_way(
    gil: str, keywords: dict[str, object], message: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(gil)
    with pytest.raises(OriValidationError, match=message):
        PoolChain().add_cpupool(pw.double, **keywords)  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="callable"):
        PoolChain().add_cpupool("double")  # type: ignore[arg-type]
