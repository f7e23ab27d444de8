"""iterate(): async iterators consumed by ordinary for loops, and closed properly."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ori.asyncio import LoopThread, iterate, sync
from ori.errors import OriInvalidStateError, OriValidationError

label: contextvars.ContextVar[str] = contextvars.ContextVar("label", default="unset")


class Tracker:
    """Records what an async generator did, and on which loop."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.loops: set[asyncio.AbstractEventLoop] = set()

    async def numbers(self, n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                await asyncio.sleep(0)
                self.loops.add(asyncio.get_running_loop())
                yield i
        finally:
            await asyncio.sleep(0)  # an await in cleanup must work too
            self.events.append("closed")


def test_consumes_everything_on_one_loop() -> None:
    tracker = Tracker()
    assert list(iterate(tracker.numbers(5))) == [0, 1, 2, 3, 4]
    assert tracker.events == ["closed"]
    assert len(tracker.loops) == 1
    (loop,) = tracker.loops
    assert loop.is_closed()  # the private loop is gone with the iteration


def test_break_closes_the_async_generator_at_once() -> None:
    tracker = Tracker()
    for i in iterate(tracker.numbers(100)):
        if i == 3:
            break
    assert tracker.events == ["closed"]
    (loop,) = tracker.loops
    assert loop.is_closed()


def test_exception_in_the_consumer_closes_it() -> None:
    tracker = Tracker()

    def consume() -> None:
        for i in iterate(tracker.numbers(100)):
            if i == 2:
                raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        consume()
    assert tracker.events == ["closed"]


def test_explicit_close_and_contextlib_closing() -> None:
    tracker = Tracker()
    items = iterate(tracker.numbers(100))
    assert next(items) == 0
    items.close()
    assert tracker.events == ["closed"]

    tracker = Tracker()
    with contextlib.closing(iterate(tracker.numbers(100))) as items:
        assert next(items) == 0
    assert tracker.events == ["closed"]


def test_never_started_iterator_needs_no_loop() -> None:
    tracker = Tracker()
    items = iterate(tracker.numbers(3))
    del items
    gc.collect()
    assert tracker.events == []
    assert tracker.loops == set()


def test_exception_inside_the_generator_keeps_its_type() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise KeyError("inside")

    items = iterate(failing())
    assert next(items) == 1
    with pytest.raises(KeyError, match="inside"):
        next(items)


def test_async_iterator_class_without_aclose() -> None:
    class Countdown:
        def __init__(self, start: int) -> None:
            self.current = start

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> int:
            await asyncio.sleep(0)
            if self.current == 0:
                raise StopAsyncIteration
            self.current -= 1
            return self.current + 1

    assert list(iterate(Countdown(3))) == [3, 2, 1]
    for _ in iterate(Countdown(3)):
        break


def test_with_a_loop_thread() -> None:
    tracker = Tracker()
    with LoopThread() as loop:
        assert list(iterate(tracker.numbers(3), loop)) == [0, 1, 2]
        assert tracker.loops == {loop}
        for _ in iterate(tracker.numbers(10), loop):
            break
        assert tracker.events == ["closed", "closed"]


def test_stream_opened_on_a_loop_thread_is_read_here() -> None:
    async def open_stream() -> asyncio.Queue[int | None]:
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        for i in range(3):
            queue.put_nowait(i)
        queue.put_nowait(None)
        return queue

    async def drain(queue: asyncio.Queue[int | None]) -> AsyncIterator[int]:
        while (item := await queue.get()) is not None:
            yield item

    with LoopThread() as loop:
        queue = sync(open_stream(), loop)
        assert list(iterate(drain(queue), loop)) == [0, 1, 2]


def test_consumed_from_inside_a_running_loop() -> None:
    tracker = Tracker()

    async def main() -> list[int]:
        return list(iterate(tracker.numbers(4)))

    assert asyncio.run(main()) == [0, 1, 2, 3]
    assert tracker.events == ["closed"]
    (loop,) = tracker.loops
    assert loop.is_closed()


def test_closed_early_from_inside_a_running_loop() -> None:
    tracker = Tracker()

    async def main() -> int:
        for i in iterate(tracker.numbers(100)):
            return i
        return -1

    assert asyncio.run(main()) == 0
    assert tracker.events == ["closed"]


def test_handed_between_threads() -> None:
    tracker = Tracker()
    items = iterate(tracker.numbers(4))
    got = [next(items)]

    def take_two() -> None:
        got.append(next(items))
        got.append(next(items))

    thread = threading.Thread(target=take_two)
    thread.start()
    thread.join(30)
    got.extend(items)
    assert got == [0, 1, 2, 3]
    assert len(tracker.loops) == 1


def test_caller_contextvars_are_visible() -> None:
    async def labels() -> AsyncIterator[str]:
        for _ in range(2):
            yield label.get()

    token = label.set("outer")
    try:
        assert list(iterate(labels())) == ["outer", "outer"]
    finally:
        label.reset(token)


def test_feeds_a_blocking_consumer_like_a_pool() -> None:
    import concurrent.futures

    async def urls() -> AsyncIterator[str]:
        for i in range(10):
            await asyncio.sleep(0)
            yield f"item-{i}"

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        assert list(pool.map(str.upper, iterate(urls()))) == [f"ITEM-{i}" for i in range(10)]


def test_refusals() -> None:
    async def agen() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match="call it"):
        iterate(agen)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loop over it directly"):
        iterate([1, 2])  # type: ignore[arg-type]
    future: Any = asyncio.sleep(0)
    with pytest.raises(TypeError, match="sync"):
        iterate(future)
    future.close()
    with pytest.raises(OriValidationError, match="event_loop"):
        iterate(agen(), event_loop=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async iterable"):
        iterate(5)  # type: ignore[arg-type]


def test_bad_aiter() -> None:
    class Broken:
        def __aiter__(self) -> int:
            return 3

    with pytest.raises(TypeError, match="__aiter__"):
        iterate(Broken())  # type: ignore[arg-type]


def test_closed_loop() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    items = iterate(Tracker().numbers(3), loop)
    with pytest.raises(OriInvalidStateError, match="closed"):
        next(items)
