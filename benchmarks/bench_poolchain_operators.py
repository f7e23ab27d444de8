"""PoolChain operators (issue 14): ``.batch()`` before a bulk save, ``.flatten()`` of a listing.

Batch: the chain reads N small records and saves them. Saving costs
SAVE_CALL_SECONDS per call plus SAVE_ITEM_SECONDS per record (a database
round trip plus the rows), SAVE_WORKERS calls at once. Implementations, side by
side in one run:

* ``ori .batch(100) -> bulk save``: ``add_threadpool(parse).batch(100)
  .add_threadpool(save_many)``, one call per 100 records;
* ``ori item by item``: the same chain saving each record in its own call;
* ``pypeln item by item``: pypeln's thread stages (pypeln has no batching
  operator; its users asked for one).

Figures: seconds for the whole input, and the speedup of the batched chain
over each item-by-item one (higher is better).

Flatten: one input item is a listing that expands into FLAT_ELEMENTS elements
after EXPAND_SECONDS (a page of links, an archive's members); a trivial thread
stage follows. Figures: the time to the first element, as a ratio to one
item's latency (the same chain whose listing holds one element; target <= 2),
and elements per second over the whole listing. The peer is pypeln's
``flat_map`` followed by ``ordered`` (which waits for every element before it
yields the first).

Run: ``python benchmarks/bench_poolchain_operators.py [--quick]``.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Row, main, measure, unavailable

SAVE_CALL_SECONDS = 0.005
SAVE_ITEM_SECONDS = 0.00005
SAVE_WORKERS = 4
BATCH = 100
EXPAND_SECONDS = 0.05
FLAT_ELEMENTS = 100_000


def parse(record: int) -> int:
    return record


def save_one(record: int) -> int:
    time.sleep(SAVE_CALL_SECONDS + SAVE_ITEM_SECONDS)
    return record


def save_many(records: list[int]) -> int:
    time.sleep(SAVE_CALL_SECONDS + SAVE_ITEM_SECONDS * len(records))
    return len(records)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# -- batch ---------------------------------------------------------------------


def ori_batched(records: list[int]) -> int:
    from ori.poolchain import PoolChain

    chain = (
        PoolChain()
        .add_threadpool(parse, max_workers=2)
        .batch(BATCH)
        .add_threadpool(save_many, max_workers=SAVE_WORKERS)
    )
    return sum(chain.execute_eager(records))


def ori_item_by_item(records: list[int]) -> int:
    from ori.poolchain import PoolChain

    chain = (
        PoolChain()
        .add_threadpool(parse, max_workers=2)
        .add_threadpool(save_one, max_workers=SAVE_WORKERS)
    )
    return len(chain.execute_eager(records))


def pypeln_item_by_item(records: list[int]) -> int:
    import pypeln as pl

    stage = pl.thread.map(parse, records, workers=2)
    return len(list(pl.thread.map(save_one, stage, workers=SAVE_WORKERS)))


def batch_rows(quick: bool) -> list[Row]:
    n = 400 if quick else 4000
    times = 1 if quick else 3
    records = list(range(n))
    note = (
        f"{n} records; a save costs {SAVE_CALL_SECONDS * 1000:g} ms per call + "
        f"{SAVE_ITEM_SECONDS * 1000:g} ms per record, {SAVE_WORKERS} calls at once"
    )

    def timing(build: Callable[[list[int]], int]) -> Callable[[], float]:
        def once() -> float:
            started = time.perf_counter()
            saved = build(records)
            took = time.perf_counter() - started
            if saved != n:
                raise AssertionError(f"{saved} records saved, expected {n}")
            return took

        return once

    implementations: list[tuple[str, Callable[[list[int]], int], str | None]] = [
        (f"ori .batch({BATCH}) -> bulk save", ori_batched, None),
        ("ori item by item", ori_item_by_item, None),
        ("pypeln item by item", pypeln_item_by_item, "pypeln"),
    ]
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    for name, build, module in implementations:
        if module is not None and not _installed(module):
            rows.append(unavailable("bulk save", name, "not installed"))
            continue
        row = measure("bulk save", name, timing(build), times=times, note=note)
        rows.append(row)
        seconds[name] = row.value
    batched = seconds.get(f"ori .batch({BATCH}) -> bulk save")
    if batched:
        for name, value in seconds.items():
            if name.startswith("ori .batch"):
                continue
            rows.append(
                Row(
                    "bulk save: speedup of .batch()",
                    f"ori .batch({BATCH}) over {name}",
                    value / batched,
                    "x",
                    higher_is_better=True,
                    note="seconds item by item / seconds with .batch() (medians)",
                    comparable=False,
                )
            )
    return rows


# -- flatten ---------------------------------------------------------------------


def listing(size: int) -> Callable[[int], list[int]]:
    def expand(item: int) -> list[int]:
        time.sleep(EXPAND_SECONDS)
        return list(range(item, item + size))

    return expand


def ori_flatten(size: int) -> Iterable[Any]:
    from ori.poolchain import PoolChain

    chain = PoolChain().add_threadpool(listing(size), max_workers=1).flatten().add_threadpool(parse)
    return chain.execute_lazy([0])


def pypeln_flatten(size: int) -> Iterable[Any]:
    import pypeln as pl

    stage = pl.thread.flat_map(listing(size), [0], workers=1)
    stage = pl.thread.map(parse, stage, workers=4)
    return pl.thread.ordered(stage)


class FlattenSample:
    """One run of a flatten chain: time to the first element, and to the last."""

    def __init__(self, build: Callable[[int], Iterable[Any]], size: int) -> None:
        self.build = build
        self.size = size
        self.firsts: list[float] = []
        self.rates: list[float] = []

    def once(self) -> float:
        started = time.perf_counter()
        iterator = iter(self.build(self.size))
        first = next(iterator)
        first_at = time.perf_counter() - started
        count = 1 + sum(1 for _ in iterator)
        took = time.perf_counter() - started
        if first != 0 or count != self.size:
            raise AssertionError(f"first element {first}, {count} elements, expected {self.size}")
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        self.firsts.append(first_at)
        self.rates.append(self.size / took)
        return first_at


def flatten_rows(quick: bool) -> list[Row]:
    size = 10_000 if quick else FLAT_ELEMENTS
    times = 1 if quick else 5
    note = f"1 item -> {size} elements after {EXPAND_SECONDS * 1000:g} ms, then a thread stage"
    rows: list[Row] = []
    # One item's latency: the same Ori chain whose listing holds one element.
    single = FlattenSample(ori_flatten, 1)
    for _ in range(times):
        single.once()
    one_item = statistics.median(single.firsts)
    implementations: list[tuple[str, Callable[[int], Iterable[Any]], str | None]] = [
        ("ori .flatten()", ori_flatten, None),
        ("pypeln flat_map + ordered", pypeln_flatten, "pypeln"),
    ]
    for name, build, module in implementations:
        if module is not None and not _installed(module):
            rows.append(unavailable("flatten: first element / one item's latency", name, "n/a"))
            rows.append(unavailable("flatten: elements per second", name, "not installed"))
            continue
        sample = FlattenSample(build, size)
        for _ in range(times):
            sample.once()
        firsts = [first / one_item for first in sample.firsts]
        rows.append(
            Row(
                "flatten: first element / one item's latency",
                name,
                statistics.median(firsts),
                "x",
                low=min(firsts),
                high=max(firsts),
                target=2.0 if name.startswith("ori") else None,
                note=f"{note}; one item's latency {one_item * 1000:.1f} ms (Ori, 1 element)",
            )
        )
        rows.append(
            Row(
                "flatten: elements per second",
                name,
                statistics.median(sample.rates),
                "elements/s",
                higher_is_better=True,
                low=min(sample.rates),
                high=max(sample.rates),
                note=note,
            )
        )
    return rows


def run(quick: bool) -> list[Row]:
    return batch_rows(quick) + flatten_rows(quick)


if __name__ == "__main__":
    main(run)
