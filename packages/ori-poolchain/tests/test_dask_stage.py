"""add_dask: a stage on a real dask.distributed LocalCluster with worker processes."""

from __future__ import annotations

import concurrent.futures
import contextlib
import copyreg
import gc
import importlib
import importlib.util
import itertools
import os
import signal
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import poolchain_workers as sw
import poolchain_workers as workers
import pytest
from poolchain_children import ready_child

from ori.errors import OriTimeoutError, OriValidationError
from ori.poolchain import PoolChain
from ori.poolchain._compat import gil_enabled

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="dask.distributed (the 'dask' extra) is not installed",
)

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def distributed() -> Iterator[Any]:
    """The distributed module, imported only when a test here runs.

    Importing it installs tblib's exception pickling for the whole process
    (``copyreg``), which would change how other modules' tests see exceptions
    that cannot normally be pickled; the previous table comes back afterwards.
    """
    saved = dict(copyreg.dispatch_table)
    try:
        yield importlib.import_module("distributed")
    finally:
        copyreg.dispatch_table.clear()
        copyreg.dispatch_table.update(saved)


@pytest.fixture(scope="module")
def client(distributed: Any) -> Iterator[Any]:
    """One cluster for the module: two worker processes with one thread each.

    It is created before the first test's leak snapshot (module fixtures come
    first) and closed after the last one. The warm-up makes dask start the
    helper threads it would keep for the life of the process (offload, callback
    threads) here, so that no test is blamed for them; the teardown stops them.
    """
    environ = dict(os.environ)
    with dask_workers_keep_the_gil():
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        )
    restore_environ(environ)
    client = distributed.Client(cluster)
    try:
        done = threading.Event()
        future = client.submit(sw.square, 3, pure=False)
        future.add_done_callback(lambda _: done.set())
        assert future.result() == 9
        assert done.wait(30)
        client.cancel([client.submit(sw.nap, 1, pure=False)])
        del future
        if not gil_enabled():
            gil = client.run(gil_enabled)
            assert all(gil.values()), f"dask workers without the GIL: {gil}"
        yield client
    finally:
        client.close()
        cluster.close()
        stop_dask_helper_threads(distributed)
        restore_environ(environ)


@contextlib.contextmanager
def dask_workers_keep_the_gil() -> Iterator[None]:
    """On free-threaded CPython, start the cluster's worker processes with the GIL on.

    Once in about ten CI runs of py313t an idle dask worker process died of
    SIGSEGV (dask/distributed 2026.11 with tornado, msgpack and psutil running
    without the GIL inside it); its nanny started a replacement, which the leak
    check then blamed on whichever test was running. Ori's side of a dask stage
    (the client, the lanes, the reorder buffer) still runs here with the GIL off,
    which is what these tests are for. Elsewhere this does nothing.
    """
    if gil_enabled():
        yield
        return
    import dask

    # The nanny copies these into os.environ just before it spawns a worker, so
    # they must also be taken back out of this process (restore_environ).
    with dask.config.set({"distributed.nanny.pre-spawn-environ.PYTHON_GIL": "1"}):
        yield


def restore_environ(saved: dict[str, str]) -> None:
    """Undo what dask's nannies wrote into this process's environment.

    A later test's subprocess (or forkserver) must not inherit PYTHON_GIL=1.
    """
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


def stop_dask_helper_threads(distributed: Any) -> None:
    """Stop the two threads dask keeps for the life of the process.

    Left running, they make every later test in the session start its fork
    workers from a multi-threaded process: the fork-after-threads hazard Ori
    avoids, and a DeprecationWarning on 3.12+ that would be blamed on Ori.
    Fresh executors take their place; they start a thread only when used.
    """
    distributed.utils._offload_executor.shutdown(wait=True)
    distributed.utils._offload_executor = concurrent.futures.ThreadPoolExecutor(
        1, thread_name_prefix="Dask-Offload"
    )
    if distributed.Future._cb_executor is not None:
        distributed.Future._cb_executor.shutdown(wait=True)
        distributed.Future._cb_executor = None
    left = [t.name for t in threading.enumerate() if t.name.startswith("Dask-")]
    assert not left, f"dask threads outlived the cluster: {left}"


def cluster_tasks(client: Any) -> int:
    """Tasks the scheduler still knows about."""
    count: int = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    return count


def wait_for_empty_cluster(client: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gc.collect()
        if cluster_tasks(client) == 0 and not client.futures:
            return
        time.sleep(0.05)
    raise AssertionError(f"{cluster_tasks(client)} tasks left on the cluster")


def test_results_in_order_with_lambdas_and_other_stages(client: Any) -> None:
    offset = 5
    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .add_dask(lambda x: x * 10 + offset, client=client)  # a closure: cloudpickle
        .add_asyncpool(sw.async_double)
    )
    assert chain.execute_eager(range(200)) == [2 * ((x + 1) * 10 + offset) for x in range(200)]
    assert "dask(<lambda>)" in repr(chain)
    wait_for_empty_cluster(client)


def test_fast_items_travel_in_chunks_and_slow_ones_alone(client: Any) -> None:
    submitted: list[int] = []
    original = client.submit

    def counting_submit(*args: Any, **kwargs: Any) -> Any:
        submitted.append(len(args[2]))  # run_chunk(function, values, portable)
        return original(*args, **kwargs)

    client.submit = counting_submit
    try:
        assert PoolChain().add_dask(abs, client=client).execute_eager(range(20_000)) == list(
            range(20_000)
        )
        assert len(submitted) < 20_000 // 10, "fast items should go in chunks"
        submitted.clear()
        assert PoolChain().add_dask(sw.nap, client=client, chunksize=1).execute_eager(
            range(10)
        ) == list(range(10))
        assert submitted == [1] * 10
    finally:
        del client.submit
    wait_for_empty_cluster(client)


def test_error_keeps_its_type_with_the_workers_traceback(client: Any) -> None:
    got: list[int] = []
    with pytest.raises(KeyError, match="seven") as info:
        sw.collect(
            PoolChain().add_dask(sw.fail_on_seven, client=client).execute_lazy(range(50)), got
        )
    assert got == list(range(7))
    text = "".join(traceback.format_exception(info.type, info.value, info.tb))
    assert "in fail_on_seven" in text, text  # a frame from the dask worker
    assert "stage 1/1 (dask, fail_on_seven) on input item 7" in text, text
    wait_for_empty_cluster(client)


def test_the_window_of_tasks_is_bounded_on_an_endless_input(client: Any) -> None:
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled = i + 1
            yield i

    peak = 0
    chain = PoolChain().add_dask(sw.nap, client=client, chunksize=1)
    for value in chain.execute_lazy(endless()):
        if value % 10 == 0:
            peak = max(peak, cluster_tasks(client))
        if value == 60:
            break
    gc.collect()
    # Two worker threads: two tasks each; released tasks may linger a moment.
    assert 1 <= peak <= 8, peak
    assert pulled <= 61 + 20, pulled
    sw.wait_for_no_run_threads()
    wait_for_empty_cluster(client)


def test_break_and_close_leave_no_task_on_the_cluster(client: Any) -> None:
    chain = PoolChain().add_dask(sw.nap, client=client, max_workers=2).add_threadpool(str)
    with chain.execute_lazy(itertools.count()) as run:
        assert next(run) == "0"
        assert cluster_tasks(client) > 0
    sw.wait_for_no_run_threads()
    wait_for_empty_cluster(client)


def test_keyboard_interrupt_in_the_consumer_cancels_the_tasks(client: Any) -> None:
    def interrupting() -> Iterator[int]:
        for i in itertools.count():
            if i == 30:
                raise KeyboardInterrupt
            yield i

    with pytest.raises(KeyboardInterrupt):
        PoolChain().add_dask(sw.nap, client=client, chunksize=1).execute_eager(interrupting())
    sw.wait_for_no_run_threads()
    wait_for_empty_cluster(client)


def test_timeout_cancels_the_task_and_reports_the_item(client: Any) -> None:
    got: list[int] = []
    chain = PoolChain().add_dask(sw.stuck_on_three, client=client, timeout=0.5)
    with pytest.raises(OriTimeoutError, match=r"input item 3 within its 0\.5 s") as info:
        sw.collect(chain.execute_lazy(range(10)), got)
    assert got == [0, 1, 2]
    assert "cluster task was cancelled" in str(info.value)
    wait_for_empty_cluster(client)
    time.sleep(2.0)  # let the worker finish the call dask could not interrupt


def test_single_threaded_mode_runs_the_function_here(client: Any) -> None:
    here = os.getpid()
    chain = PoolChain().add_dask(lambda _: os.getpid(), client=client)
    assert chain.execute_eager_single_threaded([1, 2]) == [here, here]
    assert here not in chain.execute_eager([1, 2])


def test_validation(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OriValidationError, match=r"client must be a distributed\.Client"):
        PoolChain().add_dask(workers.double, client="tcp://localhost:8786")
    with pytest.raises(OriValidationError, match="cannot combine timeout with chunksize=3"):
        PoolChain().add_dask(workers.double, client=client, timeout=1, chunksize=3)
    with pytest.raises(OriValidationError, match="max_workers must be a positive int"):
        PoolChain().add_dask(workers.double, client=client, max_workers=0)
    with pytest.raises(OriValidationError, match="function must be a callable"):
        PoolChain().add_dask(None, client=client)  # type: ignore[arg-type]
    with pytest.raises(OriValidationError, match=r"use add_dask|add_dask\(function"):
        PoolChain().add(workers.double, executor=client)
    with pytest.raises(OriValidationError, match=r"add_dask\(function"):
        PoolChain().add(workers.double, executor=client.get_executor())
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(OriValidationError, match=r"pip install 'ori-poolchain\[dask\]'"):
        PoolChain().add_dask(workers.double, client=client)


def test_a_closed_client_is_refused_when_the_run_starts(client: Any, distributed: Any) -> None:
    other = distributed.Client(client.scheduler.address, set_as_default=False)
    chain = PoolChain().add_dask(workers.double, client=other)
    other.close()
    with pytest.raises(OriValidationError, match="client of this stage is closed"):
        chain.execute_eager([1])


CHILD = textwrap.dedent(
    """
    import itertools, sys, threading, time
    sys.path.insert(0, {tests!r})
    import poolchain_workers as sw
    from poolchain_children import consume_announcing_ready
    from distributed import Client, LocalCluster
    from ori.poolchain import PoolChain

    if __name__ == "__main__":
        cluster = LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        )
        client = Client(cluster)
        chain = PoolChain().add_dask(sw.nap, client=client, chunksize=1).add_threadpool(str)
        try:
            consume_announcing_ready(lambda: chain.execute_lazy(itertools.count()), after=10)
        except KeyboardInterrupt:
            alive = [t.name for t in threading.enumerate() if t.name.startswith("ori-")]
            deadline = time.monotonic() + 5  # the scheduler forgets cancelled tasks soon after
            while time.monotonic() < deadline:
                tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
                if not tasks:
                    break
                time.sleep(0.05)
            print("INTERRUPTED", alive, tasks, flush=True)
        finally:
            client.close()
            cluster.close()
    """
)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_stops_a_dask_chain(tmp_path: Path) -> None:
    script = tmp_path / "dask_child.py"
    script.write_text(CHILD.format(tests=str(TESTS_DIR)))
    with ready_child(script) as child:
        os.kill(child.pid, signal.SIGINT)  # the consumer's process only: dask's own
        out, err = child.communicate(timeout=60)  # workers must be shut down by it
    assert child.returncode == 0, err
    assert "INTERRUPTED [] 0" in out, out + err
    # The dask worker processes were in the child's process group: all gone.
    deadline = time.monotonic() + 10
    while group_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(child.pid)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_dask_stage_records_busy_time(client: Any) -> None:
    chain = PoolChain().add_dask(sw.square, client=client, chunksize=2)
    assert chain.execute_eager(range(6)) == [x * x for x in range(6)]
    stats = chain.stats
    assert stats is not None
    assert stats.stages[0].items_out == 6
    assert stats.stages[0].busy_seconds > 0


def test_dask_stage_error_policy_and_retries(client: Any, tmp_path: Path) -> None:
    from ori.poolchain import Failure

    chain = PoolChain().add_dask(workers.fail_on_three, client=client, on_error="return")
    results = chain.execute_eager(range(6))
    assert [r for r in results if not isinstance(r, Failure)] == [0, 1, 2, 4, 5]
    failure = results[3]
    assert isinstance(failure, Failure)
    assert failure.index == 3
    assert isinstance(failure.exception, ValueError)
    skipping = PoolChain(on_error="skip").add_dask(workers.fail_on_three, client=client)
    assert skipping.execute_eager(range(6)) == [0, 1, 2, 4, 5]
    import poolchain_workers as pw

    retried = PoolChain().add_dask(pw.flaky, client=client, chunksize=1, retries=1)
    items = [(str(tmp_path), x) for x in range(4)]
    assert retried.execute_eager(items) == [0, 1, 2, 3]
    assert len(list(tmp_path.iterdir())) == 4  # every item failed once


# -- what every stage kind must do (poolchain_kinds), on the cluster ------------------


def test_every_kind_checks_hold_for_dask(client: Any, tmp_path: Path) -> None:
    import poolchain_kinds as kinds

    kinds.check_error_keeps_its_type_and_names_the_item(kinds.DASK, client)
    kinds.check_policies(kinds.DASK, client)
    kinds.check_retries(kinds.DASK, str(tmp_path), client)
    kinds.check_timeout_reports_the_item(kinds.DASK, client)
    kinds.check_break_closes_the_run(kinds.DASK, client)
    kinds.check_stats_count_every_item(kinds.DASK, client)


def test_operators_around_a_dask_stage(client: Any) -> None:
    chain = (
        PoolChain()
        .add_dask(lambda n: list(range(n)), client=client)
        .flatten()
        .batch(2)
        .add_dask(sum, client=client)
    )
    flat = [x for n in range(6) for x in range(n)]
    want = [sum(flat[k : k + 2]) for k in range(0, len(flat), 2)]
    assert chain.execute_eager(range(6)) == want
    assert chain.execute_eager_single_threaded(range(6)) == want
