"""sync() and syncify(): every route an awaitable can take, and every refusal."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import sys
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

import pytest

import ori.asyncio
from ori.asyncio import LoopThread, sync, syncify, to_thread
from ori.asyncio._loops import current_cached_loop
from ori.errors import OriInvalidStateError, OriValidationError

T = TypeVar("T")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


class CustomError(Exception):
    pass


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


async def where() -> tuple[int, asyncio.AbstractEventLoop]:
    """The thread and loop an awaitable runs on."""
    return threading.get_ident(), asyncio.get_running_loop()


async def read_request_id() -> str:
    await asyncio.sleep(0)
    return request_id.get()


async def fail() -> None:
    await asyncio.sleep(0)
    raise CustomError("from the coroutine")


def in_thread(fn: Callable[[], T]) -> T:
    """Call *fn* in a fresh thread, join it, return its result or raise its exception."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(("ok", fn()))
        except BaseException as exc:
            box.append(("err", exc))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    kind, value = box[0]
    if kind == "err":
        raise value
    return value  # type: ignore[no-any-return]


def test_all_matches_public_names() -> None:
    public = {n for n in dir(ori.asyncio) if not n.startswith("_")}
    assert set(ori.asyncio.__all__) == public
    for name in ori.asyncio.__all__:
        obj = getattr(ori.asyncio, name)
        if callable(obj):
            assert obj.__module__ == "ori.asyncio", name


def test_reference_example() -> None:
    async def your_function(arg1: int, arg2: int) -> int:
        return arg1 + arg2

    assert sync(your_function(1, 2)) == 3


# --- no loop running in this thread: the cached loop --------------------------


def test_main_thread_twice_in_a_row_reuses_one_loop() -> None:
    ident1, loop1 = sync(where())
    ident2, loop2 = sync(where())
    assert ident1 == ident2 == threading.get_ident()
    assert loop1 is loop2
    assert not loop1.is_running()
    assert not loop1.is_closed()
    assert asyncio._get_running_loop() is None


def test_awaitable_that_suspends_many_times() -> None:
    async def count() -> int:
        total = 0
        for i in range(50):
            await asyncio.sleep(0)
            total += i
        await asyncio.sleep(0.01)
        return total

    assert sync(count()) == sum(range(50))


def test_after_asyncio_run_and_before_it() -> None:
    assert asyncio.run(add(1, 1)) == 2
    assert sync(add(2, 2)) == 4
    assert sync(add(3, 3)) == 6
    assert asyncio.run(add(4, 4)) == 8
    assert sync(add(5, 5)) == 10


def test_worker_thread_gets_its_own_loop_closed_when_the_thread_ends() -> None:
    def work() -> tuple[int, asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
        ident, loop = sync(where())
        _, again = sync(where())
        return ident, loop, again

    ident, loop, again = in_thread(work)
    assert ident != threading.get_ident()
    assert loop is again
    assert loop.is_closed()  # the thread ended, so its cached loop was closed


def test_worker_threads_in_a_pool() -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: sync(add(i, i)), range(40)))
    assert results == [2 * i for i in range(40)]


def test_cached_loop_is_not_the_threads_current_loop() -> None:
    def work() -> None:
        sync(add(1, 1))
        assert current_cached_loop() is not None
        # A thread that never called set_event_loop has no current loop, and
        # sync() must not have given it one.
        with pytest.raises(RuntimeError, match="no current event loop"):
            asyncio.get_event_loop()

    in_thread(work)


def test_asyncio_run_inside_worker_after_sync() -> None:
    def work() -> int:
        sync(add(1, 1))
        return asyncio.run(add(20, 22))

    assert in_thread(work) == 42


def test_leftover_tasks_are_cancelled_and_their_cleanup_runs() -> None:
    events: list[str] = []

    async def background() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            events.append("background cleanup")

    async def main() -> str:
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)
        return "main done"

    assert sync(main()) == "main done"
    assert events == ["background cleanup"]
    loop = current_cached_loop()
    assert loop is not None
    assert not asyncio.all_tasks(loop)


def test_open_async_generators_are_closed_after_the_call() -> None:
    events: list[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            events.append("closed")

    holder: list[Any] = []

    async def main() -> int:
        agen = numbers()
        holder.append(agen)  # keep it alive past the call
        return await agen.__anext__()

    assert sync(main()) == 0
    assert events == ["closed"]


class _Connection:
    """An async context manager whose exit needs the loop (it awaits)."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def __aenter__(self) -> _Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        self.events.append("connection closed")


def _rows(events: list[str]) -> AsyncIterator[int]:
    async def rows() -> AsyncIterator[int]:
        async with _Connection(events):
            try:
                for i in range(10):
                    yield i
            finally:
                await asyncio.sleep(0)
                events.append("generator finally")

    return rows()


def _first_row(events: list[str]) -> Coroutine[Any, Any, int]:
    async def first_row() -> int:
        async for row in _rows(events):
            return row  # abandons the generator; its finalizer queues aclose()
        raise AssertionError("no rows")

    return first_row()


def _leaves_a_task_reading_rows(events: list[str]) -> Coroutine[Any, Any, str]:
    async def reader() -> None:
        async for _ in _rows(events):
            await asyncio.sleep(60)

    async def main() -> str:
        asyncio.get_running_loop().create_task(reader())
        await asyncio.sleep(0.01)
        return "main done"

    return main()


CLEANED = ["generator finally", "connection closed"]


@pytest.mark.parametrize("where", ["main thread", "worker thread", "inside a running loop"])
def test_abandoned_async_generator_is_finalized_before_sync_returns(where: str) -> None:
    # asyncio.run() finalizes such generators before it returns; so must sync(),
    # or their cleanup waits for the next call (and never runs in a worker thread).
    events: list[str] = []

    def call() -> int:
        return sync(_first_row(events))

    if where == "main thread":
        assert call() == 0
    elif where == "worker thread":
        assert in_thread(call) == 0
    else:

        async def outer() -> int:
            return call()

        assert asyncio.run(outer()) == 0
    assert events == CLEANED


@pytest.mark.parametrize("where", ["main thread", "worker thread"])
def test_leftover_task_is_cancelled_and_its_generator_finalized(where: str) -> None:
    events: list[str] = []

    def call() -> str:
        result = sync(_leaves_a_task_reading_rows(events))
        loop = current_cached_loop()
        assert loop is not None
        assert not asyncio.all_tasks(loop)
        return result

    assert (call() if where == "main thread" else in_thread(call)) == "main done"
    assert events == CLEANED


def test_default_executor_threads_are_joined_after_the_call() -> None:
    async def main() -> threading.Thread:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, threading.current_thread)

    before = set(threading.enumerate())
    worker = sync(main())
    assert isinstance(worker, threading.Thread)
    assert not worker.is_alive()  # joined before sync() returned
    assert set(threading.enumerate()) == before
    # The loop can still use its default executor in later calls.
    assert sync(asyncio.to_thread(lambda: 7)) == 7


def test_to_thread_inside_sync() -> None:
    async def main() -> str:
        return await to_thread(request_id.get)

    token = request_id.set("via to_thread")
    try:
        assert sync(main()) == "via to_thread"
    finally:
        request_id.reset(token)


# --- a loop running in this thread: helper thread --------------------------


def test_inside_running_loop_runs_on_a_separate_loop_and_thread() -> None:
    async def outer() -> tuple[tuple[int, asyncio.AbstractEventLoop], asyncio.AbstractEventLoop]:
        return sync(where()), asyncio.get_running_loop()

    (ident, inner_loop), outer_loop = asyncio.run(outer())
    assert ident != threading.get_ident()
    assert inner_loop is not outer_loop
    assert inner_loop.is_closed()  # the helper's loop is shut down with the helper


def test_nested_sync_async_sync() -> None:
    async def innermost() -> str:
        await asyncio.sleep(0)
        return "innermost"

    def blocking_middle() -> str:
        return sync(innermost())

    async def middle() -> str:
        return blocking_middle() + " via middle"

    def blocking_outer() -> str:
        return sync(middle())

    async def top() -> str:
        return blocking_outer() + " via top"

    assert sync(top()) == "innermost via middle via top"
    assert asyncio.run(top()) == "innermost via middle via top"


def test_future_of_the_running_loop_is_refused_not_hung() -> None:
    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        with pytest.raises(OriInvalidStateError, match="deadlock"):
            sync(future)
        future.cancel()

    asyncio.run(main())


def test_task_of_the_running_loop_is_refused_and_left_alone() -> None:
    async def main() -> int:
        task = asyncio.get_running_loop().create_task(add(1, 2))
        with pytest.raises(OriInvalidStateError, match="deadlock"):
            sync(task)
        return await task

    assert asyncio.run(main()) == 3


def test_object_bound_to_the_outer_loop_gives_a_clear_error() -> None:
    async def main() -> None:
        outer_future = asyncio.get_running_loop().create_future()

        async def wait_for_outer() -> object:
            return await outer_future

        with pytest.raises(RuntimeError, match="different loop") as info:
            sync(wait_for_outer())
        if sys.version_info >= (3, 11):
            assert "helper thread" in "".join(getattr(info.value, "__notes__", []))
        outer_future.cancel()

    asyncio.run(main())


# --- explicit loops ------------------------------------------------------------


def test_explicit_loop_running_in_another_thread() -> None:
    with LoopThread() as loop:
        ident, used = sync(where(), loop)
        assert used is loop
        assert ident != threading.get_ident()
        assert sync(add(1, 2), loop) == 3


def test_explicit_loop_run_by_a_plain_thread() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        _, used = sync(where(), loop)
        assert used is loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_explicit_loop_running_in_this_thread_is_refused() -> None:
    async def main() -> None:
        coro = add(1, 2)
        with pytest.raises(OriInvalidStateError, match="deadlock"):
            sync(coro, asyncio.get_running_loop())
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED

    asyncio.run(main())


def test_explicit_idle_loop_runs_here_and_stays_open() -> None:
    loop = asyncio.new_event_loop()
    try:
        progressed: list[int] = []

        async def other() -> None:
            for i in range(3):
                progressed.append(i)
                await asyncio.sleep(0)

        background = loop.create_task(other())
        ident, used = sync(where(), loop)
        assert used is loop
        assert ident == threading.get_ident()
        assert sync(add(3, 4), loop) == 7
        assert progressed  # the loop's own task ran meanwhile
        assert not loop.is_closed()
        loop.run_until_complete(background)
    finally:
        loop.close()


def test_explicit_idle_loop_from_inside_another_running_loop() -> None:
    loop = asyncio.new_event_loop()
    try:

        async def main() -> tuple[int, asyncio.AbstractEventLoop]:
            return sync(where(), loop)

        ident, used = asyncio.run(main())
        assert used is loop
        assert ident != threading.get_ident()
        assert not loop.is_closed()
    finally:
        loop.close()


def test_closed_loop_is_refused_and_coroutine_closed() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    coro = add(1, 2)
    with pytest.raises(OriInvalidStateError, match="closed"):
        sync(coro, loop)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_closed_loop_thread_is_refused() -> None:
    with LoopThread() as loop:
        pass
    coro = add(1, 2)
    with pytest.raises(OriInvalidStateError, match="closed"):
        sync(coro, loop)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_event_loop_of_wrong_type() -> None:
    coro = add(1, 2)
    with pytest.raises(OriValidationError, match="event_loop must be an asyncio event loop"):
        sync(coro, "loop")  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_loop_closed_while_waiting_raises_instead_of_hanging() -> None:
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run_then_close() -> None:
        loop.call_soon(started.set)
        loop.run_forever()
        # Stopped with our task still pending: close without running it.
        loop.close()

    thread = threading.Thread(target=run_then_close)
    thread.start()
    started.wait(30)

    async def forever() -> None:
        loop.stop()
        await asyncio.Event().wait()

    try:
        with pytest.raises(OriInvalidStateError, match="closed before"):
            sync(forever(), loop)
    finally:
        thread.join(30)
    gc.collect()


# --- awaitables of every kind -------------------------------------------------


def test_asyncio_future_and_task() -> None:
    with LoopThread() as loop:
        future = asyncio.run_coroutine_threadsafe(add(2, 3), loop)
        assert future.result(30) == 5
        task_future: Any = sync(_make_task(add(4, 5)), loop)
        assert sync(task_future) == 9  # runs on the task's own loop
        assert sync(task_future, loop) == 9


async def _make_task(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    return asyncio.get_running_loop().create_task(coro)


def test_future_with_a_different_event_loop_is_refused() -> None:
    with LoopThread() as loop_a, LoopThread() as loop_b:
        task = sync(_make_task(asyncio.sleep(0)), loop_a)
        with pytest.raises(OriValidationError, match="belongs to"):
            sync(task, loop_b)
        sync(task)


def test_future_of_an_idle_loop_runs_that_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(add(10, 1))
        assert sync(task) == 11
    finally:
        loop.close()


def test_done_future_returns_at_once() -> None:
    loop = asyncio.new_event_loop()
    future: asyncio.Future[int] = loop.create_future()
    future.set_result(5)
    loop.close()
    assert sync(future) == 5


def test_object_with_dunder_await() -> None:
    class Answer:
        def __await__(self) -> Generator[Any, None, int]:
            yield from asyncio.sleep(0).__await__()
            return 42

    assert sync(Answer()) == 42
    with LoopThread() as loop:
        assert sync(Answer(), loop) == 42


def test_generator_based_coroutine() -> None:
    @types.coroutine
    def legacy() -> Generator[Any, None, str]:
        yield from asyncio.sleep(0).__await__()
        return "legacy"

    assert sync(legacy()) == "legacy"


# --- refusals -----------------------------------------------------------------


def test_async_function_not_called() -> None:
    with pytest.raises(TypeError, match=r"call it to get a coroutine: sync\(add\(\.\.\.\)\)"):
        sync(add)  # type: ignore[arg-type]


def test_async_generator_points_to_iterate() -> None:
    async def agen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="iterate"):
        sync(agen)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="iterate"):
        sync(agen())


def test_concurrent_future_points_to_result() -> None:
    import concurrent.futures

    with pytest.raises(TypeError, match=r"\.result\(\)"):
        sync(concurrent.futures.Future())  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, 3, "text", [1], print])
def test_non_awaitables(value: object) -> None:
    with pytest.raises(TypeError, match="needs an awaitable"):
        sync(value)  # type: ignore[arg-type]


# --- contextvars and exceptions ------------------------------------------------


@pytest.fixture
def request_context() -> Generator[None, None, None]:
    token = request_id.set("abc-123")
    yield
    request_id.reset(token)


def _modes() -> list[str]:
    return ["cached", "helper", "loop-thread", "idle-loop", "worker-thread"]


def run_in_mode(mode: str, make: Callable[[], Awaitable[T]]) -> T:
    """Run the awaitable *make()* returns through sync() along the route *mode*."""
    if mode == "cached":
        return sync(make())
    if mode == "helper":

        async def outer() -> T:
            return sync(make())

        return asyncio.run(outer())
    if mode == "loop-thread":
        with LoopThread() as loop:
            return sync(make(), loop)
    if mode == "idle-loop":
        loop = asyncio.new_event_loop()
        try:
            return sync(make(), loop)
        finally:
            loop.close()
    if mode == "worker-thread":
        context = contextvars.copy_context()
        return in_thread(lambda: context.run(sync, make()))
    raise AssertionError(mode)


@pytest.mark.usefixtures("request_context")
@pytest.mark.parametrize("mode", _modes())
def test_contextvars_are_visible_inside(mode: str) -> None:
    assert run_in_mode(mode, read_request_id) == "abc-123"


@pytest.mark.usefixtures("request_context")
@pytest.mark.parametrize("mode", _modes())
def test_contextvar_changes_inside_do_not_leak_out(mode: str) -> None:
    async def change() -> str:
        request_id.set("changed inside")
        return request_id.get()

    assert run_in_mode(mode, change) == "changed inside"
    assert request_id.get() == "abc-123"


@pytest.mark.parametrize("mode", _modes())
def test_exceptions_keep_their_type(mode: str) -> None:
    with pytest.raises(CustomError, match="from the coroutine"):
        run_in_mode(mode, fail)


@pytest.mark.parametrize("mode", _modes())
def test_cancellation_inside_is_cancelled_error(mode: str) -> None:
    async def cancel_self() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        run_in_mode(mode, cancel_self)


def test_errors_do_not_poison_the_cached_loop() -> None:
    with pytest.raises(CustomError):
        sync(fail())
    with pytest.raises(ZeroDivisionError):
        sync(_divide_by_zero())
    assert sync(add(1, 1)) == 2


async def _divide_by_zero() -> float:
    return 1 / 0


def test_system_exit_propagates() -> None:
    async def leave() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit) as info:
        sync(leave())
    assert info.value.code == 3
    assert sync(add(1, 1)) == 2


def test_loop_stop_inside_is_reported() -> None:
    async def stop_loop() -> None:
        await asyncio.sleep(0.01)  # past sync()'s first, non-blocking passes
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0.05)

    with pytest.raises(OriInvalidStateError, match="stopped before"):
        sync(stop_loop())
    assert sync(add(1, 1)) == 2


# --- syncify ------------------------------------------------------------------


def test_syncify_keeps_signature_and_runs() -> None:
    @syncify
    async def greet(name: str, *, punctuation: str = "!") -> str:
        """Say hello."""
        await asyncio.sleep(0)
        return f"hello {name}{punctuation}"

    assert greet("ori") == "hello ori!"
    assert greet("ori", punctuation="?") == "hello ori?"
    assert greet.__name__ == "greet"
    assert greet.__doc__ == "Say hello."
    assert list(inspect.signature(greet).parameters) == ["name", "punctuation"]
    assert not inspect.iscoroutinefunction(greet)


def test_syncify_with_a_loop_thread() -> None:
    with LoopThread() as loop:

        @syncify(event_loop=loop)
        async def loop_used() -> asyncio.AbstractEventLoop:
            return asyncio.get_running_loop()

        assert loop_used() is loop


def test_syncify_refusals() -> None:
    coro = add(1, 2)
    with pytest.raises(OriValidationError, match="not the result of calling it"):
        syncify(coro)  # type: ignore[call-overload]
    coro.close()

    async def agen() -> Any:
        yield 1

    with pytest.raises(OriValidationError, match="iterate"):
        syncify(agen)
    with pytest.raises(OriValidationError, match="event_loop"):
        syncify(add, event_loop=42)  # type: ignore[call-overload]


def test_syncify_of_a_plain_function_returning_non_awaitable() -> None:
    def not_async() -> int:
        return 5

    wrapped: Callable[[], int] = syncify(not_async)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs an awaitable"):
        wrapped()
