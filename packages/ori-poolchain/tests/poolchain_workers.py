"""Module-level functions that the poolchain tests run in their stages.

Worker processes started with spawn or forkserver, executor processes and dask
workers import these by module name, so they live in a real module on sys.path
(see the root conftest.py). One module for every test file; the one helper with
a side effect at import time has its own (``poolchain_hang_workers.py``).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import threading
import time
from pathlib import Path
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


SLOW_SECONDS = 0.03


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


def parent_and_pid_or_crash(x: int) -> tuple[int, int]:
    """The worker's parent pid and its own; every 20th item (from 7) kills its worker."""
    if x % 20 == 7:
        os._exit(3)
    return os.getppid(), os.getpid()


def _refuse_to_load(reason: str) -> object:
    raise ValueError(reason)


class WontUnpickle:
    """Pickles fine, but raises when it is unpickled (in the worker)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _refuse_to_load, ("this argument cannot be rebuilt",)


def identity_or_len(x: object) -> object:
    return x if isinstance(x, int) else -1


def return_unrebuildable_on_three(x: int) -> object:
    """Returns (not raises) an object the parent cannot unpickle for item 3."""
    return NeedsTwoArgs(x, x) if x == 3 else x


def sum_of_squares_in_a_pool(n: int) -> int:
    """Uses a process pool of its own, as a library called by a stage might."""
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(square, range(n)))


def nested_chain_total(n: int) -> int:
    """Runs a chain with a process stage of its own inside a stage function."""
    from ori.poolchain import PoolChain

    return sum(PoolChain().add_processpool(square, max_workers=2).execute_eager(range(n)))


def start_sleeper(seconds: float) -> int:
    """Starts a command that outlives this call; returns its pid."""
    import subprocess

    return subprocess.Popen(["sleep", str(seconds)]).pid


def start_sleeper_then_hang(seconds: float) -> int:
    start_sleeper(seconds)
    time.sleep(3600)
    return 0


def double_unless_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return 2 * x


async def async_flaky(item: tuple[str, int]) -> int:
    """Async :func:`flaky`: fails the first time it sees each item."""
    folder, x = item
    marker = Path(folder) / f"seen-{x}"
    if not marker.exists():
        marker.touch()
        raise ConnectionError(f"transient failure for {x}")
    await asyncio.sleep(0)
    return x


async def async_sleepy_identity(x: int) -> int:
    """Async :func:`sleepy_identity`."""
    await asyncio.sleep(0.01)
    return x


async def async_square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


async def async_sleep_for(seconds: float) -> float:
    """Async :func:`sleep_for`."""
    await asyncio.sleep(seconds)
    return seconds


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
