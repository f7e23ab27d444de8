"""add_asyncpool: coroutines on one event loop thread per run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import poolchain_workers as sw
import poolchain_workers as workers
import pytest
from poolchain_children import ready_child

from ori.errors import OriTimeoutError, OriValidationError
from ori.poolchain import PoolChain

TESTS_DIR = Path(__file__).resolve().parent


class Gauge:
    """Counts coroutines running at once (touched from the loop thread only)."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.cancelled = 0

    async def track(self, coroutine: Any) -> Any:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await coroutine
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.now -= 1


def test_results_in_order_through_a_mixed_chain() -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .add_asyncpool(sw.async_double, max_concurrency=10)
        .add_processpool(workers.negate, max_workers=2)
        .add_asyncpool(sw.async_sleepy, max_concurrency=50)
    )
    assert chain.execute_eager(range(300)) == [-2 * (x + 1) for x in range(300)]
    assert "asyncio(async_double)" in repr(chain)
    sw.wait_for_no_run_threads()


def test_unordered_results_are_complete() -> None:
    async def late_for_small(x: int) -> int:
        await asyncio.sleep(0.05 if x < 5 else 0)
        return x

    chain = PoolChain().add_asyncpool(late_for_small, max_concurrency=20)
    results = chain.execute_eager(range(40), ordered=False)
    assert sorted(results) == list(range(40))
    assert results != list(range(40)), "fast items should overtake slow ones"


def test_thousands_of_concurrent_sleeps_on_one_thread() -> None:
    # Every coroutine waits until all of them have started: the run only
    # finishes if 3000 are in flight at once, and the stage has one thread.
    count = 3000
    started = 0
    threads_seen: set[str] = set()
    all_in: asyncio.Event | None = None

    async def wait_for_everyone(x: int) -> int:
        nonlocal started, all_in
        if all_in is None:
            all_in = asyncio.Event()
        threads_seen.add(threading.current_thread().name)
        started += 1
        if started == count:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 30)
        await asyncio.sleep(0.05)  # and then a real concurrent sleep
        return x

    chain = PoolChain().add_asyncpool(wait_for_everyone, max_concurrency=count)
    with chain.execute_lazy(range(count)) as run:
        first = next(run)
        # One thread for the stage (the run's feeder reads the input besides).
        stage_threads = [name for name in sw.run_threads() if "-stage" in name]
        assert len(stage_threads) == 1, sw.run_threads()
        rest = list(run)
    assert [first, *rest] == list(range(count))
    assert len(threads_seen) == 1
    assert next(iter(threads_seen)).endswith("-asyncio")


def test_max_concurrency_is_a_hard_bound() -> None:
    gauge = Gauge()

    async def work(x: int) -> int:
        return await gauge.track(asyncio.sleep(0.005, result=x))

    chain = PoolChain().add_asyncpool(work, max_concurrency=3)
    assert chain.execute_eager(range(60)) == list(range(60))
    assert gauge.peak == 3


def test_error_keeps_its_type_note_and_traceback_after_earlier_results() -> None:
    async def fail_on_four(x: int) -> int:
        await asyncio.sleep(0)
        if x == 4:
            raise KeyError("four")
        return x

    got: list[int] = []
    with pytest.raises(KeyError) as info:
        sw.collect(PoolChain().add_asyncpool(fail_on_four).execute_lazy(range(100)), got)
    assert got == [0, 1, 2, 3]
    assert "stage 1/1 (asyncio, fail_on_four) on input item 4" in "".join(
        getattr(info.value, "__notes__", [])
    ) + str(info.value.__cause__)
    text = "".join(traceback.format_exception(info.type, info.value, info.tb))
    assert "in fail_on_four" in text
    sw.wait_for_no_run_threads()


def test_synchronous_failure_of_a_lambda_is_an_item_error() -> None:
    with pytest.raises(ZeroDivisionError):
        PoolChain().add_asyncpool(lambda x: sw.async_double(1 // x)).execute_eager([1, 0, 2])


def test_timeout_cancels_the_coroutine_and_reports_the_item() -> None:
    gauge = Gauge()

    async def stuck_on_two(x: int) -> int:
        return await gauge.track(asyncio.sleep(60 if x == 2 else 0, result=x))

    got: list[int] = []
    started = time.monotonic()
    chain = PoolChain().add_asyncpool(stuck_on_two, timeout=0.2)
    with pytest.raises(OriTimeoutError, match=r"input item 2 within its 0\.2 s timeout") as info:
        sw.collect(chain.execute_lazy(range(10)), got)
    assert isinstance(info.value, TimeoutError)
    assert got == [0, 1]
    assert gauge.cancelled >= 1, "the overdue coroutine must be cancelled"
    assert time.monotonic() - started < 30
    sw.wait_for_no_run_threads()


def test_a_coroutine_that_ignores_cancellation_is_reported_and_abandoned() -> None:
    release = threading.Event()

    async def stubborn(x: int) -> int:
        if x == 1:
            while not release.is_set():
                with contextlib.suppress(asyncio.CancelledError):  # badly behaved
                    await asyncio.sleep(0.01)
        return x

    chain = PoolChain().add_asyncpool(stubborn, timeout=0.2)
    try:
        with pytest.raises(OriTimeoutError, match="input item 1"):
            chain.execute_eager(range(5))
    finally:
        release.set()
    sw.wait_for_no_run_threads()


def test_break_on_an_endless_input_cancels_coroutines_and_stops_the_thread() -> None:
    gauge = Gauge()

    async def slow(x: int) -> int:
        return await gauge.track(asyncio.sleep(0.01 if x < 5 else 30, result=x))

    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled = i + 1
            yield i

    for value in PoolChain().add_asyncpool(slow, max_concurrency=50).execute_lazy(endless()):
        if value == 4:
            break
    gc.collect()
    sw.wait_for_no_run_threads()
    assert gauge.cancelled > 0
    assert gauge.now == 0, "every started coroutine ended"
    assert pulled <= 500, "the input is only read max_in_flight ahead"


def test_keyboard_interrupt_in_the_consumer_stops_the_loop() -> None:
    def interrupting() -> Iterator[int]:
        for i in itertools.count():
            if i == 300:
                raise KeyboardInterrupt
            yield i

    chain = PoolChain().add_asyncpool(sw.async_sleepy, max_concurrency=100)
    with pytest.raises(KeyboardInterrupt):
        chain.execute_eager(interrupting())
    sw.wait_for_no_run_threads()


def test_accepts_async_callables_in_every_form() -> None:
    class Scale:
        def __init__(self, factor: int) -> None:
            self.factor = factor

        async def __call__(self, x: int) -> int:
            return x * self.factor

        async def method(self, x: int) -> int:
            return x + self.factor

    async def add(x: int, y: int) -> int:
        return x + y

    chain = (
        PoolChain()
        .add_asyncpool(Scale(3))
        .add_asyncpool(Scale(1).method)
        .add_asyncpool(functools.partial(add, y=10))
        .add_asyncpool(lambda x: asyncio.sleep(0, result=-x))
    )
    assert chain.execute_eager([1, 2]) == [-14, -17]


def test_an_awaitable_that_is_not_a_coroutine_works() -> None:
    def future_of(x: int) -> asyncio.Future[int]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(x * 5)
        return future

    assert PoolChain().add_asyncpool(lambda x: future_of(x)).execute_eager([1, 2]) == [5, 10]


def test_a_lambda_that_returns_no_awaitable_fails_clearly() -> None:
    with pytest.raises(OriValidationError, match=r"not an awaitable.*'async def'"):
        PoolChain().add_asyncpool(lambda x: x * 2).execute_eager([1, 2])
    with pytest.raises(OriValidationError, match="not an awaitable"):
        PoolChain().add_asyncpool(lambda x: x * 2).execute_eager_single_threaded([1, 2])


def test_add_time_validation() -> None:
    async def agen(x: int) -> AsyncIterator[int]:
        yield x

    with pytest.raises(OriValidationError, match=r"async_function must be an async function"):
        PoolChain().add_asyncpool(workers.double)
    with pytest.raises(OriValidationError, match="async generator"):
        PoolChain().add_asyncpool(agen)
    with pytest.raises(OriValidationError, match="async_function must be a callable"):
        PoolChain().add_asyncpool(3)  # type: ignore[arg-type]
    for bad in (0, -1, 2.5, None, "10", True):
        with pytest.raises(OriValidationError, match="max_concurrency must be a positive int"):
            PoolChain().add_asyncpool(sw.async_double, max_concurrency=bad)  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match="timeout must be"):
        PoolChain().add_asyncpool(sw.async_double, timeout=0)


def test_single_threaded_modes_share_one_loop_and_match() -> None:
    loops: list[asyncio.AbstractEventLoop] = []  # kept alive: ids stay distinct

    async def record_loop(x: int) -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return x + 1

    chain = PoolChain().add_asyncpool(record_loop).add_threadpool(workers.double)
    expected = chain.execute_eager(range(20))
    assert chain.execute_eager_single_threaded(range(20)) == expected
    assert list(chain.execute_lazy_single_threaded(range(20))) == expected
    per_execution = [{id(loop) for loop in loops[start : start + 20]} for start in (0, 20, 40)]
    assert [len(ids) for ids in per_execution] == [1, 1, 1], "one loop per execution"
    assert len(set.union(*per_execution)) == 3, "and a new one for each execution"
    assert all(loop.is_closed() for loop in loops)
    assert not sw.run_threads()

    async def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x

    failing = PoolChain().add_asyncpool(fail_on_three)
    with pytest.raises(ValueError) as concurrent_info:
        failing.execute_eager(range(10))
    with pytest.raises(ValueError) as sequential_info:
        failing.execute_eager_single_threaded(range(10))
    notes = [getattr(info.value, "__notes__", None) for info in (concurrent_info, sequential_info)]
    assert notes[0] == notes[1]


CHILD = textwrap.dedent(
    """
    import asyncio, itertools, sys, threading
    sys.path.insert(0, {tests!r})
    from poolchain_children import consume_announcing_ready
    from ori.poolchain import PoolChain

    cancelled = 0

    async def slow(x):
        global cancelled
        try:
            await asyncio.sleep(30 if x % 50 == 49 else 0.01)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return x

    if __name__ == "__main__":
        chain = PoolChain().add_asyncpool(slow, max_concurrency=200).add_threadpool(str)
        try:
            consume_announcing_ready(lambda: chain.execute_lazy(itertools.count()), after=20)
        except KeyboardInterrupt:
            alive = [t.name for t in threading.enumerate() if t.name.startswith("ori-")]
            print("INTERRUPTED", alive, cancelled > 0, flush=True)
            sys.exit(0)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_stops_an_asyncio_chain(tmp_path: Path) -> None:
    script = tmp_path / "async_child.py"
    script.write_text(CHILD.format(tests=str(TESTS_DIR)))
    with ready_child(script) as child:
        os.killpg(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert "INTERRUPTED [] True" in out, out + err
    assert "Traceback" not in err, err


def test_asyncio_is_imported_only_by_chains_that_use_it() -> None:
    # Spawned and forkserver workers import ori.poolchain too: a chain without
    # an asyncio stage should not pay for importing asyncio anywhere.
    code = textwrap.dedent(
        """
        import sys
        import ori.poolchain
        from ori.poolchain import PoolChain

        chain = PoolChain().add_threadpool(abs)
        assert chain.execute_eager([-1, 2]) == [1, 2]
        assert chain.execute_eager_single_threaded([-3]) == [3]
        print("asyncio" in sys.modules)

        async def double(x):
            return 2 * x

        chain.add_asyncpool(double)
        assert chain.execute_eager([1]) == [2]
        print("asyncio" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
