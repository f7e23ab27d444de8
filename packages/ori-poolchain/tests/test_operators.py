"""flatten(), filter() and batch(): semantics, failures, closing, every stage kind."""

from __future__ import annotations

import itertools
import multiprocessing
import queue
import threading
from collections.abc import Iterator
from typing import Any

import poolchain_operator_workers as ow
import pytest
from poolchain_kinds import Kind

from ori.errors import OriValidationError
from ori.poolchain import Failure, PoolChain

METHODS = multiprocessing.get_all_start_methods()


def test_flatten_filter_batch_in_order() -> None:
    chain = (
        PoolChain()
        .add_threadpool(ow.expand)
        .flatten()
        .filter(ow.is_even)
        .batch(3)
        .add_threadpool(ow.total)
    )
    expected = chain.execute_eager_single_threaded(range(40))
    flat = [x for i in range(40) for x in [i] * (i % 4) if x % 2 == 0]
    assert expected == [sum(flat[k : k + 3]) for k in range(0, len(flat), 3)]
    assert chain.execute_eager(range(40)) == expected
    # Unordered, a batch holds consecutive items in completion order, so its
    # members (and sums) may differ from the ordered run's; every element
    # still goes into exactly one batch, and only the last may be short.
    unordered = chain.execute_eager(range(40), ordered=False)
    assert len(unordered) == len(expected)
    assert sum(unordered) == sum(expected)
    batches = (
        PoolChain()
        .add_threadpool(ow.expand)
        .flatten()
        .filter(ow.is_even)
        .batch(3)
        .execute_eager(range(40), ordered=False)
    )
    assert sorted(x for batch in batches for x in batch) == sorted(flat)
    assert all(len(batch) == 3 for batch in batches[:-1])
    assert 1 <= len(batches[-1]) <= 3


def test_operators_first_and_last() -> None:
    chain = PoolChain().flatten().add_threadpool(ow.plus_one).batch(2)
    assert chain.execute_eager([[1, 2], [], [3]]) == [[2, 3], [4]]
    assert chain.execute_eager_single_threaded([[1, 2], [], [3]]) == [[2, 3], [4]]
    assert PoolChain().add_threadpool(ow.plus_one).batch(2).flatten().execute_eager(range(5)) == [
        1,
        2,
        3,
        4,
        5,
    ]


def test_unordered_delivers_every_element_once() -> None:
    chain = (
        PoolChain().add_threadpool(ow.expand, max_workers=4).flatten().add_threadpool(ow.plus_one)
    )
    got = chain.execute_eager(range(300), ordered=False)
    assert sorted(got) == sorted(x + 1 for i in range(300) for x in [i] * (i % 4))


def test_streams_an_infinite_input_and_break_closes() -> None:
    chain = PoolChain().add_threadpool(ow.expand).flatten().add_threadpool(ow.plus_one)
    with chain.execute_lazy(itertools.count()) as run:
        first = list(itertools.islice(run, 10))
    assert first == [2, 3, 3, 4, 4, 4, 6, 7, 7, 8]
    run = chain.execute_lazy(itertools.count())
    assert next(run) == 2
    del run  # garbage collection closes every segment (the leak check sees it)


def test_a_lazy_expansion_streams() -> None:
    def endless(x: int) -> Iterator[int]:
        return itertools.count(x)

    chain = PoolChain().add_threadpool(endless).flatten().add_threadpool(ow.plus_one)
    with chain.execute_lazy([10]) as run:
        assert list(itertools.islice(run, 5)) == [11, 12, 13, 14, 15]


def test_not_iterable_is_a_failure_naming_flatten() -> None:
    chain = PoolChain().add_threadpool(ow.identity).flatten()
    with pytest.raises(TypeError, match=r"flatten\(\) after stage 1/1") as info:
        chain.execute_eager([[1], 2])
    assert "on input item 1" in "\n".join(getattr(info.value, "__notes__", []))
    for results in (
        chain.execute_eager([[1], 2, [3]], on_error="return"),
        chain.execute_eager_single_threaded([[1], 2, [3]], on_error="return"),
    ):
        assert results[0] == 1
        assert results[2] == 3
        failure = results[1]
        assert isinstance(failure, Failure)
        assert (failure.index, failure.item) == (1, 2)
        assert failure.stage == "flatten() after stage 1/1"
    assert chain.execute_eager([[1], 2, [3]], on_error="skip") == [1, 3]
    stats = chain.stats
    assert stats is not None
    assert stats.items_skipped == 1


def test_predicate_exception_is_a_failure_of_that_item() -> None:
    def picky(x: int) -> bool:
        if x == 3:
            raise KeyError(x)
        return True

    chain = PoolChain().filter(picky).add_threadpool(ow.plus_one)
    with pytest.raises(KeyError):
        chain.execute_eager(range(5))
    results = chain.execute_eager(range(5), on_error="return")
    assert results[:3] == [1, 2, 3]
    assert results[4] == 5
    assert isinstance(results[3], Failure)
    assert results[3].index == 3
    assert results[3].stage == "filter(picky) on the input items"


def test_failures_name_the_original_input_and_pass_later_stages() -> None:
    seen: list[Any] = []

    def record(x: Any) -> Any:
        seen.append(x)
        return x

    chain = (
        PoolChain()
        .add_threadpool(ow.expand)
        .flatten()
        .add_threadpool(ow.fail_on_five)
        .add_threadpool(record)
    )
    for results in (
        chain.execute_eager(range(10), on_error="return"),
        chain.execute_eager_single_threaded(range(10), on_error="return"),
    ):
        failures = [r for r in results if isinstance(r, Failure)]
        assert [f.index for f in failures] == [5]  # input item 5 expanded to [5]
        assert failures[0].stage.startswith("stage 2/3")
        assert not any(isinstance(x, Failure) for x in seen)
    with pytest.raises(ValueError, match="five") as info:
        chain.execute_eager(range(10))
    assert "stage 2/3" in "\n".join(info.value.__notes__)
    assert "on input item 5" in "\n".join(info.value.__notes__)


def test_raise_keeps_order_after_earlier_results() -> None:
    chain = PoolChain().add_threadpool(ow.fail_on_five).flatten()
    run = chain.execute_lazy([[1], [2, 3], 5, [4]])
    assert [next(run), next(run), next(run)] == [1, 2, 3]
    with pytest.raises(ValueError, match="five"):
        next(run)


def test_batch_timeout_sends_a_partial_batch_of_a_live_source() -> None:
    inbox: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def live() -> Iterator[int]:
        while (item := inbox.get()) is not None:
            yield item

    chain = PoolChain().add_threadpool(ow.plus_one).batch(100, timeout=0.05)
    with chain.execute_lazy(live()) as run:
        inbox.put(1)
        inbox.put(2)
        assert next(run) == [2, 3]  # 100 never arrive: the partial batch went on
        inbox.put(None)
        assert list(run) == []


@pytest.mark.parametrize("repeat", range(3))
def test_batch_timeout_before_any_stage_reads_a_live_input(repeat: int) -> None:
    inbox: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def live() -> Iterator[int]:
        while (item := inbox.get()) is not None:
            yield item

    chain = PoolChain().batch(50, timeout=0.05).add_threadpool(len)
    with chain.execute_lazy(live()) as run:
        inbox.put(1)
        inbox.put(2)
        inbox.put(3)
        assert next(run) == 3  # one partial list of the three items
        inbox.put(4)
        assert next(run) == 1
        inbox.put(None)
        assert list(run) == []
    assert chain.execute_eager(range(120)) == [50, 50, 20]
    # Closing early, with the input blocked and the reader waiting on it:
    run = chain.execute_lazy(live())
    inbox.put(5)
    assert next(run) == 1
    inbox.put(None)  # lets the reader's thread leave the input
    run.close()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.batch(0), "size"),
        (lambda c: c.batch("3"), "size"),
        (lambda c: c.batch(True), "size"),
        (lambda c: c.batch(10, timeout=-1), "timeout"),
        (lambda c: c.batch(10, timeout="1"), "timeout"),
        (lambda c: c.filter(3), "callable"),
    ],
)
def test_bad_arguments_fail_at_build_time(call: Any, match: str) -> None:
    with pytest.raises(OriValidationError, match=match):
        call(PoolChain())


def test_a_chain_of_operators_only_needs_a_stage() -> None:
    with pytest.raises(OriValidationError, match="no stages"):
        PoolChain().flatten().execute_eager([[1]])


def test_stats_cover_every_segment() -> None:
    chain = PoolChain().add_threadpool(ow.expand).flatten().add_threadpool(ow.plus_one).batch(2)
    chain.execute_eager(range(8))
    stats = chain.stats
    assert stats is not None
    assert [(s.number, s.total) for s in stats.stages] == [(1, 2), (2, 2)]
    assert stats.items_in == 8
    assert stats.stages[1].items_in == sum(i % 4 for i in range(8))
    assert not stats.running
    assert "2/2 thread pool" in stats.report()


def test_every_stage_kind_composes(stage_kind: Kind, stage_backend: Any) -> None:
    chain = stage_kind.stage(
        PoolChain().add_threadpool(ow.expand).flatten(), "double", stage_backend
    )
    chain = chain.batch(3).flatten()
    expected = [2 * x for i in range(20) for x in [i] * (i % 4)]
    assert chain.execute_eager(range(20)) == expected
    assert chain.execute_eager_single_threaded(range(20)) == expected


@pytest.mark.parametrize("method", METHODS)
def test_process_stages_between_operators(method: str) -> None:
    chain = (
        PoolChain()
        .add_processpool(ow.expand, max_workers=2, start_method=method)
        .flatten()
        .batch(4)
        .add_processpool(ow.total, max_workers=2, start_method=method)
    )
    expected = chain.execute_eager_single_threaded(range(30))
    assert chain.execute_eager(range(30)) == expected
    with chain:  # warm pools serve every segment
        assert chain.execute_eager(range(30)) == expected
        assert chain.execute_eager(range(30), ordered=False) != []


@pytest.mark.parametrize("repeat", range(3))
@pytest.mark.parametrize("method", METHODS)
def test_a_worker_crash_beside_a_flatten(method: str, repeat: int) -> None:
    chain = (
        PoolChain()
        .add_threadpool(ow.expand)
        .flatten()
        .add_processpool(ow.kill_on_seven, max_workers=2, start_method=method)
    )
    results = chain.execute_eager(range(12), on_error="return")
    failures = [r for r in results if isinstance(r, Failure)]
    assert {f.index for f in failures} == {7}
    assert [r for r in results if not isinstance(r, Failure)] == [
        x for i in range(12) for x in [i] * (i % 4) if x != 7
    ]


def test_close_from_another_thread_stops_every_segment() -> None:
    chain = PoolChain().add_threadpool(ow.expand).flatten().add_threadpool(ow.plus_one).batch(5)
    run = chain.execute_lazy(itertools.count())
    assert len(next(run)) == 5
    closer = threading.Thread(target=run.close)
    closer.start()
    closer.join()
    assert run.stats.running is False  # every segment closed
    assert list(run) == []  # a closed run hands nothing more out


def _interrupt_on_four(x: int) -> bool:
    if x == 4:
        raise KeyboardInterrupt
    return True


@pytest.mark.parametrize("where", ["after the last stage", "between stages"])
def test_keyboard_interrupt_in_an_operator_closes_every_segment(where: str) -> None:
    chain = PoolChain().add_threadpool(ow.identity).filter(_interrupt_on_four)
    first = 0
    if where == "between stages":
        chain.add_processpool(ow.plus_one, max_workers=1)
        first = 1
    run = chain.execute_lazy(range(10))
    got = []
    with pytest.raises(KeyboardInterrupt):
        got.extend(run)
    # An interrupt is raised at once, not saved for the next call as an
    # Exception is (a caller that stops iterating would never see it), so the
    # items of the interrupted hand-out are dropped: what came out is the
    # items before 4 in order (through the stages after it), up to the
    # hand-out that held 4.
    assert got == list(range(first, first + len(got)))
    assert len(got) <= 4
    assert run.stats.running is False


class _Bar:
    def __init__(self, made: list[_Bar], **options: Any) -> None:
        self.options = options
        self.done = 0
        made.append(self)

    def update(self, n: int) -> None:
        self.done += n

    def close(self) -> None:
        pass


def test_progress_bars_and_a_tight_window_cover_every_segment() -> None:
    made: list[_Bar] = []
    chain = PoolChain().add_threadpool(ow.expand).flatten().add_threadpool(ow.plus_one)
    results = chain.execute_eager(
        range(20), progress=lambda **options: _Bar(made, **options), max_in_flight=1
    )
    assert results == [x + 1 for i in range(20) for x in [i] * (i % 4)]
    assert [bar.options["total"] for bar in made] == [20, None]  # counts change after flatten
    assert [bar.done for bar in made] == [20, len(results)]
