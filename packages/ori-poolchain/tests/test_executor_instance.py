"""add(function, executor=...): a user-owned executor, never shut down by Ori."""

from __future__ import annotations

import concurrent.futures
import gc
import itertools
import multiprocessing
import pickle
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import poolchain_workers as sw
import poolchain_workers as workers
import pytest

from ori.errors import OriTimeoutError, OriValidationError
from ori.poolchain import PoolChain


class CountingPool(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that records how many of its tasks were unfinished at once."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers)
        self.lock = threading.Lock()
        self.unfinished = 0
        self.peak = 0
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.unfinished += 1
            self.submitted += 1
            self.peak = max(self.peak, self.unfinished)
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: object) -> None:
        with self.lock:
            self.unfinished -= 1


def test_runs_on_the_users_executor_and_leaves_it_running() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        chain = (
            PoolChain()
            .add(workers.increment, executor=pool)
            .add_processpool(workers.double, max_workers=2)
            .add(lambda x: -x, executor=pool)
        )
        assert chain.execute_eager(range(500)) == [-2 * (x + 1) for x in range(500)]
        assert "ThreadPoolExecutor instance(increment)" in repr(chain)
        assert pool.submit(workers.double, 21).result() == 42, "not shut down by Ori"
        assert chain.execute_eager([1]) == [-4], "and usable for another execution"


def test_at_most_two_tasks_per_worker_are_in_flight() -> None:
    pool = CountingPool(max_workers=2)
    try:
        chain = PoolChain().add(sw.nap, executor=pool, chunksize=1)
        assert chain.execute_eager(range(40)) == list(range(40))
        assert pool.peak == 4
        assert pool.submitted == 40
        pool.peak = 0
        # max_workers: how many of the executor's workers this stage may use.
        chain = PoolChain().add(sw.nap, executor=pool, chunksize=1, max_workers=1)
        assert chain.execute_eager(range(10)) == list(range(10))
        assert pool.peak == 2
    finally:
        pool.shutdown()


def test_fast_items_travel_in_chunks() -> None:
    pool = CountingPool(max_workers=2)
    try:
        assert PoolChain().add(abs, executor=pool).execute_eager(range(20_000)) == list(
            range(20_000)
        )
        assert pool.submitted < 20_000 // 4, "automatic chunks should group fast items"
    finally:
        pool.shutdown()


def test_process_pool_instance_with_a_remote_traceback() -> None:
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        chain = PoolChain().add(sw.square, executor=pool)
        assert chain.execute_eager(range(2000)) == [x * x for x in range(2000)]
        got: list[int] = []
        with pytest.raises(KeyError) as info:
            sw.collect(
                PoolChain().add(sw.fail_on_seven, executor=pool).execute_lazy(range(50)), got
            )
        assert got == list(range(7))
        text = "".join(traceback.format_exception(info.type, info.value, info.tb))
        assert "in fail_on_seven" in text, text  # the worker's traceback, chained
        assert "on input item 7" in text
        assert pool.submit(sw.square, 3).result() == 9


def test_process_pool_instance_refuses_lambdas() -> None:
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        with pytest.raises(OriValidationError, match="lambda"):
            PoolChain().add(lambda x: x, executor=pool)


class Unpicklable:
    def __reduce__(self) -> Any:
        raise pickle.PicklingError("this item cannot be pickled")


def test_a_task_that_fails_as_a_whole_fails_only_its_guilty_item() -> None:
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        items: list[Any] = [*range(5), Unpicklable(), *range(6, 10)]
        got: list[Any] = []
        chain = PoolChain().add(sw.identity, executor=pool, chunksize=4)
        with pytest.raises(pickle.PicklingError, match="cannot be pickled"):
            sw.collect(chain.execute_lazy(items), got)
        assert got == [0, 1, 2, 3, 4]


def test_timeout_reports_the_item_and_abandons_the_call() -> None:
    release = threading.Event()

    def stuck_on_three(x: int) -> int:
        if x == 3:
            release.wait(30)
        return x

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        got: list[int] = []
        try:
            chain = PoolChain().add(stuck_on_three, executor=pool, timeout=0.3)
            with pytest.raises(OriTimeoutError, match=r"input item 3 within its 0\.3 s"):
                sw.collect(chain.execute_lazy(range(20)), got)
        finally:
            release.set()
        assert got == [0, 1, 2]
    sw.wait_for_no_run_threads()


def test_break_cancels_tasks_that_have_not_started() -> None:
    pool = CountingPool(max_workers=2)
    started: list[int] = []

    def slow(x: int) -> int:
        started.append(x)
        time.sleep(0.02)
        return x

    def endless() -> Iterator[int]:
        yield from itertools.count()

    try:
        for value in PoolChain().add(slow, executor=pool, chunksize=1).execute_lazy(endless()):
            if value == 10:
                break
        gc.collect()
        sw.wait_for_no_run_threads()
        deadline = time.monotonic() + 10
        while pool.unfinished and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.unfinished == 0
        count = len(started)
        time.sleep(0.1)
        assert len(started) == count, "no task of the closed run starts later"
        assert count <= 10 + 1 + 4, "only the window of tasks was ever submitted"
    finally:
        pool.shutdown()


def test_an_executor_shut_down_by_its_owner_fails_the_items() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shutdown"):
        PoolChain().add(workers.double, executor=pool).execute_eager(range(5))
    sw.wait_for_no_run_threads()


def test_single_threaded_mode_calls_the_function_here() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        chain = PoolChain().add(workers.double, executor=pool)
        assert chain.execute_eager_single_threaded(range(5)) == [0, 2, 4, 6, 8]


def test_validation() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(OriValidationError, match=r"exactly one of.*got both"):
            PoolChain().add(
                workers.double,
                executor=pool,
                executor_class=concurrent.futures.ThreadPoolExecutor,
            )
        with pytest.raises(OriValidationError, match=r"exactly one of.*got neither"):
            PoolChain().add(workers.double)
        with pytest.raises(OriValidationError, match="got the class ThreadPoolExecutor"):
            PoolChain().add(
                workers.double,
                executor=concurrent.futures.ThreadPoolExecutor,  # type: ignore[arg-type]
            )
        with pytest.raises(OriValidationError, match=r"must be a concurrent\.futures\.Executor"):
            PoolChain().add(workers.double, executor="pool")  # type: ignore[arg-type]
        with pytest.raises(OriValidationError, match="cannot combine timeout with chunksize=5"):
            PoolChain().add(workers.double, executor=pool, timeout=1, chunksize=5)
        with pytest.raises(OriValidationError, match="mp_context does not apply"):
            PoolChain().add(
                workers.double, executor=pool, mp_context=multiprocessing.get_context("spawn")
            )
        with pytest.raises(OriValidationError, match="max_workers must be a positive int"):
            PoolChain().add(workers.double, executor=pool, max_workers=0)
        with pytest.raises(OriValidationError, match="function must be a callable"):
            PoolChain().add(3, executor=pool)  # type: ignore[arg-type]
        # chunksize=1 with a timeout is fine
        assert PoolChain().add(workers.double, executor=pool, timeout=5, chunksize=1)
