"""Run the whole benchmark suite: every ``benchmarks/bench_*.py``, one table, charts.

Usage::

    python benchmarks/run.py [--quick] [--only NAME ...] [--skip NAME ...]
                             [--output-dir DIR] [--no-original | --no-original-setup]
                             [--module-timeout SECONDS] [--results-page PATH]
                             [--readme PATH]

``NAME`` is a module name without ``bench_`` (``peers``, ``poolchain``, ...);
``--list`` shows them. Each module's ``run(quick)`` runs in a fresh interpreter of
its own session (so one module's leftovers cannot skew the next, and a module that
hangs is killed after ``--module-timeout``); its rows come back as JSON. The
combined table is printed, and written with PNG charts (when matplotlib is
installed) into ``--output-dir`` (default ``benchmarks/results/``, ignored by git)
as ``benchmark-results.md`` and ``img/bench-*.png``. ``--results-page`` also
writes the page with tables only, for the one results page the repository keeps
(``docs/benchmark-results.md``), and ``--readme`` puts its headline into a README.

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

The work is done by ``_runner.py`` (discovery, one interpreter per module, machine
load), ``_environment.py`` (what is installed, machine, commit), ``_report.py``
(Markdown tables, the results page, the README block) and ``_charts.py`` (PNGs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # also when imported by path (the tests), not run as a script

import _charts  # noqa: E402
import _environment  # noqa: E402
import _report  # noqa: E402
import _runner  # noqa: E402
from _harness import format_table  # noqa: E402
from _runner import say  # noqa: E402

DEFAULT_OUTPUT = HERE / "results"


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
        default=DEFAULT_OUTPUT,
        help=f"where {_report.RESULTS_FILE} and {_report.IMAGE_DIR}/ go "
        "(default: benchmarks/results/, ignored by git)",
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
        "--results-page",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the results page with tables only (no charts) to this file; "
        "the repository keeps docs/benchmark-results.md",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help=f"also put the headline table between {_report.README_START} and "
        f"{_report.README_END} in this file",
    )
    return parser.parse_args(argv)


def split_names(values: Sequence[str]) -> list[str]:
    return [
        name.strip().removeprefix("bench_").removesuffix(".py")
        for value in values
        for name in value.split(",")
        if name.strip()
    ]


def print_environment(environment: _environment.Environment) -> None:
    say(f"machine: {_environment.describe_machine()}")
    if environment.versions:
        say("peers installed: " + ", ".join(f"{k} {v}" for k, v in environment.versions.items()))
    if environment.missing_peers:
        say(
            "missing (their rows will say 'not installed'): "
            f"{', '.join(environment.missing_peers)}\n"
            f"  install them with: python -m pip install -r {_environment.REQUIREMENTS}"
        )
    if environment.missing_ori:
        say(
            f"Ori packages not installed (their rows will say 'not available'): "
            f"{', '.join(environment.missing_ori)}\n"
            f"  install them with: python -m pip install "
            + " ".join(f"-e packages/{folder}" for folder in environment.missing_ori)
        )


def main(argv: Sequence[str] | None = None) -> int:
    return _runner.stopping_every_group_on_ctrl_c(
        lambda: _main(sys.argv[1:] if argv is None else argv)
    )


def _main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    available = _runner.discover()
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
    revision = _environment.git_revision()
    environment = _environment.survey()
    print_environment(environment)

    env = dict(os.environ)
    original = _runner.prepare_original(
        leave_out=args.no_original, create=not args.no_original_setup, env=env
    )
    say(f"original Ori 0.1.2: {original}")

    timeout = args.module_timeout or (150.0 if args.quick else 7200.0)
    run = _runner.run_suite(selected, quick=args.quick, timeout=timeout, env=env, started=started)

    print(
        f"# {_environment.describe_machine()}, {time.strftime('%Y-%m-%d')}"
        f"{' (quick)' if args.quick else ''}\n"
    )
    print(format_table(run.rows))
    print()

    write_outputs(args, run, environment, original=original, revision=revision)
    if run.failures:
        say("modules that did not finish: " + ", ".join(run.failures))
    return 1 if run.failures else 0


def write_outputs(
    args: argparse.Namespace,
    run: _runner.SuiteRun,
    environment: _environment.Environment,
    *,
    original: str,
    revision: str,
) -> None:
    """The results page and charts in --output-dir, then --results-page and --readme if asked."""

    def page(charts: dict[str, str], chart_note: str | None) -> str:
        return _report.results_markdown(
            run,
            environment,
            original=original,
            revision=revision,
            charts=charts,
            chart_note=chart_note,
        )

    output = args.output_dir.resolve()
    output.mkdir(parents=True, exist_ok=True)
    image_dir = output / _report.IMAGE_DIR
    charts, chart_note = _charts.draw_charts(run.rows, image_dir)
    if chart_note:
        say(chart_note)
    results = output / _report.RESULTS_FILE
    results.write_text(page(charts, chart_note), encoding="utf-8")
    say(f"\nwrote {results} and {len(charts)} chart(s) in {image_dir}")
    if args.results_page is not None:
        args.results_page.parent.mkdir(parents=True, exist_ok=True)
        args.results_page.write_text(page({}, _report.CHARTS_NOT_HERE), encoding="utf-8")
        say(f"wrote {args.results_page} (tables only)")
    if args.readme is not None:
        if _report.update_readme(args.readme, _report.headline_table(run.rows, targets_only=True)):
            say(f"updated the headline table in {args.readme}")
        else:
            say(
                f"{args.readme} has no {_report.README_START} ... {_report.README_END} block: "
                "left unchanged"
            )


if __name__ == "__main__":
    sys.exit(main())
