"""Clean shutdown in every case: end, error, break, close, GC, Ctrl-C, exit."""

from __future__ import annotations

import gc
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import poolchain_workers as workers
import pytest
from poolchain_children import ready_child

from ori.poolchain import PoolChain

TESTS_DIR = Path(__file__).resolve().parent


def chain_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ori-poolchain-")]


def wait_until_clean(seconds: float = 10.0) -> None:
    """Assert that no thread or worker process of any run is left."""
    import multiprocessing

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not chain_threads() and not multiprocessing.active_children():
            return
        time.sleep(0.02)
    raise AssertionError(f"left behind: {chain_threads()} {multiprocessing.active_children()}")


def three_stage_chain() -> PoolChain:
    return (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=2)
        .add_processpool(workers.double, max_workers=2)
        .add_threadpool(workers.negate, max_workers=2)
    )


def test_everything_stops_after_normal_completion() -> None:
    assert three_stage_chain().execute_eager(range(100)) == [-2 * (x + 1) for x in range(100)]
    wait_until_clean()


def test_break_then_garbage_collection_stops_everything() -> None:
    for value in three_stage_chain().execute_lazy(itertools.count()):
        if value < -200:
            break
    gc.collect()
    wait_until_clean()


def test_dropping_an_unstarted_run_stops_everything() -> None:
    run = three_stage_chain().execute_lazy(itertools.count())
    assert chain_threads(), "the run starts working at once"
    del run
    wait_until_clean()


def test_close_and_context_manager() -> None:
    run = three_stage_chain().execute_lazy(itertools.count())
    assert next(run) == -2
    run.close()
    run.close()  # idempotent
    assert "closed" in repr(run)
    with pytest.raises(StopIteration):
        next(run)
    wait_until_clean()
    with three_stage_chain().execute_lazy(itertools.count()) as run:
        assert next(run) == -2
    wait_until_clean()


def test_close_from_another_thread_ends_a_blocked_next() -> None:
    release = threading.Event()

    def blocked(x: int) -> int:
        release.wait(30)
        return x

    run = PoolChain().add_threadpool(blocked, max_workers=1).execute_lazy([1, 2])
    closer = threading.Timer(0.2, run.close)
    closer.start()
    try:
        with pytest.raises(StopIteration):
            next(run)
    finally:
        release.set()
        closer.join()
    wait_until_clean()


def test_everything_stops_after_an_error() -> None:
    chain = three_stage_chain().add_processpool(workers.fail_on_negative, max_workers=1)
    with pytest.raises(ValueError):
        chain.execute_eager(range(50))
    wait_until_clean()


def test_keyboard_interrupt_inside_next_stops_everything() -> None:
    # A KeyboardInterrupt raised by the source runs in the consumer's thread,
    # like Ctrl-C while the consumer waits.
    def interrupting() -> Iterator[int]:
        for i in itertools.count():
            if i == 500:
                raise KeyboardInterrupt
            yield i

    with pytest.raises(KeyboardInterrupt):
        three_stage_chain().execute_eager(interrupting())
    wait_until_clean()


CHILD = textwrap.dedent(
    """
    import itertools, multiprocessing, sys, threading
    sys.path.insert(0, {tests!r})
    import poolchain_workers as w
    from poolchain_children import consume_announcing_ready
    from ori.poolchain import PoolChain

    if __name__ == "__main__":
        context = multiprocessing.get_context({method!r}) if {method!r} else None
        chain = (
            PoolChain()
            .add_threadpool(w.sleepy_identity, max_workers=2)
            .add_processpool(w.pid_and_value, max_workers=2, mp_context=context)
            .add_threadpool(w.sleepy_identity, max_workers=2)
        )
        try:
            consume_announcing_ready(lambda: chain.execute_lazy(itertools.count()), after=5)
        except KeyboardInterrupt:
            alive = [t.name for t in threading.enumerate() if t.name.startswith("ori-")]
            print("INTERRUPTED", multiprocessing.active_children(), alive, flush=True)
            sys.exit(0)
    """
)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize(
    ("target", "method"),
    [("process", None), ("group", "spawn"), ("group", "forkserver")],
)
def test_ctrl_c_stops_a_running_chain(tmp_path: Path, target: str, method: str | None) -> None:
    script = tmp_path / "chain_child.py"
    script.write_text(CHILD.format(tests=str(TESTS_DIR), method=method))
    with ready_child(script) as child:  # its own process group, like a shell job
        workers_seen = _descendants(child.pid)
        assert workers_seen, "the chain should have worker processes"
        if target == "process":
            os.kill(child.pid, signal.SIGINT)
        else:  # what a terminal's Ctrl-C does: the whole foreground group
            os.killpg(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert "INTERRUPTED [] []" in out, out + err
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers_seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers_seen if _alive(pid)]


EXIT_CHILD = textwrap.dedent(
    """
    import itertools, sys, time
    sys.path.insert(0, {tests!r})
    import poolchain_workers as w
    from ori.poolchain import PoolChain

    def stuck(x):
        if x == 3:
            time.sleep(600)
        return x

    if __name__ == "__main__":
        chain = PoolChain().add_threadpool(stuck, max_workers=2)
        chain.add_processpool(w.double, max_workers=2)
        RUN = chain.execute_lazy(itertools.count())  # kept alive until exit, never closed
        print(next(RUN), next(RUN), flush=True)
        time.sleep(0.2)
    """
)


def test_interpreter_exit_with_an_open_run_does_not_hang(tmp_path: Path) -> None:
    script = tmp_path / "exit_child.py"
    script.write_text(EXIT_CHILD.format(tests=str(TESTS_DIR)))
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "2"]
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("operators", [False, True])
def test_close_from_another_thread_drops_the_rest_of_the_batch_being_handed_out(
    operators: bool,
) -> None:
    # Chunks of 10 from the process stage: results come out 10 to a batch, so
    # after the first one is taken, nine of its batch are still to be handed out.
    chain = PoolChain().add_processpool(workers.identity, max_workers=2, chunksize=10)
    if operators:
        chain.filter(lambda x: True)  # a trailing operator: the segmented engine
    for _ in range(3):
        run = chain.execute_lazy(range(50))
        assert next(run) == 0
        closer = threading.Thread(target=run.close)
        closer.start()
        closer.join()
        assert list(run) == []  # "results not yet taken are dropped"
    workers.wait_for_no_run_threads()
