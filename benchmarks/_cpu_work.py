"""CPU work of a known duration, calibrated on the machine that runs the benchmark.

The chain benchmarks need a stage that burns a set amount of pure-Python CPU
per item. :class:`CpuWork` finds the loop count for that duration once, in the
benchmark's process, and publishes it in an environment variable: worker
processes inherit it whether they are forked or started afresh (spawn and
forkserver re-import the benchmark module, and would otherwise see no count).
"""

from __future__ import annotations

import os
import time


def burn(loops: int) -> int:
    """Pure-Python arithmetic, *loops* times (holds the GIL throughout)."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def processes() -> int:
    """The CPUs this process may use: one worker process each."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class CpuWork:
    """About *seconds* of CPU per :meth:`run`, once :meth:`calibrate` was called."""

    def __init__(self, seconds: float, env_var: str) -> None:
        self.seconds = seconds
        self.env_var = env_var

    @property
    def loops(self) -> int:
        return int(os.environ.get(self.env_var, "0"))

    def calibrate(self, min_sample: float = 0.005) -> None:
        """Time growing loop counts until one takes *min_sample*, then scale."""
        loops = 20_000
        while True:
            started = time.perf_counter()
            burn(loops)
            took = time.perf_counter() - started
            if took > min_sample:
                break
            loops *= 2
        os.environ[self.env_var] = str(max(1, int(loops * self.seconds / took)))

    def run(self) -> float:
        """Burn the calibrated work; the CPU time it took (not wall time).

        CPU time, so that a machine busy with something else shows up as lower
        efficiency of the chain rather than as more work per item.
        """
        started = time.process_time()
        burn(self.loops)
        return time.process_time() - started
