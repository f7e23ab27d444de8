"""Each interpreter detail ``_compat.py`` relies on, checked on this interpreter."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.context
from multiprocessing.process import BaseProcess
from typing import cast

import concurrency_workers as workers

from ori.concurrency import _compat

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
