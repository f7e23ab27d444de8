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
