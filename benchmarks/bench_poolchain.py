"""PoolChain's four speed figures (issue 3), side by side with the stdlib in one run.

1. ``3-stage efficiency``: thread(4 workers, 50 ms sleep) -> process(one worker
   per core, ~20 ms of CPU) -> thread(4 workers, 50 ms sleep). Efficiency =
   ideal time (the slowest stage's total work / its workers) / measured time;
   target >= 0.9. Each stage function measures its own work per item (wall time
   for the sleeps, CPU time for the computation), so the ideal is that of the
   run itself. The original Ori chained ``Executor.map`` calls, which is run
   here for comparison. Needs a quiet machine: other load takes cores away.
2. ``first result / item latency``: time from starting the chain to its first
   result, divided by one item's trip through the three stages (worker start-up
   included); target <= 2.
3. ``trivial throughput``: items per second through one stage running
   ``identity``: a thread stage vs ``ThreadPoolExecutor.map``, and a process
   stage (automatic chunking) vs ``multiprocessing.Pool.imap`` with the best of
   several chunksizes; target >= 1.0 (ratio to the peer).
4. ``peak memory ratio``: peak RSS of a process streaming 10^7 items (10^6 with
   ``--quick``) through a thread -> process -> thread chain, divided by the
   same for 10^4 items; each size runs in a fresh child process so runs do not
   pollute each other; target <= 1.2.

Run: ``python benchmarks/bench_poolchain.py [--quick]`` (``--quick``: one repeat,
smaller inputs, a smoke test whose figures mean little), or through
``benchmarks/run.py``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _cpu_work import CpuWork, burn, processes
from _harness import Row, main

IO_SECONDS = 0.05
IO_WORKERS = 4
CPU_WORK = CpuWork(0.02, "ORI_BENCH_CPU_LOOPS")


def identity(x: Any) -> Any:
    return x


def io_step(item: tuple[int, tuple[float, ...]]) -> tuple[int, tuple[float, ...]]:
    """Wait like a network call; record how long this item spent here."""
    started = time.perf_counter()
    time.sleep(IO_SECONDS)
    return item[0], (*item[1], time.perf_counter() - started)


def cpu_step(item: tuple[int, tuple[float, ...]]) -> tuple[int, tuple[float, ...]]:
    """Burn about CPU_WORK.seconds of pure-Python CPU; record the CPU time it took."""
    return item[0], (*item[1], CPU_WORK.run())


def cpu_seconds_per_item() -> float:
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        burn(CPU_WORK.loops)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def three_stage_chain() -> Any:
    from ori.poolchain import PoolChain

    return (
        PoolChain()
        .add_threadpool(io_step, max_workers=IO_WORKERS)
        .add_processpool(cpu_step, max_workers=processes())
        .add_threadpool(io_step, max_workers=IO_WORKERS)
    )


def chained_map(inputs: list[Any]) -> Any:
    """The original Ori: one executor per stage, each fed by the previous map."""
    with (
        concurrent.futures.ThreadPoolExecutor(IO_WORKERS) as first,
        concurrent.futures.ProcessPoolExecutor(processes()) as second,
        concurrent.futures.ThreadPoolExecutor(IO_WORKERS) as third,
    ):
        yield from third.map(io_step, second.map(cpu_step, first.map(io_step, inputs)))


def ideal_seconds(results: list[tuple[int, tuple[float, ...]]]) -> float:
    """The slowest stage's total work divided by its workers, as measured."""
    workers = (IO_WORKERS, processes(), IO_WORKERS)
    return max(sum(times[stage] for _, times in results) / workers[stage] for stage in range(3))


def items(n: int) -> list[tuple[int, tuple[float, ...]]]:
    return [(i, ()) for i in range(n)]


def interleaved(
    benchmark: str,
    contenders: dict[str, Callable[[], float]],
    *,
    times: int,
    unit: str,
    higher_is_better: bool,
    note: str,
) -> list[Row]:
    """Measure every contender *times* times, round-robin.

    On a machine whose load changes from second to second, running the
    contenders in turn gives each the same conditions, which back-to-back
    blocks of repeats would not.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(times):
        for name, func in contenders.items():
            samples[name].append(func())
    return [
        Row(
            benchmark,
            name,
            statistics.median(values),
            unit,
            higher_is_better,
            min(values),
            max(values),
            note=note,
        )
        for name, values in samples.items()
    ]


# -- 1 and 2 ------------------------------------------------------------------------


def efficiency_rows(quick: bool) -> list[Row]:
    n = 80 if quick else 200
    nominal = max(n * IO_SECONDS / IO_WORKERS, n * cpu_seconds_per_item() / processes())

    def ori() -> float:
        started = time.perf_counter()
        results = list(three_stage_chain().execute_lazy(items(n)))
        return ideal_seconds(results) / (time.perf_counter() - started)

    def original() -> float:
        started = time.perf_counter()
        results = list(chained_map(items(n)))
        return ideal_seconds(results) / (time.perf_counter() - started)

    rows = interleaved(
        "3-stage efficiency",
        {"ori PoolChain": ori, "chained Executor.map (original Ori)": original},
        times=1 if quick else 5,  # a 2.6 s run on a small machine: the median of 5 is steadier
        unit="",
        higher_is_better=True,
        note=f"{n} items, ideal about {nominal:.2f} s (measured per run)",
    )
    rows[0].target = 0.9
    return rows


def first_result_rows(quick: bool) -> list[Row]:
    n = 40
    latency = 2 * IO_SECONDS + cpu_seconds_per_item()

    def ori() -> float:
        started = time.perf_counter()
        with three_stage_chain().execute_lazy(items(n)) as run:
            next(run)
            return (time.perf_counter() - started) / latency

    def original() -> float:
        started = time.perf_counter()
        results = chained_map(items(n))
        next(results)
        took = time.perf_counter() - started
        results.close()
        return took / latency

    rows = interleaved(
        "first result / item latency",
        {"ori PoolChain": ori, "chained Executor.map (original Ori)": original},
        times=1 if quick else 5,
        unit="",
        higher_is_better=False,
        note=f"one item's trip {latency * 1000:.0f} ms, {n} items",
    )
    rows[0].target = 2.0
    return rows


# -- 3 -----------------------------------------------------------------------------


def throughput_rows(quick: bool) -> list[Row]:
    from ori.poolchain import PoolChain

    times = 1 if quick else 5
    n_threads = 50_000 if quick else 300_000
    n_processes = 1_000_000 if quick else 3_000_000

    def ori_threads() -> float:
        started = time.perf_counter()
        for _ in PoolChain().add_threadpool(identity).execute_lazy(range(n_threads)):
            pass
        return n_threads / (time.perf_counter() - started)

    def tpe_map() -> float:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor() as executor:
            for _ in executor.map(identity, range(n_threads)):
                pass
        return n_threads / (time.perf_counter() - started)

    thread_rows = interleaved(
        "trivial throughput, thread stage",
        {"ori PoolChain add_threadpool": ori_threads, "ThreadPoolExecutor.map": tpe_map},
        times=times,
        unit="items/s",
        higher_is_better=True,
        note=f"{n_threads} items, default workers",
    )
    thread_rows[0].target = thread_rows[1].value  # target: ratio >= 1.0 to the peer

    def ori_processes() -> float:
        started = time.perf_counter()
        chain = PoolChain().add_processpool(identity, max_workers=processes())
        for _ in chain.execute_lazy(range(n_processes)):
            pass
        return n_processes / (time.perf_counter() - started)

    def imap(chunksize: int) -> float:
        started = time.perf_counter()
        with multiprocessing.Pool(processes()) as pool:
            for _ in pool.imap(identity, range(n_processes), chunksize=chunksize):
                pass
        return n_processes / (time.perf_counter() - started)

    contenders: dict[str, Callable[[], float]] = {
        "ori PoolChain add_processpool (auto chunks)": ori_processes
    }
    for chunksize in (100, 1000, 10_000, 30_000):
        contenders[f"multiprocessing.Pool.imap chunksize={chunksize}"] = (
            lambda chunksize=chunksize: imap(chunksize)  # type: ignore[misc]
        )
    process_rows = interleaved(
        "trivial throughput, process stage",
        contenders,
        times=times,
        unit="items/s",
        higher_is_better=True,
        note=f"{n_processes} items, {processes()} workers, start-up included",
    )
    best = max(process_rows[1:], key=lambda row: row.value)
    best.note += " (best chunksize)"
    process_rows[0].target = best.value
    return [*thread_rows, *process_rows]


# -- 4 -----------------------------------------------------------------------------


def memory_child(n: int) -> None:
    """Stream *n* items through a 3-stage chain; print this process's peak RSS (KiB)."""
    import resource

    from ori.poolchain import PoolChain

    chain = (
        PoolChain()
        .add_threadpool(identity, max_workers=4)
        .add_processpool(identity, max_workers=processes())
        .add_threadpool(identity, max_workers=4)
    )
    count = 0
    for _ in chain.execute_lazy(range(n)):
        count += 1
    assert count == n
    # VmHWM starts afresh at exec; ru_maxrss would include the forked parent's size.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                print(int(line.split()[1]))
                return
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_kib(n: int) -> int:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return int(done.stdout.split()[-1])


def memory_rows(quick: bool) -> list[Row]:
    big = 10**6 if quick else 10**7
    small = peak_rss_kib(10**4)
    started = time.perf_counter()
    large = peak_rss_kib(big)
    took = time.perf_counter() - started
    return [
        Row(
            "peak memory ratio",
            "ori PoolChain thread -> process -> thread",
            large / small,
            "x",
            target=1.2,
            note=(
                f"peak RSS {large / 1024:.1f} MiB for {big:.0e} items vs "
                f"{small / 1024:.1f} MiB for 1e4 ({big / took:,.0f} items/s)"
            ),
        )
    ]


def run(quick: bool) -> list[Row]:
    CPU_WORK.calibrate()
    return [
        *efficiency_rows(quick),
        *first_result_rows(quick),
        *throughput_rows(quick),
        *memory_rows(quick),
    ]


if __name__ == "__main__":
    if "--memory-child" in sys.argv:
        memory_child(int(sys.argv[sys.argv.index("--memory-child") + 1]))
    else:
        main(run)
