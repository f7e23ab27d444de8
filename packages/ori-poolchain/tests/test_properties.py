"""Property: every execution mode computes exactly what the single-threaded one does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import poolchain_workers as workers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ori.poolchain import PoolChain

FUNCTIONS: list[Callable[[Any], Any]] = [
    workers.double,
    workers.increment,
    workers.negate,
    workers.square,
    workers.fail_on_negative,
    workers.fail_on_multiple_of_seven,
]


@st.composite
def chains(draw: st.DrawFn) -> tuple[PoolChain, list[str]]:
    chain = PoolChain()
    description = []
    n_stages = draw(st.integers(1, 4))
    # At most one process stage per chain keeps the test fast; which one varies.
    process_at = draw(st.integers(-1, n_stages - 1))
    for position in range(n_stages):
        function = draw(st.sampled_from(FUNCTIONS))
        workers_ = draw(st.integers(1, 3))
        if position == process_at:
            chunksize = draw(st.one_of(st.none(), st.integers(1, 5)))
            chain.add_processpool(function, max_workers=workers_, chunksize=chunksize)
            description.append(f"process({function.__name__}, {workers_}, {chunksize})")
        else:
            chain.add_threadpool(function, max_workers=workers_)
            description.append(f"thread({function.__name__}, {workers_})")
    return chain, description


def outcome(call: Callable[[], list[Any]]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:
        return "error", (type(exc), str(exc), tuple(getattr(exc, "__notes__", ())))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    chain_and_description=chains(),
    items=st.lists(st.integers(-3, 60), max_size=40),
    max_in_flight=st.one_of(st.none(), st.integers(1, 12)),
)
def test_concurrent_modes_agree_with_single_threaded(
    chain_and_description: tuple[PoolChain, list[str]],
    items: list[int],
    max_in_flight: int | None,
) -> None:
    chain, _ = chain_and_description
    expected = outcome(lambda: chain.execute_eager_single_threaded(items))
    assert outcome(lambda: list(chain.execute_lazy_single_threaded(items))) == expected
    eager = outcome(lambda: chain.execute_eager(items, max_in_flight=max_in_flight))
    assert eager == expected
    lazy = outcome(lambda: list(chain.execute_lazy(iter(items), max_in_flight=max_in_flight)))
    assert lazy == expected
    unordered = outcome(lambda: chain.execute_eager(items, ordered=False))
    if expected[0] == "ok":
        assert unordered[0] == "ok"
        assert Counter(unordered[1]) == Counter(expected[1])
    else:
        # Unordered runs raise whichever failure completes first: same kinds only.
        assert unordered[0] == "error"
        assert unordered[1][0] in {KeyError, ValueError}
