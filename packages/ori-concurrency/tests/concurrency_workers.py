"""Module-level functions that tests run in worker processes.

Worker processes import these by module name, so they must live in a real
module on sys.path (see the root conftest.py), not in a test file.
"""

from __future__ import annotations

import os

from ori.concurrency import run_in_background_process, run_in_background_thread


def square(x: int) -> int:
    return x * x


def worker_pid() -> int:
    return os.getpid()


def fail_with_value_error(message: str) -> None:
    raise ValueError(message)


@run_in_background_process
def decorated_bare(x: int, *, offset: int = 0) -> tuple[int, int]:
    """Doubles x in a worker process."""
    return 2 * x + offset, os.getpid()


@run_in_background_process(max_workers=2)
def decorated_with_args(x: int) -> tuple[int, int]:
    return x + 1, os.getpid()


@run_in_background_thread
def decorated_thread(x: int) -> int:
    return x - 1


@run_in_background_thread(max_workers=4)
def decorated_thread_with_args(x: int) -> int:
    return x * 3
