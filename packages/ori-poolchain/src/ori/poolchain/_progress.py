"""Live progress bars for a run: one bar per stage, redrawn by a small thread.

Data flow::

    execute_*(progress=...) --progress_setup()--> ProgressSetup (bar factory, total)
    run start: one bar per stage (factory(total=..., desc=..., unit=..., leave=True)),
        then the refresher thread
    refresher, every REFRESH_SECONDS: RunStats.snapshot() --> bar.update(newly done)
        and bar.set_postfix_str("queue 12, busy 97%, failed 1")
    run close (end, error, break, Ctrl-C, garbage collection): stop and join the
        refresher, one last update from the final snapshot, close every bar

Only the refresher touches the bars while the run goes on, and only close()
afterwards, so a bar never sees two threads at once. The refresher holds the
run's statistics, never the iterator, so dropping the iterator still closes
the run.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Any

from ori.errors import OriValidationError
from ori.errors.validation import describe

from ._stats import ChainStats, RunStats

CPU_POOL = "cpu pool on "  # the kind add_cpupool stages have: "cpu pool on threads"

REFRESH_SECONDS = 0.1
JOIN_SECONDS = 2.0  # a refresher stuck writing to a blocked terminal is left behind
NAME_WIDTH = 24
INSTALL_HINT = "pip install 'ori-poolchain[progress]'"

BarFactory = Callable[..., Any]


@dataclass(frozen=True)
class ProgressSetup:
    """What ``progress=`` resolved to: how to make a bar, and the input's length."""

    factory: BarFactory
    total: int | None


def progress_setup(progress: object, iterable: object) -> ProgressSetup | None:
    """Check the ``progress`` argument of an execute method; None when it is off.

    ``True`` imports tqdm (``tqdm.auto``, which picks notebook bars inside
    Jupyter); a callable is used as the bar factory as given. The bars'
    total is ``len(iterable)`` when the iterable has a length, else unknown.

    Raises:
        OriValidationError: *progress* is neither a bool nor a callable, or it
            is True and tqdm is not installed.
    """
    if progress is False:
        return None
    if progress is True:
        factory: BarFactory = _tqdm_bar()
    elif callable(progress) and not isinstance(progress, bool):
        factory = progress
    else:
        raise OriValidationError(
            "progress must be True, False or a tqdm-like factory such as "
            f"functools.partial(tqdm.tqdm, file=sys.stdout), got {describe(progress)}"
        )
    total: int | None = None
    if isinstance(iterable, Sized):
        with contextlib.suppress(Exception):
            total = len(iterable)
    return ProgressSetup(factory, total)


def _tqdm_bar() -> BarFactory:
    """tqdm's bar class (``tqdm.auto``), minus its monitor thread.

    tqdm's monitor thread only redraws bars that nobody updates for a long
    time; a run redraws its bars itself, and a thread that outlives the run
    would break the promise that a run leaves nothing behind.
    """
    try:
        # Imported by name: tqdm ships no type hints, and the factory is
        # typed loosely anyway (any tqdm-like callable is accepted).
        tqdm_auto = importlib.import_module("tqdm.auto")
    except ImportError:
        raise OriValidationError(
            "progress=True draws its bars with tqdm, which is not installed; install "
            f"it with {INSTALL_HINT} (or pip install tqdm), or pass progress=False"
        ) from None
    return _without_monitor(tqdm_auto.tqdm)


@functools.cache
def _without_monitor(bar_class: type) -> BarFactory:
    return type("PoolChainBar", (bar_class,), {"monitor_interval": 0})


def _postfix(stats: ChainStats, number: int) -> str:
    stage = stats.stages[number]
    text = f"queue {stage.queue_depth}, busy {stage.utilisation:.0%}"
    if stage.items_failed:
        text += f", failed {stage.items_failed}"
    return text


class ProgressDisplay:
    """The bars of one run and the thread that keeps them current.

    Created by the consumer when the run starts, after the stages' worker
    processes (a fork then happens before the display has a thread); closed
    by the run's closer, from whichever thread closes the run.
    """

    def __init__(self, setup: ProgressSetup, stats: RunStats, name: str) -> None:
        self._stats = stats
        self._bars: list[Any] = []
        self._shown: list[int] = []
        self._postfixes: list[str] = []
        self._stop = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        snapshot = stats.snapshot()
        names = [stage.function[:NAME_WIDTH] for stage in snapshot.stages]
        width = max(map(len, names))
        try:
            for stage, function in zip(snapshot.stages, names, strict=True):
                description = f"stage {stage.number}/{stage.total} {function:<{width}}"
                if stage.kind.startswith(CPU_POOL):  # say which add_cpupool picked
                    description += f" ({stage.kind.removeprefix(CPU_POOL)})"
                bar = setup.factory(total=setup.total, desc=description, unit="item", leave=True)
                self._bars.append(bar)
                self._shown.append(0)
                self._postfixes.append("")
        except BaseException:
            self._close_bars()
            raise
        self._thread = threading.Thread(target=self._refresh, name=f"{name}-progress", daemon=True)

    def start(self) -> None:
        """Start redrawing the bars in the background."""
        self._thread.start()

    def _refresh(self) -> None:
        # A bar that fails to draw must not break the run: the bars are only
        # a view, so a failure stops the redrawing and nothing else.
        with contextlib.suppress(Exception):
            while not self._stop.wait(REFRESH_SECONDS):
                self._update(self._stats.snapshot())

    def _update(self, stats: ChainStats) -> None:
        for number, bar in enumerate(self._bars):
            stage = stats.stages[number]
            done = stage.items_out + stage.items_failed
            postfix = _postfix(stats, number)
            if postfix != self._postfixes[number]:
                self._postfixes[number] = postfix
                set_postfix = getattr(bar, "set_postfix_str", None)
                if set_postfix is not None:
                    set_postfix(postfix)
            if done > self._shown[number]:
                bar.update(done - self._shown[number])
                self._shown[number] = done

    def close(self) -> None:
        """Stop the refresher, draw the final counts and close every bar.

        Idempotent; blocks only while the refresher finishes one redraw.
        Errors of the bars themselves are swallowed: the run's own outcome
        (its results or its exception) is what the caller must see.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_SECONDS)
        with contextlib.suppress(Exception):
            self._update(self._stats.snapshot())
        self._close_bars()

    def _close_bars(self) -> None:
        for bar in self._bars:
            with contextlib.suppress(Exception):
                bar.close()
