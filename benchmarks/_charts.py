"""One PNG chart per benchmark, drawn with matplotlib when it is installed.

Bars are medians, whiskers the fastest and slowest run, Ori's bars purple, the
dashed line the target an issue set. A row without a figure says why in red
instead of a bar. Charts are outputs of a run, never committed: they go into the
run's output folder (``benchmarks/results/img/`` by default), beside the results
page that links them.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from _environment import CHART_LIBRARY, REQUIREMENTS
from _harness import Row
from _report import group, is_ours, shorten


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].rstrip("-") or "benchmark"


def chart_names(benchmarks: Iterable[str]) -> dict[str, str]:
    """A unique, stable PNG file name per benchmark."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for benchmark in benchmarks:
        base = f"bench-{slug(benchmark)}"
        name, counter = base, 2
        while name in used:
            name, counter = f"{base}-{counter}", counter + 1
        used.add(name)
        names[benchmark] = f"{name}.png"
    return names


def draw_charts(rows: Sequence[Row], image_dir: Path) -> tuple[dict[str, str], str | None]:
    """One PNG per benchmark in *image_dir*: {benchmark: file name}, or ({}, why not).

    The charts of an earlier run in *image_dir* are removed first, so that the
    folder never mixes two runs.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            {},
            f"{CHART_LIBRARY} is not installed: no charts "
            f"(python -m pip install -r {REQUIREMENTS})",
        )
    image_dir.mkdir(parents=True, exist_ok=True)
    for stale in image_dir.glob("bench-*.png"):
        stale.unlink()
    groups = group(rows)
    names = chart_names(groups)
    for benchmark, members in groups.items():
        figure = _chart(plt, benchmark, members)
        figure.savefig(image_dir / names[benchmark], dpi=110, bbox_inches="tight")
        plt.close(figure)
    return names, None


def _chart(plt: Any, benchmark: str, members: Sequence[Row]) -> Any:
    """Horizontal bars: median with min/max whiskers; unmeasured rows say why in red."""
    figure, axes = plt.subplots(figsize=(10, 1.5 + 0.45 * len(members)))
    positions = list(range(len(members)))[::-1]
    measured = [row for row in members if row.measured]
    tops = [row.high if row.high is not None else row.value for row in measured]
    bottoms = [row.low if row.low is not None else row.value for row in measured]
    positive = [value for value in bottoms if value > 0]
    log = bool(positive) and max(tops) / min(positive) > 50
    # Bars start at 0, or (log scale) a little left of the smallest figure.
    origin = min(positive) / 3 if log else 0.0
    for position, row in zip(positions, members, strict=True):
        if row.measured:
            low = row.value - row.low if row.low is not None else 0.0
            high = row.high - row.value if row.high is not None else 0.0
            axes.barh(
                position,
                row.value - origin,
                left=origin,
                color="#5e35b1" if is_ours(row.implementation) else "#9e9e9e",
                xerr=[[max(low, 0.0)], [max(high, 0.0)]],
                capsize=3,
                ecolor="#424242",
            )
            axes.text(row.value, position, f"  {row.value:.3g}", va="center", fontsize=8)
        else:
            # x in axes coordinates, so the note shows whatever the scale.
            axes.text(
                0.01,
                position,
                "— " + shorten(row.note, 90),
                transform=axes.get_yaxis_transform(),
                va="center",
                fontsize=8,
                color="#b71c1c",
            )
    direction = "higher is better" if members[0].higher_is_better else "lower is better"
    target = next((row.target for row in members if row.target is not None), None)
    if target is not None and math.isfinite(target):
        sign = ">=" if members[0].higher_is_better else "<="
        axes.axvline(
            target,
            color="#ef6c00",
            linestyle="--",
            linewidth=1,
            label=f"target {sign} {target:.3g}",
        )
        axes.legend(loc="lower right", fontsize=8)
    if log:
        axes.set_xscale("log")
    if not measured:
        axes.set_xlim(0, max(1.0, 2 * (target or 0.5)))
    axes.set_ylim(-0.7, len(members) - 0.3)
    axes.set_yticks(positions)
    axes.set_yticklabels([row.implementation for row in members], fontsize=8)
    unit = members[0].unit or "ratio"
    axes.set_xlabel(f"{unit} ({direction}; bar = median, whiskers = min and max)", fontsize=8)
    axes.set_title("\n".join(textwrap.wrap(benchmark, 90)), fontsize=9)
    axes.margins(x=0.2)
    figure.tight_layout()
    return figure
