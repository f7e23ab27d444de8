"""PoolChain with an asyncio first stage vs the thread-stage version (issue 4).

The chain: download (an I/O wait of IO_SECONDS, CONCURRENCY at a time) ->
compute (about 2 ms of pure-Python CPU, one worker process per core) ->
save (a short I/O wait, SAVE_WORKERS threads). The download stage is the
bottleneck by design: it is where many items wait at once.

Implementations, run side by side:

* ``ori thread -> process -> thread``: the download stage is
  ``add_threadpool(..., max_workers=CONCURRENCY)``, one thread per waiting item;
* ``ori asyncio -> process -> thread``: the download stage is
  ``add_asyncpool(..., max_concurrency=CONCURRENCY)``, one event loop thread;
* ``pypeln task -> process -> thread``: the same chain with pypeln's asyncio
  ``task`` stage (a peer; its results come unordered).

Figures: efficiency = ideal time / measured time, where ideal is the slowest
stage's total work / its concurrency as measured in the run (each stage
function records its own time per item: wall time for the waits, CPU time for
the computation); and the peak number of threads of the process during the run
(sampled in the consumer). Target: the asyncio version reaches the thread
version's efficiency with at most a tenth of its threads.

Run: ``python benchmarks/bench_poolchain_async.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _cpu_work import CpuWork, processes
from _harness import Row, main, measure, unavailable

IO_SECONDS = 0.5
CONCURRENCY = 200
CPU_WORK = CpuWork(0.002, "ORI_BENCH_ASYNC_CPU_LOOPS")
SAVE_SECONDS = 0.005
SAVE_WORKERS = 4

Item = tuple[int, tuple[float, ...]]


def download(item: Item) -> Item:
    started = time.perf_counter()
    time.sleep(IO_SECONDS)
    return item[0], (*item[1], time.perf_counter() - started)


async def download_async(item: Item) -> Item:
    started = time.perf_counter()
    await asyncio.sleep(IO_SECONDS)
    return item[0], (*item[1], time.perf_counter() - started)


def compute(item: Item) -> Item:
    return item[0], (*item[1], CPU_WORK.run())


def save(item: Item) -> Item:
    started = time.perf_counter()
    time.sleep(SAVE_SECONDS)
    return item[0], (*item[1], time.perf_counter() - started)


def ideal_seconds(results: list[Item]) -> float:
    """The slowest stage's total measured work divided by its concurrency."""
    concurrency = (CONCURRENCY, processes(), SAVE_WORKERS)
    return max(sum(times[stage] for _, times in results) / concurrency[stage] for stage in range(3))


def items(n: int) -> list[Item]:
    return [(i, ()) for i in range(n)]


def ori_threads(inputs: list[Item]) -> Iterable[Item]:
    from ori.poolchain import PoolChain

    chain = (
        PoolChain()
        .add_threadpool(download, max_workers=CONCURRENCY)
        .add_processpool(compute, max_workers=processes())
        .add_threadpool(save, max_workers=SAVE_WORKERS)
    )
    return chain.execute_lazy(inputs)


def ori_asyncio(inputs: list[Item]) -> Iterable[Item]:
    from ori.poolchain import PoolChain

    chain = (
        PoolChain()
        .add_asyncpool(download_async, max_concurrency=CONCURRENCY)
        .add_processpool(compute, max_workers=processes())
        .add_threadpool(save, max_workers=SAVE_WORKERS)
    )
    return chain.execute_lazy(inputs)


def pypeln_task(inputs: list[Item]) -> Iterable[Item]:
    import pypeln as pl

    stage = pl.task.map(download_async, inputs, workers=CONCURRENCY)
    stage = pl.process.map(compute, stage, workers=processes())
    return pl.thread.map(save, stage, workers=SAVE_WORKERS)


class Sample:
    """One run: efficiency and the peak thread count seen by the consumer."""

    def __init__(self, build: Callable[[list[Item]], Iterable[Item]], n: int) -> None:
        self.build = build
        self.n = n
        self.peak_threads: list[int] = []

    def efficiency(self) -> float:
        peak = threading.active_count()
        started = time.perf_counter()
        results: list[Item] = []
        for count, result in enumerate(self.build(items(self.n))):
            results.append(result)
            if count % 20 == 0:
                peak = max(peak, threading.active_count())
        took = time.perf_counter() - started
        if sorted(index for index, _ in results) != list(range(self.n)):
            raise AssertionError("lost or duplicated items")
        self.peak_threads.append(peak)
        return ideal_seconds(results) / took


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run(quick: bool) -> list[Row]:
    CPU_WORK.calibrate(min_sample=0.01)
    n = 400 if quick else 3000
    times = 1 if quick else 3
    nominal = n * IO_SECONDS / CONCURRENCY
    note = (
        f"{n} items; download {IO_SECONDS:g} s x {CONCURRENCY} at once (ideal about "
        f"{nominal:.1f} s), compute {CPU_WORK.seconds * 1000:g} ms x {processes()} processes, "
        f"save {SAVE_SECONDS * 1000:g} ms x {SAVE_WORKERS} threads"
    )
    implementations: list[tuple[str, Callable[[list[Item]], Iterable[Item]], str | None]] = [
        ("ori thread -> process -> thread", ori_threads, None),
        ("ori asyncio -> process -> thread", ori_asyncio, None),
        ("pypeln task -> process -> thread", pypeln_task, "pypeln"),
    ]
    efficiency_rows: list[Row] = []
    thread_rows: list[Row] = []
    thread_peaks: dict[str, float] = {}
    for name, build, module in implementations:
        if module is not None and not _installed(module):
            efficiency_rows.append(
                unavailable("async 3-stage efficiency", name, "not installed", unit="")
            )
            thread_rows.append(unavailable("async 3-stage peak threads", name, "not installed"))
            continue
        sample = Sample(build, n)
        target = 0.9 if name.startswith("ori asyncio") else None
        row = measure(
            "async 3-stage efficiency",
            name,
            sample.efficiency,
            times=times,
            unit="",
            higher_is_better=True,
            target=target,
            note=note,
        )
        efficiency_rows.append(row)
        peak = max(sample.peak_threads)
        thread_peaks[name] = peak
        thread_rows.append(
            Row(
                "async 3-stage peak threads",
                name,
                float(peak),
                "threads",
                low=float(min(sample.peak_threads)),
                high=float(peak),
                note="peak threading.active_count() of the process during the run",
            )
        )
    baseline = thread_peaks.get("ori thread -> process -> thread")
    for row in thread_rows:
        if row.implementation.startswith("ori asyncio") and baseline:
            row.target = baseline / 10
    return efficiency_rows + thread_rows


if __name__ == "__main__":
    main(run)
