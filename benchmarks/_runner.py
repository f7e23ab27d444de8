"""Find the benchmark modules and run each one in a fresh interpreter of its own.

Each ``bench_<name>.py`` runs as ``python _runner.py <name> <rows.json> ...`` in a
session of its own: one module's leftovers (threads, warm pools, memory) cannot
skew the next, and a module that hangs is killed, with every process it started,
after its timeout. Its rows come back as JSON in a temporary file, because its
stdout and stderr belong to its progress messages. Before each module of a full
run, :func:`run_suite` waits for the machine to be idle and then records how busy
it was (``_machine_load.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import _groups
import _machine_load
from _environment import original_venv
from _harness import Row, read_rows, unavailable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Modules run first in this order, the rest alphabetically; "original" adds rows to
# benchmarks defined by the others, so it comes last.
ORDER = ["poolchain", "peers", "asyncio", "subprocess"]
LAST = ["original"]
# Seconds a module gets, after SIGTERM, to stop what it started before SIGKILL.
STOP_GRACE = 10.0
QUIET_WAIT_SECONDS = 60.0  # how long a full run waits for an idle machine before a module
# Tells original/venv.py (its _SKIP_ENV) in every module that the original is left out.
NO_ORIGINAL = "ORI_BENCH_NO_ORIGINAL"


@dataclasses.dataclass
class SuiteRun:
    """What one run of the suite measured, and how each module went."""

    rows: list[Row]
    failures: dict[str, str]  # module name -> why it did not finish
    loads: dict[str, str]  # module name -> how busy the machine was around it
    quick: bool
    started: float  # time.time() when the run began
    elapsed: float  # seconds from then to the end of the last module


def say(message: str) -> None:
    """Progress and diagnostics go to stderr; stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


def stopping_every_group_on_ctrl_c(entry: Callable[[], int]) -> int:
    """Run *entry*; on Ctrl-C kill every process group it started and return 130."""
    try:
        return entry()
    except KeyboardInterrupt:
        _groups.kill_all()
        say("\ninterrupted: every benchmark process was stopped")
        return 130


# --- discovery ---------------------------------------------------------------------------------


def discover(directory: Path = HERE) -> list[str]:
    """Names of the benchmark modules in *directory* (``bench_x.py`` -> ``x``), in run order."""
    names = sorted(path.stem[len("bench_") :] for path in directory.glob("bench_*.py"))
    first = [name for name in ORDER if name in names]
    last = [name for name in LAST if name in names]
    middle = [name for name in names if name not in first and name not in last]
    return first + middle + last


# --- one module in a child interpreter --------------------------------------------------------


def run_child(name: str, rows_path: str, quick: bool, directory: str) -> None:
    """Inside the child: import bench_<name> from *directory*, run it, write its rows as JSON."""
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module = importlib.import_module(f"bench_{name}")
    rows = module.run(quick)
    bad = [row for row in rows if not isinstance(row, Row)]
    if bad:
        raise TypeError(f"bench_{name}.run() returned non-Row values: {bad[:3]!r}")
    Path(rows_path).write_text(json.dumps([row.to_dict() for row in rows]), encoding="utf-8")


def child_main(argv: Sequence[str]) -> int:
    """Entry point of the child interpreter that :func:`run_module` starts."""
    parser = argparse.ArgumentParser(
        prog="_runner.py", description="Run one benchmark module (run.py starts this)."
    )
    parser.add_argument("name", help="module name without bench_")
    parser.add_argument("rows", help="file to write the module's rows into, as JSON")
    parser.add_argument("--bench-dir", default=str(HERE), help="folder holding the module")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    try:
        run_child(args.name, args.rows, args.quick, args.bench_dir)
    except Exception:
        traceback.print_exc()
        return 1
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
            name,
            str(rows_path),
            "--bench-dir",
            str(directory),
        ]
        if quick:
            command.append("--quick")
        # A grace period after SIGTERM: a module that runs scenarios in sessions of
        # their own (bench_peers) then kills those before it exits.
        code = _groups.run_in_session(
            command,
            timeout=timeout,
            grace=STOP_GRACE,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            cwd=str(ROOT),
            env=env,
        )
        rows = read_rows(rows_path)
    if code is None:
        failure: str | None = f"timed out after {timeout:.0f} s (killed)"
    elif code != 0:
        failure = f"failed with exit code {code} (its traceback is above)"
    else:
        failure = None if rows is not None else "produced no rows"
    return rows or [], failure


# --- the whole suite ---------------------------------------------------------------------------


def prepare_original(*, leave_out: bool, create: bool, env: dict[str, str]) -> str:
    """Prepare (or leave out) the original Ori's venv for the modules run with *env*.

    Returns a one-line status for the results page.
    """
    if leave_out:
        env[NO_ORIGINAL] = "1"
        return "left out (--no-original)"
    venv = original_venv()
    if create and venv.find()[0] is None:
        say("creating the original Ori's venv (benchmarks/.cache/, needs the package index)...")
    path, message = venv.ensure(create=create)
    if path is None:
        say(f"the original Ori 0.1.2 will be missing from the results: {message}")
        return f"not available ({message})"
    return f"ori 0.1.2 in its own venv ({Path(path).parent.parent.name})"


def run_suite(
    names: Sequence[str], *, quick: bool, timeout: float, env: dict[str, str], started: float
) -> SuiteRun:
    """Run the modules *names* one after the other; a module that fails becomes a row saying so.

    *started* is when the run began (``time.time()``), setting up included: the
    results page dates the run by it and counts its duration from it.
    """
    rows: list[Row] = []
    failures: dict[str, str] = {}
    loads: dict[str, str] = {}
    for name in names:
        say(f"\n== bench_{name}{' (quick)' if quick else ''} ==")
        # A full run waits (up to a minute) for the machine to be idle first.
        busy = _machine_load.wait_until_quiet(
            0.0 if quick else QUIET_WAIT_SECONDS, sample=0.2 if quick else 1.0
        )
        watch = _machine_load.LoadWatch()
        began = time.perf_counter()
        module_rows, failure = run_module(name, quick=quick, timeout=timeout, env=env)
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
    return SuiteRun(rows, failures, loads, quick, started, time.time() - started)


if __name__ == "__main__":
    sys.exit(stopping_every_group_on_ctrl_c(lambda: child_main(sys.argv[1:])))
