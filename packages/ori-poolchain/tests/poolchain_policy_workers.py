"""Module-level stage functions for the error-policy tests (worker processes import them)."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path


def exit_on_tens(x: int) -> int:
    """One item in ten (x % 10 == 3) kills its worker process outright."""
    if x % 10 == 3:
        os._exit(3)
    return x * 2


def sigkill_on_four(x: int) -> int:
    if x == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def segfault_on_five(x: int) -> int:
    if x == 5:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return x


def hang_on_five(x: int) -> int:
    if x == 5:
        time.sleep(600)
    return x


def fail_on_threes(x: int) -> int:
    if x % 3 == 0:
        raise ValueError(f"multiple of three: {x}")
    return x


def flaky(item: tuple[str, int]) -> int:
    """Fails the first time it sees each item (a marker file per item remembers)."""
    folder, x = item
    marker = Path(folder) / f"seen-{x}"
    if not marker.exists():
        marker.touch()
        raise ConnectionError(f"transient failure for {x}")
    return x


def flaky_exit(item: tuple[str, int]) -> int:
    """Kills its worker the first time it sees item 2 (a marker file remembers)."""
    folder, x = item
    marker = Path(folder) / f"died-{x}"
    if x == 2 and not marker.exists():
        marker.touch()
        os._exit(5)
    return x


def always_fail(x: int) -> int:
    raise RuntimeError(f"always fails: {x}")


async def async_fail_on_threes(x: int) -> int:
    if x % 3 == 0:
        raise ValueError(f"multiple of three: {x}")
    return x


async def async_nap(x: int) -> int:
    import asyncio

    await asyncio.sleep(0.01)
    return x


async def async_fail_on_threes_pair(item: tuple[str, int]) -> int:
    """Async :func:`flaky`: fails the first time it sees each multiple of three."""
    folder, x = item
    marker = Path(folder) / f"async-seen-{x}"
    if x % 3 == 0 and not marker.exists():
        marker.touch()
        raise ValueError(f"transient failure for {x}")
    return x
