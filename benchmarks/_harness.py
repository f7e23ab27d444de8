"""Shared helpers for the benchmark scripts: repeat, summarise, compare, print.

Every benchmark module in this folder exposes ``run(quick: bool) -> list[Row]``.
A :class:`Row` is one figure for one implementation; rows of the same
``benchmark`` are compared with each other and printed as ratios. Timings are
medians of several repeats with min and max kept, because a 2-core machine is
noisy and a single run proves nothing.
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any


@dataclasses.dataclass
class Row:
    """One measured figure.

    ``higher_is_better`` tells how the ratio to the best peer is read;
    ``target`` is the figure the issue asks Ori to reach, if any, expressed in
    the same unit as ``value`` (e.g. an efficiency of 0.9 or a ratio of 1.0).
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


def repeat(func: Callable[[], float], times: int) -> tuple[float, float, float]:
    """Call *func* (which returns one measurement) *times* times: (median, min, max)."""
    samples = [func() for _ in range(times)]
    return statistics.median(samples), min(samples), max(samples)


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


def format_table(rows: Iterable[Row]) -> str:
    """Markdown table with each row's ratio to the best implementation of its benchmark."""
    rows = list(rows)
    best: dict[str, float] = {}
    for row in rows:
        pick = max if row.higher_is_better else min
        best[row.benchmark] = pick(best.get(row.benchmark, row.value), row.value)
    lines = [
        "| benchmark | implementation | median | min | max | vs best | target | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ref = best[row.benchmark]
        if row.value == 0 or ref == 0:
            ratio = "n/a"
        elif row.higher_is_better:
            ratio = f"{row.value / ref:.2f}x"
        else:
            ratio = f"{ref / row.value:.2f}x"
        lines.append(
            f"| {row.benchmark} | {row.implementation} | {_fmt(row.value)} {row.unit} "
            f"| {_fmt(row.low)} | {_fmt(row.high)} | {ratio} "
            f"| {'' if row.target is None else _fmt(row.target)} | {row.note} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value == 0 or 0.01 <= abs(value) < 10_000:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:.3g}"


def main(run: Callable[[bool], list[Row]]) -> None:
    """Entry point for a single benchmark script: ``python benchmarks/bench_x.py [--quick]``."""
    quick = "--quick" in sys.argv[1:]
    print(f"# {machine()}, {time.strftime('%Y-%m-%d')}{' (quick)' if quick else ''}\n")
    print(format_table(run(quick)))
