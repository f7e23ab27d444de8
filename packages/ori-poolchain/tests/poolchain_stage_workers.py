"""Functions that the asyncio, executor-instance and dask stage tests run remotely.

Dask workers and process-pool workers import these by module name, so they
live in a real module on sys.path (see the root conftest.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def fail_on_seven(x: int) -> int:
    if x == 7:
        raise KeyError(f"seven is not allowed (got {x})")
    return x


def nap(x: int) -> int:
    time.sleep(0.05)
    return x


def stuck_on_three(x: int) -> int:
    if x == 3:
        time.sleep(2.0)  # dask cannot interrupt it: keep it short
    return x


def identity(x: Any) -> Any:
    return x


async def async_double(x: int) -> int:
    await asyncio.sleep(0.001)
    return 2 * x


async def async_sleepy(x: int) -> int:
    await asyncio.sleep(0.02)
    return x


# -- helpers for the tests themselves (not run remotely) ------------------------


def run_threads() -> list[str]:
    """Names of the threads any PoolChain run has running now."""
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("ori-poolchain-")]


def wait_for_no_run_threads(seconds: float = 10.0) -> None:
    """Assert that every thread of every run is gone within *seconds*."""
    deadline = time.monotonic() + seconds
    while run_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not run_threads(), f"left behind: {run_threads()}"


def collect(results: Any, into: list[Any]) -> None:
    """Append every result to *into* (whatever came before an exception stays)."""
    for value in results:
        into.append(value)
