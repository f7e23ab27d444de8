"""Run ONE peer through ONE workload in this fresh process; write the outcome as JSON.

Usage: ``python _peer_scenario.py '<json request>'`` where the request holds
``scenario``, ``peer``, ``out`` (the result file) and ``deadline`` (seconds), plus
the scenario's parameters. ``bench_peers.py`` starts one such process per
(peer, workload) in its own session, so that a peer that hangs, leaks worker
processes or balloons in memory harms nothing else: the parent kills the whole
process group afterwards.

Inside, a watchdog thread bounds the run: at the deadline it writes
``{"status": "hung", "phase": ...}`` and ends the process with ``os._exit`` (a
hung ``join`` in the main thread cannot stop that). The memory scenarios also
abort, with ``status: "aborted"``, when the resident set grows past a limit. The
result file is written atomically, first when the consumer is done (so a hang in
the peer's teardown is still reported with the measured figures), then again after
the teardown.

Scenarios:

* ``chain`` — the 3-stage chain; per repeat: total seconds, time to first result,
  and whether every index came back.
* ``throughput`` — per repeat: seconds for ``n`` trivial items through one thread
  or process stage.
* ``cpu`` — per repeat: serial seconds and the peer's seconds for the same CPU work.
* ``memory`` — lazily consume ``n`` results of a trivial process stage over a
  generator (``infinite``: over ``itertools.count()``, then stop); baseline and peak
  resident memory of this (the consumer's) process.
* ``recovery`` — 1000 items, one of which crashes its worker (``mode="crash"``) or
  never finishes (``mode="stuck"``, with the peer's timeout set where it has one).

Runs under any interpreter that can import the peer, including the original Ori's
venv: standard library only, apart from the peer itself.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _peer_adapters import PEERS, ChainSpec
from _peer_workloads import burn, faulty, increment, payload, payload_size


class Outcome:
    """What the scenario reports, shared between the main thread and the watchdog."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.data: dict[str, Any] = {"status": "running", "phase": "starting", "count": 0}
        self.lock = threading.Lock()
        self.start = time.perf_counter()

    def update(self, **fields: Any) -> None:
        with self.lock:
            self.data.update(fields)

    def write(self, **fields: Any) -> None:
        with self.lock:
            self.data.update(fields)
            tmp = f"{self.out}.tmp{threading.get_ident()}"
            with open(tmp, "w", encoding="utf-8") as stream:
                json.dump(self.data, stream)
            os.replace(tmp, self.out)


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process in MB (VmHWM: the peak so far)."""
    try:
        with open("/proc/self/status", encoding="ascii") as stream:
            for line in stream:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def start_watchdog(outcome: Outcome, deadline: float, memory_limit_mb: float | None = None) -> None:
    """End this process when it runs past *deadline* or (optionally) grows past a limit."""

    def watch() -> None:
        baseline = outcome.data.get("baseline_mb", rss_mb())
        while True:
            time.sleep(0.05)
            elapsed = time.perf_counter() - outcome.start
            if memory_limit_mb is not None:
                grown = rss_mb() - baseline
                if grown > memory_limit_mb:
                    outcome.write(
                        status="aborted",
                        reason=f"memory grew by more than {memory_limit_mb:.0f} MB",
                        elapsed=elapsed,
                    )
                    os._exit(3)
            if elapsed > deadline:
                # After "consumed" or "done" the figures are in: only the teardown or
                # the interpreter's exit (joining the peer's threads) hung.
                status = outcome.data["status"]
                if status not in ("consumed", "done"):
                    status = "hung"
                outcome.write(status=status, hung=True, elapsed=elapsed)
                os._exit(124)

    threading.Thread(target=watch, name="scenario-watchdog", daemon=True).start()


# --- scenarios ---------------------------------------------------------------------------


def scenario_chain(request: dict[str, Any], outcome: Outcome) -> None:
    peer = PEERS[request["peer"]]
    assert peer.chain is not None
    spec = ChainSpec(**request.get("spec", {}))
    n = request["n"]

    def jobs(count: int) -> list[tuple[int, float, int, float]]:
        return [(i, request["download"], request["loops"], request["save"]) for i in range(count)]

    # One small untimed run: imports, first fork, caches.
    outcome.update(phase="warm-up")
    list(peer.chain(jobs(spec.download_workers), spec))
    samples = []
    for repeat in range(request["repeats"]):
        outcome.update(phase=f"repeat {repeat + 1}")
        start = time.perf_counter()
        first = None
        got = []
        for index in peer.chain(jobs(n), spec):
            if first is None:
                first = time.perf_counter() - start
            got.append(index)
        total = time.perf_counter() - start
        samples.append(
            {
                "total": total,
                "first": first,
                "count": len(got),
                "complete": sorted(got) == list(range(n)),
                "in_order": got == list(range(n)),
            }
        )
        outcome.write(samples=samples)
    outcome.write(status="done", phase="done")


def scenario_throughput(request: dict[str, Any], outcome: Outcome) -> None:
    peer = PEERS[request["peer"]]
    n, workers = request["n"], request["workers"]
    if request["stage"] == "thread":
        assert peer.tmap is not None

        def stage(count: int) -> Generator[Any, None, None]:
            assert peer.tmap is not None
            return peer.tmap(increment, range(count), workers=workers)
    else:
        assert peer.pmap is not None

        def stage(count: int) -> Generator[Any, None, None]:
            assert peer.pmap is not None
            return peer.pmap(
                increment, range(count), workers=workers, chunksize=request["chunksize"]
            )

    outcome.update(phase="warm-up")
    for _ in stage(100):
        pass
    samples = []
    for repeat in range(request["repeats"]):
        outcome.update(phase=f"repeat {repeat + 1}")
        start = time.perf_counter()
        total = 0
        for value in stage(n):
            total += value
        samples.append(
            {"seconds": time.perf_counter() - start, "complete": total == n * (n + 1) // 2}
        )
        outcome.write(samples=samples)
    outcome.write(status="done", phase="done")


def scenario_cpu(request: dict[str, Any], outcome: Outcome) -> None:
    peer = PEERS[request["peer"]]
    assert peer.pmap is not None
    n, loops, workers = request["n"], request["loops"], request["workers"]
    outcome.update(phase="warm-up")
    list(peer.pmap(burn, [loops] * workers, workers=workers))
    samples = []
    for repeat in range(request["repeats"]):
        outcome.update(phase=f"repeat {repeat + 1}")
        start = time.perf_counter()
        expected = [burn(loops) for _ in range(n)]
        serial = time.perf_counter() - start
        start = time.perf_counter()
        got = list(peer.pmap(burn, [loops] * n, workers=workers))
        parallel = time.perf_counter() - start
        samples.append({"serial": serial, "parallel": parallel, "complete": got == expected})
        outcome.write(samples=samples)
    outcome.write(status="done", phase="done")


def scenario_memory(request: dict[str, Any], outcome: Outcome) -> None:
    peer = PEERS[request["peer"]]
    assert peer.pmap is not None
    n = request["n"]
    source = itertools.count() if request.get("infinite") else range(n)
    items = (payload(i) for i in source)
    results = peer.pmap(
        payload_size, items, workers=request["workers"], chunksize=request.get("chunksize")
    )
    outcome.update(phase="running", baseline_mb=rss_mb())
    start_watchdog(outcome, request["deadline"], request.get("memory_limit_mb"))
    start = time.perf_counter()
    count = 0
    for _ in itertools.islice(results, n):
        count += 1
        if count % 1000 == 0:
            outcome.update(count=count)
    consumed = time.perf_counter() - start
    outcome.write(
        status="consumed", phase="teardown", count=count, total=consumed, peak_mb=rss_mb("VmHWM")
    )
    results.close()
    outcome.write(
        status="done",
        phase="done",
        teardown=time.perf_counter() - start - consumed,
        peak_mb=rss_mb("VmHWM"),
    )


def scenario_recovery(request: dict[str, Any], outcome: Outcome) -> None:
    peer = PEERS[request["peer"]]
    assert peer.pmap is not None
    n, bad, mode = request["n"], request["bad"], request["mode"]
    items = ((i, mode, bad, request["item_seconds"]) for i in range(n))
    timeout = request.get("timeout") if mode == "stuck" else None
    results: Generator[Any, None, None] = peer.pmap(
        faulty, items, workers=request["workers"], timeout=timeout, keep_going=True
    )
    outcome.update(phase="running")
    start_watchdog(outcome, request["deadline"])
    start = time.perf_counter()
    got: list[int] = []
    reported: list[str] = []  # failures a peer yields in the item's place (Ori's "return")
    error = None
    try:
        for result in results:
            if isinstance(result, int):
                got.append(result)
            else:
                reported.append(repr(result)[:200])
            outcome.update(count=len(got))
    except Exception as exc:  # the peer's way of reporting the failure, recorded as data
        error = f"{type(exc).__name__}: {exc}"[:300]
    ended = time.perf_counter() - start
    fields = {
        "count": len(got),
        "complete_others": sorted(got) == [i for i in range(n) if i != bad],
        "reported": reported,
        "error": error,
        "total": ended,
    }
    outcome.write(status="consumed", phase="teardown", **fields)
    results.close()
    outcome.write(status="done", phase="done", teardown=time.perf_counter() - start - ended)


SCENARIOS = {
    "chain": scenario_chain,
    "cpu": scenario_cpu,
    "throughput": scenario_throughput,
    "memory": scenario_memory,
    "recovery": scenario_recovery,
}


def main() -> None:
    request = json.loads(sys.argv[1])
    outcome = Outcome(request["out"])
    if request["scenario"] not in ("memory", "recovery"):
        start_watchdog(outcome, request["deadline"])
    try:
        SCENARIOS[request["scenario"]](request, outcome)
    except BaseException as exc:
        outcome.write(status="error", error=f"{type(exc).__name__}: {exc}"[:300])
        raise


if __name__ == "__main__":
    main()
