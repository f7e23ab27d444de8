"""Each interpreter detail ``_compat.py`` relies on, checked on this interpreter."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import importlib
import multiprocessing
import multiprocessing.context
import signal
import sys
from collections.abc import AsyncGenerator, Coroutine
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, cast

import asyncio_workers as workers
import pytest

from ori.asyncio import _compat

# --- process pools: the same tests in ori-asyncio and ori-concurrency ---------


def test_pool_processes_and_manager_thread_as_a_done_callback_sees_them(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    release = start_method_context.Event()
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=1,
        mp_context=start_method_context,
        initializer=workers.keep_release_event,
        initargs=(release,),
    )
    seen: list[tuple[bool, set[int]]] = []

    def look(_: concurrent.futures.Future[int]) -> None:
        processes = _compat.pool_processes(pool)
        assert all(isinstance(process, BaseProcess) for process in processes)
        seen.append((_compat.in_pool_manager_thread(pool), {p.pid for p in processes}))

    try:
        future = pool.submit(workers.pid_once_released)
        # The worker waits for the event: the callback can only run in the
        # pool's management thread, when the result arrives.
        future.add_done_callback(look)
        assert not _compat.in_pool_manager_thread(pool)
        release.set()
        pid = future.result()
    finally:
        pool.shutdown(wait=True)
    assert seen == [(True, {pid})]
    assert _compat.pool_processes(pool) == []  # shutdown() let go of them


def test_pool_details_of_an_object_without_them_give_the_fallback() -> None:
    bare = cast("concurrent.futures.ProcessPoolExecutor", object())
    assert _compat.pool_processes(bare) == []
    assert not _compat.in_pool_manager_thread(bare)


def test_bootstrapping_worker_is_true_only_while_a_child_starts_up(
    start_method_context: multiprocessing.context.BaseContext,
) -> None:
    results = start_method_context.SimpleQueue()
    child = start_method_context.Process(
        target=workers.report_bootstrapping, args=(workers.RecordsBootstrapping(), results)
    )
    child.start()
    child.join()
    assert child.exitcode == 0
    during_unpickling, while_running = results.get()
    results.close()
    # Under fork nothing is unpickled (None); spawn and forkserver children
    # unpickle their process object while the flag is set.
    forked = start_method_context.get_start_method() == "fork"
    assert during_unpickling is (None if forked else True)
    assert while_running is False
    assert _compat.bootstrapping_worker() is False


# --- asyncio and signals: ori-asyncio only ------------------------------------


def test_running_loop_is_asyncios_own_and_agrees_with_the_fallback() -> None:
    assert _compat.running_loop is asyncio._get_running_loop
    assert _compat.running_loop() is None
    assert _compat._running_loop_or_none() is None

    async def both() -> tuple[object, object, object]:
        return (
            _compat.running_loop(),
            _compat._running_loop_or_none(),
            asyncio.get_running_loop(),
        )

    loop = asyncio.new_event_loop()
    try:
        seen = loop.run_until_complete(both())
    finally:
        loop.close()
    assert seen == (loop, loop, loop)


def test_c_signal_functions_switch_the_handler_python_sees() -> None:
    c_signal = importlib.import_module("_signal")
    assert _compat.getsignal is c_signal.getsignal
    assert _compat.setsignal is c_signal.signal

    def handler(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("never delivered")

    before = signal.getsignal(signal.SIGINT)
    previous = _compat.setsignal(signal.SIGINT, handler)
    try:
        assert previous is before
        assert _compat.getsignal(signal.SIGINT) is handler
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        assert _compat.setsignal(signal.SIGINT, previous) is handler
    assert signal.getsignal(signal.SIGINT) is before


def test_other_handlers_are_not_asyncio_runners() -> None:
    assert not _compat.is_asyncio_runner_sigint_handler(signal.default_int_handler)
    assert not _compat.is_asyncio_runner_sigint_handler(functools.partial(print, end=""))
    assert not _compat.is_asyncio_runner_sigint_handler(None)


@pytest.mark.skipif(
    sys.version_info >= (3, 11),
    reason="from 3.11 asyncio.run() installs asyncio.Runner's handler: tested below",
)
def test_asyncio_run_installs_no_handler_before_3_11() -> None:
    async def handler_inside() -> object:
        return signal.getsignal(signal.SIGINT)

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    handler = asyncio.run(handler_inside())
    assert handler is signal.default_int_handler
    assert not _compat.is_asyncio_runner_sigint_handler(handler)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="no asyncio.Runner before 3.11")
def test_asyncio_runners_handler_is_recognised_and_cancels_the_main_task() -> None:
    seen: list[bool] = []

    async def main() -> None:
        handler = signal.getsignal(signal.SIGINT)
        seen.append(_compat.is_asyncio_runner_sigint_handler(handler))
        assert callable(handler)
        handler(signal.SIGINT, None)  # what Ori's guard relays on a first Ctrl-C
        await asyncio.sleep(3600)  # cancelled by the handler

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert seen == [True]


def test_nothing_queued_follows_the_ready_queue() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert _compat.nothing_queued(loop)
        loop.call_soon(lambda: None)
        assert not _compat.nothing_queued(loop)
        loop.stop()
        loop.run_forever()  # one pass runs it
        assert _compat.nothing_queued(loop)
    finally:
        loop.close()
    assert not _compat.nothing_queued(cast("asyncio.AbstractEventLoop", object()))


async def _count_up() -> AsyncGenerator[int, None]:
    yield 1
    yield 2


async def _first_item(agen: AsyncGenerator[int, None]) -> int:
    # Inside the loop, so that the loop's first-iteration hook sees *agen*.
    return await agen.__anext__()


def test_take_open_async_generators_empties_the_loops_set_and_leaves_it_usable() -> None:
    loop = asyncio.new_event_loop()
    try:
        first = _count_up()
        assert loop.run_until_complete(_first_item(first)) == 1
        assert _compat.take_open_async_generators(loop) == [first]
        assert _compat.take_open_async_generators(loop) == []
        second = _count_up()
        assert loop.run_until_complete(_first_item(second)) == 1  # still accepted
        assert _compat.take_open_async_generators(loop) == [second]
        loop.run_until_complete(first.aclose())
        loop.run_until_complete(second.aclose())
    finally:
        loop.close()
    assert _compat.take_open_async_generators(cast("asyncio.AbstractEventLoop", object())) == []


def test_the_task_that_closes_a_dropped_async_generator_is_recognised() -> None:
    loop = asyncio.new_event_loop()
    closed: list[bool] = []

    async def tracked() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def plain() -> None:
        pass

    try:
        dropped = tracked()
        assert loop.run_until_complete(_first_item(dropped)) == 1
        del dropped  # its finalizer queues create_task(agen.aclose())
        gc.collect()
        loop.stop()
        loop.run_forever()  # one pass creates that task
        closing = list(asyncio.all_tasks(loop))
        other = loop.create_task(plain())
        assert [_compat.finalizes_an_async_generator(task) for task in closing] == [True]
        assert not _compat.finalizes_an_async_generator(other)
        loop.run_until_complete(asyncio.gather(*closing, other))
    finally:
        loop.close()
    assert closed == [True]


def _error_of(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> BaseException:
    with pytest.raises(RuntimeError) as info:
        loop.run_until_complete(coro)
    return info.value


def test_wrong_loop_errors_are_recognised_by_their_text() -> None:
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    event = asyncio.Event()

    async def bind_event_to_this_loop() -> None:
        waiting = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        waiting.cancel()

    async def await_future(future: asyncio.Future[None]) -> None:
        await future

    try:
        foreign_future = _error_of(second, await_future(first.create_future()))
        first.run_until_complete(bind_event_to_this_loop())
        foreign_event = _error_of(second, event.wait())
    finally:
        first.close()
        second.close()
    assert "attached to a different loop" in str(foreign_future)
    assert "bound to a different event loop" in str(foreign_event)
    assert _compat.is_wrong_loop_error(foreign_future)
    assert _compat.is_wrong_loop_error(foreign_event)
    assert not _compat.is_wrong_loop_error(RuntimeError("something else went wrong"))
    assert not _compat.is_wrong_loop_error(ValueError("a different loop"))


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_process_pools_tell_their_start_method(method: str) -> None:
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        assert _compat.executor_start_method(pool) == method
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as threads:
        assert _compat.executor_start_method(threads) is None


def test_every_task_of_a_loop_goes_through_its_task_factory() -> None:
    # Public API, not a detail: but sync() skips the search for leftover tasks
    # when its loop's task factory saw none start, so every way of starting a
    # task must reach the factory, with keywords asyncio.Task accepts.
    loop = asyncio.new_event_loop()
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    async def nothing() -> None:
        pass

    async def start_tasks() -> None:
        await loop.create_task(nothing(), name="named")
        await asyncio.ensure_future(nothing())
        await asyncio.gather(nothing())
        if sys.version_info >= (3, 11):
            async with asyncio.TaskGroup() as group:
                group.create_task(nothing(), name="in a group")

    loop.set_task_factory(factory)
    try:
        loop.run_until_complete(start_tasks())
    finally:
        loop.close()
    expected = 5 if sys.version_info >= (3, 11) else 4  # start_tasks() itself is one
    assert len(made) == expected
    assert made[1].get_name() == "named"
    assert asyncio.all_tasks(loop) == set()
