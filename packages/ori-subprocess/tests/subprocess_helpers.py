"""Helpers shared by the ori-subprocess tests (unique module name: the root
conftest puts every tests/ folder on sys.path)."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

# This machine exports PYTHONUNBUFFERED=1; children that should buffer like a
# normal program writing to a pipe get an environment without it.
BUFFERED_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

# Generous bounds that only catch hangs.
HANG = 30.0


def py(code: str, *args: str) -> list[str]:
    """A command running *code* (dedented) in a fresh Python interpreter."""
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def process_gone(pid: int) -> bool:
    """True if *pid* no longer runs (gone, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone, even while being read
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")


def wait_until(predicate: Callable[[], bool], timeout: float = HANG) -> bool:
    """Poll *predicate* until it is true or *timeout* passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.02)
    return True


class Recorder:
    """Collects lines from both streams and checks that callbacks never overlap."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads: set[int] = set()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.threads.add(threading.get_ident())

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def stdout(self, line: str) -> None:
        self._enter()
        try:
            self.out.append(line)
        finally:
            self._leave()

    def stderr(self, line: str) -> None:
        self._enter()
        try:
            self.err.append(line)
        finally:
            self._leave()
