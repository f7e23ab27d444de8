"""Every stage kind, added the same way, for the tests that must hold for all of them.

A :class:`Kind` adds a stage that runs one of ``poolchain_workers``' functions
by name (the ``async_`` twin for asyncio stages). The ``stage_kind`` fixture
(``conftest.py``) gives each kind in turn; dask stages need a cluster, so
``test_dask_stage.py`` runs the same checks with :data:`DASK` and its client.
What differs by kind is data on the kind (``Kind.can_kill``: only process
stages can stop a running call), so a check asserts what each kind promises.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import poolchain_workers as w

from ori.poolchain import PoolChain


class SubclassedPool(concurrent.futures.ThreadPoolExecutor):
    """An executor class Ori creates per run (any class but the two it replaces)."""


@dataclass(frozen=True)
class Kind:
    name: str
    add: Callable[[PoolChain, str, Any, dict[str, Any]], PoolChain]
    can_kill: bool = False  # an overdue call is really stopped

    def stage(
        self, chain: PoolChain, function: str, backend: Any = None, **options: Any
    ) -> PoolChain:
        """Add a stage of this kind to *chain* running ``poolchain_workers.<function>``."""
        return self.add(chain, function, backend, options)


def _sync(name: str) -> Any:
    return getattr(w, name)


KINDS = [
    Kind("thread", lambda c, f, _, o: c.add_threadpool(_sync(f), max_workers=2, **o)),
    Kind(
        "process", lambda c, f, _, o: c.add_processpool(_sync(f), max_workers=2, **o), can_kill=True
    ),
    Kind(
        "asyncio",
        lambda c, f, _, o: c.add_asyncpool(getattr(w, f"async_{f}"), max_concurrency=4, **o),
    ),
    Kind(
        "executor_class",
        lambda c, f, _, o: c.add(_sync(f), executor_class=SubclassedPool, max_workers=2, **o),
    ),
    Kind("user_executor", lambda c, f, pool, o: c.add(_sync(f), executor=pool, **o)),
]
DASK = Kind("dask", lambda c, f, client, o: c.add_dask(_sync(f), client=client, **o))


# -- the checks every kind must pass -------------------------------------------------


def check_error_keeps_its_type_and_names_the_item(kind: Kind, backend: Any = None) -> None:
    import pytest

    chain = kind.stage(PoolChain().add_threadpool(w.increment), "fail_on_threes", backend)
    with pytest.raises(ValueError, match="multiple of three: 3") as info:
        chain.execute_eager(range(2, 10))
    notes = "\n".join([*getattr(info.value, "__notes__", []), str(info.value.__cause__)])
    assert "on input item 0" in notes  # input 2 became 3 in the thread stage
    assert "stage 2/2" in notes


def check_policies(kind: Kind, backend: Any = None) -> None:
    import pytest

    from ori.poolchain import Failure

    chain = kind.stage(PoolChain(), "fail_on_threes", backend)
    for returned in (
        chain.execute_eager(range(12), on_error="return"),
        chain.execute_eager_single_threaded(range(12), on_error="return"),
    ):
        assert len(returned) == 12
        for x, result in enumerate(returned):
            if x % 3 == 0:
                assert isinstance(result, Failure)
                assert (result.index, result.item) == (x, x)
                assert isinstance(result.exception, ValueError)
            else:
                assert result == x
    with pytest.raises(ValueError, match="multiple of three: 0"):
        chain.execute_eager(range(12))
    assert chain.execute_eager(range(12), on_error="skip") == [x for x in range(12) if x % 3]
    stats = chain.stats
    assert stats is not None
    assert stats.items_skipped == 4
    assert stats.stages[0].items_failed == 4
    assert stats.stages[0].items_out == 8
    assert chain.execute_eager_single_threaded(range(12), on_error="skip") == [
        x for x in range(12) if x % 3
    ]


def check_retries(kind: Kind, folder: str, backend: Any = None) -> None:
    chain = kind.stage(PoolChain(), "flaky", backend, retries=1)
    items = [(folder, x) for x in range(8)]
    assert chain.execute_eager(items) == list(range(8))
    stats = chain.stats
    assert stats is not None
    assert stats.items_failed == 0


def check_break_closes_the_run(kind: Kind, backend: Any = None) -> None:
    import itertools

    chain = kind.stage(PoolChain(), "sleepy_identity", backend)
    with chain.execute_lazy(itertools.count()) as run:
        for value in run:
            if value == 5:
                break
    stats = run.stats
    assert not stats.running
    assert stats.items_out >= 6


def check_stats_count_every_item(kind: Kind, backend: Any = None) -> None:
    chain = kind.stage(PoolChain().add_threadpool(w.increment), "square", backend)
    assert chain.execute_eager(range(30)) == [(x + 1) ** 2 for x in range(30)]
    stats = chain.stats
    assert stats is not None
    assert [stage.items_in for stage in stats.stages] == [30, 30]
    assert [stage.items_out for stage in stats.stages] == [30, 30]
    assert stats.stages[1].busy_seconds > 0
    assert stats.stages[1].workers >= 1


def check_timeout_reports_the_item(kind: Kind, backend: Any = None) -> None:
    from ori.errors import OriTimeoutError
    from ori.poolchain import Failure

    chain = kind.stage(PoolChain(on_error="return"), "sleep_for", backend, timeout=0.3)
    results = chain.execute_eager([0.0, 1.0, 0.0])
    assert results[0] == 0.0
    assert results[2] == 0.0
    failure = results[1]
    assert isinstance(failure, Failure)
    assert failure.index == 1
    assert isinstance(failure.exception, OriTimeoutError)
    message = str(failure.exception)
    assert "did not finish input item 1 within its 0.3 s timeout" in message
    assert ("killed" in message) is kind.can_kill
