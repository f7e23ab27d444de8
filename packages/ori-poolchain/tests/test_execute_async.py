"""execute_async: a chain consumed with ``async for`` without blocking the event loop."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import itertools
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import poolchain_workers as workers
import pytest

from ori.errors import OriInvalidStateError, OriValidationError
from ori.poolchain import Failure, PoolChain, PoolChainAsyncRun

START_METHODS = multiprocessing.get_all_start_methods()
# The shutdown tests repeat enough to catch a 1-in-3 hang: (2/3)**8 < 4 %. A
# chain with a process stage repeats less (starting workers takes the time),
# but every test of it runs under several start methods or beside the others.
REPEATS = 8
PROCESS_REPEATS = 3


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run the coroutine function *main* in a fresh event loop."""

    async def wrapper() -> Any:
        return await main()

    return asyncio.run(wrapper())


async def collect(results: PoolChainAsyncRun) -> list[Any]:
    return [result async for result in results]


async def numbers(n: int | None, delay: float = 0.0) -> AsyncIterator[int]:
    """An async generator of 0, 1, ... (forever for None), sleeping *delay* between items."""
    for i in itertools.count() if n is None else range(n):
        if delay:
            await asyncio.sleep(delay)
        yield i


def chain_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ori-poolchain-")]


def assert_nothing_left(seconds: float = 10.0) -> None:
    """No thread or worker process of any run is left (after a short wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not chain_threads() and not multiprocessing.active_children():
            return
        time.sleep(0.01)
    raise AssertionError(f"left behind: {chain_threads()} {multiprocessing.active_children()}")


class Heartbeat:
    """Counts ticks of a task that sleeps 1 ms at a time: a blocked loop shows as a gap."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now
            self.ticks += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# -- results through every kind of stage ---------------------------------------


def test_thread_stages_in_order_from_a_list() -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=3)
        .add_threadpool(workers.double, max_workers=2)
    )

    async def main() -> list[Any]:
        return await collect(chain.execute_async(list(range(500))))

    assert run(main) == [2 * (x + 1) for x in range(500)]
    assert_nothing_left()


@pytest.mark.parametrize("method", START_METHODS)
def test_process_stage_under_every_start_method(method: str) -> None:
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .add_processpool(workers.double, max_workers=2, start_method=method)
    )

    async def main() -> tuple[list[Any], list[Any]]:
        from_list = await collect(chain.execute_async(range(200)))
        from_async = await collect(chain.execute_async(numbers(50)))
        return from_list, from_async

    from_list, from_async = run(main)
    assert from_list == [2 * (x + 1) for x in range(200)]
    assert from_async == [2 * (x + 1) for x in range(50)]
    assert_nothing_left()


def test_asyncpool_stage() -> None:
    chain = (
        PoolChain()
        .add_asyncpool(workers.async_double, max_concurrency=20)
        .add_threadpool(workers.negate)
    )

    async def main() -> list[Any]:
        return await collect(chain.execute_async(numbers(300)))

    assert run(main) == [-2 * x for x in range(300)]
    assert_nothing_left()


def test_operators_flatten_filter_batch() -> None:
    chain = (
        PoolChain()
        .add_threadpool(lambda n: range(n % 4))
        .flatten()
        .filter(lambda x: x != 1)
        .add_threadpool(workers.increment)
        .batch(3)
    )
    expected = chain.execute_eager_single_threaded(range(40))

    async def main() -> tuple[list[Any], list[Any]]:
        from_list = await collect(chain.execute_async(range(40)))
        from_async = await collect(chain.execute_async(numbers(40)))
        return from_list, from_async

    from_list, from_async = run(main)
    assert from_list == expected
    assert from_async == expected
    assert_nothing_left()


def test_operator_first_reads_an_async_source() -> None:
    chain = PoolChain().filter(lambda x: x % 2).add_threadpool(workers.double).batch(4)

    async def main() -> list[Any]:
        return await collect(chain.execute_async(numbers(20, delay=0.001)))

    assert run(main) == [[2, 6, 10, 14], [18, 22, 26, 30], [34, 38]]
    assert_nothing_left()


def test_timed_batch_before_any_stage_with_an_async_source() -> None:
    chain = PoolChain().batch(100, timeout=0.05).add_threadpool(len)

    async def main() -> list[Any]:
        return await collect(chain.execute_async(numbers(6, delay=0.02)))

    counts = run(main)
    assert sum(counts) == 6
    assert_nothing_left()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_unordered_delivers_every_result_once(asynchronous: bool) -> None:
    chain = PoolChain().add_threadpool(workers.sleepy_identity, max_workers=4)

    async def main() -> list[Any]:
        source = numbers(100) if asynchronous else range(100)
        return await collect(chain.execute_async(source, ordered=False))

    assert sorted(run(main)) == list(range(100))
    assert_nothing_left()


# -- error policies and exception types ------------------------------------------


def test_raise_keeps_the_type_and_the_note() -> None:
    chain = PoolChain().add_threadpool(workers.fail_on_three)
    seen: list[Any] = []

    async def main() -> None:
        async for result in chain.execute_async(range(10)):
            seen.append(result)

    with pytest.raises(ValueError) as info:
        run(main)
    assert seen == [0, 1, 2]
    assert any("on input item 3" in note for note in getattr(info.value, "__notes__", []))
    assert_nothing_left()


@pytest.mark.parametrize("method", START_METHODS)
def test_raise_from_a_process_stage_keeps_the_type(method: str) -> None:
    chain = PoolChain().add_processpool(workers.fail_on_three, max_workers=2, start_method=method)

    async def main() -> list[Any]:
        return await collect(chain.execute_async(numbers(10)))

    with pytest.raises(ValueError):
        run(main)
    assert_nothing_left()


def test_skip_and_return_policies() -> None:
    chain = PoolChain().add_threadpool(workers.fail_on_three)

    async def main() -> tuple[list[Any], list[Any]]:
        skipped = await collect(chain.execute_async(range(6), on_error="skip"))
        returned = await collect(chain.execute_async(numbers(6), on_error="return"))
        return skipped, returned

    skipped, returned = run(main)
    assert skipped == [0, 1, 2, 4, 5]
    assert returned[:3] == [0, 1, 2]
    assert returned[4:] == [4, 5]
    failure = returned[3]
    assert isinstance(failure, Failure)
    assert failure.index == 3
    assert isinstance(failure.exception, ValueError)
    assert_nothing_left()


class SourceBroke(Exception):
    pass


@pytest.mark.parametrize("ordered", [True, False])
def test_async_source_exception_comes_after_the_results_before_it(ordered: bool) -> None:
    async def source() -> AsyncIterator[int]:
        for i in range(5):
            yield i
        raise SourceBroke("the feed went away")

    chain = PoolChain().add_threadpool(workers.double)
    seen: list[Any] = []

    async def main() -> None:
        async for result in chain.execute_async(source(), ordered=ordered):
            seen.append(result)

    with pytest.raises(SourceBroke, match="the feed went away"):
        run(main)
    assert sorted(seen) == [0, 2, 4, 6, 8]
    assert_nothing_left()


def test_sync_source_exception_keeps_its_type() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise SourceBroke("sync")

    chain = PoolChain().add_threadpool(workers.double)

    async def main() -> list[Any]:
        return await collect(chain.execute_async(source()))

    with pytest.raises(SourceBroke, match="sync"):
        run(main)
    assert_nothing_left()


# -- never blocking the loop ---------------------------------------------------------


def test_the_loop_runs_while_results_are_awaited() -> None:
    chain = PoolChain().add_threadpool(workers.sleep_for, max_workers=1)

    async def main() -> tuple[list[Any], int]:
        beat = Heartbeat()
        beat.start()
        results = await collect(chain.execute_async([0.05] * 4))
        await beat.stop()
        return results, beat.ticks

    results, ticks = run(main)
    assert results == [0.05] * 4
    # 200 ms of waiting: a loop blocked in next() would not have ticked at all.
    assert ticks > 10
    assert_nothing_left()


def test_a_sync_source_that_blocks_does_not_block_the_loop() -> None:
    gate = threading.Event()

    def source() -> Iterator[int]:
        yield 1
        gate.wait(10)  # released by the consumer, which only runs if the loop does
        yield 2

    chain = PoolChain().add_threadpool(workers.double)

    async def main() -> list[Any]:
        results = chain.execute_async(source())
        first = await results.__anext__()
        asyncio.get_running_loop().call_later(0.02, gate.set)
        return [first, *await collect(results)]

    assert run(main) == [2, 4]
    assert_nothing_left()


def test_a_slow_async_source_streams_each_item() -> None:
    chain = PoolChain().add_threadpool(workers.double)

    async def main() -> list[tuple[int, int]]:
        queue: asyncio.Queue[int | None] = asyncio.Queue()

        async def live() -> AsyncIterator[int]:
            while (item := await queue.get()) is not None:
                yield item

        seen: list[tuple[int, int]] = []
        await queue.put(0)
        async for result in chain.execute_async(live()):
            seen.append((len(seen), result))
            # The next item only exists once this result came back.
            await queue.put(len(seen) if len(seen) < 5 else None)
        return seen

    assert run(main) == [(i, 2 * i) for i in range(5)]
    assert_nothing_left()


def test_items_an_async_source_had_at_once_go_on_when_it_waits() -> None:
    # The pump hands items to the feeder in bulk; a source that yields three
    # items without waiting and then waits for the consumer must still get
    # those three through (a bulk held back until the request is read would
    # never complete here: the request is larger than three).
    chain = PoolChain().add_threadpool(workers.double)

    async def main() -> list[int]:
        three_back = asyncio.Event()

        async def source() -> AsyncIterator[int]:
            yield 0
            yield 1
            yield 2
            await three_back.wait()
            yield 3

        seen: list[int] = []
        async for result in chain.execute_async(source()):
            seen.append(result)
            if len(seen) == 3:
                three_back.set()
        return seen

    for _ in range(REPEATS):
        assert run(main) == [0, 2, 4, 6]
    assert_nothing_left()


@pytest.mark.parametrize("window", [1, 3, 7, None])
def test_an_async_source_read_ahead_in_bulks_keeps_every_item_in_order(window: int | None) -> None:
    # The feeder asks for as much as the window allows and takes slices of
    # what arrived: whole bulks, parts of one, one item at a time at window 1.
    chain = PoolChain().add_threadpool(workers.double, max_workers=2)

    async def main() -> list[int]:
        return await collect(chain.execute_async(numbers(500), max_in_flight=window))

    assert run(main) == [2 * i for i in range(500)]
    assert_nothing_left()


# -- backpressure ---------------------------------------------------------------------


def test_an_infinite_async_source_is_read_only_as_far_as_the_window() -> None:
    read: list[int] = []

    async def endless() -> AsyncIterator[int]:
        for i in itertools.count():
            read.append(i)
            yield i

    chain = PoolChain().add_threadpool(workers.identity, max_workers=2)

    async def main() -> list[Any]:
        taken = []
        async with chain.execute_async(endless(), max_in_flight=8) as results:
            async for result in results:
                taken.append(result)
                if len(taken) == 50:
                    await asyncio.sleep(0.05)  # time for the feeder to read ahead
                    break
            # As for execute_lazy: the items of the batch being handed out
            # count as out already (a batch is at most the window).
            assert len(read) <= 50 + 2 * 8
        return taken

    assert run(main) == list(range(50))
    assert_nothing_left()


# -- closing: break, aclose, async with, cancellation, garbage collection ----------


def three_kind_chain(method: str | None = None) -> PoolChain:
    return (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .add_processpool(workers.double, max_workers=2, start_method=method)
        .add_asyncpool(workers.async_double, max_concurrency=5)
    )


def chain_of(kinds: str) -> PoolChain:
    """A chain of thread and asyncio stages, or of all three kinds ("processes")."""
    if kinds == "processes":
        return three_kind_chain()
    return (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .add_threadpool(workers.double, max_workers=2)
        .add_asyncpool(workers.async_double, max_concurrency=5)
    )


def repeats(kinds: str) -> int:
    return PROCESS_REPEATS if kinds == "processes" else REPEATS


@pytest.mark.parametrize("kinds", ["threads", "processes"])
@pytest.mark.parametrize("asynchronous", [False, True])
def test_break_then_garbage_collection_closes_the_run(asynchronous: bool, kinds: str) -> None:
    closed: list[bool] = []

    async def endless() -> AsyncIterator[int]:
        try:
            for i in itertools.count():
                yield i
        finally:
            closed.append(True)

    for _ in range(repeats(kinds)):
        closed.clear()

        async def main() -> None:
            source = endless() if asynchronous else itertools.count()
            async for result in chain_of(kinds).execute_async(source):
                if result > 40:
                    break
            gc.collect()
            await asyncio.sleep(0.05)  # the pump's cancellation closes the source

        run(main)
        assert_nothing_left()
        assert closed == ([True] if asynchronous else [])


@pytest.mark.parametrize("method", START_METHODS)
def test_aclose_and_async_with_close_everything(method: str) -> None:
    # Twice per start method, each time both ways: 12 closes with processes.
    async def main() -> None:
        for _ in range(2):
            results = three_kind_chain(method).execute_async(numbers(None))
            assert await results.__anext__() == 4
            await results.aclose()
            assert not chain_threads(), chain_threads()
            assert "closed" in repr(results)
            await results.aclose()  # idempotent
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()
            async with three_kind_chain(method).execute_async(range(10**6)) as results:
                async for _ in results:
                    break
            assert not chain_threads(), chain_threads()

    run(main)
    assert_nothing_left()


def test_aclose_while_a_thread_stage_call_runs_does_not_block_the_loop() -> None:
    chain = PoolChain().add_threadpool(workers.sleep_for, max_workers=1)

    async def main() -> float:
        beat = Heartbeat()
        beat.start()
        results = chain.execute_async([0.0, 0.5])
        assert await results.__anext__() == 0.0
        await asyncio.sleep(0.05)  # the second call is running now
        await results.aclose()
        await beat.stop()
        return beat.longest_gap

    assert run(main) < 0.3
    assert_nothing_left()


@pytest.mark.parametrize("kinds", ["threads", "processes"])
@pytest.mark.parametrize("asynchronous", [False, True])
def test_cancelling_the_consuming_task_closes_the_run(asynchronous: bool, kinds: str) -> None:
    closed: list[bool] = []

    async def slow_source() -> AsyncIterator[int]:
        try:
            for i in itertools.count():
                await asyncio.sleep(0.001)
                yield i
        finally:
            closed.append(True)

    chain = chain_of(kinds).add_threadpool(workers.sleepy_identity)

    async def consume() -> None:
        source = slow_source() if asynchronous else itertools.count()
        async for _ in chain.execute_async(source):
            pass

    for _ in range(repeats(kinds)):
        closed.clear()

        async def main() -> None:
            task = asyncio.get_running_loop().create_task(consume())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.02)

        run(main)
        assert_nothing_left()
        assert closed == ([True] if asynchronous else [])


def test_wait_for_timeout_cancels_and_closes() -> None:
    chain = PoolChain().add_threadpool(workers.sleep_for)

    async def main() -> None:
        results = chain.execute_async([0.0, 0.5])
        assert await results.__anext__() == 0.0
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(results.__anext__(), 0.05)

    run(main)
    assert_nothing_left()


def test_a_run_left_open_when_the_loop_ends_is_closed_by_collection() -> None:
    async def main() -> PoolChainAsyncRun:
        results = three_kind_chain().execute_async(numbers(None))
        await results.__anext__()
        return results

    results = run(main)  # asyncio.run cancelled the pump; the run is still open
    del results
    gc.collect()
    assert_nothing_left()


# -- the loop it runs on ----------------------------------------------------------------


def test_two_runs_at_once_on_one_loop() -> None:
    chain = PoolChain().add_threadpool(workers.double)

    async def main() -> list[list[Any]]:
        return list(
            await asyncio.gather(
                collect(chain.execute_async(numbers(100, delay=0.0001))),
                collect(chain.execute_async(range(100))),
            )
        )

    first, second = run(main)
    assert first == second == [2 * x for x in range(100)]
    assert_nothing_left()


def test_a_loop_in_another_thread() -> None:
    chain = PoolChain().add_threadpool(workers.double)
    out: list[Any] = []
    thread = threading.Thread(
        target=lambda: out.append(run(lambda: collect(chain.execute_async(numbers(20)))))
    )
    thread.start()
    thread.join(30)
    assert out == [[2 * x for x in range(20)]]
    assert_nothing_left()


@pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None,
    reason="uvloop publishes no wheel for free-threaded 3.13 (requirements-dev.txt installs it "
    "in every other tox env)",
)
def test_uvloop() -> None:
    import uvloop

    chain = PoolChain().add_threadpool(workers.double)

    async def main() -> list[Any]:
        return await collect(chain.execute_async(numbers(100))) + await collect(
            chain.execute_async(range(3))
        )

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == [2 * x for x in range(100)] + [0, 2, 4]
    finally:
        loop.close()
    assert_nothing_left()


def test_without_a_running_loop_the_call_says_to_use_a_coroutine() -> None:
    chain = PoolChain().add_threadpool(workers.double)
    with pytest.raises(OriInvalidStateError, match="call it from a coroutine"):
        chain.execute_async(range(3))
    assert not chain_threads()


# -- arguments, stats, repr ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("keywords", "match"),
    [
        ({"ordered": "yes"}, "ordered"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_memory": "lots"}, "max_memory"),
        ({"progress": 3}, "progress"),
        ({"on_error": "ignore"}, "on_error"),
    ],
)
def test_bad_arguments_raise_at_call_time(keywords: dict[str, Any], match: str) -> None:
    chain = PoolChain().add_threadpool(workers.double)

    async def main() -> None:
        with pytest.raises(OriValidationError, match=match):
            chain.execute_async(range(3), **keywords)

    run(main)
    # Also outside a loop: the arguments are checked first.
    with pytest.raises(OriValidationError, match=match):
        chain.execute_async(range(3), **keywords)


def test_not_iterable_and_no_stages() -> None:
    async def main() -> None:
        with pytest.raises(OriValidationError, match="or an async iterable"):
            PoolChain().add_threadpool(workers.double).execute_async(3)  # type: ignore[arg-type]
        with pytest.raises(OriValidationError, match="no stages"):
            PoolChain().execute_async(range(3))

    run(main)


def test_stats_and_repr() -> None:
    chain = PoolChain().add_threadpool(workers.double).add_threadpool(workers.increment)

    async def main() -> None:
        results = chain.execute_async(numbers(30))
        assert repr(results).startswith("<PoolChainAsyncRun ori-poolchain-")
        assert "running, 2 stages" in repr(results)
        assert len(await collect(results)) == 30
        assert "closed" in repr(results)
        stats = results.stats
        assert [stage.items_out for stage in stats.stages] == [30, 30]
        assert chain.stats is not None
        assert chain.stats.stages[1].items_out == 30

    run(main)
    assert_nothing_left()
