"""How failures reach the caller: type, note, remote traceback, position, timeouts."""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import threading
import time
import traceback
from pathlib import Path

import poolchain_workers as workers
import pytest

from ori.errors import OriTimeoutError, OriWorkerCrashedError, RemoteTraceback
from ori.poolchain import PoolChain

# Tests in which a worker is killed and replaced while the run's threads are up
# use forkserver: forking a multi-threaded process is deprecated from 3.12 on.
REPLACEABLE = multiprocessing.get_context(
    "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None
)


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


def test_thread_stage_error_keeps_type_and_gets_a_note() -> None:
    chain = PoolChain().add_threadpool(workers.double).add_threadpool(workers.fail_on_three)
    with pytest.raises(ValueError, match="three is not allowed") as info:
        chain.execute_eager([0, 1, 1.5, 2, 4])
    note = notes(info.value)
    assert "stage 2/2 (thread pool, fail_on_three) on input item 2: 3.0" in note
    text = "".join(traceback.format_exception(info.value))
    assert "def fail_on_three" in text or "fail_on_three" in text


def test_process_stage_error_chains_the_remote_traceback() -> None:
    chain = PoolChain().add_processpool(workers.fail_on_three, max_workers=2)
    with pytest.raises(ValueError, match="three is not allowed") as info:
        chain.execute_eager(range(10))
    exc = info.value
    assert "stage 1/1 (process pool, fail_on_three) on input item 3: 3" in notes(exc)
    cause = exc.__cause__
    assert isinstance(cause, RemoteTraceback)  # not a bare OriError: it is the worker's traceback
    assert "Traceback (most recent call last)" in str(cause)
    assert 'raise ValueError(f"three is not allowed' in str(cause)
    assert "poolchain_workers.py" in str(cause)


def test_error_surfaces_at_its_position_in_ordered_mode() -> None:
    release = threading.Event()

    def slow_first(x: int) -> int:
        if x == 0:
            release.wait(30)
        return workers.fail_on_three(x)

    chain = PoolChain().add_threadpool(slow_first, max_workers=4)
    run = chain.execute_lazy(range(6))
    release.set()
    got: list[int] = []
    with pytest.raises(ValueError):
        got.extend(run)
    assert got == [0, 1, 2]
    with pytest.raises(StopIteration):
        next(run)


def test_first_failure_in_input_order_wins() -> None:
    chain = PoolChain().add_processpool(workers.fail_on_negative, max_workers=2, chunksize=1)
    with pytest.raises(ValueError, match=r"negative: -1(\n|$)"):
        chain.execute_eager([0, 1, -1, 2, -2, -3])
    with pytest.raises(ValueError, match=r"negative: -1(\n|$)"):
        chain.execute_eager_single_threaded([0, 1, -1, 2, -2, -3])


def test_unordered_mode_raises_a_failure() -> None:
    chain = PoolChain().add_threadpool(workers.fail_on_multiple_of_seven, max_workers=3)
    with pytest.raises(KeyError):
        chain.execute_eager(range(1, 100), ordered=False)


def test_single_threaded_error_has_the_same_note() -> None:
    chain = PoolChain().add_threadpool(workers.increment).add_processpool(workers.fail_on_three)
    with pytest.raises(ValueError) as concurrent_info:
        chain.execute_eager([0, 1, 2, 5])
    with pytest.raises(ValueError) as single_info:
        chain.execute_eager_single_threaded([0, 1, 2, 5])
    assert notes(concurrent_info.value) == notes(single_info.value)
    assert "stage 2/2 (process pool, fail_on_three) on input item 2: 3" in notes(single_info.value)


def test_long_arguments_are_shortened_in_the_note() -> None:
    chain = PoolChain().add_threadpool(workers.fail_on_negative)
    with pytest.raises(TypeError) as info:
        chain.execute_eager(["x" * 10_000])
    note = notes(info.value)
    assert len(note) < 300
    assert "'xxxx" in note


def test_unpicklable_result_is_reported_as_that_items_error() -> None:
    chain = PoolChain().add_processpool(workers.return_unpicklable, max_workers=1)
    with pytest.raises(TypeError, match="pickle") as info:
        chain.execute_eager([1, 2])
    assert "on input item 0" in notes(info.value)
    assert "cannot be pickled" in str(info.value.__cause__)


def test_unpicklable_argument_is_reported() -> None:
    chain = PoolChain().add_processpool(workers.to_str, max_workers=1)
    with pytest.raises(TypeError, match="pickle") as info:
        chain.execute_eager([1, threading.Lock(), 3])
    assert "on input item 1" in notes(info.value)


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_unpicklable_exception_arrives_as_its_nearest_rebuildable_class(method: str) -> None:
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(workers.NeedsTwoArgs(1, 2)))
    chain = PoolChain().add_processpool(
        workers.raise_unpicklable_exception, max_workers=1, start_method=method
    )
    with pytest.raises(Exception) as caught:  # the class itself is checked below
        chain.execute_eager([4])
    exc = caught.value
    assert type(exc) is Exception  # NeedsTwoArgs(Exception): its nearest class that pickles
    assert str(exc).startswith("poolchain_workers.NeedsTwoArgs: 4-4")
    text = "\n".join([str(exc), notes(exc)])
    assert "cannot be sent to another process" in text
    assert "raise NeedsTwoArgs(x, x)" in text  # the worker's traceback
    assert "on input item 0: 4" in text
    assert isinstance(exc.__cause__, RemoteTraceback)


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_unpicklable_value_error_still_meets_except_value_error(method: str) -> None:
    chain = PoolChain().add_processpool(
        workers.raise_two_arg_value_error, max_workers=1, start_method=method
    )
    with pytest.raises(ValueError, match=r"poolchain_workers\.TwoArgValueError: quota/3"):
        chain.execute_eager([3])


def test_thread_stage_timeout_is_reported_promptly() -> None:
    release = threading.Event()

    def stuck_on_two(x: int) -> int:
        if x == 2:
            release.wait(60)
        return x

    chain = PoolChain().add_threadpool(stuck_on_two, max_workers=2, timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(OriTimeoutError, match="did not finish input item 2 within") as info:
            chain.execute_eager(range(5))
        assert time.monotonic() - started < 20
        assert isinstance(info.value, TimeoutError)
        assert "stage 1/1 (thread pool, stuck_on_two)" in str(info.value)
    finally:
        release.set()


def test_thread_stage_timeout_does_not_hit_fast_items() -> None:
    chain = PoolChain().add_threadpool(workers.sleepy_identity, max_workers=2, timeout=30)
    assert chain.execute_eager(range(20)) == list(range(20))


def test_process_stage_timeout_kills_the_worker() -> None:
    chain = PoolChain().add_processpool(
        workers.hang_on_two, max_workers=2, timeout=0.5, mp_context=REPLACEABLE
    )
    started = time.monotonic()
    with pytest.raises(OriTimeoutError, match="did not finish input item 2 within") as info:
        chain.execute_eager(range(6))
    assert time.monotonic() - started < 30
    assert "was killed and replaced" in str(info.value)
    # The no_leaks fixture checks that the stuck worker is gone.


def test_process_stage_timeout_does_not_count_worker_start_up() -> None:
    # Workers need a second to start; each item is instant. The timeout runs
    # from an item's start, so nothing may time out.
    chain = PoolChain().add_processpool(
        workers.SlowToUnpickle(),
        max_workers=1,
        timeout=0.3,
        mp_context=multiprocessing.get_context("spawn"),
    )
    assert chain.execute_eager(range(5)) == list(range(5))


def test_process_stage_timeout_on_a_chunk_item() -> None:
    chain = PoolChain().add_processpool(
        workers.hang_on_two, max_workers=1, chunksize=5, timeout=0.5
    )
    with pytest.raises(OriTimeoutError, match="input item 2"):
        chain.execute_eager(range(10))


def test_worker_crash_is_reported() -> None:
    chain = PoolChain().add_processpool(workers.exit_on_two, max_workers=2, mp_context=REPLACEABLE)
    with pytest.raises(OriWorkerCrashedError, match="while running input item 2") as info:
        chain.execute_eager(range(6))
    assert "exit code 7" in str(info.value)


@pytest.mark.parametrize("chunksize", [3, 6])
def test_worker_crash_inside_a_chunk_names_the_item(chunksize: int) -> None:
    chain = PoolChain().add_processpool(
        workers.exit_on_two, max_workers=1, chunksize=chunksize, mp_context=REPLACEABLE
    )
    with pytest.raises(OriWorkerCrashedError, match="while running input item 2"):
        chain.execute_eager(range(12))


@pytest.mark.parametrize("crash_at", [1, 8, 14])
def test_a_one_off_worker_death_is_recovered_by_running_the_items_again(
    tmp_path: Path, crash_at: int
) -> None:
    # Without a timeout the worker reports progress per slice of items (here
    # [0, 1), [1, 3), [3, 6) of each chunk of 6); after a death the slice runs
    # again one item at a time, and an item that does not kill a worker on its
    # own is not an error (e.g. an outside SIGKILL). Once chunks prove quick,
    # the next chunk waits in the pipe (prefetch) while one runs: a death in
    # the running chunk must send the waiting one back to the queue
    # (crash_at=8), and a death in the chunk that was prefetched is handled
    # like any other (crash_at=14).
    marker = str(tmp_path / "died-once")
    chain = PoolChain().add_processpool(
        workers.exit_once, max_workers=1, chunksize=6, mp_context=REPLACEABLE
    )
    items = [(marker, x, crash_at) for x in range(18)]
    assert chain.execute_eager(items, max_in_flight=18) == list(range(18))
    assert Path(marker).exists(), "the worker did die once"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="notes are printed from 3.11")
def test_printed_traceback_shows_note_and_worker_frames() -> None:
    chain = PoolChain().add_processpool(workers.fail_on_three, max_workers=1)
    with pytest.raises(ValueError) as info:
        chain.execute_eager([3])
    text = "".join(traceback.format_exception(info.value))
    assert "The above exception was the direct cause" in text
    assert "ori.poolchain: raised in stage 1/1" in text
