"""Shared helpers for the benchmark scripts: repeat, summarise, compare, print.

Every benchmark module in this folder exposes ``run(quick: bool) -> list[Row]``.
A :class:`Row` is one figure for one implementation; rows of the same
``benchmark`` are compared with each other and printed as ratios. Timings are
medians of several repeats with min and max kept, because a 2-core machine is
noisy and a single run proves nothing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclasses.dataclass
class Row:
    """One measured figure.

    ``higher_is_better`` tells how the ratio to the best peer is read;
    ``target`` is the figure the issue asks Ori to reach, if any, expressed in
    the same unit as ``value`` (e.g. an efficiency of 0.9 or a ratio of 1.0).

    A figure that could not be measured (peer not installed, run hung or
    aborted) has ``value`` NaN and says why in ``note``; see :func:`unavailable`.
    ``comparable=False`` keeps a measured row out of the "vs best" ratio, for
    figures that mean different things per row (e.g. the time until a run
    *aborted* is no better than the time until another one *completed*).
    """

    benchmark: str
    implementation: str
    value: float
    unit: str
    higher_is_better: bool = False
    low: float | None = None
    high: float | None = None
    target: float | None = None
    note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    comparable: bool = True

    @property
    def measured(self) -> bool:
        """True when ``value`` is a real figure (not NaN or infinite)."""
        return math.isfinite(self.value)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (NaN stays NaN: Python's json reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


def unavailable(
    benchmark: str,
    implementation: str,
    note: str,
    *,
    unit: str = "s",
    higher_is_better: bool = False,
    target: float | None = None,
) -> Row:
    """A row for a figure that could not be measured: value NaN, the reason in ``note``.

    Use it for a peer that is not installed (``note="not installed"``), a run that
    hung or was aborted, or an implementation that cannot express the workload.
    """
    nan = math.nan
    return Row(benchmark, implementation, nan, unit, higher_is_better, target=target, note=note)


def spread(samples: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of *samples*."""
    return statistics.median(samples), min(samples), max(samples)


def repeat(func: Callable[[], float], times: int) -> tuple[float, float, float]:
    """Call *func* (which returns one measurement) *times* times: (median, min, max)."""
    return spread([func() for _ in range(times)])


def timed(func: Callable[[], object]) -> float:
    """Seconds *func* takes, by the monotonic performance counter."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def measure(
    benchmark: str,
    implementation: str,
    func: Callable[[], float],
    *,
    times: int,
    unit: str = "s",
    higher_is_better: bool = False,
    target: float | None = None,
    note: str = "",
) -> Row:
    """Repeat *func* and wrap the median/min/max in a :class:`Row`."""
    median, low, high = repeat(func, times)
    return Row(benchmark, implementation, median, unit, higher_is_better, low, high, target, note)


def machine() -> str:
    import os

    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()} ({sys.implementation.name})"
    )


def best_values(rows: Iterable[Row]) -> dict[str, float]:
    """Best measured, comparable value of each benchmark (max or min per ``higher_is_better``)."""
    best: dict[str, float] = {}
    for row in rows:
        if not (row.measured and row.comparable):
            continue
        pick = max if row.higher_is_better else min
        best[row.benchmark] = pick(best.get(row.benchmark, row.value), row.value)
    return best


def ratio_to_best(row: Row, best: dict[str, float]) -> float | None:
    """How *row* compares with the best of its benchmark: 1.0 is the best, lower is worse.

    None when there is nothing to compare (unmeasured, not comparable, or a zero).
    """
    ref = best.get(row.benchmark)
    if ref is None or not (row.measured and row.comparable) or row.value == 0 or ref == 0:
        return None
    return row.value / ref if row.higher_is_better else ref / row.value


def format_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def format_target(row: Row) -> str:
    """The issue's target with its direction, e.g. ``>= 0.9`` or ``<= 2``."""
    if row.target is None:
        return ""
    return f"{'>=' if row.higher_is_better else '<='} {_fmt(row.target)}"


def format_value(row: Row) -> str:
    return f"{_fmt(row.value)} {row.unit}".rstrip() if row.measured else "—"


def format_table(rows: Iterable[Row]) -> str:
    """Markdown table with each row's ratio to the best implementation of its benchmark.

    Unmeasured rows (NaN value) show a dash and their note; they never count as best.
    """
    rows = list(rows)
    best = best_values(rows)
    lines = [
        "| benchmark | implementation | median | min | max | vs best | target | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.benchmark} | {row.implementation} | {format_value(row)} "
            f"| {_fmt(row.low)} | {_fmt(row.high)} | {format_ratio(ratio_to_best(row, best))} "
            f"| {format_target(row)} | {markdown_cell(row.note)} |"
        )
    return "\n".join(lines)


def markdown_cell(text: str) -> str:
    """Text that is safe inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if not math.isfinite(value):
        return "—"
    if value == 0 or 0.01 <= abs(value) < 10_000:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:.3g}"


def read_rows(path: Path) -> list[Row] | None:
    """The rows a child process wrote to *path* as JSON; None if it wrote none, or garbage."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [Row.from_dict(item) for item in data]


def load_by_path(path: Path, name: str) -> ModuleType:
    """Import the file *path* as a module called *name* (for files not on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(run: Callable[[bool], list[Row]]) -> None:
    """Entry point for a single benchmark script: ``python benchmarks/bench_x.py [--quick]``."""
    quick = "--quick" in sys.argv[1:]
    print(f"# {machine()}, {time.strftime('%Y-%m-%d')}{' (quick)' if quick else ''}\n")
    print(format_table(run(quick)))
