"""Stage functions for the worker start-up tests (test_worker_start.py).

Importing this module in a worker process that was not forked (spawn, forkserver)
hangs for an hour while the file ``HANG_FLAG`` exists: a worker that never gets
ready, as a fork that deadlocked would be. (A file, not an environment variable:
a forkserver started earlier passes its own environment on.)
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from pathlib import Path

HANG_FLAG = Path(tempfile.gettempdir()) / "ori-test-hang-on-import"

if multiprocessing.parent_process() is not None and HANG_FLAG.exists():
    time.sleep(3600)


def identity(x: int) -> int:
    return x


def parent_and_pid_or_crash(x: int) -> tuple[int, int]:
    """The worker's parent pid and its own; every 20th item (from 7) kills its worker."""
    if x % 20 == 7:
        os._exit(3)
    return os.getppid(), os.getpid()


def slow_identity(x: int) -> int:
    time.sleep(0.002)
    return x


def _refuse_to_load(reason: str) -> object:
    raise ValueError(reason)


class WontUnpickle:
    """Pickles fine, but raises when it is unpickled (in the worker)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _refuse_to_load, ("this argument cannot be rebuilt",)


def identity_or_len(x: object) -> object:
    return x if isinstance(x, int) else -1


class NeedsTwoArgs(Exception):
    """An exception that pickles but cannot be rebuilt from its args."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}-{b}")


def return_unrebuildable_on_three(x: int) -> object:
    """Returns (not raises) an object the parent cannot unpickle for item 3."""
    return NeedsTwoArgs(x, x) if x == 3 else x


def sum_of_squares_in_a_pool(n: int) -> int:
    """Uses a process pool of its own, as a library called by a stage might."""
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(square, range(n)))


def square(x: int) -> int:
    return x * x


def nested_chain_total(n: int) -> int:
    """Runs a chain with a process stage of its own inside a stage function."""
    from ori.poolchain import PoolChain

    return sum(PoolChain().add_processpool(square, max_workers=2).execute_eager(range(n)))


def start_sleeper(seconds: float) -> int:
    """Starts a command that outlives this call; returns its pid."""
    import subprocess

    return subprocess.Popen(["sleep", str(seconds)]).pid


def start_sleeper_then_hang(seconds: float) -> int:
    start_sleeper(seconds)
    time.sleep(3600)
    return 0
