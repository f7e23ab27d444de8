"""What seeing the chain costs: PoolChain throughput with and without progress bars.

Per-stage statistics are always on (every lane counts per batch in counters of
its own), so the rows without bars already include their cost; the rows with
``progress=`` add a tqdm bar per stage redrawn ten times a second by a thread of
the run. Peers show the usual ways to get a bar over a pool: tqdm wrapped
around ``ThreadPoolExecutor.map`` / ``multiprocessing.Pool.imap`` (one bar
update per item in the consumer), and mpire's built-in ``progress_bar=True``.
The work is ``identity``, so what is measured is pure overhead. All bars draw
to ``os.devnull``.

Run: ``python benchmarks/bench_poolchain_stats.py [--quick]``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Row, main, measure, unavailable

THREAD_BENCH = "trivial throughput with a progress bar, thread stage"
PROCESS_BENCH = "trivial throughput with a progress bar, process stage"
IMAP_CHUNKSIZE = 10_000  # the best chunksize of bench_poolchain on this kind of machine


def identity(x: Any) -> Any:
    return x


def processes() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def throughput(n: int, consume: Callable[[], object]) -> float:
    started = time.perf_counter()
    consume()
    return n / (time.perf_counter() - started)


def drain(iterable: Any) -> None:
    for _ in iterable:
        pass


def thread_rows(quick: bool, devnull: Any) -> list[Row]:
    from ori.poolchain import PoolChain

    n = 100_000 if quick else 300_000
    times = 3 if quick else 5
    note = f"{n} items"
    rows = []

    def ori(progress: Any) -> float:
        chain = PoolChain().add_threadpool(identity)
        return throughput(n, lambda: drain(chain.execute_lazy(range(n), progress=progress)))

    rows.append(
        measure(
            THREAD_BENCH,
            "ori PoolChain, statistics only",
            lambda: ori(False),
            times=times,
            unit="items/s",
            higher_is_better=True,
            note=note,
        )
    )
    try:
        import tqdm
    except ImportError:
        return [
            *rows,
            unavailable(THREAD_BENCH, "tqdm rows", "tqdm not installed", unit="items/s"),
        ]
    bars = functools.partial(tqdm.tqdm, file=devnull)
    rows.append(
        measure(
            THREAD_BENCH,
            "ori PoolChain progress= (tqdm)",
            lambda: ori(bars),
            times=times,
            unit="items/s",
            higher_is_better=True,
            note=note,
        )
    )

    def tpe_tqdm() -> float:
        def consume() -> None:
            with concurrent.futures.ThreadPoolExecutor() as executor:
                drain(tqdm.tqdm(executor.map(identity, range(n)), total=n, file=devnull))

        return throughput(n, consume)

    rows.append(
        measure(
            THREAD_BENCH,
            "tqdm(ThreadPoolExecutor.map)",
            tpe_tqdm,
            times=times,
            unit="items/s",
            higher_is_better=True,
            note=note,
        )
    )
    return rows


def process_rows(quick: bool, devnull: Any) -> list[Row]:
    from ori.poolchain import PoolChain

    n = 1_000_000 if quick else 3_000_000
    times = 3 if quick else 5
    workers = processes()
    note = f"{n} items, {workers} workers, pool start-up included"
    rows = []

    def ori(progress: Any) -> float:
        chain = PoolChain().add_processpool(identity, max_workers=workers)
        return throughput(n, lambda: drain(chain.execute_lazy(range(n), progress=progress)))

    rows.append(
        measure(
            PROCESS_BENCH,
            "ori PoolChain, statistics only",
            lambda: ori(False),
            times=times,
            unit="items/s",
            higher_is_better=True,
            note=note,
        )
    )
    try:
        import tqdm
    except ImportError:
        return [
            *rows,
            unavailable(PROCESS_BENCH, "tqdm rows", "tqdm not installed", unit="items/s"),
        ]
    bars = functools.partial(tqdm.tqdm, file=devnull)
    rows.append(
        measure(
            PROCESS_BENCH,
            "ori PoolChain progress= (tqdm)",
            lambda: ori(bars),
            times=times,
            unit="items/s",
            higher_is_better=True,
            note=note,
        )
    )

    def imap_tqdm() -> float:
        def consume() -> None:
            with multiprocessing.Pool(workers) as pool:
                results = pool.imap(identity, range(n), chunksize=IMAP_CHUNKSIZE)
                drain(tqdm.tqdm(results, total=n, file=devnull))

        return throughput(n, consume)

    rows.append(
        measure(
            PROCESS_BENCH,
            f"tqdm(multiprocessing.Pool.imap chunksize={IMAP_CHUNKSIZE})",
            imap_tqdm,
            times=times,
            unit="items/s",
            higher_is_better=True,
            note=note,
        )
    )
    try:
        from mpire import WorkerPool
    except ImportError:
        rows.append(unavailable(PROCESS_BENCH, "mpire progress_bar=True", "not installed"))
        return rows

    few = n // 10  # mpire moves about 10^5 items/s here, bar or no bar: keep its runs short

    def mpire_bar() -> float:
        def consume() -> None:
            with WorkerPool(n_jobs=workers) as pool:
                drain(
                    pool.imap(
                        identity,
                        range(few),
                        iterable_len=few,
                        progress_bar=True,
                        progress_bar_options={"file": devnull},
                    )
                )

        return throughput(few, consume)

    rows.append(
        measure(
            PROCESS_BENCH,
            "mpire WorkerPool.imap progress_bar=True",
            mpire_bar,
            times=times,
            unit="items/s",
            higher_is_better=True,
            note=f"{few} items, {workers} workers, pool start-up included, automatic chunks",
        )
    )
    return rows


def run(quick: bool) -> list[Row]:
    with open(os.devnull, "w") as devnull:
        return [*thread_rows(quick, devnull), *process_rows(quick, devnull)]


if __name__ == "__main__":
    main(run)
