"""Initializers and stage functions for the worker-setup and warm-pool tests.

Worker processes started with spawn or forkserver import these by module name,
so they live in a real module on sys.path (see the root conftest.py).
"""

from __future__ import annotations

import os
import threading
from typing import Any

# What the initializer set up in this process (or, for thread stages, thread).
STATE: dict[str, Any] = {"calls": 0}
LOCAL = threading.local()


def set_up(prefix: str, scale: int) -> None:
    """An initializer: 'open a connection' once per worker."""
    STATE["calls"] += 1
    STATE["prefix"] = prefix
    STATE["scale"] = scale


def use_setup(x: int) -> tuple[int, int, str]:
    """(pid, initializer calls in this process, prefixed scaled item)."""
    return os.getpid(), STATE["calls"], f"{STATE['prefix']}{x * STATE['scale']}"


def set_up_thread(tag: str) -> None:
    LOCAL.tag = tag
    LOCAL.calls = getattr(LOCAL, "calls", 0) + 1


def use_thread_setup(x: int) -> tuple[str, int, int]:
    return LOCAL.tag, LOCAL.calls, x


def broken_setup() -> None:
    raise RuntimeError("the model file is missing")


def pid_of(_: object) -> int:
    return os.getpid()


def slow_pid(x: float) -> int:
    """Sleep *x* seconds, then return the worker's pid."""
    import time

    time.sleep(x)
    return os.getpid()


def pid_and_double(x: int) -> tuple[int, int]:
    """(pid, 2 * x), after a short nap for items divisible by 5."""
    import time

    if x % 5 == 0:
        time.sleep(0.02)
    return os.getpid(), 2 * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return 2 * x
