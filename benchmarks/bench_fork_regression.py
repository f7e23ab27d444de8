"""Fork runs before and after a change to Ori, side by side in one run (issue 17).

Issue 17 changed how workers start (under ``fork``, a worker is forked only
while the process is single-threaded, otherwise it comes from the forkserver;
every worker reports ready first). Its condition: fork runs must not get more
than 10% slower on the headline chain benchmark. This module measures two of
``bench_poolchain.py``'s figures with the ``fork`` start method for the Ori
code of a baseline commit (before) and for this tree (after):

- the headline ``3-stage efficiency`` (thread -> process -> thread; ideal time /
  measured time, see ``bench_poolchain.py``);
- the ``trivial throughput, process stage`` (items/s through one process stage
  running ``identity``, worker start-up included);
- the ``trivial throughput, thread stage`` (the same through one thread stage
  with the default workers), which the byte budget and the feeder of issue 18
  and the engine redesign of issue 13 must not slow down either.

Each sample runs in a fresh interpreter (``python -S``, so no installed Ori can
shadow the tree under test) whose ``PYTHONPATH`` holds only that tree's
``packages/ori-errors/src`` and ``packages/ori-poolchain/src``; the benchmark
code itself is this tree's for both. Samples alternate before, after, before,
after..., so both see the same machine, and the CPU work per item is
calibrated once for both. The figure is after / before per pair (median, min
and max over the pairs); target >= 0.90.

The baseline tree is ``git archive``d from this repository into
``benchmarks/.cache/`` (git-ignored), or given as a checkout.

Run: ``python benchmarks/bench_fork_regression.py [--quick] [--baseline COMMIT]
[--baseline-tree PATH] [--start-method fork]`` (default: commit a003187, the
main branch before issue 17's worker-start change). Through
``benchmarks/run.py``, ``$ORI_BENCH_BASELINE`` names the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Row, format_table, machine, spread, unavailable
from bench_poolchain import CPU_WORK

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DEFAULT_BASELINE = "a003187"
BASELINE_ENV = "ORI_BENCH_BASELINE"
PACKAGES = ("ori-errors", "ori-poolchain")
TARGET = 0.9
EFFICIENCY = "3-stage efficiency"
THROUGHPUT = "trivial throughput, process stage"
THREAD_THROUGHPUT = "trivial throughput, thread stage"
KINDS = (EFFICIENCY, THROUGHPUT, THREAD_THROUGHPUT)


# -- inside a sample's interpreter ---------------------------------------------------


def sample(kind: str, n: int, method: str) -> dict[str, object]:
    """One figure of *kind* for the Ori on ``sys.path``, with *method* as the default."""
    import multiprocessing

    multiprocessing.set_start_method(method, force=True)
    from _cpu_work import processes
    from bench_poolchain import ideal_seconds, identity, items, three_stage_chain

    import ori.poolchain

    started = time.perf_counter()
    if kind == EFFICIENCY:
        results = list(three_stage_chain().execute_lazy(items(n)))
        value = ideal_seconds(results) / (time.perf_counter() - started)
    else:
        chain = ori.poolchain.PoolChain()
        if kind == THROUGHPUT:
            chain.add_processpool(identity, max_workers=processes())
        else:
            chain.add_threadpool(identity)
        count = sum(1 for _ in chain.execute_lazy(range(n)))
        value = n / (time.perf_counter() - started)
        if count != n:
            raise AssertionError(f"{count} results for {n} items")
    return {
        "value": value,
        "ori": ori.poolchain.__file__,
        "method": multiprocessing.get_start_method(),
    }


# -- in the benchmark's process -------------------------------------------------------


class Tree:
    """A tree of Ori sources that samples run against."""

    def __init__(self, label: str, path: Path) -> None:
        self.label = label
        self.path = path.resolve()

    def run_sample(self, kind: str, n: int, method: str) -> float:
        src = [str(self.path / "packages" / name / "src") for name in PACKAGES]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(src)}
        command = [sys.executable, "-S", __file__, "--sample", kind, "--n", str(n)]
        done = subprocess.run(
            [*command, "--start-method", method],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.label}: sample failed: {done.stderr[-2000:]}")
        result = json.loads(done.stdout.splitlines()[-1])
        if not Path(result["ori"]).resolve().is_relative_to(self.path):
            raise RuntimeError(f"{self.label}: the sample imported Ori from {result['ori']}")
        if result["method"] != method:
            raise RuntimeError(f"{self.label}: ran with {result['method']!r}, not {method!r}")
        return float(result["value"])


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def cache() -> Path:
    override = os.environ.get("ORI_BENCH_CACHE")  # the folder original/venv.py uses
    return Path(override) if override else HERE / ".cache"


def baseline_tree(commit: str) -> Path:
    """The Ori packages of *commit*, extracted once under the cache folder."""
    full = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    target = cache() / f"baseline-{full[:12]}"
    if (target / "packages" / PACKAGES[-1]).is_dir():
        return target
    cache().mkdir(parents=True, exist_ok=True)
    ignore = cache() / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# benchmark caches, never committed\n*\n", encoding="utf-8")
    with tempfile.TemporaryDirectory(dir=cache()) as scratch:
        archive = Path(scratch) / "tree.tar"
        git("archive", "--output", str(archive), full, *(f"packages/{name}" for name in PACKAGES))
        unpacked = Path(scratch) / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        unpacked.rename(target)
    return target


def this_tree_label() -> str:
    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "packages")
    except RuntimeError:
        return "this tree"
    return f"HEAD {head}" + (" + local changes" if dirty else "")


def paired_rows(
    kind: str, before: Tree, after: Tree, *, n: int, pairs: int, method: str, unit: str
) -> list[Row]:
    trees = (before, after)
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(pairs):
        for tree, values in zip(trees, samples, strict=True):
            values.append(tree.run_sample(kind, n, method))
    note = f"{n} items, start_method={method!r}, each sample in a fresh interpreter"
    names = (f"before: ori {before.label} (baseline)", f"ori {after.label}")
    rows = []
    for name, values in zip(names, samples, strict=True):
        median, low, high = spread(values)
        rows.append(Row(f"fork regression: {kind}", name, median, unit, True, low, high, note=note))
    of_medians = rows[1].value / rows[0].value
    ratios = [a / b for a, b in zip(samples[1], samples[0], strict=True)]
    median, low, high = spread(ratios)
    rows.append(
        Row(
            f"fork regression: {kind}, after / before",
            f"ori {after.label} vs {before.label}",
            median,
            "x",
            True,
            low,
            high,
            target=TARGET,
            note=f"per pair, {pairs} pairs alternating; ratio of the medians {of_medians:.3f}",
            comparable=False,
        )
    )
    return rows


def measure_all(quick: bool, *, baseline: str, tree: Path | None, method: str) -> list[Row]:
    try:
        before = Tree(baseline, tree if tree is not None else baseline_tree(baseline))
    except (RuntimeError, OSError, tarfile.TarError) as exc:
        return [
            unavailable(
                f"fork regression: {kind}, after / before",
                "ori",
                f"no baseline: {exc}",
                unit="x",
                higher_is_better=True,
                target=TARGET,
            )
            for kind in KINDS
        ]
    after = Tree(this_tree_label(), ROOT)
    if "ORI_BENCH_CPU_LOOPS" not in os.environ:
        CPU_WORK.calibrate()  # once, for both trees (samples inherit it)
    # A throughput sample takes about a second, an efficiency one about three:
    # the noisier, cheaper figure gets more pairs.
    return [
        *paired_rows(
            EFFICIENCY,
            before,
            after,
            n=80 if quick else 200,
            pairs=1 if quick else 7,
            method=method,
            unit="",
        ),
        *paired_rows(
            THROUGHPUT,
            before,
            after,
            n=200_000 if quick else 3_000_000,
            pairs=1 if quick else 15,
            method=method,
            unit="items/s",
        ),
        *paired_rows(
            THREAD_THROUGHPUT,
            before,
            after,
            n=100_000 if quick else 1_000_000,
            pairs=1 if quick else 9,
            method=method,
            unit="items/s",
        ),
    ]


def run(quick: bool) -> list[Row]:
    """For ``run.py``: the baseline from ``$ORI_BENCH_BASELINE``, fork."""
    baseline = os.environ.get(BASELINE_ENV, DEFAULT_BASELINE)
    return measure_all(quick, baseline=baseline, tree=None, method="fork")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench_fork_regression.py",
        description="Ori's fork runs before (a baseline commit) and after (this tree), in turns.",
    )
    parser.add_argument("--quick", action="store_true", help="one pair, small inputs")
    parser.add_argument(
        "--baseline",
        default=os.environ.get(BASELINE_ENV, DEFAULT_BASELINE),
        help=f"commit to compare with (default {DEFAULT_BASELINE})",
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        default=None,
        help="a checkout of the baseline to use instead of extracting it",
    )
    parser.add_argument("--start-method", default="fork", help="the start method (default fork)")
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sample:
        print(json.dumps(sample(args.sample, args.n, args.start_method)))
        return 0
    print(f"# {machine()}, {time.strftime('%Y-%m-%d')}{' (quick)' if args.quick else ''}\n")
    rows = measure_all(
        args.quick, baseline=args.baseline, tree=args.baseline_tree, method=args.start_method
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
