"""Stage functions may start processes; nothing they start outlives the worker."""

from __future__ import annotations

import multiprocessing
import os
import time

import poolchain_workers as starts
import pytest

from ori.errors import OriTimeoutError
from ori.poolchain import Failure, PoolChain

START_METHODS = multiprocessing.get_all_start_methods()


def gone(pid: int, within: float = 10.0) -> bool:
    """True once *pid* has exited (init reaps orphans; a zombie counts as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (FileNotFoundError, ProcessLookupError):  # gone, even while being read
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("method", START_METHODS)
def test_a_stage_function_may_use_a_process_pool(method: str) -> None:
    chain = PoolChain().add_processpool(
        starts.sum_of_squares_in_a_pool, max_workers=1, start_method=method
    )
    assert chain.execute_eager([3, 10]) == [sum(x * x for x in range(n)) for n in (3, 10)]


@pytest.mark.parametrize("method", START_METHODS)
def test_a_stage_function_may_run_a_chain_with_a_process_stage(method: str) -> None:
    chain = PoolChain().add_processpool(
        starts.nested_chain_total, max_workers=1, start_method=method
    )
    assert chain.execute_eager([4, 6]) == [sum(x * x for x in range(n)) for n in (4, 6)]


@pytest.mark.skipif(not os.path.exists("/proc"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("method", START_METHODS)
def test_a_process_the_stage_started_dies_with_its_stopped_worker(method: str) -> None:
    chain = PoolChain().add_processpool(starts.start_sleeper, max_workers=1, start_method=method)
    [pid] = chain.execute_eager([60])
    assert gone(pid), f"the stage function's sleep {pid} outlived the run"


@pytest.mark.skipif(not os.path.exists("/proc"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("method", START_METHODS)
def test_a_process_the_stage_started_dies_with_its_killed_worker(method: str) -> None:
    sleepers_before = _sleepers()
    chain = PoolChain(on_error="return").add_processpool(
        starts.start_sleeper_then_hang, max_workers=1, timeout=1, start_method=method
    )
    [failure] = chain.execute_eager([61.5])
    assert isinstance(failure, Failure)
    assert isinstance(failure.exception, OriTimeoutError)
    deadline = time.monotonic() + 10
    while _sleepers() - sleepers_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _sleepers() - sleepers_before, "the killed worker's sleep outlived it"


def _sleepers() -> set[int]:
    """Pids of live `sleep 61.5` processes anywhere on the machine."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if cmdline.read() == b"sleep\0" + b"61.5\0":
                    with open(f"/proc/{entry}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.add(int(entry))
        except OSError:
            continue
    return found
