"""What the start methods cost a PoolChain run: fork against forkserver against spawn.

Issue 17 lets Ori fork a worker only while the process is single-threaded;
any worker started later under ``fork`` (a replacement for a crashed one)
comes from the forkserver. Three figures, each method in turn within every
round so that all see the same machine, each reported as a ratio to fork:

(a) ``start a run``: time from building a fresh chain (one process stage of 2
    workers over 20 small items) to its first result, which is mostly starting
    the two workers; ``multiprocessing.Pool(2).imap`` does the same for
    comparison. Measured in this process, after one run per method has
    started the forkserver (it is started once per process and then reused),
    and in a fresh interpreter per sample, where forkserver's figure includes
    starting the server itself (interpreter start-up is not counted).
(b) ``replace a crashed worker``: a process stage of 2 workers over items of
    about a millisecond of pure-Python work, crash-free and with one item in
    100 calling ``os._exit`` (``on_error="skip"``): the extra time of the crash
    run divided by its crashes is the time per replacement, which includes
    noticing the death and rerunning the rest of the lost chunk. Under fork the
    replacements come from the forkserver (the run's own threads are running).

Run: ``python benchmarks/bench_start_methods.py [--quick]``.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _cpu_work import burn
from _harness import Row, main, spread

METHODS: list[str] = [
    m for m in ("fork", "forkserver", "spawn") if m in multiprocessing.get_all_start_methods()
]
WORKERS = 2
FIRST_ITEMS = 20
WORK_LOOPS = 15_000  # about a millisecond of pure-Python CPU
CRASH_EVERY = 100
START_BENCH = f"start a run: time to first result ({WORKERS} workers, fresh chain)"
FRESH_BENCH = f"start a run in a fresh interpreter: time to first result ({WORKERS} workers)"
REPLACE_BENCH = "replace a crashed worker: time per replacement"
RATIO = "ratio to fork"


def square(x: int) -> int:
    return x * x


def busy(x: int) -> int:
    return burn(WORK_LOOPS) + x


def crash_now_and_then(x: int) -> int:
    if x % CRASH_EVERY == CRASH_EVERY // 2:
        os._exit(3)
    return busy(x)


def first_result_seconds(method: str) -> float:
    from ori.poolchain import PoolChain

    started = time.perf_counter()
    chain = PoolChain().add_processpool(square, max_workers=WORKERS, start_method=method)
    with chain.execute_lazy(range(FIRST_ITEMS)) as run:
        if next(run) != 0:
            raise AssertionError("wrong first result")
        return time.perf_counter() - started


def pool_first_result_seconds(method: str) -> float:
    """The same with ``multiprocessing.Pool``, for comparison."""
    started = time.perf_counter()
    with multiprocessing.get_context(method).Pool(WORKERS) as pool:
        if next(pool.imap(square, range(FIRST_ITEMS))) != 0:
            raise AssertionError("wrong first result")
        return time.perf_counter() - started


def fresh_first_result_seconds(method: str) -> float:
    """:func:`first_result_seconds` in a new interpreter (its start-up not counted)."""
    done = subprocess.run(
        [sys.executable, __file__, "--first-result", method],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return float(done.stdout.split()[-1])


def run_seconds(method: str, function: Callable[[int], int], n: int) -> float:
    """Seconds for *n* items through a 2-worker process stage that skips failed items."""
    from ori.poolchain import PoolChain

    chain = PoolChain(on_error="skip").add_processpool(
        function, max_workers=WORKERS, start_method=method
    )
    started = time.perf_counter()
    results = chain.execute_eager(range(n))
    took = time.perf_counter() - started
    crashes = 0 if function is busy else n // CRASH_EVERY
    stats = chain.stats
    assert stats is not None
    if len(results) != n - crashes or stats.items_skipped != crashes:
        raise AssertionError(f"{method}: {len(results)} results, {stats.items_skipped} skipped")
    return took


def rounds(measure: Callable[[str], float], times: int) -> dict[str, list[float]]:
    """*times* rounds of ``measure(method)``, every method once per round."""
    samples: dict[str, list[float]] = {method: [] for method in METHODS}
    for _ in range(times):
        for method in METHODS:
            samples[method].append(measure(method))
    return samples


def rows_for(benchmark: str, samples: dict[str, list[float]], note: str) -> list[Row]:
    """Milliseconds per method, then each method's ratio to fork (per round)."""
    rows = []
    for method, values in samples.items():
        median, low, high = spread([1000 * value for value in values])
        rows.append(
            Row(
                benchmark,
                f"ori PoolChain, start_method={method!r}",
                median,
                "ms",
                False,
                low,
                high,
                note=note,
            )
        )
    for method, values in samples.items():
        if method == "fork" or "fork" not in samples:
            continue
        median, low, high = spread([v / f for v, f in zip(values, samples["fork"], strict=True)])
        rows.append(
            Row(
                f"{benchmark}, {RATIO}",
                f"ori PoolChain, {method} / fork",
                median,
                "x",
                False,
                low,
                high,
                note="per round",
                comparable=False,
            )
        )
    return rows


def start_rows(quick: bool) -> list[Row]:
    times = 1 if quick else 9
    for method in METHODS:  # starts the forkserver: no sample pays for it
        first_result_seconds(method)
        pool_first_result_seconds(method)
    pool: dict[str, list[float]] = {method: [] for method in METHODS}

    def ori_then_pool(method: str) -> float:
        pool[method].append(pool_first_result_seconds(method))
        return first_result_seconds(method)

    note = f"{FIRST_ITEMS} items; forkserver already running"
    warm = rows_for(START_BENCH, rounds(ori_then_pool, times), note)
    for method, values in reversed(pool.items()):  # after Ori's rows, before the ratios
        median, low, high = spread([1000 * value for value in values])
        name = f"multiprocessing.Pool({WORKERS}).imap, {method}"
        warm.insert(len(METHODS), Row(START_BENCH, name, median, "ms", False, low, high, note=note))
    fresh = rows_for(
        FRESH_BENCH,
        rounds(fresh_first_result_seconds, 1 if quick else 5),
        "ori imported, interpreter start-up not counted; forkserver's includes starting the server",
    )
    return [*warm, *fresh]


def replace_rows(quick: bool) -> list[Row]:
    n = 500 if quick else 2000
    crashes = n // CRASH_EVERY
    times = 1 if quick else 5
    clean: dict[str, list[float]] = {method: [] for method in METHODS}
    crashed: dict[str, list[float]] = {method: [] for method in METHODS}

    def per_replacement(method: str) -> float:
        clean[method].append(run_seconds(method, busy, n))
        crashed[method].append(run_seconds(method, crash_now_and_then, n))
        return (crashed[method][-1] - clean[method][-1]) / crashes

    samples = rounds(per_replacement, times)
    rows = rows_for(REPLACE_BENCH, samples, f"{n} items of ~1 ms, {crashes} crashes per run")
    for row, method in zip(rows, METHODS, strict=False):
        row.note += (
            f"; run {statistics.median(crashed[method]):.2f} s with the crashes, "
            f"{statistics.median(clean[method]):.2f} s without"
        )
        if method == "fork":
            row.note += " (replacements come from the forkserver: the run's threads are running)"
    return rows


def run(quick: bool) -> list[Row]:
    return [*start_rows(quick), *replace_rows(quick)]


if __name__ == "__main__":
    if "--first-result" in sys.argv:
        print(first_result_seconds(sys.argv[sys.argv.index("--first-result") + 1]))
    else:
        main(run)
