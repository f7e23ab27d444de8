"""The loops Ori owns: closed at thread and interpreter exit, left alone after fork."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import subprocess
import sys
import textwrap
import threading
import time

import asyncio_workers as workers
import pytest

from ori.asyncio import sync
from ori.asyncio._loops import current_cached_loop


async def woken_from_another_thread() -> float:
    """Seconds until a call_soon_threadsafe() from another thread reaches this loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[float] = loop.create_future()

    def wake() -> None:
        started = time.monotonic()
        loop.call_soon_threadsafe(lambda: future.set_result(time.monotonic() - started))

    timer = threading.Timer(0.05, wake)
    timer.start()
    try:
        return await asyncio.wait_for(future, 20)
    finally:
        timer.join()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_forked_child_leaves_the_parents_cached_loop_alone() -> None:
    sync(asyncio.sleep(0))
    parent_loop = current_cached_loop()
    child = multiprocessing.get_context("fork").Process(target=workers.sync_in_forked_child)
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert current_cached_loop() is parent_loop
    # The child shares the parent's epoll instance; had it closed its copy of
    # the loop, the parent's self-pipe would be unregistered and wake-ups from
    # other threads would wait for the 20 s timeout. Without a SIGINT guard
    # (a custom handler is installed), nothing else wakes the loop up.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        delay = sync(woken_from_another_thread())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert delay < 10


def test_main_thread_loop_is_closed_at_interpreter_exit() -> None:
    script = textwrap.dedent(
        """
        import atexit, asyncio, sys

        def check():  # registered first, so it runs after ori.asyncio's handler
            loop = current_cached_loop()
            print("closed" if loop is not None and loop.is_closed() else "open")
            sys.stdout.flush()

        atexit.register(check)

        from ori.asyncio import sync
        from ori.asyncio._loops import current_cached_loop

        assert sync(asyncio.sleep(0, result=5)) == 5
        """
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "closed"
    assert "unclosed" not in done.stderr
    assert "Warning" not in done.stderr


def test_worker_thread_loops_are_closed_even_if_a_traceback_keeps_them() -> None:
    kept: list[BaseException] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def fail() -> None:
        loops.append(asyncio.get_running_loop())
        raise KeyError("kept")

    def work() -> None:
        try:
            sync(fail())
        except KeyError as exc:
            kept.append(exc)  # its traceback references sync()'s frames

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert kept
    assert kept[0].__traceback__ is not None
    assert loops[0].is_closed()
