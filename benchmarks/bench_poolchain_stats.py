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
from _cpu_work import processes
from _harness import Row, main, measure, unavailable

THREAD_BENCH = "trivial throughput with a progress bar, thread stage"
PROCESS_BENCH = "trivial throughput with a progress bar, process stage"
IMAP_CHUNKSIZE = 10_000  # the best chunksize of bench_poolchain on this kind of machine


def identity(x: Any) -> Any:
    return x


def throughput(n: int, consume: Callable[[], object]) -> float:
    started = time.perf_counter()
    consume()
    return n / (time.perf_counter() - started)


def drain(iterable: Any) -> None:
    for _ in iterable:
        pass


def items_per_second(
    benchmark: str, name: str, func: Callable[[], float], times: int, note: str
) -> Row:
    return measure(
        benchmark, name, func, times=times, unit="items/s", higher_is_better=True, note=note
    )


def ori_and_tqdm_rows(
    benchmark: str,
    chain: Any,
    n: int,
    *,
    times: int,
    note: str,
    devnull: Any,
    peer: str,
    peer_consume: Callable[[Any], None],
) -> list[Row]:
    """PoolChain without and with bars, and *peer* wrapped in tqdm.

    ``peer_consume(tqdm_class)`` runs the peer over ``range(n)`` once.
    """

    def ori(progress: Any) -> float:
        return throughput(n, lambda: drain(chain.execute_lazy(range(n), progress=progress)))

    rows = [
        items_per_second(
            benchmark, "ori PoolChain, statistics only", lambda: ori(False), times, note
        )
    ]
    try:
        import tqdm
    except ImportError:
        return [*rows, unavailable(benchmark, "tqdm rows", "tqdm not installed", unit="items/s")]
    bars = functools.partial(tqdm.tqdm, file=devnull)
    rows.append(
        items_per_second(
            benchmark, "ori PoolChain progress= (tqdm)", lambda: ori(bars), times, note
        )
    )
    rows.append(
        items_per_second(
            benchmark, peer, lambda: throughput(n, lambda: peer_consume(bars)), times, note
        )
    )
    return rows


def thread_rows(quick: bool, devnull: Any) -> list[Row]:
    from ori.poolchain import PoolChain

    n = 100_000 if quick else 300_000

    def tpe_tqdm(bar: Any) -> None:
        with concurrent.futures.ThreadPoolExecutor() as executor:
            drain(bar(executor.map(identity, range(n)), total=n))

    return ori_and_tqdm_rows(
        THREAD_BENCH,
        PoolChain().add_threadpool(identity),
        n,
        times=3 if quick else 5,
        note=f"{n} items",
        devnull=devnull,
        peer="tqdm(ThreadPoolExecutor.map)",
        peer_consume=tpe_tqdm,
    )


def process_rows(quick: bool, devnull: Any) -> list[Row]:
    from ori.poolchain import PoolChain

    n = 1_000_000 if quick else 3_000_000
    times = 3 if quick else 5
    workers = processes()

    def imap_tqdm(bar: Any) -> None:
        with multiprocessing.Pool(workers) as pool:
            drain(bar(pool.imap(identity, range(n), chunksize=IMAP_CHUNKSIZE), total=n))

    rows = ori_and_tqdm_rows(
        PROCESS_BENCH,
        PoolChain().add_processpool(identity, max_workers=workers),
        n,
        times=times,
        note=f"{n} items, {workers} workers, pool start-up included",
        devnull=devnull,
        peer=f"tqdm(multiprocessing.Pool.imap chunksize={IMAP_CHUNKSIZE})",
        peer_consume=imap_tqdm,
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
        items_per_second(
            PROCESS_BENCH,
            "mpire WorkerPool.imap progress_bar=True",
            mpire_bar,
            times,
            f"{few} items, {workers} workers, pool start-up included, automatic chunks",
        )
    )
    return rows


def run(quick: bool) -> list[Row]:
    with open(os.devnull, "w") as devnull:
        return [*thread_rows(quick, devnull), *process_rows(quick, devnull)]


if __name__ == "__main__":
    main(run)
