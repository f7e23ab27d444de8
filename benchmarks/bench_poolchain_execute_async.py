"""``PoolChain.execute_async`` (issue 14): the cost per item of ``async for`` over a chain.

The chain: one thread stage (two workers) whose function does WORK_LOOPS
iterations of pure-Python arithmetic per item (0: the stage returns its
argument doubled, so what is measured is the hand-out itself, the worst case
for any overhead). Every consumer runs the same Python loop body per result
(``total += result``). Implementations, side by side in one run, each over
the same N items:

* ``ori execute_lazy``: the baseline, a plain ``for`` loop in synchronous code;
* ``ori execute_lazy, sum()``: the same run consumed by ``sum()`` in C, for
  reference: no ``async for`` can match a C consumer, so it is no baseline;
* ``ori execute_async``: ``async for`` inside ``asyncio.run``, input a ``range``;
* ``ori execute_lazy (generator input)``: ``execute_lazy`` over a plain
  generator, which the run reads in its feeder thread;
* ``ori execute_async (async input)``: ``execute_async`` with an async
  generator input (read on the loop, handed to the feeder thread); its ratio
  is taken against the generator-input ``execute_lazy``, the same kind of input;
* ``ori execute_lazy via asyncio.to_thread``: what asyncio code can do without
  execute_async: ``await asyncio.to_thread(next, run)`` per item;
* ``pypeln task``: ``async for`` over ``pl.task.map`` (an asyncio stage, the
  work done in the coroutine; pypeln's way to stream inside a loop).

The implementations take turns, one run each per round, so that a drift of
the host's speed hits all of them alike; each ratio to ``execute_lazy`` is the
median over the rounds of the ratio within a round (target for
execute_async: <= 1.2).

Run: ``python benchmarks/bench_poolchain_execute_async.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Row, main, spread, unavailable

WORKERS = 2
WORKLOADS = {"no work": 0, "~20 us of work": 400}  # label -> loops per item


def work(loops: int) -> Callable[[int], int]:
    def stage(x: int) -> int:
        total = 0
        for i in range(loops):
            total += i
        return x * 2 + (total & 0)

    return stage


def chain(loops: int) -> object:
    from ori.poolchain import PoolChain

    return PoolChain().add_threadpool(work(loops), max_workers=WORKERS)


def expected(n: int) -> int:
    return 2 * sum(range(n))


def ori_lazy(loops: int, n: int) -> int:
    total = 0
    for result in chain(loops).execute_lazy(range(n)):  # type: ignore[attr-defined]
        total += result
    return total


def ori_lazy_sum(loops: int, n: int) -> int:
    return sum(chain(loops).execute_lazy(range(n)))  # type: ignore[attr-defined]


def _sync_numbers(n: int) -> Iterator[int]:
    yield from range(n)


def ori_lazy_generator(loops: int, n: int) -> int:
    total = 0
    for result in chain(loops).execute_lazy(_sync_numbers(n)):  # type: ignore[attr-defined]
        total += result
    return total


async def _numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def ori_async(loops: int, n: int) -> int:
    async def consume() -> int:
        total = 0
        async for result in chain(loops).execute_async(range(n)):  # type: ignore[attr-defined]
            total += result
        return total

    return asyncio.run(consume())


def ori_async_input(loops: int, n: int) -> int:
    async def consume() -> int:
        total = 0
        async for result in chain(loops).execute_async(_numbers(n)):  # type: ignore[attr-defined]
            total += result
        return total

    return asyncio.run(consume())


_END = object()


def ori_lazy_to_thread(loops: int, n: int) -> int:
    async def consume() -> int:
        total = 0
        with chain(loops).execute_lazy(range(n)) as run:  # type: ignore[attr-defined]
            while (result := await asyncio.to_thread(next, run, _END)) is not _END:
                total += result
        return total

    return asyncio.run(consume())


def pypeln_task(loops: int, n: int) -> int:
    import pypeln as pl

    stage_function = work(loops)

    async def stage(x: int) -> int:
        return stage_function(x)

    async def consume() -> int:
        total = 0
        async for result in pl.task.map(stage, range(n), workers=WORKERS):
            total += result
        return total

    return asyncio.run(consume())


IMPLEMENTATIONS: list[tuple[str, Callable[[int, int], int], str | None]] = [
    ("ori execute_lazy", ori_lazy, None),
    ("ori execute_lazy, sum()", ori_lazy_sum, None),
    ("ori execute_lazy (generator input)", ori_lazy_generator, None),
    ("ori execute_async", ori_async, None),
    ("ori execute_async (async input)", ori_async_input, None),
    ("ori execute_lazy via asyncio.to_thread", ori_lazy_to_thread, None),
    ("pypeln task", pypeln_task, "pypeln"),
]


# Each ratio compares consumers of the same kind of input: an async generator is
# read as execute_lazy reads a generator (by the run, not from memory), so its
# baseline is execute_lazy over a plain generator; the rest compare with a range.
BASELINE = "ori execute_lazy"
BASELINES = {"ori execute_async (async input)": "ori execute_lazy (generator input)"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _per_item(function: Callable[[int, int], int], loops: int, count: int) -> float:
    """Microseconds per item of one run of *function* over *count* items."""
    started = time.perf_counter()
    total = function(loops, count)
    took = time.perf_counter() - started
    if total != expected(count):
        raise AssertionError(f"sum {total}, expected {expected(count)}")
    return took / count * 1e6


def workload_rows(label: str, loops: int, quick: bool) -> list[Row]:
    n = (20_000 if quick else 200_000) if loops == 0 else (5_000 if quick else 50_000)
    rounds = 3 if quick else 9
    benchmark = f"execute_async: us per item, {label}"
    note = f"{n} items, one thread stage of {WORKERS} workers"
    present = [
        (name, function)
        for name, function, module in IMPLEMENTATIONS
        if module is None or _installed(module)
    ]
    counts = {name: n if "to_thread" not in name else max(1, n // 20) for name, _ in present}
    samples: dict[str, list[float]] = {name: [] for name, _ in present}
    for _ in range(rounds):  # one run of each per round: drift hits all alike
        for name, function in present:
            samples[name].append(_per_item(function, loops, counts[name]))
    rows: list[Row] = []
    for name, *_ in IMPLEMENTATIONS:
        if name not in samples:
            rows.append(unavailable(benchmark, name, "not installed", unit="us"))
            continue
        median, low, high = spread(samples[name])
        extra = "" if counts[name] == n else f" ({counts[name]} items: one thread hop per item)"
        rows.append(Row(benchmark, name, median, "us", False, low, high, note=note + extra))
    for name, values in samples.items():
        base_name = BASELINES.get(name, BASELINE)
        if name == BASELINE or base_name not in samples:
            continue
        baseline = samples[base_name]
        ratios = [value / base for value, base in zip(values, baseline, strict=True)]
        median, low, high = spread(ratios)
        rows.append(
            Row(
                f"execute_async: cost per item / execute_lazy's, {label}",
                name,
                median,
                "x",
                low=low,
                high=high,
                target=1.2 if name.startswith("ori execute_async") else None,
                note=(
                    f"against {base_name}; median of {rounds} rounds' ratios; "
                    "consumers run the same loop body"
                ),
                comparable=False,
            )
        )
    return rows


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    for label, loops in WORKLOADS.items():
        rows += workload_rows(label, loops, quick)
    return rows


if __name__ == "__main__":
    main(run)
