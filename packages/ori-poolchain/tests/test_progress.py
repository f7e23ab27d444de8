"""Live progress bars: tqdm output, a custom bar factory, every way a run ends."""

from __future__ import annotations

import functools
import gc
import io
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import poolchain_workers as workers
import pytest

from ori.errors import OriValidationError
from ori.poolchain import PoolChain

tqdm = pytest.importorskip("tqdm")


@pytest.fixture(autouse=True)
def _no_tqdm_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bars made by a user's own factory are tqdm's, and tqdm may keep its
    # monitor thread for the rest of the session: not a thread of the run,
    # but the leak check would count it. (progress=True bars have none.)
    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)


class RecordingBar:
    """A tqdm-like bar that remembers what it was told."""

    def __init__(self, log: list[RecordingBar], **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.n = 0
        self.postfix = ""
        self.closed = 0
        self.threads: set[str] = set()
        log.append(self)

    def update(self, n: int) -> None:
        assert not self.closed, "updated after close"
        self.threads.add(threading.current_thread().name)
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        self.closed += 1


def recording() -> tuple[list[RecordingBar], Any]:
    bars: list[RecordingBar] = []
    return bars, functools.partial(RecordingBar, bars)


def progress_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith("-progress")]


def two_stages() -> PoolChain:
    return (
        PoolChain()
        .add_threadpool(lambda x: x + 1, max_workers=2)
        .add_processpool(workers.square, max_workers=2)
    )


def test_tqdm_bars_written_to_a_file() -> None:
    out = io.StringIO()
    factory = functools.partial(tqdm.tqdm, file=out, mininterval=0)
    results = two_stages().execute_eager(range(30), progress=factory)
    assert results == [(x + 1) ** 2 for x in range(30)]
    text = out.getvalue()
    assert "stage 1/2 <lambda>" in text
    assert "stage 2/2 square  " in text
    assert text.count("30/30") >= 2  # both bars end full
    assert "queue 0" in text
    assert not progress_threads()
    assert not tqdm.tqdm._instances  # every bar was closed


def test_progress_true_draws_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # tqdm as installed: progress=True must not start its monitor
    results = two_stages().execute_eager(range(20), progress=True)
    assert len(results) == 20
    err = capsys.readouterr().err
    assert "stage 1/2 <lambda>" in err
    assert "stage 2/2 square" in err
    assert "20/20" in err
    assert not [t for t in threading.enumerate() if "monitor" in t.name]


def test_unknown_total_and_infinite_input() -> None:
    out = io.StringIO()
    factory = functools.partial(tqdm.tqdm, file=out, mininterval=0)
    chain = PoolChain().add_threadpool(lambda x: x * 2)
    run = chain.execute_lazy(itertools.count(), progress=factory)
    assert list(itertools.islice(run, 200)) == [2 * x for x in range(200)]
    run.close()
    text = out.getvalue()
    assert "stage 1/1 <lambda>" in text
    assert "item/s" in text
    assert "%|" not in text  # no total, so no percentage
    assert not progress_threads()
    assert not tqdm.tqdm._instances


def test_custom_factory_gets_the_total_and_the_counts() -> None:
    bars, factory = recording()
    chain = two_stages().add_threadpool(str, max_workers=1)
    assert chain.execute_eager(list(range(25)), progress=factory) == [
        str((x + 1) ** 2) for x in range(25)
    ]
    assert [bar.kwargs["desc"] for bar in bars] == [
        "stage 1/3 <lambda>",
        "stage 2/3 square  ",
        "stage 3/3 str     ",
    ]
    assert all(bar.kwargs["total"] == 25 for bar in bars)
    assert all(bar.kwargs["unit"] == "item" and bar.kwargs["leave"] for bar in bars)
    assert [bar.n for bar in bars] == [25, 25, 25]
    assert [bar.closed for bar in bars] == [1, 1, 1]
    assert all(bar.postfix.startswith("queue 0, busy ") for bar in bars)


def test_a_generator_gives_bars_without_total() -> None:
    bars, factory = recording()
    PoolChain().add_threadpool(str).execute_eager((x for x in range(5)), progress=factory)
    assert bars[0].kwargs["total"] is None
    assert bars[0].n == 5


def test_an_empty_input() -> None:
    bars, factory = recording()
    assert two_stages().execute_eager([], progress=factory) == []
    assert [(bar.kwargs["total"], bar.n, bar.closed) for bar in bars] == [(0, 0, 1), (0, 0, 1)]
    assert not progress_threads()


def test_the_refresher_thread_updates_while_the_run_goes_on() -> None:
    bars, factory = recording()
    gate = threading.Event()

    def held(x: int) -> int:
        gate.wait(30)
        return x

    chain = PoolChain().add_threadpool(lambda x: x, max_workers=2).add_threadpool(held)
    run = chain.execute_lazy(range(8), progress=factory)
    try:
        deadline = time.monotonic() + 30
        while bars[0].n < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Nobody is consuming, yet the first stage's bar moved: the run's own
        # refresher thread drew it.
        assert bars[0].n == 8
        assert bars[1].n == 0
        assert all(name.endswith("-progress") for name in bars[0].threads)
        assert len(progress_threads()) == 1
    finally:
        gate.set()
    assert list(run) == list(range(8))
    assert [bar.n for bar in bars] == [8, 8]
    assert [bar.closed for bar in bars] == [1, 1]
    assert not progress_threads()


def test_bars_close_when_a_stage_fails() -> None:
    bars, factory = recording()
    chain = PoolChain().add_threadpool(workers.fail_on_nine).add_threadpool(str)
    with pytest.raises(ValueError, match="nine"):
        chain.execute_eager(range(10), progress=factory)
    assert [bar.closed for bar in bars] == [1, 1]
    assert [bar.n for bar in bars] == [10, 9]  # the failed item counts as done
    assert bars[0].postfix.endswith("failed 1")
    assert not progress_threads()


def test_bars_close_on_break_and_on_garbage_collection() -> None:
    bars, factory = recording()
    chain = PoolChain().add_threadpool(lambda x: x)
    for _ in chain.execute_lazy(itertools.count(), progress=factory):
        break
    gc.collect()
    assert bars[0].closed == 1
    assert not progress_threads()

    bars2, factory2 = recording()
    with chain.execute_lazy(itertools.count(), progress=factory2) as run:
        next(run)
    assert bars2[0].closed == 1
    assert not progress_threads()


def test_bars_close_on_keyboard_interrupt() -> None:
    bars, factory = recording()

    def interrupting() -> Iterator[int]:
        for i in itertools.count():
            if i == 300:
                raise KeyboardInterrupt
            yield i

    with pytest.raises(KeyboardInterrupt):
        two_stages().execute_eager(interrupting(), progress=factory)
    assert [bar.closed for bar in bars] == [1, 1]
    assert not progress_threads()


def test_a_broken_bar_does_not_break_the_run() -> None:
    class Broken(RecordingBar):
        def update(self, n: int) -> None:
            raise RuntimeError("cannot draw")

    bars: list[RecordingBar] = []
    results = (
        PoolChain()
        .add_threadpool(lambda x: x)
        .execute_eager(range(50), progress=functools.partial(Broken, bars))
    )
    assert results == list(range(50))
    assert bars[0].closed == 1


def test_a_factory_that_fails_stops_the_run_before_it_starts() -> None:
    made: list[RecordingBar] = []

    def second_fails(**kwargs: Any) -> RecordingBar:
        if made:
            raise TypeError("no second bar")
        return RecordingBar(made, **kwargs)

    with pytest.raises(TypeError, match="no second bar"):
        two_stages().execute_lazy(range(10), progress=second_fails)
    assert made[0].closed == 1  # the bar already made was closed
    assert not progress_threads()


def test_progress_true_without_tqdm_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    chain = PoolChain().add_threadpool(str)
    with pytest.raises(OriValidationError, match=r"pip install 'ori-poolchain\[progress\]'"):
        chain.execute_lazy([1, 2], progress=True)
    with pytest.raises(OriValidationError, match="tqdm, which is not installed"):
        chain.execute_eager([1, 2], progress=True)
    assert chain.stats is None  # nothing was started
    # Without bars everything works as before.
    assert chain.execute_eager([1, 2], progress=False) == ["1", "2"]


@pytest.mark.parametrize("value", ["yes", 1, 0.5, object()])
def test_progress_must_be_a_bool_or_a_factory(value: object) -> None:
    with pytest.raises(OriValidationError, match="progress must be True, False or a tqdm-like"):
        PoolChain().add_threadpool(str).execute_eager([1], progress=value)  # type: ignore[arg-type]
