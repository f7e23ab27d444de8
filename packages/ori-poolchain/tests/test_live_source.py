"""A live input (a queue, a socket): reading it never holds back finished results.

The feeder thread is the only one that reads the input; the consumer only waits
for results. Each case here blocks the input on an Event while results are
done, and asserts that they are handed out *before* the input is released: a
consumer that read the input itself would wait for the release (the source
records whether its wait timed out, so such a design fails instead of hanging).
"""

from __future__ import annotations

import itertools
import multiprocessing
import queue
import random
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import poolchain_workers as mw
import poolchain_workers as workers
import pytest
from poolchain_children import ready_child

from ori.poolchain import PoolChain

START_METHODS = multiprocessing.get_all_start_methods()
TESTS_DIR = Path(__file__).resolve().parent
RELEASE_SECONDS = 20.0  # a broken design waits this long, then the test fails
REPEATS = 5  # fault tests repeat enough to catch a one-in-three hang


class SourceBroke(Exception):
    """Raised by a test input; must reach the consumer with its own type."""


class GatedSource:
    """Yields *before* items, blocks on an Event, then yields *after* items."""

    def __init__(self, before: int, after: int) -> None:
        self.before = before
        self.after = after
        self.gate = threading.Event()
        self.at_gate = threading.Event()  # the reader is blocked inside the source
        self.timed_out: list[bool] = []
        self.read = 0

    def __iter__(self) -> Iterator[int]:
        for i in range(self.before):
            self.read += 1
            yield i
        self.at_gate.set()
        self.timed_out.append(not self.gate.wait(RELEASE_SECONDS))
        for i in range(self.before, self.before + self.after):
            self.read += 1
            yield i


def feeder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith("-feeder")]


def wait_for_no_feeder(seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while feeder_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not feeder_threads()


@pytest.mark.parametrize("ordered", [True, False])
def test_results_done_are_handed_out_while_the_source_blocks(ordered: bool) -> None:
    source = GatedSource(before=5, after=3)
    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    with chain.execute_lazy(iter(source), ordered=ordered) as run:
        first = [next(run) for _ in range(5)]
        assert not source.gate.is_set()  # all five came while the input blocked
        source.gate.set()
        rest = list(run)
    assert source.timed_out == [False]
    if ordered:
        assert first == [0, 2, 4, 6, 8]
        assert rest == [10, 12, 14]
    else:
        assert sorted(first) == [0, 2, 4, 6, 8]
        assert sorted(rest) == [10, 12, 14]


@pytest.mark.parametrize("method", START_METHODS)
def test_thread_then_process_hands_out_while_the_source_blocks(method: str) -> None:
    for _ in range(2):
        source = GatedSource(before=20, after=5)
        chain = (
            PoolChain()
            .add_threadpool(workers.increment, max_workers=2)
            .add_processpool(workers.double, max_workers=2, start_method=method)
        )
        with chain.execute_lazy(iter(source)) as run:
            first = [next(run) for _ in range(20)]
            assert not source.gate.is_set()
            source.gate.set()
            rest = list(run)
        assert source.timed_out == [False]
        assert first + rest == [2 * (i + 1) for i in range(25)]


def test_a_queue_fed_live_source_streams_each_item_through() -> None:
    # The usual live input: a generator over a queue. Each item's result comes
    # back before the next item is even put in the queue.
    inbox: queue.Queue[int | None] = queue.Queue()

    def live() -> Iterator[int]:
        while (item := inbox.get(timeout=RELEASE_SECONDS)) is not None:
            yield item

    chain = PoolChain().add_threadpool(workers.square, max_workers=2)
    with chain.execute_lazy(live()) as run:
        for n in range(30):
            inbox.put(n)
            assert next(run) == n * n
        inbox.put(None)
        assert list(run) == []


@pytest.mark.parametrize("ordered", [True, False])
def test_source_exception_comes_after_every_result_before_it_with_its_own_type(
    ordered: bool,
) -> None:
    def source() -> Iterator[int]:
        for i in range(50):
            if i % 7 == 0:
                time.sleep(0.001)  # a live input: now and then nothing to read
            yield i
        raise SourceBroke("the input broke after 50 items")

    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=3)
        .add_processpool(workers.double, max_workers=2)
    )
    for _ in range(REPEATS):
        seen: list[int] = []
        with pytest.raises(SourceBroke, match="after 50 items"):
            seen.extend(chain.execute_lazy(source(), ordered=ordered))
        assert sorted(seen) == [2 * (i + 1) for i in range(50)]
        if ordered:
            assert seen == sorted(seen)
        stats = chain.stats
        assert stats is not None
        assert stats.items_in == stats.items_out == 50


def test_a_keyboard_interrupt_raised_by_the_source_ends_the_run_cleanly() -> None:
    def source() -> Iterator[int]:
        yield from range(100)
        raise KeyboardInterrupt

    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    for _ in range(REPEATS):
        seen: list[int] = []
        with pytest.raises(KeyboardInterrupt):
            seen.extend(chain.execute_lazy(source()))
        assert seen == [2 * i for i in range(100)]
        wait_for_no_feeder()


def test_close_while_the_source_blocks_returns_and_the_feeder_leaves_later() -> None:
    # close() cannot interrupt a source blocked inside next(): it returns
    # without waiting for it, the feeder (a daemon thread holding nothing but
    # the source) exits as soon as the source returns, and what the source
    # then yields goes nowhere.
    for _ in range(REPEATS):
        source = GatedSource(before=3, after=100)
        chain = PoolChain().add_threadpool(workers.double, max_workers=2)
        run = chain.execute_lazy(iter(source))
        assert [next(run) for _ in range(3)] == [0, 2, 4]
        # The third result can come out before the feeder is back inside the
        # source (it then sees the close and leaves without reading on).
        assert source.at_gate.wait(RELEASE_SECONDS)
        run.close()
        assert list(run) == []
        assert [t.name for t in feeder_threads()], "the feeder waits inside the source"
        source.gate.set()
        wait_for_no_feeder()
        assert source.timed_out == [False]
        # The rest of the slice it was reading (at most a batch), not the input.
        assert source.read <= 3 + 64


def test_break_while_the_source_blocks_closes_the_run() -> None:
    source = GatedSource(before=4, after=10)
    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    for value in chain.execute_lazy(iter(source)):
        if value == 6:
            break
    stats = chain.stats
    assert stats is not None
    assert not stats.running
    source.gate.set()
    wait_for_no_feeder()


@pytest.mark.parametrize("seed", range(6))
def test_order_is_kept_whatever_the_source_blocks_on(seed: int) -> None:
    # The source stops at random points until the consumer has every result
    # of the items before that point: they must all arrive while it waits, in
    # input order, and the whole run equals the single-threaded one.
    rng = random.Random(seed)
    n = 120
    stops = sorted(rng.sample(range(1, n), 6))
    caught_up = {stop: threading.Event() for stop in stops}
    waited: list[bool] = []

    def source() -> Iterator[int]:
        for i in range(n):
            if i in caught_up:
                waited.append(caught_up[i].wait(RELEASE_SECONDS))
            yield i

    chain = (
        PoolChain()
        .add_threadpool(workers.increment, max_workers=3)
        .add_processpool(workers.double, max_workers=2)
        .add_threadpool(workers.negate, max_workers=2)
    )
    got: list[int] = []
    for value in chain.execute_lazy(source()):
        got.append(value)
        if len(got) in caught_up:
            caught_up[len(got)].set()
    assert got == chain.execute_eager_single_threaded(range(n))
    assert waited == [True] * len(stops)


def test_max_memory_and_a_live_source_together() -> None:
    # Big items from a live input: each result is handed out before the next
    # item exists, and the budget holds.
    inbox: queue.Queue[int | None] = queue.Queue()

    def live() -> Iterator[int]:
        while (item := inbox.get(timeout=RELEASE_SECONDS)) is not None:
            yield item

    chain = PoolChain().add_threadpool(mw.megabyte, max_workers=2).add_threadpool(mw.length)
    with chain.execute_lazy(live(), max_memory="2MiB") as run:
        for n in range(10):
            inbox.put(n)
            assert next(run) == mw.MiB
        inbox.put(None)
        assert list(run) == []
    stats = chain.stats
    assert stats is not None
    assert stats.peak_bytes_in_flight <= 3 * mw.MiB


def test_contextvars_of_the_caller_reach_the_source() -> None:
    import contextvars

    tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")
    tenant.set("acme")
    seen: list[str] = []

    def source() -> Iterator[int]:
        for i in range(3):
            seen.append(tenant.get())
            yield i

    assert PoolChain().add_threadpool(workers.double).execute_eager(source()) == [0, 2, 4]
    assert seen == ["acme"] * 3


def test_an_infinite_live_source_with_processes_stops_on_close() -> None:
    def ticking() -> Iterator[int]:
        for i in itertools.count():
            if i % 50 == 0:
                time.sleep(0.002)
            yield i

    chain = PoolChain().add_processpool(workers.double, max_workers=2)
    for _ in range(REPEATS):
        with chain.execute_lazy(ticking()) as run:
            assert list(itertools.islice(run, 500)) == [2 * i for i in range(500)]
        wait_for_no_feeder()


CTRL_C_CHILD = """
import multiprocessing, sys, threading, time
sys.path.insert(0, {tests!r})
import poolchain_workers as w
from poolchain_children import consume_announcing_ready
from ori.poolchain import PoolChain


def live():
    i = 0
    while True:
        time.sleep(0.01)  # a live input: an item every 10 ms
        yield i
        i += 1


if __name__ == "__main__":
    chain = (
        PoolChain()
        .add_threadpool(w.sleepy_identity, max_workers=2)
        .add_processpool(w.double, max_workers=2, start_method={method!r})
    )
    try:
        consume_announcing_ready(lambda: chain.execute_lazy(live()), after=5)
    except KeyboardInterrupt:
        # The feeder leaves once the input yields again (within 10 ms).
        deadline = time.monotonic() + 10
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        print("INTERRUPTED", multiprocessing.active_children(), left, flush=True)
        sys.exit(0)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("method", START_METHODS)
def test_ctrl_c_with_a_live_source_leaves_nothing_behind(method: str, tmp_path: Path) -> None:
    script = tmp_path / "live_child.py"
    script.write_text(textwrap.dedent(CTRL_C_CHILD).format(tests=str(TESTS_DIR), method=method))
    for _ in range(3):
        with ready_child(script) as child:
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.strip() == "INTERRUPTED [] []", out + err


@pytest.mark.parametrize(
    "data", [list(range(300)), tuple(range(300)), range(300), dict.fromkeys(range(300))]
)
def test_an_input_in_memory_is_read_within_the_bounds(data: object) -> None:
    # It cannot block: the consumer reads it as room appears, the feeder thread
    # fills in while nobody consumes; the bounds apply all the same.
    chain = PoolChain().add_threadpool(workers.double, max_workers=2)
    with chain.execute_lazy(data, max_in_flight=20) as run:  # type: ignore[arg-type]
        first = next(run)
        stats = run.stats
        assert stats.items_in - stats.items_out <= 20
        rest = list(run)
    assert [first, *rest] == [2 * i for i in range(300)]


def test_an_input_in_memory_that_breaks_raises_after_the_results_before_it() -> None:
    data = dict.fromkeys(range(5))

    def grow(x: int) -> int:
        data[100 + x] = None  # changes the dict while the run reads it
        return x

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="changed size"):
        seen.extend(PoolChain().add_threadpool(grow, max_workers=1).execute_lazy(data))
    assert seen == sorted(seen)  # in input order, those read before it broke
