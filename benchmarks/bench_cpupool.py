"""``add_cpupool`` on free-threaded CPython (issue 17), side by side with processes and serial.

Without the GIL, ``add_cpupool`` runs its stage on threads: pure-Python CPU work
runs in parallel and nothing is pickled. Two figures, each measured in turns
so that all see the same machine:

(a) ``CPU-bound speedup over serial``: items of ~20 ms of pure-Python arithmetic
    through one stage of 2 workers, ``add_cpupool`` (threads) and
    ``add_processpool``, each against the same work run serially just before
    and just after it (serial, cpu pool, serial, serial, process pool, serial,
    then again). Target: the cpu pool at least 1.8x faster than serial on 2 cores.
    Two plain ``threading.Thread`` objects splitting the same items (no Ori)
    are measured the same way: what the machine itself allows, since two
    vCPUs of a shared host rarely give a full 2.0x.
(b) ``4 MiB bytes items``: a cheap function (length plus the sum of the last
    64 bytes) on 4 MiB ``bytes`` items, so that moving the item costs more than
    the work: a process pool pickles every item through a pipe, threads pass a
    reference. Throughput in MiB/s (worker start-up included); target: the cpu
    pool at least 3x the process pool's, taken per round.

This needs a free-threaded interpreter with the GIL off (``python3.13t``).
On one with the GIL, ``add_cpupool`` runs on processes, so the comparison
would mean nothing: unless ``ORI_BENCH_FREE_THREADED_PYTHON`` names a
free-threaded interpreter, in which this module then runs itself (with this
tree's ``packages/*/src`` on its path, no venv needed), every row says
"not available" and why.

Run: ``python3.13t benchmarks/bench_cpupool.py [--quick]``, or through
``benchmarks/run.py`` (from a 3.13t venv, or any venv with the variable set).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _cpu_work import CpuWork, burn
from _harness import Row, main, spread, timed, unavailable

ROOT = Path(__file__).resolve().parent.parent
FREE_THREADED_ENV = "ORI_BENCH_FREE_THREADED_PYTHON"
WORKERS = 2
CPU_WORK = CpuWork(0.02, "ORI_BENCH_CPUPOOL_LOOPS")
ITEM_BYTES = 4 * 1024 * 1024
MIB = 1024 * 1024
SPEEDUP_BENCH = f"add_cpupool: CPU-bound speedup over serial ({WORKERS} workers)"
BYTES_BENCH = "add_cpupool: 4 MiB bytes items, throughput"
BYTES_RATIO_BENCH = "add_cpupool: 4 MiB bytes items, cpu pool / process pool throughput"
CEILING_BENCH = f"add_cpupool: CPU-bound speedup, cpu pool / bare threads ({WORKERS} workers)"
SPEEDUP_TARGET = 1.8
BYTES_TARGET = 3.0
CPU_NAME = "ori add_cpupool (threads, GIL off)"
PROCESS_NAME = "ori add_processpool"
BARE_NAME = f"{WORKERS} bare threading.Thread (no Ori)"


def gil_enabled() -> bool:
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_gil_enabled is None else bool(is_gil_enabled())


def cpu_item(x: int) -> int:
    """About CPU_WORK.seconds of pure-Python arithmetic."""
    return burn(CPU_WORK.loops) + x


def fingerprint(data: bytes) -> int:
    """Cheap next to moving *data*: its length and the sum of its last 64 bytes."""
    return len(data) + sum(data[-64:])


def payloads(n: int) -> list[bytes]:
    """*n* distinct 4 MiB items (each ends with its index), built before the clock starts.

    Distinct objects, so that pickling a chunk cannot send one object once for
    several items; built beforehand, so that the figure is the cost of moving
    items, not of making them.
    """
    body = bytes(ITEM_BYTES - 8)
    return [body + i.to_bytes(8, "big") for i in range(n)]


def run_chain(kind: str, function: Callable[[Any], Any], inputs: Iterable[Any]) -> list[Any]:
    """*inputs* through one stage of WORKERS workers: ``"cpu"`` (add_cpupool) or processes."""
    from ori.poolchain import PoolChain

    chain = PoolChain()
    if kind == "cpu":
        chain.add_cpupool(function, max_workers=WORKERS)
    else:
        chain.add_processpool(function, max_workers=WORKERS)
    return chain.execute_eager(inputs)


def bare_threads(inputs: list[int]) -> list[int]:
    """The machine's own ceiling: WORKERS plain threads, no Ori, items split in turn."""
    results: list[int] = [0] * len(inputs)

    def work(start: int) -> None:
        for index in range(start, len(inputs), WORKERS):
            results[index] = cpu_item(inputs[index])

    threads = [threading.Thread(target=work, args=(start,)) for start in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def check_threads_picked() -> None:
    """The whole point: on this interpreter add_cpupool must have picked threads."""
    from ori.poolchain import PoolChain

    chain = PoolChain().add_cpupool(cpu_item, max_workers=WORKERS)
    chain.execute_eager([0])
    stats = chain.stats
    assert stats is not None
    kind = stats.stages[0].kind
    if kind != "cpu pool on threads":
        raise AssertionError(f"add_cpupool picked {kind!r} on a free-threaded build")


# -- (a) -----------------------------------------------------------------------------


def speedup_rows(quick: bool) -> list[Row]:
    n = 20 if quick else 80
    times = 1 if quick else 7
    inputs = list(range(n))
    expected = [cpu_item(x) for x in inputs]
    speedups: dict[str, list[float]] = {"cpu": [], "process": [], "bare": []}
    serial_seconds = []
    for _ in range(times):
        for kind, values in speedups.items():
            run = bare_threads if kind == "bare" else functools.partial(run_chain, kind, cpu_item)
            # Serial right before and right after each pool run, averaged: this
            # shared 2-core host drifts by tens of percent within a minute, and
            # a serial time taken once per round pairs a pool run with a
            # machine state it did not see (speedups above 2.0 on 2 cores).
            before = timed(lambda: [cpu_item(x) for x in inputs])
            started = time.perf_counter()
            results = run(inputs)
            pooled = time.perf_counter() - started
            after = timed(lambda: [cpu_item(x) for x in inputs])
            serial_seconds += [before, after]
            values.append((before + after) / 2 / pooled)
            if results != expected:
                raise AssertionError(f"the {kind} pool gave wrong results")
    note = (
        f"{n} items of ~{CPU_WORK.seconds * 1000:.0f} ms, serial median "
        f"{statistics.median(serial_seconds):.2f} s; per round, the pool's time against "
        "the mean of a serial run just before and one just after it; start-up included"
    )
    rows = [
        Row(SPEEDUP_BENCH, "serial (baseline)", 1.0, "x", True, note="the same work, one thread")
    ]
    for kind, name in (("cpu", CPU_NAME), ("process", PROCESS_NAME), ("bare", BARE_NAME)):
        median, low, high = spread(speedups[kind])
        rows.append(Row(SPEEDUP_BENCH, name, median, "x", True, low, high, note=note))
    rows[1].target = SPEEDUP_TARGET
    rows[1].note += f"; limit {WORKERS:.1f}"
    rows[3].note += "; what this machine allows: plain threads, no Ori, no queue"
    ceiling = [ori / bare for ori, bare in zip(speedups["cpu"], speedups["bare"], strict=True)]
    median, low, high = spread(ceiling)
    rows.append(
        Row(
            CEILING_BENCH,
            f"{CPU_NAME} vs {BARE_NAME}",
            median,
            "x",
            True,
            low,
            high,
            note="speedup ratio per round; 1.0 means Ori costs nothing over bare threads",
            comparable=False,
        )
    )
    return rows


# -- (b) -----------------------------------------------------------------------------


def bytes_rows(quick: bool) -> list[Row]:
    n = 16 if quick else 100
    times = 1 if quick else 5
    inputs = payloads(n)
    expected = sum(fingerprint(data) for data in inputs)
    throughput: dict[str, list[float]] = {"cpu": [], "process": []}
    ratios = []
    for _ in range(times):
        for kind, values in throughput.items():
            started = time.perf_counter()
            total = sum(run_chain(kind, fingerprint, inputs))
            values.append(n * ITEM_BYTES / MIB / (time.perf_counter() - started))
            if total != expected:
                raise AssertionError(f"the {kind} pool gave wrong results")
        ratios.append(throughput["cpu"][-1] / throughput["process"][-1])
    note = f"{n} distinct items of 4 MiB made beforehand, {WORKERS} workers, start-up included"
    rows = []
    for kind, name in (("cpu", CPU_NAME), ("process", PROCESS_NAME)):
        median, low, high = spread(throughput[kind])
        rows.append(Row(BYTES_BENCH, name, median, "MiB/s", True, low, high, note=note))
    median, low, high = spread(ratios)
    ratio = Row(
        BYTES_RATIO_BENCH,
        f"{CPU_NAME} vs {PROCESS_NAME}",
        median,
        "x",
        True,
        low,
        high,
        target=BYTES_TARGET,
        note=f"ratio per round; {note}",
        comparable=False,
    )
    return [*rows, ratio]


# -- with the GIL: not available, or run in a free-threaded interpreter found elsewhere --


def gil_rows(reason: str) -> list[Row]:
    """The rows of :func:`run`, each unmeasured, saying *reason*."""
    shapes = [
        (SPEEDUP_BENCH, CPU_NAME, "x", SPEEDUP_TARGET),
        (SPEEDUP_BENCH, PROCESS_NAME, "x", None),
        (SPEEDUP_BENCH, BARE_NAME, "x", None),
        (CEILING_BENCH, f"{CPU_NAME} vs {BARE_NAME}", "x", None),
        (BYTES_BENCH, CPU_NAME, "MiB/s", None),
        (BYTES_BENCH, PROCESS_NAME, "MiB/s", None),
        (BYTES_RATIO_BENCH, f"{CPU_NAME} vs {PROCESS_NAME}", "x", BYTES_TARGET),
    ]
    return [
        unavailable(bench, name, reason, unit=unit, higher_is_better=True, target=target)
        for bench, name, unit, target in shapes
    ]


def needs_free_threading() -> str:
    build = "a free-threaded build with the GIL turned back on (PYTHON_GIL=1?)"
    if not sys.version_info >= (3, 13) or "free-threading" not in sys.version:
        build = "a build with the GIL"
    return (
        f"needs a free-threaded Python with the GIL off (python3.13t); this is "
        f"Python {sys.version.split()[0]}, {build}, where add_cpupool runs on processes. "
        f"Run python3.13t benchmarks/bench_cpupool.py, or set {FREE_THREADED_ENV}"
    )


def rows_from(python: str, quick: bool) -> list[Row]:
    """Run this module in the free-threaded *python*, with this tree's packages on its path."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "rows.json"
        path = [str(ROOT / "packages" / name / "src") for name in ("ori-errors", "ori-poolchain")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        command = [python, __file__, "--rows-json", str(out), *(["--quick"] if quick else [])]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as exc:
            return gil_rows(f"{FREE_THREADED_ENV}={python} could not run: {exc}")
        if done.returncode != 0 or not out.exists():
            tail = " ".join(done.stderr.split()[-40:])
            return gil_rows(f"{FREE_THREADED_ENV}={python} failed (exit {done.returncode}): {tail}")
        rows = [Row.from_dict(data) for data in json.loads(out.read_text(encoding="utf-8"))]
    for row in rows:
        row.note = f"{row.note}; in {python}".lstrip("; ")
    return rows


def run(quick: bool) -> list[Row]:
    if gil_enabled():
        python = os.environ.get(FREE_THREADED_ENV)
        return rows_from(python, quick) if python else gil_rows(needs_free_threading())
    CPU_WORK.calibrate()
    check_threads_picked()
    return [*speedup_rows(quick), *bytes_rows(quick)]


if __name__ == "__main__":
    if "--rows-json" in sys.argv:
        target = Path(sys.argv[sys.argv.index("--rows-json") + 1])
        if gil_enabled():
            sys.exit(f"{sys.executable} is not free-threaded with the GIL off")
        rows = run("--quick" in sys.argv)
        target.write_text(json.dumps([row.to_dict() for row in rows]), encoding="utf-8")
    else:
        main(run)
