"""Module-level functions that the ori-asyncio tests run in worker processes.

Workers started with spawn or forkserver import these by module name, so they
live in a real module on sys.path (see the root conftest.py).
"""

from __future__ import annotations

import multiprocessing.queues
import os
from typing import Any

from ori.asyncio import _compat, asyncify_process


def cube(x: int) -> int:
    return x * x * x


def worker_pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


@asyncify_process(max_workers=1)
def decorated(x: int, *, offset: int = 0) -> tuple[int, int]:
    """Adds an offset in a worker process."""
    return x + offset, os.getpid()


def sync_in_forked_child() -> None:
    """Runs in a forked child whose parent had a cached loop: make a fresh one, use it."""
    import asyncio

    from ori.asyncio import sync
    from ori.asyncio._loops import current_cached_loop

    inherited = current_cached_loop()

    async def add() -> int:
        await asyncio.sleep(0)
        return 3

    assert sync(add()) == 3
    assert current_cached_loop() is not inherited
    assert inherited is not None
    assert not inherited.is_closed()  # left alone: closing it would hurt the parent


class TwoArgsError(ValueError):
    """A ValueError whose __init__ takes two arguments: pickle cannot rebuild it."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} (code {code})")
        self.code = code


def raise_two_args(what: str, code: int) -> None:
    raise TwoArgsError(what, code)


def exit_or_cube(x: int) -> int:
    """Kills its worker process (os._exit) for a negative x."""
    if x < 0:
        os._exit(5)
    return x * x * x


# --- for test_compat.py: the process-pool details that _compat.py reads ------

_release: Any = None


def keep_release_event(event: Any) -> None:
    """Pool initializer: keeps the event that :func:`pid_once_released` waits for."""
    global _release
    _release = event


def pid_once_released() -> int:
    """Waits until the test sets the initializer's event, so the call cannot end early."""
    _release.wait()
    return os.getpid()


class RecordsBootstrapping:
    """Remembers what ``bootstrapping_worker()`` said while a child process unpickled it."""

    def __init__(self) -> None:
        self.during_unpickling: bool | None = None  # stays None if never unpickled

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.during_unpickling = _compat.bootstrapping_worker()


def report_bootstrapping(
    record: RecordsBootstrapping, results: multiprocessing.queues.SimpleQueue[tuple[Any, ...]]
) -> None:
    """Child process target: what the flag said while starting up, and what it says now."""
    results.put((record.during_unpickling, _compat.bootstrapping_worker()))
