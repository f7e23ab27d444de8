"""The original Ori 0.1.2's ``run_process_in_background`` on bench_subprocess's workloads.

Runs inside the original's venv (``python orig_subprocess.py ROWS.json [--quick]``).
The workloads and benchmark names come from ``bench_subprocess.py`` itself, so the
rows land in the same tables as the new ``ori.subprocess`` and its peers.

The original calls its callback in a separate process, with arbitrary chunks of
output rather than lines, so the callback here is a picklable object that counts
newlines into shared memory; the rate is lines seen per second until ``join()``
returns. Lines the original fails to deliver are reported in the note.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import Row, repeat, unavailable

IMPLEMENTATION = "Ori 0.1.2 (original)"
UNIT = "lines/s"


def workloads(quick: bool) -> tuple[int, int, dict[str, list[str]]]:
    """(line count, repeats, {benchmark name: command}) exactly as bench_subprocess uses them."""
    import bench_subprocess

    count = 100_000 if quick else 1_000_000
    times = 3 if quick else 7
    return count, times, bench_subprocess._workloads(count)


def names(quick: bool) -> list[tuple[str, dict[str, Any]]]:
    """Benchmark names and row options, for rows that say the original is unavailable."""
    return [(name, {"unit": UNIT, "higher_is_better": True}) for name in workloads(quick)[2]]


class CountLines:
    """Picklable callback: adds the newlines of each chunk to a shared counter."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    def __call__(self, chunk: str) -> None:
        with self.counter.get_lock():
            self.counter.value += chunk.count("\n")


def one_run(command: list[str]) -> tuple[float, int]:
    """Seconds until the original's control process ends, and the lines it delivered."""
    from ori.subprocess import run_process_in_background

    counter = multiprocessing.Value("q", 0)
    start = time.perf_counter()
    process = run_process_in_background(command=command, stdout_function=CountLines(counter))
    process.join()
    return time.perf_counter() - start, int(counter.value)


def run(quick: bool) -> list[Row]:
    count, times, commands = workloads(quick)
    rows = []
    for name, command in commands.items():
        delivered: list[int] = []

        def rate(command: list[str] = command, delivered: list[int] = delivered) -> float:
            seconds, lines = one_run(command)
            delivered.append(lines)
            return lines / seconds

        try:
            median, low, high = repeat(rate, times)
        except Exception as exc:  # recorded as data: the original failed on this workload
            rows.append(unavailable(name, IMPLEMENTATION, f"failed: {exc!r}"[:200], unit=UNIT))
            continue
        lost = count - min(delivered)
        note = "chunks, not lines, to a callback in another process"
        if lost:
            note += f"; LOST up to {lost:,} of {count:,} lines"
        row = Row(name, IMPLEMENTATION, median, UNIT, True, low, high, note=note)
        # Losing lines is not a speed: such a run is never "the best".
        row.comparable = not lost
        rows.append(row)
    return rows


if __name__ == "__main__":
    result = run("--quick" in sys.argv[2:])
    Path(sys.argv[1]).write_text(json.dumps([row.to_dict() for row in result]), encoding="utf-8")
