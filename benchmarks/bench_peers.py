"""Ori's PoolChain side by side with every peer that can express the same workload.

Workloads (issue 7):

* (a) the 3-stage download (I/O, threads) -> compute (CPU, processes) -> save (I/O,
  threads) chain: efficiency = ideal time / measured time, where the ideal time is
  the slowest stage's total work divided by its workers; and time to the first
  result divided by one item's trip through the three stages;
* (b) trivial-function throughput of one thread stage and one process stage
  (``bench_poolchain.py`` compares Ori with the stdlib at larger sizes; this one
  covers every peer, at a size the slowest can finish);
* (c) CPU-bound speedup over running the same work serially (the limit is the
  number of cores);
* (d) peak memory of the consuming process when the input grows 100-fold, and
  whether an infinite input (``itertools.count()``) works at all;
* (e) recovery: one item in 1000 crashes its worker process, or never finishes.

Peers: this repository's PoolChain, the original Ori 0.1.2 (in its own venv, see
``original/venv.py``), ``concurrent.futures``, ``multiprocessing.Pool``, pypeln,
mpire, joblib (``return_as="generator"``) and loky. ``_peer_adapters.py`` shows
how each one expresses each workload.

Every (peer, workload) runs in a fresh process of its own session with a hard
deadline (``_peer_scenario.py``); the whole process group is killed afterwards.
A peer that hangs, leaks workers or runs out of memory becomes a row that says
so ("hung", "aborted"), never a hung suite.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import _groups
from _environment import original_venv
from _harness import Row, main, unavailable
from _peer_adapters import ORI, ORI_ORIGINAL, PEERS, ChainSpec, Peer
from _peer_workloads import burn, calibrate_loops

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "_peer_scenario.py"
CORES = os.cpu_count() or 1
# Extra seconds the parent waits beyond a scenario's own deadline before killing it.
KILL_GRACE = 15.0


@dataclass(frozen=True)
class Config:
    repeats: int
    chain_items: int
    chain_download: float
    chain_compute: float
    chain_save: float
    chain_deadline: float
    throughput_items: int
    throughput_repeats: int
    throughput_deadline: float
    cpu_items: int
    cpu_item_seconds: float
    cpu_deadline: float
    memory_small: int
    memory_large: int
    memory_chunksize: int
    memory_limit_mb: float
    memory_deadline: float
    recovery_items: int
    recovery_item_seconds: float
    recovery_timeout: float
    recovery_deadline: float


FULL = Config(
    repeats=5,
    chain_items=200,
    chain_download=0.05,
    chain_compute=0.01,
    chain_save=0.05,
    chain_deadline=300,
    throughput_items=100_000,
    throughput_repeats=3,
    throughput_deadline=300,
    cpu_items=100,
    cpu_item_seconds=0.02,
    cpu_deadline=300,
    memory_small=1_000,
    memory_large=100_000,
    memory_chunksize=100,
    memory_limit_mb=1024,
    memory_deadline=120,
    recovery_items=1000,
    recovery_item_seconds=0.002,
    recovery_timeout=2,
    recovery_deadline=30,
)
QUICK = Config(
    repeats=1,
    chain_items=8,
    chain_download=0.02,
    chain_compute=0.005,
    chain_save=0.02,
    chain_deadline=20,
    throughput_items=1_000,
    throughput_repeats=1,
    throughput_deadline=20,
    cpu_items=8,
    cpu_item_seconds=0.005,
    cpu_deadline=20,
    memory_small=100,
    memory_large=1_000,
    memory_chunksize=10,
    memory_limit_mb=200,
    memory_deadline=3,
    recovery_items=40,
    recovery_item_seconds=0.001,
    recovery_timeout=0.5,
    recovery_deadline=4,
)

CHAIN_SPEC = ChainSpec(download_workers=4, compute_workers=2, save_workers=4)
PROCESS_WORKERS = 2
THREAD_WORKERS = 4
# Peers that take a chunk size get this one for trivial functions; joblib batches
# automatically, pypeln cannot batch, Ori's PoolChain sizes chunks by itself.
THROUGHPUT_CHUNKSIZE = 1000
THROUGHPUT_NOTES = {
    (ORI, "process"): "automatic chunks",
    (ORI_ORIGINAL, "process"): f"chunksize {THROUGHPUT_CHUNKSIZE}",
    ("concurrent.futures", "process"): f"chunksize {THROUGHPUT_CHUNKSIZE}",
    ("multiprocessing.Pool", "process"): f"chunksize {THROUGHPUT_CHUNKSIZE}",
    ("mpire", "process"): f"chunk_size {THROUGHPUT_CHUNKSIZE}",
    ("loky", "process"): f"chunksize {THROUGHPUT_CHUNKSIZE}",
    ("joblib", "process"): 'batch_size="auto"',
    ("pypeln", "process"): "no batching",
}


# --- running one scenario in its own process group ---------------------------------------


def original_python() -> tuple[Path | None, str]:
    """The original Ori's venv interpreter, or None and why it is unavailable."""
    found: tuple[Path | None, str] = original_venv().find()
    return found


def interpreter(peer: Peer) -> tuple[str | None, str]:
    """Interpreter to run *peer* with, or None and a note for its rows."""
    if peer.name == ORI_ORIGINAL:
        path, reason = original_python()
        return (str(path), "") if path else (None, f"not available: {reason}")
    if not peer.missing():
        return sys.executable, ""
    if peer.name == ORI:
        return None, "not available (packages/ori-poolchain is not installed)"
    return None, "not installed"


def run_scenario(
    python: str, scenario: str, peer: str, deadline: float, **params: Any
) -> dict[str, Any]:
    """Run one scenario in a fresh process and session; its JSON outcome plus how it ended.

    Blocks at most *deadline* + ``KILL_GRACE`` seconds; afterwards nothing the
    scenario started is left running (the whole process group is killed).
    """
    with tempfile.TemporaryDirectory(prefix="ori-bench-") as tmp:
        out = Path(tmp) / "outcome.json"
        log = Path(tmp) / "log.txt"
        request = {"scenario": scenario, "peer": peer, "out": str(out), "deadline": deadline}
        request.update(params)
        started = time.perf_counter()
        with log.open("w") as log_stream:
            process = _groups.start(
                [python, str(SCENARIO), json.dumps(request)],
                stdin=subprocess.DEVNULL,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                cwd=str(HERE),
            )
            try:
                process.wait(timeout=deadline + KILL_GRACE)
                killed = False
            except subprocess.TimeoutExpired:
                killed = True
            finally:
                # Also kills the workers a peer left behind in the scenario's group.
                _groups.stop(process)
        try:
            outcome: dict[str, Any] = json.loads(out.read_text())
        except (OSError, ValueError):
            outcome = {"status": "no result"}
        outcome["killed"] = killed
        outcome["returncode"] = process.returncode
        outcome["wall"] = time.perf_counter() - started
        lines = log.read_text(errors="replace").strip().splitlines()
        outcome["log"] = " ".join(lines[-4:])[-400:]
        return outcome


def progress(message: str) -> None:
    print(f"  [peers] {message}", file=sys.stderr, flush=True)


def failure_note(outcome: dict[str, Any]) -> str:
    """Why a scenario produced no figure, in a few words."""
    status = outcome.get("status")
    if status == "hung":
        return f"hung: no end after {outcome.get('elapsed', 0):.0f} s"
    if status == "aborted":
        return f"aborted: {outcome.get('reason')} after {outcome.get('elapsed', 0):.1f} s"
    if status == "error":
        return f"failed: {outcome.get('error')}"
    if outcome.get("killed"):
        return "hung: killed by the suite"
    return f"failed (exit {outcome.get('returncode')}): {outcome.get('log', '')[-200:]}"


def teardown_note(outcome: dict[str, Any]) -> str:
    """'' when the peer shut down cleanly after the measured part, else what went wrong."""
    stuck = outcome.get("hung") or outcome.get("killed")
    if outcome.get("status") == "consumed":
        if stuck:
            return "then its teardown hung (killed)"
        return f"then its teardown failed (exit {outcome.get('returncode')})"
    if outcome.get("status") == "done" and stuck:
        return "then the process hung at exit (killed)"
    return ""


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


Benchmarks = Sequence[tuple[str, dict[str, Any]]]


def per_peer(
    benchmarks: Benchmarks, body: Callable[[Peer, str], list[Row]], parallel: bool
) -> list[Row]:
    """Rows of *body(peer, python)* for every peer, grouped by benchmark, peers in order.

    An unavailable peer gets one explaining row in each of *benchmarks* (a name and
    the keyword options of :func:`_harness.unavailable`) instead. *parallel* runs three
    peers at a time: only for ``--quick``, where figures do not matter.
    """

    def one(peer: Peer) -> list[Row]:
        python, note = interpreter(peer)
        if python is None:
            return [unavailable(name, peer.name, note, **options) for name, options in benchmarks]
        started = time.perf_counter()
        rows = body(peer, python)
        progress(f"{benchmarks[0][0][:32]}...: {peer.name} ({time.perf_counter() - started:.1f} s)")
        return rows

    if parallel:
        with ThreadPoolExecutor(3) as pool:
            groups = list(pool.map(one, PEERS.values()))
    else:
        groups = [one(peer) for peer in PEERS.values()]
    order = {name: position for position, (name, _) in enumerate(benchmarks)}
    rows = [row for group in groups for row in group]
    return sorted(rows, key=lambda row: order.get(row.benchmark, len(order)))


# --- (a) the 3-stage chain ----------------------------------------------------------------


def chain_rows(config: Config, loops: int, compute_seconds: float, parallel: bool) -> list[Row]:
    n, spec = config.chain_items, CHAIN_SPEC
    ideal = max(
        n * config.chain_download / spec.download_workers,
        n * compute_seconds / spec.compute_workers,
        n * config.chain_save / spec.save_workers,
    )
    latency = config.chain_download + compute_seconds + config.chain_save
    shape = (
        f"{n} items; download {config.chain_download * 1000:.0f} ms"
        f" x{spec.download_workers} threads, compute ~{config.chain_compute * 1000:.0f} ms"
        f" x{spec.compute_workers} processes, save {config.chain_save * 1000:.0f} ms"
        f" x{spec.save_workers} threads"
    )
    efficiency = f"(a) 3-stage chain: efficiency vs ideal ({shape})"
    first = "(a) 3-stage chain: time to first result ÷ one item's latency"
    benchmarks: Benchmarks = [
        (efficiency, {"unit": "", "higher_is_better": True, "target": 0.9}),
        (first, {"unit": "x", "target": 2.0}),
    ]

    def body(peer: Peer, python: str) -> list[Row]:
        outcome = run_scenario(
            python,
            "chain",
            peer.name,
            config.chain_deadline,
            n=n,
            download=config.chain_download,
            loops=loops,
            save=config.chain_save,
            repeats=config.repeats,
            spec=dataclasses.asdict(spec),
        )
        samples = outcome.get("samples") or []
        if outcome.get("status") != "done" or not samples:
            note = failure_note(outcome)
            return [unavailable(name, peer.name, note, **options) for name, options in benchmarks]
        notes = [
            "" if all(sample["complete"] for sample in samples) else "LOST ITEMS",
            "" if peer.ordered else "unordered",
            teardown_note(outcome),
        ]
        totals = [sample["total"] for sample in samples]
        median, low, high = spread([ideal / total for total in totals])
        notes.append(
            f"median {statistics.median(totals):.2f} s, ideal {ideal:.2f} s "
            f"(compute measured at {compute_seconds * 1000:.1f} ms)"
        )
        efficiency_row = Row(efficiency, peer.name, median, "", True, low, high, target=0.9)
        efficiency_row.note = "; ".join(filter(None, notes))
        efficiency_row.extra = {"seconds": totals, "ideal": ideal, "how": peer.how}
        median, low, high = spread([sample["first"] / latency for sample in samples])
        first_row = Row(first, peer.name, median, "x", False, low, high, target=2.0)
        seconds = statistics.median(sample["first"] for sample in samples)
        first_row.note = f"first result after {seconds:.2f} s, one item {latency:.2f} s"
        return [efficiency_row, first_row]

    return per_peer(benchmarks, body, parallel)


# --- (b) trivial-function throughput -----------------------------------------------------


def throughput_rows(config: Config, parallel: bool) -> list[Row]:
    threads = (
        f"(b) trivial throughput, thread stage, every peer ({config.throughput_items:,} items, "
        f"{THREAD_WORKERS} threads)"
    )
    processes = (
        f"(b) trivial throughput, process stage, every peer ({config.throughput_items:,} items, "
        f"{PROCESS_WORKERS} processes)"
    )
    options: dict[str, Any] = {"unit": "items/s", "higher_is_better": True}
    benchmarks: Benchmarks = [(threads, options), (processes, options)]

    def measure(python: str, peer: Peer, stage: str, benchmark: str) -> Row:
        if (peer.tmap if stage == "thread" else peer.pmap) is None:
            return unavailable(benchmark, peer.name, f"has no {stage} pool", **options)
        outcome = run_scenario(
            python,
            "throughput",
            peer.name,
            config.throughput_deadline,
            n=config.throughput_items,
            stage=stage,
            workers=THREAD_WORKERS if stage == "thread" else PROCESS_WORKERS,
            chunksize=THROUGHPUT_CHUNKSIZE,
            repeats=config.throughput_repeats,
        )
        samples = outcome.get("samples") or []
        if outcome.get("status") != "done" or not samples:
            return unavailable(benchmark, peer.name, failure_note(outcome), **options)
        rates = [config.throughput_items / sample["seconds"] for sample in samples]
        median, low, high = spread(rates)
        row = Row(benchmark, peer.name, median, "items/s", True, low, high)
        notes = [
            "" if all(sample["complete"] for sample in samples) else "WRONG RESULTS",
            THROUGHPUT_NOTES.get((peer.name, stage), ""),
            teardown_note(outcome),
        ]
        row.note = "; ".join(filter(None, notes))
        return row

    def body(peer: Peer, python: str) -> list[Row]:
        return [
            measure(python, peer, "thread", threads),
            measure(python, peer, "process", processes),
        ]

    return per_peer(benchmarks, body, parallel)


# --- (c) CPU-bound speedup -------------------------------------------------------------------


def cpu_rows(config: Config, loops: int, parallel: bool) -> list[Row]:
    benchmark = (
        f"(c) CPU-bound speedup over serial ({config.cpu_items} items of "
        f"{config.cpu_item_seconds * 1000:.0f} ms, {PROCESS_WORKERS} processes)"
    )
    limit = float(min(CORES, PROCESS_WORKERS))

    def body(peer: Peer, python: str) -> list[Row]:
        outcome = run_scenario(
            python,
            "cpu",
            peer.name,
            config.cpu_deadline,
            n=config.cpu_items,
            loops=loops,
            workers=PROCESS_WORKERS,
            repeats=config.repeats,
        )
        samples = outcome.get("samples") or []
        if outcome.get("status") != "done" or not samples:
            note = failure_note(outcome)
            return [unavailable(benchmark, peer.name, note, unit="x", higher_is_better=True)]
        median, low, high = spread([s["serial"] / s["parallel"] for s in samples])
        row = Row(benchmark, peer.name, median, "x", True, low, high)
        notes = [
            f"limit {limit:.1f} ({CORES} cores)",
            "" if all(s["complete"] for s in samples) else "WRONG RESULTS",
            teardown_note(outcome),
        ]
        row.note = "; ".join(filter(None, notes))
        return [row]

    baseline = Row(
        benchmark, "serial (baseline)", 1.0, "x", True, note="the same work in one thread"
    )
    rows = per_peer([(benchmark, {"unit": "x", "higher_is_better": True})], body, parallel)
    return [baseline, *rows]


# --- (d) memory ------------------------------------------------------------------------------


def memory_rows(config: Config, parallel: bool) -> list[Row]:
    small, large = config.memory_small, config.memory_large
    growth = f"(d) peak memory: {large:,} ÷ {small:,} items of 1 KiB (process stage)"
    infinite = f"(d) infinite input: first {large:,} results of itertools.count()"
    benchmarks: Benchmarks = [(growth, {"unit": "x", "target": 1.2}), (infinite, {})]

    def measure(python: str, peer: Peer, n: int, infinite_input: bool) -> dict[str, Any]:
        return run_scenario(
            python,
            "memory",
            peer.name,
            config.memory_deadline,
            n=n,
            workers=PROCESS_WORKERS,
            chunksize=config.memory_chunksize,
            infinite=infinite_input,
            memory_limit_mb=config.memory_limit_mb,
        )

    def body(peer: Peer, python: str) -> list[Row]:
        pairs: list[tuple[float, float]] = []
        failed = ""
        for _ in range(max(1, config.repeats // 2)):
            little, big = (measure(python, peer, n, False) for n in (small, large))
            for outcome in (little, big):
                if outcome.get("status") not in ("done", "consumed"):
                    failed = failed or failure_note(outcome)
            if not failed:
                pairs.append((little["peak_mb"], big["peak_mb"]))
        if failed or not pairs:
            growth_row = unavailable(growth, peer.name, failed or "no result", unit="x", target=1.2)
        else:
            median, low, high = spread([big / little for little, big in pairs])
            growth_row = Row(growth, peer.name, median, "x", False, low, high, target=1.2)
            growth_row.note = (
                f"peak {statistics.median(p[0] for p in pairs):.0f} MB -> "
                f"{statistics.median(p[1] for p in pairs):.0f} MB"
            )
        outcome = measure(python, peer, large, True)
        if outcome.get("status") in ("done", "consumed"):
            infinite_row = Row(infinite, peer.name, outcome["total"], "s", False)
            notes = [f"peak {outcome['peak_mb']:.0f} MB", teardown_note(outcome)]
            infinite_row.note = "; ".join(filter(None, notes))
        else:
            note = failure_note(outcome)
            if outcome.get("count"):
                note += f", {outcome['count']:,} results"
            infinite_row = unavailable(infinite, peer.name, note)
        return [growth_row, infinite_row]

    return per_peer(benchmarks, body, parallel)


# --- (e) recovery ------------------------------------------------------------------------------


def recovery_rows(config: Config, parallel: bool) -> list[Row]:
    n, bad = config.recovery_items, config.recovery_items // 2
    crash = f"(e) recovery: 1 of {n} items crashes its worker (time ÷ crash-free run)"
    stuck = (
        f"(e) recovery: 1 of {n} items never finishes, timeout {config.recovery_timeout:g} s "
        "(time ÷ crash-free run)"
    )
    benchmarks: Benchmarks = [(crash, {"unit": "x", "target": 1.5}), (stuck, {"unit": "x"})]

    def attempt(python: str, peer: Peer, mode: str) -> dict[str, Any]:
        return run_scenario(
            python,
            "recovery",
            peer.name,
            config.recovery_deadline,
            n=n,
            bad=bad if mode != "none" else -1,
            mode=mode,
            item_seconds=config.recovery_item_seconds,
            timeout=config.recovery_timeout,
            workers=PROCESS_WORKERS,
        )

    def body(peer: Peer, python: str) -> list[Row]:
        clean = attempt(python, peer, "none")
        clean_time = clean.get("total") if clean.get("status") == "done" else None
        return [
            recovery_row(crash, peer.name, attempt(python, peer, "crash"), n, clean_time, 1.5),
            recovery_row(stuck, peer.name, attempt(python, peer, "stuck"), n, clean_time, None),
        ]

    return per_peer(benchmarks, body, parallel)


def recovery_row(
    benchmark: str,
    implementation: str,
    outcome: dict[str, Any],
    n: int,
    clean_time: float | None,
    target: float | None,
) -> Row:
    """One recovery figure: what happened, how long it took, whether other items survived.

    Only a run that delivered every other item gets a figure (its time divided by the
    same peer's crash-free run); it is compared with the others only if it also
    reported the failure (an exception at the end, or a failure object in the item's
    place) and shut down cleanly. A run that gave up early or hung says so instead.
    """
    status = outcome.get("status")
    count = outcome.get("count", 0)
    reported = outcome.get("reported") or []
    error = outcome.get("error")
    others = f"{count}/{n - 1} other results"
    if status not in ("done", "consumed"):
        note = f"{failure_note(outcome)}; {others}"
        return unavailable(benchmark, implementation, note, unit="x", target=target)
    total = outcome["total"]
    cleanup = teardown_note(outcome)
    if count < n - 1:
        what = f"raised {error.split(':')[0]}" if error else "stopped without an error"
        note = "; ".join(filter(None, [f"{what} after {total:.1f} s", others, cleanup]))
        return unavailable(benchmark, implementation, note, unit="x", target=target)
    if reported:
        how = f"failure yielded in the item's place: {reported[0][:80]}"
    elif error:
        how = f"every other result, then raised {error.split(':')[0]}"
    else:
        how = "the failed item silently missing"
    seconds = f"{total:.1f} s"
    if clean_time:
        seconds += f" vs {clean_time:.1f} s crash-free"
    value = total / clean_time if clean_time else math.nan
    row = Row(benchmark, implementation, value, "x", False, target=target)
    row.note = "; ".join(filter(None, [seconds, how, cleanup]))
    row.comparable = bool(reported or error) and not cleanup
    row.extra = {"seconds": total, "clean_seconds": clean_time, "error": error}
    return row


# --- entry point ---------------------------------------------------------------------------------


def run(quick: bool) -> list[Row]:
    _groups.kill_children_on_sigterm()  # run.py stops a module with SIGTERM first
    config = QUICK if quick else FULL
    chain_loops = calibrate_loops(config.chain_compute)
    cpu_loops = calibrate_loops(config.cpu_item_seconds)
    rows = chain_rows(config, chain_loops, _seconds(chain_loops), quick)
    rows += throughput_rows(config, quick)
    rows += cpu_rows(config, cpu_loops, quick)
    rows += memory_rows(config, quick)
    rows += recovery_rows(config, quick)
    return rows


def _seconds(loops: int) -> float:
    """Median seconds of one burn(loops) call in this process."""
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        burn(loops)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


if __name__ == "__main__":
    main(run)
