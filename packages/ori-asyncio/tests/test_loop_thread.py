"""LoopThread: one loop kept alive in a background thread, reused across sync() calls."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import inspect
import threading
import weakref

import pytest

from ori.asyncio import LoopThread, sync
from ori.errors import OriInvalidStateError


async def running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_context_manager_gives_the_running_loop_and_joins_on_exit() -> None:
    loop_thread = LoopThread(name="test-loop-thread")
    with loop_thread as loop:
        assert loop.is_running()
        assert loop_thread.running
        assert loop_thread.loop is loop
        names = [t.name for t in threading.enumerate()]
        assert "test-loop-thread" in names
        assert sync(running_loop(), loop) is loop
    assert loop.is_closed()
    assert not loop_thread.running
    assert "test-loop-thread" not in [t.name for t in threading.enumerate()]


def test_loop_bound_resources_are_reused_across_calls() -> None:
    class Pool:
        """Stands in for a connection pool: usable only on the loop that made it."""

        def __init__(self) -> None:
            self.lock = asyncio.Lock()
            self.queue: asyncio.Queue[int] = asyncio.Queue()
            self.loop = asyncio.get_running_loop()
            self.uses = 0

        async def use(self) -> int:
            assert asyncio.get_running_loop() is self.loop
            async with self.lock:
                await self.queue.put(self.uses)
                self.uses += 1
                return await self.queue.get()

    async def open_pool() -> Pool:
        return Pool()

    with LoopThread() as loop:
        pool = sync(open_pool(), loop)
        assert [sync(pool.use(), loop) for _ in range(5)] == [0, 1, 2, 3, 4]


def test_many_threads_submit_at_once() -> None:
    async def square(x: int) -> int:
        await asyncio.sleep(0)
        return x * x

    with LoopThread() as loop, concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda x: sync(square(x), loop), range(100)))
    assert results == [x * x for x in range(100)]


def test_run_method() -> None:
    with LoopThread() as loop:
        pass
    loop_thread = LoopThread()
    try:
        loop = loop_thread.start()
        assert loop_thread.run(running_loop()) is loop
        assert loop_thread.start() is loop  # idempotent
    finally:
        loop_thread.close()


def test_close_is_idempotent_and_final() -> None:
    loop_thread = LoopThread()
    loop_thread.start()
    loop_thread.close()
    loop_thread.close()
    with pytest.raises(OriInvalidStateError, match="runs once"):
        loop_thread.start()
    with pytest.raises(OriInvalidStateError, match="closed"):
        _ = loop_thread.loop
    coro = running_loop()
    with pytest.raises(OriInvalidStateError, match="closed"):
        loop_thread.run(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_not_started() -> None:
    loop_thread = LoopThread()
    assert "not started" in repr(loop_thread)
    with pytest.raises(OriInvalidStateError, match="not started"):
        _ = loop_thread.loop
    loop_thread.close()  # closing an unstarted one is fine


def test_close_from_many_threads_at_once() -> None:
    loop_thread = LoopThread()
    loop = loop_thread.start()
    barrier = threading.Barrier(4)

    def close() -> None:
        barrier.wait(10)
        loop_thread.close()

    threads = [threading.Thread(target=close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert loop.is_closed()


def test_close_from_its_own_thread_is_refused() -> None:
    loop_thread = LoopThread()
    loop = loop_thread.start()

    async def close_self() -> None:
        loop_thread.close()

    try:
        with pytest.raises(OriInvalidStateError, match="its own loop thread"):
            sync(close_self(), loop)
        assert loop_thread.running  # the refused close() changed nothing
    finally:
        loop_thread.close()


def test_close_cancels_leftover_tasks_and_runs_their_cleanup() -> None:
    cleaned = threading.Event()

    async def background() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            cleaned.set()

    async def start_background() -> None:
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)

    with LoopThread() as loop:
        sync(start_background(), loop)
        assert not cleaned.is_set()
    assert cleaned.is_set()


def test_close_shuts_down_the_default_executor() -> None:
    async def in_executor() -> str:
        return await asyncio.to_thread(lambda: threading.current_thread().name)

    with LoopThread() as loop:
        assert sync(in_executor(), loop) != threading.current_thread().name
    # No executor thread survives the LoopThread (the leak fixture checks too).
    assert not [t for t in threading.enumerate() if t.name.startswith("asyncio")]


def test_garbage_collected_loop_thread_stops() -> None:
    loop_thread = LoopThread()
    loop = loop_thread.start()
    ref = weakref.ref(loop_thread)
    del loop_thread
    gc.collect()
    assert ref() is None
    assert loop.is_closed()  # the finaliser stopped and joined the thread


def test_system_exit_in_a_task_does_not_kill_the_loop_thread() -> None:
    async def leave() -> None:
        raise SystemExit(4)

    with LoopThread() as loop:
        with pytest.raises(SystemExit):
            sync(leave(), loop)
        assert sync(running_loop(), loop) is loop


def test_repr() -> None:
    loop_thread = LoopThread(name="named")
    with loop_thread:
        assert repr(loop_thread) == "<LoopThread named running>"
    assert repr(loop_thread) == "<LoopThread named closed>"
