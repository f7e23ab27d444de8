"""Module-level functions that tests run in worker processes.

Worker processes import these by module name, so they must live in a real
module on sys.path (see the root conftest.py), not in a test file.
"""

from __future__ import annotations

import multiprocessing.queues
import os
import signal
import threading
import time
from typing import Any

from ori.concurrency import _compat, run_in_background_process, run_in_background_thread


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


class TwoArgsError(ValueError):
    """A ValueError whose __init__ takes two arguments: pickle cannot rebuild it."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} (code {code})")
        self.code = code


def raise_two_args(what: str, code: int) -> None:
    raise TwoArgsError(what, code)


class LockedError(KeyError):
    """A KeyError holding a lock, which cannot be pickled at all."""


def raise_holding_a_lock(key: str) -> None:
    exc = LockedError(key)
    exc.lock = threading.Lock()  # type: ignore[attr-defined]
    raise exc


def return_a_lock() -> object:
    return threading.Lock()


def exit_now(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep_then(value: int, seconds: float) -> int:
    time.sleep(seconds)
    return value


def exit_or_square(x: int) -> int:
    if x < 0:
        os._exit(1)
    return x * x


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
