"""Module-level functions that the statistics and progress tests run in process stages.

Worker processes started with spawn or forkserver import these by module name,
so they live in a real module on sys.path (see the root conftest.py).
"""

from __future__ import annotations

import os
import time

SLOW_SECONDS = 0.03


def square(x: int) -> int:
    return x * x


def slow_identity(x: int) -> int:
    """Sleeps SLOW_SECONDS per item: a stage that is clearly the slowest."""
    time.sleep(SLOW_SECONDS)
    return x


def fail_on_nine(x: int) -> int:
    if x == 9:
        raise ValueError("nine is not allowed")
    return x


def exit_on_nine(x: int) -> int:
    """Item 9 kills its worker process outright."""
    if x == 9:
        os._exit(3)
    return x
