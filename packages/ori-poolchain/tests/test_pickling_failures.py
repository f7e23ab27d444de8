"""A pickling failure belongs to the one item it concerns, never to its whole chunk.

An argument that cannot be unpickled in the worker and a result that cannot be
unpickled in the parent fail that item alone: the rest of its chunk completes
(run again one by one when the failing message covered several items), the
worker survives, and the error says which step failed and on which side.
"""

from __future__ import annotations

import multiprocessing

import poolchain_workers as starts
import pytest

from ori.poolchain import Failure, PoolChain

START_METHODS = multiprocessing.get_all_start_methods()


@pytest.mark.parametrize("method", START_METHODS)
def test_an_argument_the_worker_cannot_unpickle_fails_that_item_only(method: str) -> None:
    items: list[object] = list(range(10))
    items[4] = starts.WontUnpickle()
    chain = PoolChain(on_error="return").add_processpool(
        starts.identity_or_len, max_workers=1, chunksize=10, start_method=method
    )
    results = chain.execute_eager(items)
    failures = [r for r in results if isinstance(r, Failure)]
    assert len(failures) == 1
    assert failures[0].index == 4
    assert isinstance(failures[0].exception, ValueError)
    assert "this argument cannot be rebuilt" in str(failures[0].exception)
    cause = failures[0].exception.__cause__
    assert "could not be unpickled in the worker process" in str(cause)
    assert [r for i, r in enumerate(results) if i != 4] == [i for i in range(10) if i != 4]
    assert chain.stats.stages[0].workers_lost == 0


@pytest.mark.parametrize("method", START_METHODS)
def test_a_result_the_parent_cannot_unpickle_fails_that_item_only(method: str) -> None:
    chain = PoolChain(on_error="return").add_processpool(
        starts.return_unrebuildable_on_three, max_workers=1, chunksize=10, start_method=method
    )
    results = chain.execute_eager(range(10))
    failures = [r for r in results if isinstance(r, Failure)]
    assert len(failures) == 1
    assert failures[0].index == 3
    assert isinstance(failures[0].exception, TypeError)  # NeedsTwoArgs() lacks an argument
    cause = failures[0].exception.__cause__
    assert "could not be unpickled in the parent process" in str(cause)
    assert [r for i, r in enumerate(results) if i != 3] == [i for i in range(10) if i != 3]
    assert chain.stats.stages[0].workers_lost == 0


def test_under_raise_the_error_names_the_guilty_item() -> None:
    chain = PoolChain().add_processpool(
        starts.return_unrebuildable_on_three, max_workers=1, chunksize=10
    )
    with pytest.raises(TypeError) as info:
        chain.execute_eager(range(10))
    assert "on input item 3" in "\n".join(
        [*getattr(info.value, "__notes__", []), str(info.value.__cause__)]
    )
