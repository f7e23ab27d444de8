"""Module-level functions for the byte-budget and live-source tests' process stages.

Worker processes started with spawn or forkserver import these by module name,
so they live in a real module on sys.path (see the root conftest.py).
"""

from __future__ import annotations

from typing import Any

MiB = 1 << 20


def same(value: Any) -> Any:
    return value


def megabyte(_: object) -> bytes:
    """A 1 MiB item, whatever came in: a stage that makes items bigger."""
    return bytes(MiB)


def length(value: bytes) -> int:
    return len(value)


def tagged(n: int) -> tuple[int, bytes]:
    """A record with a large field: (n, 1 MiB of payload)."""
    return n, bytes(MiB)
