"""Functions the peer benchmarks run inside worker threads and processes.

Workers started with spawn or forkserver import these by module name, so they
live in this small importable module with no third-party imports. The same module
is imported by the original Ori 0.1.2 inside its own venv, so it must not import
anything from the ``ori`` namespace either.

Every workload takes one argument and returns one value, so that every peer's
``map`` can run it unchanged; parameters travel inside the item.
"""

from __future__ import annotations

import hashlib
import os
import time


def burn(loops: int) -> int:
    """Pure-Python CPU work: about ``loops`` iterations of integer arithmetic."""
    total = 0
    for i in range(loops):
        total = (total + i * i) % 1_000_003
    return total


def calibrate_loops(seconds: float) -> int:
    """How many :func:`burn` loops take about *seconds* on this machine (best of 5)."""
    probe = 200_000
    best = min(_time_burn(probe) for _ in range(5))
    return max(1, int(probe * seconds / best))


def _time_burn(loops: int) -> float:
    start = time.perf_counter()
    burn(loops)
    return time.perf_counter() - start


# --- the 3-stage chain: download (I/O) -> compute (CPU) -> save (I/O) ------------
# An item is (index, download_seconds, cpu_loops, save_seconds).
Job = tuple[int, float, int, float]


def download(job: Job) -> tuple[Job, bytes]:
    """I/O stage: wait like a network call, return the job and a small payload."""
    time.sleep(job[1])
    return job, job[0].to_bytes(8, "little") * 128


def compute(fetched: tuple[Job, bytes]) -> tuple[int, str, float]:
    """CPU stage: burn the job's loops, hash the payload: (index, digest, save_seconds)."""
    job, payload = fetched
    burn(job[2])
    return job[0], hashlib.sha256(payload).hexdigest(), job[3]


def save(computed: tuple[int, str, float]) -> int:
    """I/O stage: wait like a disk write, return the item's index."""
    time.sleep(computed[2])
    return computed[0]


# --- single-stage workloads ---------------------------------------------------------


def increment(value: int) -> int:
    """The trivial function: its cost is the peer's overhead per item."""
    return value + 1


PAYLOAD_BYTES = 1024


def payload(index: int) -> bytes:
    """A fresh 1 KiB input item, so that every item a peer buffers shows in its memory."""
    return index.to_bytes(8, "little") + bytes(PAYLOAD_BYTES - 8)


def payload_size(data: bytes) -> int:
    """Trivial work on a payload item; the result is small, so only inputs can pile up."""
    return len(data)


def faulty(item: tuple[int, str, int, float]) -> int:
    """(index, mode, bad_index, seconds): sleep *seconds*; the bad item crashes or hangs.

    ``mode == "crash"`` ends the worker process at once (like a segfault);
    ``mode == "stuck"`` makes the item sleep for an hour.
    """
    index, mode, bad_index, seconds = item
    if index == bad_index:
        if mode == "crash":
            os._exit(70)
        if mode == "stuck":
            time.sleep(3600)
    time.sleep(seconds)
    return index
