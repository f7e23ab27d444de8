"""Property: a chain with operators gives what its single-threaded run gives."""

from __future__ import annotations

from typing import Any

import poolchain_operator_workers as ow
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ori.poolchain import Failure, PoolChain

STAGES = [ow.bump, ow.fail_some, ow.identity]
STEP = st.one_of(
    st.tuples(st.just("thread"), st.sampled_from(STAGES)),
    st.tuples(st.just("process"), st.sampled_from(STAGES)),
    st.tuples(st.just("flatten"), st.none()),
    st.tuples(st.just("filter"), st.none()),
    st.tuples(st.just("batch"), st.integers(1, 4)),
)


def _build(steps: list[tuple[str, Any]]) -> PoolChain:
    chain = PoolChain().add_threadpool(ow.spread, max_workers=2)  # makes every item a list
    for kind, arg in steps:
        if kind == "thread":
            chain.add_threadpool(arg, max_workers=2)
        elif kind == "process":
            chain.add_processpool(arg, max_workers=1)
        elif kind == "flatten":
            chain.flatten()
        elif kind == "filter":
            chain.filter(_keep)
        else:
            chain.batch(arg)
    return chain


def _keep(x: Any) -> bool:
    return not isinstance(x, int) or x % 3 != 1


def _comparable(results: list[Any]) -> list[Any]:
    return [
        ("failure", r.index, r.stage, type(r.exception).__name__) if isinstance(r, Failure) else r
        for r in results
    ]


def _outcome(call: Any) -> Any:
    try:
        return _comparable(call())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc).splitlines()[0], exc.__notes__[-1])


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(STEP, max_size=4),
    items=st.integers(0, 25),
    policy=st.sampled_from(["raise", "skip", "return"]),
    ordered=st.booleans(),
)
def test_concurrent_runs_agree_with_the_single_threaded_one(
    steps: list[tuple[str, Any]], items: int, policy: str, ordered: bool
) -> None:
    # flatten() of an int fails like any item: keep it only where lists may come.
    chain = _build(steps)
    expected = _outcome(
        lambda: chain.execute_eager_single_threaded(range(items), on_error=policy)  # type: ignore[arg-type]
    )
    got = _outcome(lambda: chain.execute_eager(range(items), on_error=policy, ordered=ordered))  # type: ignore[arg-type]
    if ordered:
        assert got == expected
    elif isinstance(expected, tuple):  # which failure comes first depends on timing
        assert got[0] == "raised"
    else:  # completion order: batches may group other elements, each comes once
        # A failed batch is named by its first element's input item, and which
        # element comes first in completion order depends on timing.
        batched = any(kind == "batch" for kind, _ in steps)
        assert sorted(_atoms(got, batched)) == sorted(_atoms(expected, batched))


def _atoms(results: Any, without_failure_index: bool = False) -> list[str]:
    if isinstance(results, list):
        return [atom for result in results for atom in _atoms(result, without_failure_index)]
    if without_failure_index and isinstance(results, tuple) and results[0] == "failure":
        return [repr((results[0], *results[2:]))]
    return [repr(results)]


@pytest.mark.parametrize("policy", ["skip", "return"])
def test_a_long_mixed_chain(policy: str) -> None:
    chain = (
        PoolChain()
        .add_threadpool(ow.spread)
        .flatten()
        .add_processpool(ow.fail_some, max_workers=2)
        .batch(3)
        .add_threadpool(ow.bump)
        .flatten()
        .filter(_keep)
    )
    expected = _comparable(chain.execute_eager_single_threaded(range(200), on_error=policy))  # type: ignore[arg-type]
    assert _comparable(chain.execute_eager(range(200), on_error=policy)) == expected  # type: ignore[arg-type]
