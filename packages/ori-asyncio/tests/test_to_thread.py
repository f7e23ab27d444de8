"""to_thread(), asyncify(), ThreadLimiter and asyncify_process(): blocking code from async code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import multiprocessing
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import asyncio_workers as workers
import pytest

from ori.asyncio import (
    AsyncProcessFunction,
    LoopThread,
    ThreadLimiter,
    asyncify,
    asyncify_process,
    default_thread_limiter,
    sync,
    to_thread,
)
from ori.errors import OriInvalidStateError, OriValidationError

START_METHODS = multiprocessing.get_all_start_methods()
WAIT = 30.0  # bounds that only catch hangs

user: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="nobody")


async def eventually(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Yield to the loop until *condition* holds (fails after *timeout*)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


class Gate:
    """A blocking function whose calls wait for the test to open the gate."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.calls = 0

    def __call__(self, value: int = 0) -> int:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            assert self.open.wait(WAIT), "the test never opened the gate"
            return value
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def pool() -> Generator[concurrent.futures.ThreadPoolExecutor, None, None]:
    with concurrent.futures.ThreadPoolExecutor(8) as executor:
        yield executor


# --- to_thread -----------------------------------------------------------------


def test_to_thread_runs_in_another_thread() -> None:
    def describe(a: int, *, b: int) -> tuple[int, int]:
        return a + b, threading.get_ident()

    async def main() -> tuple[int, int]:
        return await to_thread(describe, 1, b=2)

    total, ident = sync(main())
    assert total == 3
    assert ident != threading.get_ident()


def test_to_thread_copies_contextvars() -> None:
    async def main() -> str:
        user.set("alice")
        return await to_thread(user.get)

    assert sync(main()) == "alice"


def test_to_thread_keeps_exception_types() -> None:
    async def main() -> None:
        await to_thread(workers.fail, "in a thread")

    with pytest.raises(ValueError, match="in a thread"):
        sync(main())


def test_to_thread_holds_a_default_limiter_token_while_running() -> None:
    gate = Gate()
    limiter = default_thread_limiter()
    before = limiter.borrowed

    async def main() -> int:
        call = asyncio.ensure_future(to_thread(gate, 5))
        await eventually(lambda: gate.active == 1)
        assert limiter.borrowed == before + 1
        gate.open.set()
        return await call

    assert sync(main()) == 5
    assert limiter.borrowed == before


def test_to_thread_refuses_async_functions() -> None:
    async def already_async() -> None:
        pass

    async def main() -> None:
        _ = await to_thread(already_async)

    with pytest.raises(OriValidationError, match="await it directly"):
        sync(main())


# --- asyncify -------------------------------------------------------------------


def test_asyncify_bare_keeps_name_doc_and_signature() -> None:
    @asyncify
    def read(path: str, *, size: int = -1) -> str:
        """Reads a file."""
        return f"{path}:{size}:{threading.get_ident()}"

    assert inspect.iscoroutinefunction(read)
    assert read.__name__ == "read"
    assert read.__doc__ == "Reads a file."
    assert list(inspect.signature(read).parameters) == ["path", "size"]
    path, size, ident = sync(read("x", size=3)).split(":")
    assert (path, size) == ("x", "3")
    assert int(ident) != threading.get_ident()


def test_asyncify_limit_caps_concurrent_calls(pool: concurrent.futures.Executor) -> None:
    gate = Gate()
    limited = asyncify(gate, executor=pool, limiter=2)

    async def main() -> list[int]:
        calls = asyncio.gather(*(limited(i) for i in range(6)))
        await eventually(lambda: gate.active == 2)
        await asyncio.sleep(0.05)  # room for a third call, were the cap broken
        assert gate.active == 2
        gate.open.set()
        return await calls

    assert sync(main()) == list(range(6))
    assert gate.most == 2
    assert gate.calls == 6


def test_shared_limiter_caps_across_functions_and_loops(
    pool: concurrent.futures.Executor,
) -> None:
    gate = Gate()
    limiter = ThreadLimiter(1)
    first = asyncify(gate, executor=pool, limiter=limiter)
    second = asyncify(gate, executor=pool, limiter=limiter)

    async def run_both(fn: Callable[[int], Coroutine[Any, Any, int]]) -> list[int]:
        return list(await asyncio.gather(*(fn(i) for i in range(3))))

    with LoopThread() as loop_a, LoopThread() as loop_b:
        a = asyncio.run_coroutine_threadsafe(run_both(first), loop_a)
        b = asyncio.run_coroutine_threadsafe(run_both(second), loop_b)
        deadline = time.monotonic() + WAIT
        while gate.calls == 0:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        gate.open.set()
        assert a.result(WAIT) == [0, 1, 2]
        assert b.result(WAIT) == [0, 1, 2]
    assert gate.most == 1
    assert limiter.borrowed == 0


def test_cancelled_waiter_takes_no_token(pool: concurrent.futures.Executor) -> None:
    gate = Gate()
    limiter = ThreadLimiter(1)
    limited = asyncify(gate, executor=pool, limiter=limiter)

    async def main() -> None:
        holder = asyncio.ensure_future(limited(1))
        await eventually(lambda: gate.active == 1)
        waiter = asyncio.ensure_future(limited(2))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.open.set()
        assert await holder == 1

    sync(main())
    assert limiter.borrowed == 0
    assert gate.calls == 1  # the cancelled call never ran


def test_cancelled_running_call_keeps_its_token_until_the_thread_is_done(
    pool: concurrent.futures.Executor,
) -> None:
    gate = Gate()
    limiter = ThreadLimiter(3)
    limited = asyncify(gate, executor=pool, limiter=limiter)

    async def main() -> None:
        call = asyncio.ensure_future(limited(1))
        await eventually(lambda: gate.active == 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # The function is still running in its thread: the token is still held.
        assert limiter.borrowed == 1
        gate.open.set()
        await eventually(lambda: limiter.borrowed == 0)

    sync(main())


def test_call_cancelled_before_a_thread_took_it_releases_its_token() -> None:
    gate = Gate()
    ran: list[int] = []
    limiter = ThreadLimiter(5)
    with concurrent.futures.ThreadPoolExecutor(1) as single:
        blocker = asyncify(gate, executor=single, limiter=None)
        queued = asyncify(ran.append, executor=single, limiter=limiter)

        async def main() -> None:
            blocking = asyncio.ensure_future(blocker(0))
            await eventually(lambda: gate.active == 1)
            waiting = asyncio.ensure_future(queued(7))
            await eventually(lambda: limiter.borrowed == 1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert limiter.borrowed == 0  # released without waiting for a thread
            gate.open.set()
            await blocking

        sync(main())
    assert ran == []


@pytest.mark.parametrize("seed", range(4))
def test_limiter_under_random_cancellations(seed: int, pool: concurrent.futures.Executor) -> None:
    rng = random.Random(seed)
    limiter = ThreadLimiter(3)
    lock = threading.Lock()
    state = {"active": 0, "most": 0}

    def work(pause: float) -> None:
        with lock:
            state["active"] += 1
            state["most"] = max(state["most"], state["active"])
        time.sleep(pause)
        with lock:
            state["active"] -= 1

    limited = asyncify(work, executor=pool, limiter=limiter)

    async def burst(r: random.Random) -> None:
        tasks = [asyncio.ensure_future(limited(r.random() / 500)) for _ in range(40)]
        for task in tasks:
            if r.random() < 0.3:
                await asyncio.sleep(r.random() / 1000)
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    with LoopThread() as other:
        remote = asyncio.run_coroutine_threadsafe(burst(random.Random(rng.random())), other)
        sync(burst(rng))
        remote.result(WAIT)
    deadline = time.monotonic() + WAIT
    while limiter.borrowed:  # cancelled calls still running finish in their threads
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert state["most"] <= 3
    assert limiter.available == 3


def test_limiter_none_and_default_executor() -> None:
    limiter = default_thread_limiter()
    before = limiter.borrowed
    seen: list[int] = []

    async def main() -> int:
        return await asyncify(lambda: limiter.borrowed, limiter=None)()

    seen.append(sync(main()))
    assert seen == [before]


def test_asyncify_with_options_as_decorator(pool: concurrent.futures.Executor) -> None:
    @asyncify(executor=pool, limiter=ThreadLimiter(2))
    def double(x: int) -> int:
        return 2 * x

    async def main() -> list[int]:
        return list(await asyncio.gather(*(double(i) for i in range(5))))

    assert sync(main()) == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("limiter", [0, -1, True, 2.5, "4"])
def test_bad_limiters(limiter: Any) -> None:
    with pytest.raises(OriValidationError, match="limiter"):
        asyncify(print, limiter=limiter)


def test_bad_executors() -> None:
    with pytest.raises(OriValidationError, match="Executor instance, got the class"):
        asyncify(print, executor=concurrent.futures.ThreadPoolExecutor)  # type: ignore[call-overload]
    with pytest.raises(OriValidationError, match="executor must be"):
        asyncify(print, executor="threads")  # type: ignore[call-overload]


def test_bad_functions() -> None:
    async def already_async() -> None:
        pass

    with pytest.raises(OriValidationError, match="await it directly"):
        asyncify(already_async)
    with pytest.raises(OriValidationError, match="callable"):
        asyncify(42)  # type: ignore[call-overload]


# --- process executors ----------------------------------------------------------


def test_asyncify_with_a_process_pool() -> None:
    with concurrent.futures.ProcessPoolExecutor(1) as processes:
        remote_pid = asyncify(workers.worker_pid, executor=processes)
        cube = asyncify(workers.cube, executor=processes)

        async def main() -> tuple[int, list[int]]:
            return await remote_pid(), list(await asyncio.gather(*(cube(i) for i in range(4))))

        pid, cubes = sync(main())
    assert pid != os.getpid()
    assert cubes == [0, 1, 8, 27]


def test_asyncify_process_pool_refuses_lambdas() -> None:
    with concurrent.futures.ProcessPoolExecutor(1) as processes:
        with pytest.raises(OriValidationError, match="lambda"):
            asyncify(lambda: 1, executor=processes)


def test_asyncify_process_pool_with_a_limiter() -> None:
    limiter = ThreadLimiter(1)
    with concurrent.futures.ProcessPoolExecutor(2) as processes:
        cube = asyncify(workers.cube, executor=processes, limiter=limiter)

        async def main() -> list[int]:
            return list(await asyncio.gather(*(cube(i) for i in range(3))))

        assert sync(main()) == [0, 1, 8]
    assert limiter.borrowed == 0


def test_asyncify_process_runs_in_workers() -> None:
    with asyncify_process(workers.worker_pid, max_workers=1) as remote_pid:
        assert isinstance(remote_pid, AsyncProcessFunction)
        assert sync(remote_pid()) != os.getpid()
        assert "worker_pid" in repr(remote_pid)


def test_asyncify_process_keeps_exception_types() -> None:
    with asyncify_process(workers.fail, max_workers=1) as failing:
        with pytest.raises(ValueError, match="in a process"):
            sync(failing("in a process"))


@pytest.mark.parametrize("method", START_METHODS)
def test_decorated_module_function_under_every_start_method(method: str) -> None:
    decorated = AsyncProcessFunction(
        workers.decorated.function, 1, multiprocessing.get_context(method)
    )
    original = workers.decorated
    workers.decorated = decorated
    try:
        value, pid = sync(decorated(20, offset=22))
    finally:
        workers.decorated = original
        decorated.shutdown()
    assert value == 42
    assert pid != os.getpid()


def test_decorated_function_keeps_metadata_and_shuts_down() -> None:
    assert workers.decorated.__name__ == "decorated"
    assert workers.decorated.__doc__ == "Adds an offset in a worker process."
    try:
        value, _ = sync(workers.decorated(1, offset=1))
        assert value == 2
    finally:
        workers.decorated.shutdown()
        workers.decorated.shutdown()  # idempotent


def test_asyncify_process_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    def nested(x: int) -> int:
        return x

    async def already_async() -> None:
        pass

    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # without the cloudpickle extra
    with pytest.raises(OriValidationError, match="top level") as refused:
        asyncify_process(nested)
    assert "pip install 'ori-asyncio[cloudpickle]'" in str(refused.value)
    with pytest.raises(OriValidationError, match="await it directly"):
        asyncify_process(already_async)
    with pytest.raises(OriValidationError, match="max_workers"):
        asyncify_process(workers.cube, max_workers=0)
    with pytest.raises(OriValidationError, match="mp_context"):
        asyncify_process(workers.cube, mp_context="spawn")  # type: ignore[call-overload]


# --- ThreadLimiter --------------------------------------------------------------


def test_thread_limiter_basics() -> None:
    limiter = ThreadLimiter(2)
    assert (limiter.total, limiter.borrowed, limiter.available) == (2, 0, 2)
    assert limiter.acquire_nowait()
    assert limiter.acquire_nowait()
    assert not limiter.acquire_nowait()
    assert "borrowed=2 total=2" in repr(limiter)
    limiter.release()
    limiter.release()
    with pytest.raises(OriInvalidStateError, match="more often"):
        limiter.release()
    with pytest.raises(OriValidationError, match="total"):
        ThreadLimiter(0)
    with pytest.raises(OriValidationError, match="total"):
        limiter.total = -3


def test_thread_limiter_async_with_and_raising_total() -> None:
    limiter = ThreadLimiter(1)
    order: list[str] = []

    async def hold(name: str, release: asyncio.Event) -> None:
        async with limiter:
            order.append(f"{name} in")
            await release.wait()

    async def main() -> None:
        release = asyncio.Event()
        first = asyncio.ensure_future(hold("first", release))
        second = asyncio.ensure_future(hold("second", release))
        await eventually(lambda: order == ["first in"])
        limiter.total = 2  # makes room for the waiter at once
        await eventually(lambda: order == ["first in", "second in"])
        release.set()
        await asyncio.gather(first, second)

    sync(main())
    assert limiter.borrowed == 0


def test_waiter_cancelled_by_loop_thread_shutdown_gives_up_its_place() -> None:
    limiter = ThreadLimiter(1)
    assert limiter.acquire_nowait()
    with LoopThread() as loop:
        stuck = asyncio.run_coroutine_threadsafe(limiter.acquire(), loop)
        deadline = time.monotonic() + WAIT
        while "waiting=1" not in repr(limiter):
            assert time.monotonic() < deadline
            time.sleep(0.005)
    # Closing the LoopThread cancelled the waiting task; it left the queue.
    with pytest.raises(concurrent.futures.CancelledError):
        stuck.result(WAIT)
    assert "waiting=0" in repr(limiter)
    limiter.release()
    assert limiter.available == 1


def test_waiter_of_a_closed_loop_is_skipped() -> None:
    limiter = ThreadLimiter(1)
    assert limiter.acquire_nowait()
    loop = asyncio.new_event_loop()
    task = loop.create_task(limiter.acquire())
    loop.run_until_complete(_one_pass())
    assert "waiting=1" in repr(limiter)
    loop.close()  # closed with the waiter still parked, never cancelled
    limiter.release()  # cannot hand the token to a closed loop: it stays free
    assert limiter.available == 1
    # The closed loop can never finish the parked task; end its coroutine here.
    coro = task.get_coro()
    assert coro is not None
    coro.close()
    assert "waiting=0" in repr(limiter)


async def _one_pass() -> None:
    await asyncio.sleep(0)
