"""Warm pools: many small PoolChain executions with and without ``with chain:``.

A service or a notebook often runs one chain many times on a few items each.
Outside a ``with``, every execution starts its worker processes and stops them
at the end; inside ``with chain:`` the workers stay alive between executions.
The figure is the wall time of one small execution (20 items through a
process stage of ``max_workers=2`` then a thread stage), the median over 50
executions in a row. Peers do the same work with a ``ProcessPoolExecutor``
created per execution, one reused across executions, and a reused
``multiprocessing.Pool``. Everything uses the interpreter's default start
method, plus a pair of ori rows with ``start_method="spawn"``, where starting
workers costs most.

Run: ``python benchmarks/bench_poolchain_warm.py [--quick]``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Row

BENCH = "small executions in a row (20 items, 2 workers): time per execution"
ITEMS = 20
WORKERS = 2


def square(x: int) -> int:
    return x * x


def label(x: int) -> str:
    return f"item {x}"


def per_execution(executions: int, execute: Callable[[], object]) -> tuple[float, float, float]:
    """(median, min, max) milliseconds of *executions* calls of *execute*."""
    samples = []
    for _ in range(executions):
        started = time.perf_counter()
        execute()
        samples.append(1000 * (time.perf_counter() - started))
    return statistics.median(samples), min(samples), max(samples)


def row(name: str, figures: tuple[float, float, float], note: str) -> Row:
    median, low, high = figures
    return Row(BENCH, name, median, "ms", False, low, high, None, note)


def run(quick: bool) -> list[Row]:
    from ori.poolchain import PoolChain

    executions = 10 if quick else 50
    note = f"median of {executions} executions"
    expected = [label(x * x) for x in range(ITEMS)]
    rows = []

    def build() -> PoolChain:
        return PoolChain().add_processpool(square, max_workers=WORKERS).add_threadpool(label)

    cold = build()

    def ori_cold() -> None:
        assert cold.execute_eager(range(ITEMS)) == expected

    rows.append(
        row(
            "ori PoolChain, pools per execution (no with)",
            per_execution(executions, ori_cold),
            note,
        )
    )

    with build() as warm:

        def ori_warm() -> None:
            assert warm.execute_eager(range(ITEMS)) == expected

        ori_warm()  # the first execution inside the with starts the workers
        rows.append(
            row(
                "ori PoolChain inside 'with chain:' (warm)",
                per_execution(executions, ori_warm),
                note,
            )
        )

    def executor_cold() -> None:
        with concurrent.futures.ProcessPoolExecutor(WORKERS) as pool:
            assert [label(y) for y in pool.map(square, range(ITEMS))] == expected

    rows.append(
        row("ProcessPoolExecutor per execution", per_execution(executions, executor_cold), note)
    )

    with concurrent.futures.ProcessPoolExecutor(WORKERS) as pool:

        def executor_warm() -> None:
            assert [label(y) for y in pool.map(square, range(ITEMS))] == expected

        executor_warm()
        rows.append(
            row("ProcessPoolExecutor reused", per_execution(executions, executor_warm), note)
        )

    # Spawned workers cost far more to start than forked ones: the case warm
    # pools are for (notebooks on macOS and Windows, or Python 3.14's default).
    spawn_executions = 5 if quick else 20
    spawn_note = f"start_method='spawn', median of {spawn_executions} executions"

    def build_spawn() -> PoolChain:
        return (
            PoolChain()
            .add_processpool(square, max_workers=WORKERS, start_method="spawn")
            .add_threadpool(label)
        )

    cold_spawn = build_spawn()

    def ori_cold_spawn() -> None:
        assert cold_spawn.execute_eager(range(ITEMS)) == expected

    rows.append(
        row(
            "ori PoolChain, spawn, pools per execution (no with)",
            per_execution(spawn_executions, ori_cold_spawn),
            spawn_note,
        )
    )
    with build_spawn() as warm_spawn:

        def ori_warm_spawn() -> None:
            assert warm_spawn.execute_eager(range(ITEMS)) == expected

        ori_warm_spawn()
        rows.append(
            row(
                "ori PoolChain, spawn, inside 'with chain:' (warm)",
                per_execution(spawn_executions, ori_warm_spawn),
                spawn_note,
            )
        )

    with multiprocessing.Pool(WORKERS) as mp_pool:

        def pool_warm() -> None:
            assert [label(y) for y in mp_pool.imap(square, range(ITEMS))] == expected

        pool_warm()
        rows.append(row("multiprocessing.Pool reused", per_execution(executions, pool_warm), note))
    return rows


if __name__ == "__main__":
    from _harness import main

    main(run)
