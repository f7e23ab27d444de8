"""How busy the machine is, so that results taken on a noisy one say so.

Timing figures on a small shared machine move with whatever else runs on it:
another process, or (on a virtual machine) the host giving the CPUs to other
guests, which Linux counts as *steal* time. :func:`wait_until_quiet` holds a
benchmark module back until the machine is idle, and :class:`LoadWatch`
measures, over a module's run, the share of CPU time the host took away. Both
read ``/proc/stat``; where it does not exist they do nothing and report nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
QUIET_BUSY = 0.15  # busier than this (share of all CPUs), the machine is not quiet
QUIET_SAMPLE_SECONDS = 1.0


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU time of all CPUs, in clock ticks, by kind."""

    busy: int
    idle: int
    steal: int

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.steal


def cpu_times() -> CpuTimes | None:
    """The machine's CPU times so far, or None where /proc/stat is missing."""
    try:
        first = PROC_STAT.read_text(encoding="ascii").splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = first.split()
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]
    values = [int(value) for value in fields[1:9]] + [0] * max(0, 9 - len(fields))
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return CpuTimes(busy=user + nice + system + irq + softirq, idle=idle + iowait, steal=steal)


def busy_share(before: CpuTimes, after: CpuTimes) -> float:
    """Share of CPU time between two readings that was not idle (steal included)."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    return (after.busy - before.busy + after.steal - before.steal) / total


def steal_share(before: CpuTimes, after: CpuTimes) -> float:
    """Share of CPU time between two readings that the host took away."""
    total = after.total - before.total
    return (after.steal - before.steal) / total if total > 0 else 0.0


def wait_until_quiet(max_wait: float, *, sample: float = QUIET_SAMPLE_SECONDS) -> float | None:
    """Wait (at most *max_wait* seconds) until the machine is idle.

    Returns the busy share of the last one-second sample (so the caller can
    report a machine that never went quiet), or None without /proc/stat.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = cpu_times()
        if before is None:
            return None
        time.sleep(sample)
        after = cpu_times()
        if after is None:
            return None
        busy = busy_share(before, after)
        if busy <= QUIET_BUSY or time.monotonic() >= deadline:
            return busy


class LoadWatch:
    """The host's steal share over a stretch of time (start at creation)."""

    def __init__(self) -> None:
        self._before = cpu_times()

    def steal(self) -> float | None:
        """Steal share since creation, or None without /proc/stat."""
        after = cpu_times()
        if self._before is None or after is None:
            return None
        return steal_share(self._before, after)


def describe(busy_before: float | None, steal: float | None) -> str:
    """One line for the results: how quiet the machine was for one module."""
    parts = []
    if busy_before is not None:
        parts.append(f"{busy_before:.0%} of the CPUs busy just before")
    if steal is not None:
        parts.append(f"{steal:.1%} of CPU time taken by the host during the run")
    return "; ".join(parts) or "not measured (no /proc/stat)"
