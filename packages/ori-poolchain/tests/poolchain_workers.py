"""Module-level functions that tests run in process stages.

Worker processes started with spawn or forkserver import these by module name,
so they live in a real module on sys.path (see the root conftest.py).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def double(x: int) -> int:
    return 2 * x


def increment(x: int) -> int:
    return x + 1


def negate(x: int) -> int:
    return -x


def square(x: int) -> int:
    return x * x


def to_str(x: object) -> str:
    return str(x)


def pid_of(_: object) -> int:
    return os.getpid()


def pid_and_value(x: int) -> tuple[int, int]:
    return os.getpid(), x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"three is not allowed (got {x})")
    return x


def fail_on_negative(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x


def fail_on_multiple_of_seven(x: int) -> int:
    if x % 7 == 0:
        raise KeyError(x)
    return x


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def sleepy_identity(x: int) -> int:
    """Sleeps 0.01 s per item: enough to keep a lane busy, cheap in total."""
    time.sleep(0.01)
    return x


def hang_on_two(x: int) -> int:
    """Item 2 never finishes on its own (the process-stage timeout must end it)."""
    if x == 2:
        time.sleep(600)
    return x


def exit_on_two(x: int) -> int:
    """Item 2 kills its worker process outright."""
    if x == 2:
        os._exit(7)
    return x


def return_unpicklable(x: int) -> Any:
    return threading.Lock()


class NeedsTwoArgs(Exception):
    """An exception that cannot be rebuilt from its args by pickle."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}-{b}")


def raise_unpicklable_exception(x: int) -> int:
    raise NeedsTwoArgs(x, x)


class TwoArgValueError(ValueError):
    """A ValueError that pickle cannot rebuild from its args."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}/{code}")


def raise_two_arg_value_error(x: int) -> int:
    raise TwoArgValueError("quota", x)


def busy_work(n: int) -> int:
    """Pure-Python CPU work."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def compress_and_hash(item: tuple[str, bytes]) -> tuple[str, bytes, str, int]:
    """CPU stage of the download -> compute -> save integration chain."""
    import hashlib
    import zlib

    name, data = item
    return name, zlib.compress(data, 6), hashlib.sha256(data).hexdigest(), os.getpid()


def exit_once(item: tuple[str, int, int]) -> int:
    """Kills its worker the first time it sees *crash_at* (a marker file remembers)."""
    marker, value, crash_at = item
    if value == crash_at and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(9)
    return value


class HoldsALock:
    """A picklable-looking callable that cannot be pickled (spawn must fail)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, x: int) -> int:
        return x


class SlowToUnpickle:
    """A stage function whose worker takes a second to start (spawn unpickles it)."""

    def __init__(self) -> None:
        self.tag = "slow"

    def __setstate__(self, state: dict[str, str]) -> None:
        time.sleep(1.0)
        self.__dict__.update(state)

    def __call__(self, x: int) -> int:
        return x
