"""The results as Markdown: the headline table, one table per benchmark, the results page.

The results page records the machine, the date, the commit and the peers beside the
figures, because a figure means little without them. The same page comes in two
forms: with a chart per benchmark (the run's own output, next to its PNGs) and
with tables only (the one page the repository keeps: charts are not committed).
The headline table also goes into the README, between two markers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from _environment import Environment, describe_machine
from _harness import (
    Row,
    best_values,
    format_ratio,
    format_target,
    format_value,
    markdown_cell,
    ratio_to_best,
)
from _runner import SuiteRun

RESULTS_FILE = "benchmark-results.md"
IMAGE_DIR = "img"  # the charts' folder, beside the results page that links them
README_START = "<!-- benchmark-headline:start -->"
README_END = "<!-- benchmark-headline:end -->"
# Under the headline of the tables-only page, where the charts would be.
CHARTS_NOT_HERE = (
    "Charts are not part of this page: `python benchmarks/run.py` draws one per benchmark "
    "into its output folder (`benchmarks/results/img/` unless `--output-dir` says otherwise)"
)


def is_ours(implementation: str) -> bool:
    """True for rows measuring this repository's Ori (not the original 0.1.2)."""
    lowered = implementation.lower()
    return lowered.startswith("ori") and "original" not in lowered and "0.1.2" not in lowered


def is_baseline(implementation: str) -> bool:
    return "baseline" in implementation.lower()


def group(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Rows by benchmark, in order of first appearance."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.benchmark, []).append(row)
    return groups


def target_met(row: Row) -> bool | None:
    if row.target is None or not row.measured:
        return None
    return row.value >= row.target if row.higher_is_better else row.value <= row.target


def shorten(text: str, limit: int = 60) -> str:
    """*text* on one line, cut to *limit* characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline_table(rows: Sequence[Row], *, targets_only: bool = False) -> str:
    """One line per benchmark with an Ori row: Ori's figure, the best peer's, the ratio, the target.

    *targets_only* keeps the benchmarks for which an issue set Ori a target (the
    shorter table meant for the README).
    """
    lines = [
        "| benchmark | Ori | best peer | Ori vs best peer | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for benchmark, members in group(rows).items():
        ours = [row for row in members if is_ours(row.implementation)]
        if not ours or (targets_only and all(row.target is None for row in ours)):
            continue
        peers = [
            row
            for row in members
            if not is_ours(row.implementation)
            and not is_baseline(row.implementation)
            and row.measured
            and row.comparable
        ]
        # Several Ori rows in one benchmark (variants): the best one speaks for Ori,
        # among the variants an issue set a target for when there are such.
        measured = [row for row in ours if row.measured] or ours
        measured = [row for row in measured if row.target is not None] or measured
        pick = max if measured[0].higher_is_better else min
        mine = pick(measured, key=lambda row: row.value if row.measured else math.inf)
        if peers:
            best_peer = (max if mine.higher_is_better else min)(peers, key=lambda row: row.value)
            peer_text = f"{format_value(best_peer)} ({best_peer.implementation})"
            ratio_text = "n/a"
            if mine.measured and mine.value and best_peer.value:
                # Oriented so that above 1.00x means Ori does better than the best peer.
                ratio = mine.value / best_peer.value
                ratio_text = format_ratio(ratio if mine.higher_is_better else 1 / ratio)
        else:
            peer_text, ratio_text = "—", "n/a"
        met = target_met(mine)
        met_text = "" if met is None else ("yes" if met else "**no**")
        ours_text = format_value(mine) if mine.measured else f"— ({shorten(mine.note)})"
        lines.append(
            f"| {markdown_cell(benchmark)} | {ours_text} | {peer_text} | {ratio_text} "
            f"| {format_target(mine)} | {met_text} |"
        )
    return "\n".join(lines)


def benchmark_table(members: Sequence[Row]) -> str:
    best = best_values(members)
    lines = [
        "| implementation | median | min | max | vs best | target | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in members:
        name = f"**{row.implementation}**" if is_ours(row.implementation) else row.implementation
        low = "" if row.low is None or not row.measured else f"{row.low:.3g}"
        high = "" if row.high is None or not row.measured else f"{row.high:.3g}"
        lines.append(
            f"| {markdown_cell(name)} | {format_value(row)} | {low} | {high} "
            f"| {format_ratio(ratio_to_best(row, best))} | {format_target(row)} "
            f"| {markdown_cell(row.note)} |"
        )
    return "\n".join(lines)


def results_markdown(
    run: SuiteRun,
    environment: Environment,
    *,
    original: str,
    revision: str,
    charts: dict[str, str],
    chart_note: str | None,
) -> str:
    """The results page: machine, method, headline, then one section per benchmark.

    *charts* maps a benchmark to its PNG's file name under ``img/``; a benchmark
    without one gets its table only. *chart_note*, when given, says (under the
    headline) why there are no charts.
    """
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(run.started))
    peers = environment.peer_versions()
    lines = [
        "<!-- Generated by `python benchmarks/run.py`; do not edit by hand. -->",
        "",
        "## Results",
        "",
    ]
    if run.quick:
        lines += [
            '!!! warning "Quick run"',
            "    These figures come from `--quick`, a smoke test of the suite with tiny",
            "    inputs and one repeat: they show that it works, not how fast anything is.",
            "",
        ]
    lines += [
        f"- **Machine:** {describe_machine()}",
        f"- **Date:** {when}; the whole run took {run.elapsed / 60:.1f} minutes",
        f"- **Ori:** commit {revision}",
        f"- **Peers:** {peers or 'none installed'}; the original Ori: {original}",
    ]
    if environment.missing:
        lines.append(f"- **Not installed:** {', '.join(environment.missing)} (their rows say so)")
    lines += [
        "",
        "Each figure is the median of several runs, with the fastest and slowest run as",
        "min and max. *vs best* is the ratio to the best implementation of the same",
        "benchmark (1.00x is the best, 0.50x half as good). A dash means no figure: the",
        "note says why (not installed, hung, aborted, raised early). *Target* is the",
        "goal the issues set for Ori. Each benchmark runs in a fresh interpreter, and",
        "every peer of the peer benchmarks in a fresh process with a hard time limit.",
        "",
    ]
    if run.loads:
        lines.append(
            "**Machine load** (timings move with it: a busy machine, or a virtual "
            "machine whose host takes CPU time away, slows every contender):"
        )
        lines += [f"- `bench_{name}.py`: {load}" for name, load in run.loads.items()]
        lines.append("")
    if run.failures:
        lines.append("**Benchmark modules that did not finish:**")
        lines += [f"- `bench_{name}.py`: {why}" for name, why in run.failures.items()]
        lines.append("")
    lines += ["### Headline", "", headline_table(run.rows), ""]
    if chart_note:
        lines += [f"*{chart_note}.*", ""]
    for benchmark, members in group(run.rows).items():
        lines += [f"### {benchmark}", ""]
        if benchmark in charts:
            lines += [f"![{markdown_cell(benchmark)}]({IMAGE_DIR}/{charts[benchmark]})", ""]
        lines += [benchmark_table(members), ""]
    return "\n".join(lines)


def update_readme(path: Path, headline: str) -> bool:
    """Replace the block between the headline markers in *path*; False if there are none."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    block = f"{README_START}\n{headline}\n{README_END}"
    path.write_text(text[:start] + block + text[end + len(README_END) :], encoding="utf-8")
    return True
