"""``next_batch(linger=...)``: the engine gathers results before a hand-out.

execute_async's waiter thread asks for it after a wait, so that a fast stream
wakes the event loop once per many results. Gathering must never break what a
hand-out promises: input order, the window, failures after the results
before them, and an end that comes without waiting out the linger.
"""

from __future__ import annotations

import time
from typing import Any

import poolchain_workers as workers
import pytest

from ori.poolchain import PoolChain


def engine_of(run: Any) -> Any:
    """The engine behind a PoolChainRun (the object execute_async's waiter drives)."""
    return run._engine


def drain(engine: Any, linger: float) -> tuple[list[list[Any]], BaseException | None]:
    """Every batch next_batch(linger=...) hands out, and the exception that ended them.

    Copies: an engine empties the last list it handed out when it closes.
    """
    batches: list[list[Any]] = []
    try:
        while (batch := engine.next_batch(None, linger)) is not None:
            batches.append(list(batch))
    except Exception as exc:
        return batches, exc
    return batches, None


def test_results_in_flight_are_handed_out_together_and_in_order() -> None:
    chain = PoolChain().add_threadpool(workers.sleepy_identity, max_workers=2)
    with chain.execute_lazy(range(6)) as run:
        engine = engine_of(run)
        started = time.monotonic()
        batches, error = drain(engine, linger=30.0)
        took = time.monotonic() - started
    assert error is None
    assert [item for batch in batches for item in batch] == list(range(6))
    # Two lanes finish items 10 ms apart: without lingering, the first
    # hand-out would hold one or two of them.
    assert len(batches[0]) > 2
    # The linger ends once every item in the chain has its result, not after 30 s.
    assert took < 20.0


@pytest.mark.parametrize("ordered", [True, False])
def test_lingering_stays_within_max_in_flight(ordered: bool) -> None:
    chain = PoolChain().add_threadpool(workers.identity, max_workers=2)
    with chain.execute_lazy(range(300), max_in_flight=4, ordered=ordered) as run:
        batches, error = drain(engine_of(run), linger=0.05)
    assert error is None
    assert max(len(batch) for batch in batches) <= 4
    results = [item for batch in batches for item in batch]
    assert results == list(range(300)) if ordered else sorted(results) == list(range(300))


@pytest.mark.parametrize("ordered", [True, False])
def test_a_failure_while_lingering_comes_after_the_results_before_it(ordered: bool) -> None:
    chain = PoolChain().add_threadpool(workers.fail_on_three, max_workers=2)
    with chain.execute_lazy(range(8), ordered=ordered) as run:
        batches, error = drain(engine_of(run), linger=5.0)
    assert isinstance(error, ValueError)
    results = [item for batch in batches for item in batch]
    if ordered:
        assert results == [0, 1, 2]
    else:
        assert len(results) == len(set(results))
        assert 3 not in results


def test_a_chain_with_operators_lingers_in_its_last_segment() -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .filter(lambda x: x % 2 == 0)
        .add_threadpool(workers.sleepy_identity, max_workers=2)
    )
    with chain.execute_lazy(range(12)) as run:
        batches, error = drain(engine_of(run), linger=30.0)
    assert error is None
    assert [item for batch in batches for item in batch] == [2, 4, 6, 8, 10, 12]
