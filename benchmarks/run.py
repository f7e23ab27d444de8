"""Run the whole benchmark suite: every ``benchmarks/bench_*.py``, one table, charts.

Usage::

    python benchmarks/run.py [--quick] [--only NAME ...] [--skip NAME ...]
                             [--output-dir DIR] [--no-original | --no-original-setup]
                             [--module-timeout SECONDS] [--readme PATH]

``NAME`` is a module name without ``bench_`` (``peers``, ``poolchain``, ...);
``--list`` shows them. Each module's ``run(quick)`` runs in a fresh interpreter of
its own session (so one module's leftovers cannot skew the next, and a module that
hangs is killed after ``--module-timeout``); its rows come back as JSON. The
combined table is printed, and written with PNG charts (when matplotlib is
installed) into ``--output-dir`` (default ``docs/``) as ``benchmark-results.md``
and ``img/bench-*.png``.

This script installs nothing into the running environment. It reports which peer
libraries and Ori packages are missing and the command that installs them. The
one thing it creates is the throwaway venv holding the original Ori 0.1.2 under
``benchmarks/.cache/`` (see ``original/venv.py``): ``--no-original-setup`` uses
that venv only if it already exists, ``--no-original`` leaves the original out.

``--quick`` is a smoke test of the suite (tiny sizes, one repeat, peers three at a
time): it proves the machinery works, its figures mean nothing.

Exit status: 0 when every module produced its rows (rows that say a peer hung or is
missing are results, not failures), 1 when a module crashed or timed out, 2 for a
usage error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _groups  # noqa: E402
import _machine_load  # noqa: E402
from _harness import (  # noqa: E402
    Row,
    best_values,
    format_ratio,
    format_table,
    format_target,
    format_value,
    machine,
    ratio_to_best,
    unavailable,
)

REQUIREMENTS = "benchmarks/requirements.txt"
# Import name -> distribution name of every peer the suite compares with.
PEERS = {
    "pypeln": "pypeln",
    "mpire": "mpire",
    "joblib": "joblib",
    "loky": "loky",
    "asgiref": "asgiref",
    "anyio": "anyio",
    "sh": "sh",
}
# Ori's own packages (import name -> folder under packages/).
ORI_PACKAGES = {
    "ori.errors": "ori-errors",
    "ori.concurrency": "ori-concurrency",
    "ori.asyncio": "ori-asyncio",
    "ori.poolchain": "ori-poolchain",
    "ori.subprocess": "ori-subprocess",
}
# Modules run first in this order, the rest alphabetically; "original" adds rows to
# benchmarks defined by the others, so it comes last.
ORDER = ["poolchain", "peers", "asyncio", "subprocess"]
LAST = ["original"]
RESULTS_FILE = "benchmark-results.md"
IMAGE_DIR = "img"
# Seconds a module gets, after SIGTERM, to stop what it started before SIGKILL.
STOP_GRACE = 10.0
QUIET_WAIT_SECONDS = 60.0  # how long a full run waits for an idle machine before a module
README_START = "<!-- benchmark-headline:start -->"
README_END = "<!-- benchmark-headline:end -->"


# --- discovery and environment ---------------------------------------------------------------


def discover(directory: Path = HERE) -> list[str]:
    """Names of the benchmark modules in *directory* (``bench_x.py`` -> ``x``), in run order."""
    names = sorted(path.stem[len("bench_") :] for path in directory.glob("bench_*.py"))
    first = [name for name in ORDER if name in names]
    last = [name for name in LAST if name in names]
    middle = [name for name in names if name not in first and name not in last]
    return first + middle + last


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_report() -> tuple[list[str], list[str], dict[str, str]]:
    """(missing peers, missing Ori packages, installed versions) of this interpreter."""
    missing_peers = [name for name in [*PEERS, "matplotlib"] if not importable(name)]
    missing_ori = [folder for name, folder in ORI_PACKAGES.items() if not importable(name)]
    versions = {}
    for name, distribution in [*PEERS.items(), ("matplotlib", "matplotlib")]:
        found = version(distribution) if name not in missing_peers else None
        if found:
            versions[name] = found
    return missing_peers, missing_ori, versions


def print_environment(
    missing_peers: list[str], missing_ori: list[str], versions: dict[str, str]
) -> None:
    say(f"machine: {describe_machine()}")
    if versions:
        say("peers installed: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if missing_peers:
        say(
            f"missing (their rows will say 'not installed'): {', '.join(missing_peers)}\n"
            f"  install them with: python -m pip install -r {REQUIREMENTS}"
        )
    if missing_ori:
        say(
            f"Ori packages not installed (their rows will say 'not available'): "
            f"{', '.join(missing_ori)}\n"
            f"  install them with: python -m pip install "
            + " ".join(f"-e packages/{folder}" for folder in missing_ori)
        )


def describe_machine() -> str:
    """Machine line for the results: OS, cores, CPU model, memory, Python."""
    parts = [machine()]
    cpu = _proc_field("/proc/cpuinfo", "model name")
    if cpu:
        parts.append(" ".join(cpu.split()))
    memory = _proc_field("/proc/meminfo", "MemTotal")
    if memory:
        parts.append(f"{int(memory.split()[0]) / 1024**2:.0f} GiB RAM")
    return "; ".join(parts)


def _proc_field(path: str, field: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                key, _, value = line.partition(":")
                if key.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return None


def git_revision() -> str:
    """Short commit of the tree being measured, '+ local changes' when it is dirty."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return commit + (" + local changes" if dirty else "")


def say(message: str) -> None:
    """Progress and diagnostics go to stderr; stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


# --- running one module in a child interpreter -------------------------------------------------


def child_main(name: str, rows_path: str, quick: bool, directory: str) -> int:
    """Inside the child: import bench_<name> from *directory*, run it, write its rows as JSON."""
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module = importlib.import_module(f"bench_{name}")
    rows = module.run(quick)
    bad = [row for row in rows if not isinstance(row, Row)]
    if bad:
        raise TypeError(f"bench_{name}.run() returned non-Row values: {bad[:3]!r}")
    Path(rows_path).write_text(json.dumps([row.to_dict() for row in rows]), encoding="utf-8")
    return 0


def run_module(
    name: str,
    *,
    quick: bool,
    timeout: float,
    env: dict[str, str] | None = None,
    directory: Path = HERE,
) -> tuple[list[Row], str | None]:
    """Run bench_<name> in a fresh interpreter; (rows, None) or (rows so far, why it failed).

    The module's own output goes to stderr. Blocks at most *timeout* seconds; then
    the module's whole process group (its session) is killed. Whatever happens, no
    process the module started is left when this returns.
    """
    with tempfile.TemporaryDirectory(prefix="ori-bench-run-") as tmp:
        rows_path = Path(tmp) / "rows.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            "--rows",
            str(rows_path),
            "--bench-dir",
            str(directory),
        ]
        if quick:
            command.append("--quick")
        process = _groups.start(
            command, stdin=subprocess.DEVNULL, stdout=sys.stderr, cwd=str(ROOT), env=env
        )
        failure = None
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            failure = f"timed out after {timeout:.0f} s (killed)"
        finally:
            # SIGTERM first: a module that runs scenarios in sessions of their own
            # (bench_peers) then kills those before it exits.
            _groups.stop(process, grace=STOP_GRACE)
        if failure is None and process.returncode != 0:
            failure = f"failed with exit code {process.returncode} (its traceback is above)"
        try:
            data = json.loads(rows_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = []
            failure = failure or "produced no rows"
        return [Row.from_dict(item) for item in data], failure


# --- the report --------------------------------------------------------------------------------


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
        ours_text = format_value(mine) if mine.measured else f"— ({_short(mine.note)})"
        lines.append(
            f"| {_cell(benchmark)} | {ours_text} | {peer_text} | {ratio_text} "
            f"| {format_target(mine)} | {met_text} |"
        )
    return "\n".join(lines)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


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
            f"| {_cell(name)} | {format_value(row)} | {low} | {high} "
            f"| {format_ratio(ratio_to_best(row, best))} | {format_target(row)} "
            f"| {_cell(row.note)} |"
        )
    return "\n".join(lines)


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
    """One PNG per benchmark in *image_dir*: {benchmark: file name}, or ({}, why not)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            {},
            f"matplotlib is not installed: no charts (python -m pip install -r {REQUIREMENTS})",
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
                "— " + _short(row.note, 90),
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


def results_markdown(
    rows: Sequence[Row],
    *,
    charts: dict[str, str],
    chart_note: str | None,
    quick: bool,
    versions: dict[str, str],
    missing: list[str],
    original: str,
    failures: dict[str, str],
    started: float,
    elapsed: float,
    loads: dict[str, str] | None = None,
    revision: str | None = None,
) -> str:
    """The results page: machine, method, headline, then one section per benchmark."""
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started))
    peers = ", ".join(f"{name} {found}" for name, found in versions.items() if name in PEERS)
    lines = [
        "<!-- Generated by `python benchmarks/run.py`; do not edit by hand. -->",
        "",
        "## Results",
        "",
    ]
    if quick:
        lines += [
            '!!! warning "Quick run"',
            "    These figures come from `--quick`, a smoke test of the suite with tiny",
            "    inputs and one repeat: they show that it works, not how fast anything is.",
            "",
        ]
    lines += [
        f"- **Machine:** {describe_machine()}",
        f"- **Date:** {when}; the whole run took {elapsed / 60:.1f} minutes",
        f"- **Ori:** commit {revision or git_revision()}",
        f"- **Peers:** {peers or 'none installed'}; the original Ori: {original}",
    ]
    if missing:
        lines.append(f"- **Not installed:** {', '.join(missing)} (their rows say so)")
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
    if loads:
        lines.append(
            "**Machine load** (timings move with it: a busy machine, or a virtual "
            "machine whose host takes CPU time away, slows every contender):"
        )
        lines += [f"- `bench_{name}.py`: {load}" for name, load in loads.items()]
        lines.append("")
    if failures:
        lines.append("**Benchmark modules that did not finish:**")
        lines += [f"- `bench_{name}.py`: {why}" for name, why in failures.items()]
        lines.append("")
    lines += ["### Headline", "", headline_table(rows), ""]
    if chart_note:
        lines += [f"*{chart_note}.*", ""]
    for benchmark, members in group(rows).items():
        lines += [f"### {benchmark}", ""]
        if benchmark in charts:
            lines += [f"![{_cell(benchmark)}]({IMAGE_DIR}/{charts[benchmark]})", ""]
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


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Run Ori's benchmark suite against its peers; print and write the results.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: tiny sizes, under 2 minutes"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these modules (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--skip", action="append", default=[], metavar="NAME", help="leave these modules out"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=ROOT / "docs",
        help="where benchmark-results.md and img/ go (default: docs/)",
    )
    original = parser.add_mutually_exclusive_group()
    original.add_argument(
        "--no-original", action="store_true", help="leave the original Ori 0.1.2 out"
    )
    original.add_argument(
        "--no-original-setup",
        action="store_true",
        help="use the original Ori's venv only if it already exists",
    )
    parser.add_argument(
        "--module-timeout",
        type=float,
        default=None,
        help="seconds before a module is killed (default 150 quick, 7200 full)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help=f"also put the headline table between {README_START} and {README_END} in this file",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--bench-dir", default=str(HERE), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def split_names(values: Sequence[str]) -> list[str]:
    return [
        name.strip().removeprefix("bench_").removesuffix(".py")
        for value in values
        for name in value.split(",")
        if name.strip()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _groups.kill_all()
        say("\ninterrupted: every benchmark process was stopped")
        return 130


def _main(argv: Sequence[str] | None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        try:
            return child_main(args.child, args.rows, args.quick, args.bench_dir)
        except Exception:
            traceback.print_exc()
            return 1

    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    only, skip = split_names(args.only), split_names(args.skip)
    unknown = sorted(set(only + skip) - set(available))
    if unknown:
        say(f"unknown benchmark module(s): {', '.join(unknown)}; known: {', '.join(available)}")
        return 2
    selected = [name for name in available if (not only or name in only) and name not in skip]

    started = time.time()
    # Taken before the run writes its results into the tree (they would make it dirty).
    revision = git_revision()
    missing_peers, missing_ori, versions = environment_report()
    print_environment(missing_peers, missing_ori, versions)

    env = dict(os.environ)
    original = original_status(args, env)
    say(f"original Ori 0.1.2: {original}")

    timeout = args.module_timeout or (150.0 if args.quick else 7200.0)
    rows: list[Row] = []
    failures: dict[str, str] = {}
    loads: dict[str, str] = {}
    for name in selected:
        say(f"\n== bench_{name}{' (quick)' if args.quick else ''} ==")
        # A full run waits (up to a minute) for the machine to be idle first.
        busy = _machine_load.wait_until_quiet(
            0.0 if args.quick else QUIET_WAIT_SECONDS, sample=0.2 if args.quick else 1.0
        )
        watch = _machine_load.LoadWatch()
        began = time.perf_counter()
        module_rows, failure = run_module(name, quick=args.quick, timeout=timeout, env=env)
        rows += module_rows
        took = time.perf_counter() - began
        loads[name] = _machine_load.describe(busy, watch.steal())
        say(f"== bench_{name}: machine load: {loads[name]}")
        if failure:
            failures[name] = failure
            rows.append(unavailable(f"bench_{name}.py", "(whole module)", failure))
            say(f"== bench_{name}: {failure}")
        else:
            say(f"== bench_{name}: {len(module_rows)} rows in {took:.1f} s")
    elapsed = time.time() - started

    print(
        f"# {describe_machine()}, {time.strftime('%Y-%m-%d')}{' (quick)' if args.quick else ''}\n"
    )
    print(format_table(rows))
    print()

    output = args.output_dir.resolve()
    output.mkdir(parents=True, exist_ok=True)
    charts, chart_note = draw_charts(rows, output / IMAGE_DIR)
    if chart_note:
        say(chart_note)
    results = output / RESULTS_FILE
    results.write_text(
        results_markdown(
            rows,
            charts=charts,
            chart_note=chart_note,
            quick=args.quick,
            versions=versions,
            missing=missing_peers + [f"packages/{folder}" for folder in missing_ori],
            original=original,
            failures=failures,
            loads=loads,
            revision=revision,
            started=started,
            elapsed=elapsed,
        ),
        encoding="utf-8",
    )
    say(f"\nwrote {results} and {len(charts)} chart(s) in {output / IMAGE_DIR}")
    if args.readme is not None:
        if update_readme(args.readme, headline_table(rows, targets_only=True)):
            say(f"updated the headline table in {args.readme}")
        else:
            say(f"{args.readme} has no {README_START} ... {README_END} block: left unchanged")
    if failures:
        say("modules that did not finish: " + ", ".join(failures))
    return 1 if failures else 0


def original_status(args: argparse.Namespace, env: dict[str, str]) -> str:
    """Prepare (or skip) the original Ori's venv; a one-line status for the results."""
    if args.no_original:
        env["ORI_BENCH_NO_ORIGINAL"] = "1"
        return "left out (--no-original)"
    spec = importlib.util.spec_from_file_location(
        "_ori_original_venv", HERE / "original" / "venv.py"
    )
    assert spec is not None
    assert spec.loader is not None
    venv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(venv)
    if not args.no_original_setup and venv.find()[0] is None:
        say("creating the original Ori's venv (benchmarks/.cache/, needs the package index)...")
    path, message = venv.ensure(create=not args.no_original_setup)
    if path is None:
        say(f"the original Ori 0.1.2 will be missing from the results: {message}")
        return f"not available ({message})"
    return f"ori 0.1.2 in its own venv ({Path(path).parent.parent.name})"


if __name__ == "__main__":
    sys.exit(main())
