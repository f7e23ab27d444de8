"""Functions the operator tests run in worker processes (importable by name)."""

from __future__ import annotations

import os
import signal
from typing import Any


def expand(x: int) -> list[int]:
    """x copies of x (0 expands to nothing)."""
    return [x] * (x % 4)


def plus_one(x: Any) -> Any:
    return x + 1


def total(items: list[int]) -> int:
    return sum(items)


def fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError(f"five: {x}")
    return x


def kill_on_seven(x: int) -> int:
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def is_even(x: int) -> bool:
    return x % 2 == 0


def identity(x: Any) -> Any:
    return x


def spread(x: int) -> list[int]:
    """A random-looking expansion size (0..3) that is the same everywhere."""
    return [x * 10 + k for k in range((x * 7 + 3) % 4)]


def fail_some(x: Any) -> Any:
    """Fails on values whose hash lands on 0 mod 5 (lists: their sum)."""
    value = sum(x) if isinstance(x, list) else x
    if value % 5 == 0:
        raise ValueError(f"unlucky {value}")
    return x


def bump(x: Any) -> Any:
    return [v + 1 for v in x] if isinstance(x, list) else x + 1
