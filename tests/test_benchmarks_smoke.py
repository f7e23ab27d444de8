"""The benchmark suite works end to end (its figures are not checked: that is its job).

``benchmarks/run.py --quick`` runs every benchmark module with tiny inputs, with
whatever peers this environment has: a missing peer must give rows that say "not
installed", never a crash. The machinery that keeps a hanging module or peer from
hanging the suite is tested on purpose-built hangs.

These test the repository's tooling, not Ori on the interpreter at hand, so they
are marked ``tooling``: tox runs them in its py311 environment only (tox.ini).
The cpupool tests are the exception: what they check depends on the interpreter
(free-threaded or not), so every environment runs them.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Issue 17's modules: each has a test of its own below (in the suite's quick run
# they would push it past its time limit).
ISSUE_17_MODULES = ("cpupool", "start_methods", "fork_regression")


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    """``benchmarks/_runner.py``, the one run.py imports (loading run.py puts it on the path)."""
    load(BENCHMARKS / "run.py", "ori_benchmarks_run")
    return sys.modules["_runner"]


@pytest.fixture(scope="module")
def report(runner: ModuleType) -> ModuleType:
    """``benchmarks/_report.py``, the one run.py imported."""
    return sys.modules["_report"]


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.mark.tooling
@pytest.mark.slow
def test_quick_run_prints_the_table_and_writes_results_and_charts(tmp_path: Path) -> None:
    started = time.monotonic()
    # bench_poolchain's own quick mode streams 10^6 items (about 25 s here): it is
    # left out to keep this test short; the suite runs it like any other module.
    # So are issue 17's modules, tested one by one below.
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run.py"),
            "--quick",
            "--no-original",
            "--skip",
            ",".join(("poolchain", *ISSUE_17_MODULES)),
            "--output-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    assert took < 120, f"--quick took {took:.0f} s"

    # The combined table on stdout, with rows from several modules.
    assert "| benchmark | implementation | median | min | max | vs best | target | note |" in (
        done.stdout
    )
    assert "(a) 3-stage chain: efficiency vs ideal" in done.stdout
    assert "lines" in done.stdout  # bench_subprocess
    # The stdlib peers always run; a missing third-party peer says so.
    assert "| concurrent.futures |" in done.stdout
    for peer in ("pypeln", "mpire", "joblib", "loky"):
        if not installed(peer):
            assert f"| {peer} | — |" in done.stdout
            assert "not installed" in done.stdout
    assert "skipped (--no-original)" in done.stdout

    results = (tmp_path / "benchmark-results.md").read_text(encoding="utf-8")
    assert "cores" in results
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in results
    assert time.strftime("%Y-%m-%d") in results
    assert "Quick run" in results
    assert "### Headline" in results
    assert "did not finish" not in results
    # How busy the machine was, per module (Linux has /proc/stat).
    if Path("/proc/stat").exists():
        assert "**Machine load**" in results
        assert "- `bench_peers.py`: " in results
        assert "of CPU time taken by the host during the run" in results
    sections = [line[4:] for line in results.splitlines() if line.startswith("### ")]
    assert len(sections) > 5

    # The original Ori's rows (here: "skipped") join the tables of the modules they mirror.
    by_section = {
        part.split("\n", 1)[0]: part for part in results.split("\n### ")[1:] if "\n" in part
    }
    for script in sorted((BENCHMARKS / "original").glob("orig_*.py")):
        if not (BENCHMARKS / f"bench_{script.stem[len('orig_') :]}.py").exists():
            continue
        for name, _ in load(script, f"ori_benchmarks_{script.stem}").names(True):
            section = by_section.get(name, "")
            assert "| Ori 0.1.2 (original) |" in section, name
            others = [
                line
                for line in section.splitlines()
                if line.startswith("| ")
                and not line.startswith("| implementation |")
                and "original" not in line
                and "---" not in line
            ]
            assert others, f"{name}: only the original has rows"

    charts = sorted((tmp_path / "img").glob("bench-*.png"))
    if installed("matplotlib"):
        # One chart per benchmark section (the headline has none), each a real PNG.
        assert len(charts) == len(sections) - 1
        for chart in charts:
            assert chart.read_bytes().startswith(PNG_MAGIC)
            assert f"(img/{chart.name})" in results
    else:
        assert not charts
        assert "matplotlib is not installed" in done.stderr
        assert "pip install -r benchmarks/requirements.txt" in done.stderr


@pytest.mark.tooling
def test_discovery_runs_peers_first_and_the_original_last(
    runner: ModuleType, tmp_path: Path
) -> None:
    for name in ("zeta", "original", "alpha", "peers", "poolchain"):
        (tmp_path / f"bench_{name}.py").write_text("")
    (tmp_path / "helper.py").write_text("")
    assert runner.discover(tmp_path) == ["poolchain", "peers", "alpha", "zeta", "original"]
    assert "peers" in runner.discover()


@pytest.mark.tooling
def test_a_hanging_module_is_killed_with_everything_it_started(
    runner: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "bench_hang.py").write_text(
        textwrap.dedent(
            """
            import subprocess, sys, time

            def run(quick):
                # A grandchild that would outlive a plain kill of the module.
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
                time.sleep(120)
            """
        )
    )
    started = time.monotonic()
    rows, failure = runner.run_module("hang", quick=True, timeout=3, directory=tmp_path)
    assert time.monotonic() - started < 20
    assert rows == []
    assert failure is not None
    assert "timed out after 3 s" in failure
    # The no_leaks fixture then checks that the grandchild is gone too.


@pytest.mark.tooling
def test_a_hanging_module_stops_the_sessions_it_started(runner: ModuleType, tmp_path: Path) -> None:
    """Like bench_peers: children in sessions of their own are not in the module's group."""
    (tmp_path / "bench_nested.py").write_text(
        textwrap.dedent(
            """
            import sys, time
            sys.path.insert(0, BENCHMARKS)
            import _groups

            def run(quick):
                _groups.kill_children_on_sigterm()
                _groups.start([sys.executable, "-c", "import time; time.sleep(120)"])
                time.sleep(120)
            """
        ).replace("BENCHMARKS", repr(str(BENCHMARKS)))
    )
    started = time.monotonic()
    rows, failure = runner.run_module("nested", quick=True, timeout=3, directory=tmp_path)
    assert time.monotonic() - started < 3 + runner.STOP_GRACE
    assert rows == []
    assert failure is not None
    assert "timed out" in failure
    # The no_leaks fixture then checks that the child in its own session is gone.


@pytest.mark.tooling
def test_a_crashing_module_is_reported_not_fatal(runner: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "bench_crash.py").write_text("def run(quick):\n    raise RuntimeError('boom')\n")
    rows, failure = runner.run_module("crash", quick=True, timeout=60, directory=tmp_path)
    assert rows == []
    assert failure is not None
    assert "exit code 1" in failure


@pytest.mark.tooling
def test_rows_travel_back_from_the_child(runner: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "bench_fine.py").write_text(
        textwrap.dedent(
            """
            import sys
            sys.path.insert(0, BENCHMARKS)
            from _harness import Row, unavailable

            def run(quick):
                return [
                    Row("b", "Ori", 2.0, "s", low=1.5, high=2.5, target=3.0),
                    unavailable("b", "peer", "not installed"),
                    Row("b", "other", 4.0, "s", extra={"quick": quick}),
                ]
            """
        ).replace("BENCHMARKS", repr(str(BENCHMARKS)))
    )
    rows, failure = runner.run_module("fine", quick=True, timeout=60, directory=tmp_path)
    assert failure is None
    assert [row.implementation for row in rows] == ["Ori", "peer", "other"]
    assert (rows[0].low, rows[0].high, rows[0].target) == (1.5, 2.5, 3.0)
    assert math.isnan(rows[1].value)
    assert rows[1].note == "not installed"
    assert rows[2].extra == {"quick": True}


@pytest.mark.tooling
def test_report_tables_rank_measured_rows_and_explain_missing_ones(report: ModuleType) -> None:
    harness = sys.modules["_harness"]  # the one run.py imported
    rows = [
        harness.Row("speed", "Ori", 300.0, "items/s", True, 250.0, 350.0, target=150.0),
        harness.Row("speed", "peer", 150.0, "items/s", True),
        harness.unavailable("speed", "gone", "not installed", unit="items/s"),
        harness.Row("time", "Ori", 4.0, "s", target=2.0),
        harness.Row("time", "peer", 2.0, "s"),
        harness.Row("time", "aborted peer", 0.5, "s", comparable=False),
    ]
    table = harness.format_table(rows)
    assert "| speed | Ori | 300 items/s | 250 | 350 | 1.00x | >= 150 |" in table
    assert "| speed | peer | 150 items/s |  |  | 0.50x |" in table
    assert "| speed | gone | — |  |  | n/a |  | not installed |" in table
    # Lower is better; a row that is not comparable never counts as the best.
    assert "| time | Ori | 4 s |  |  | 0.50x | <= 2 |" in table
    assert "| time | aborted peer | 0.5 s |  |  | n/a |" in table

    headline = report.headline_table(rows)
    assert "| speed | 300 items/s | 150 items/s (peer) | 2.00x | >= 150 | yes |" in headline
    assert "| time | 4 s | 2 s (peer) | 0.50x | <= 2 | **no** |" in headline
    rows.append(harness.Row("untargeted", "Ori", 1.0, "s"))
    assert "| untargeted |" in report.headline_table(rows)
    assert "| untargeted |" not in report.headline_table(rows, targets_only=True)
    # Two Ori variants with the same figure: the one with a target speaks for Ori.
    rows += [
        harness.Row("variants", "ori plain", 0.95, "", True),
        harness.Row("variants", "ori targeted", 0.95, "", True, target=0.9),
        harness.Row("variants", "peer", 0.9, "", True),
    ]
    assert "| variants | 0.95 | 0.9 (peer) | 1.06x | >= 0.9 | yes |" in report.headline_table(
        rows, targets_only=True
    )


@pytest.mark.tooling
def test_readme_block_is_replaced_only_between_markers(report: ModuleType, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"intro\n{report.README_START}\nold table\n{report.README_END}\noutro\n", encoding="utf-8"
    )
    assert report.update_readme(readme, "| new | table |")
    text = readme.read_text(encoding="utf-8")
    assert "old table" not in text
    assert text.startswith("intro\n")
    assert text.endswith("outro\n")
    assert "| new | table |" in text
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n", encoding="utf-8")
    assert not report.update_readme(plain, "| new | table |")
    assert plain.read_text(encoding="utf-8") == "no markers\n"


@pytest.mark.tooling
def test_results_page_links_charts_only_when_it_has_them(
    runner: ModuleType, report: ModuleType
) -> None:
    """The run's own page links its PNGs; the page the repository keeps has tables only."""
    harness = sys.modules["_harness"]
    environment = sys.modules["_environment"].Environment(["mpire"], [], {"pypeln": "0.4.9"})
    rows = [
        harness.Row("speed", "Ori", 300.0, "items/s", True),
        harness.Row("speed", "peer", 1.0, "s"),
    ]
    run = runner.SuiteRun(rows, {}, {"poolchain": "idle"}, False, time.time(), 60.0)

    def page(charts: dict[str, str], note: str | None) -> str:
        return report.results_markdown(
            run,
            environment,
            original="left out",
            revision="abc1234",
            charts=charts,
            chart_note=note,
        )

    with_charts = page({"speed": "bench-speed.png"}, None)
    assert "![speed](img/bench-speed.png)" in with_charts
    assert "- **Ori:** commit abc1234" in with_charts
    assert "- **Peers:** pypeln 0.4.9; the original Ori: left out" in with_charts
    assert "- **Not installed:** mpire (their rows say so)" in with_charts
    assert "- `bench_poolchain.py`: idle" in with_charts
    assert time.strftime("%Y-%m-%d") in with_charts
    tables_only = page({}, report.CHARTS_NOT_HERE)
    assert "](img/" not in tables_only
    assert f"*{report.CHARTS_NOT_HERE}.*" in tables_only
    assert "| **Ori** | 300 items/s |" in tables_only


@pytest.mark.tooling
def test_a_peer_that_hangs_in_teardown_is_reported_and_killed() -> None:
    """ProcessPoolExecutor with a stuck item: map's timeout fires, then shutdown hangs."""
    peers = load(BENCHMARKS / "bench_peers.py", "ori_benchmarks_peers")
    started = time.monotonic()
    outcome = peers.run_scenario(
        sys.executable,
        "recovery",
        "concurrent.futures",
        3.0,
        n=6,
        bad=2,
        mode="stuck",
        item_seconds=0.0,
        timeout=0.5,
        workers=2,
    )
    assert time.monotonic() - started < 3.0 + peers.KILL_GRACE
    assert outcome["status"] == "hung"
    row = peers.recovery_row("stuck", "concurrent.futures", outcome, 6, 0.1, None)
    assert not row.measured
    assert row.note.startswith("hung: no end after 3 s")


@pytest.mark.tooling
def test_the_original_venv_reports_why_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = load(BENCHMARKS / "original" / "venv.py", "ori_benchmarks_original_venv")
    monkeypatch.setenv("ORI_BENCH_CACHE", str(tmp_path / "cache"))
    path, reason = venv.ensure(create=False)
    assert path is None
    assert "is not set up" in reason
    assert "python benchmarks/run.py" in reason
    # A cache folder that cannot be created: a clear message, not a traceback.
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("ORI_BENCH_CACHE", str(tmp_path / "file" / "cache"))
    path, reason = venv.ensure(create=True)
    assert path is None
    assert reason.startswith("could not create its venv")


@pytest.mark.tooling
def test_machine_load_shares_and_descriptions() -> None:
    load_module = load(BENCHMARKS / "_machine_load.py", "ori_benchmarks_machine_load")
    times = load_module.CpuTimes
    before = times(busy=100, idle=800, steal=100)
    after = times(busy=150, idle=1100, steal=150)  # 400 ticks: 50 busy, 300 idle, 50 stolen
    assert load_module.busy_share(before, after) == pytest.approx(0.25)
    assert load_module.steal_share(before, after) == pytest.approx(0.125)
    assert load_module.busy_share(after, after) == 0.0
    assert load_module.steal_share(after, after) == 0.0
    assert load_module.describe(0.25, 0.125) == (
        "25% of the CPUs busy just before; 12.5% of CPU time taken by the host during the run"
    )
    assert load_module.describe(None, None) == "not measured (no /proc/stat)"
    now = load_module.cpu_times()
    if Path("/proc/stat").exists():
        assert now is not None
        assert now.total > 0
        busy = load_module.wait_until_quiet(0.0, sample=0.05)
        assert busy is not None
        assert 0.0 <= busy <= 1.0
        assert load_module.LoadWatch().steal() is not None
    else:
        assert now is None


def by_benchmark(rows: list[object]) -> dict[str, list[object]]:
    groups: dict[str, list[object]] = {}
    for row in rows:
        groups.setdefault(row.benchmark, []).append(row)  # type: ignore[attr-defined]
    return groups


@pytest.mark.tooling
@pytest.mark.slow
def test_start_methods_quick_has_every_method_and_its_ratio_to_fork(runner: ModuleType) -> None:
    rows, failure = runner.run_module("start_methods", quick=True, timeout=150)
    assert failure is None
    methods = [
        method
        for method in ("fork", "forkserver", "spawn")
        if method in multiprocessing.get_all_start_methods()
    ]
    groups = by_benchmark(rows)
    timed = [name for name in groups if not name.endswith("ratio to fork")]
    assert len(timed) == 3  # first result (warm, fresh interpreter), replacement
    for name in timed:
        members = groups[name]
        assert [row.implementation for row in members if row.implementation.startswith("ori")] == [
            f"ori PoolChain, start_method={method!r}" for method in methods
        ]
        assert all(row.measured and row.unit == "ms" for row in members)
        ratios = groups[f"{name}, ratio to fork"]
        assert [row.implementation for row in ratios] == [
            f"ori PoolChain, {method} / fork" for method in methods if method != "fork"
        ]
        assert all(row.measured and not row.comparable for row in ratios)
    start = groups[timed[0]]
    peers = [row.implementation for row in start if not row.implementation.startswith("ori")]
    assert peers == [f"multiprocessing.Pool(2).imap, {method}" for method in methods]
    replacement = next(name for name in timed if "replace" in name)
    assert "crashes per run" in groups[replacement][0].note


@pytest.mark.tooling
@pytest.mark.slow
def test_fork_regression_quick_compares_the_baseline_with_this_tree(
    runner: ModuleType, tmp_path: Path
) -> None:
    module = load(BENCHMARKS / "bench_fork_regression.py", "ori_benchmarks_fork_regression")
    env = {**os.environ, "ORI_BENCH_CACHE": str(tmp_path)}
    rows, failure = runner.run_module("fork_regression", quick=True, timeout=150, env=env)
    assert failure is None
    ratios = [row for row in rows if row.benchmark.endswith("after / before")]
    assert [row.target for row in ratios] == [module.TARGET] * len(module.KINDS)
    has_baseline = subprocess.run(
        ["git", "cat-file", "-e", f"{module.DEFAULT_BASELINE}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if has_baseline.returncode != 0:  # a shallow clone: the rows say why
        assert all(not row.measured and "no baseline" in row.note for row in rows)
        return
    assert len(rows) == 3 * len(module.KINDS)
    assert all(row.measured for row in rows)
    before = [row for row in rows if row.implementation.startswith("before: ")]
    assert len(before) == len(module.KINDS)
    assert all(module.DEFAULT_BASELINE in row.implementation for row in before)
    # The baseline was extracted into the cache folder, not into the repository.
    assert list(tmp_path.glob("baseline-*/packages/ori-poolchain/src/ori/poolchain"))


@pytest.mark.slow
def test_cpupool_measures_without_the_gil_and_says_why_not_with_it(runner: ModuleType) -> None:
    module = load(BENCHMARKS / "bench_cpupool.py", "ori_benchmarks_cpupool")
    env = {key: value for key, value in os.environ.items() if key != module.FREE_THREADED_ENV}
    rows, failure = runner.run_module("cpupool", quick=True, timeout=150, env=env)
    assert failure is None
    assert {row.target for row in rows} == {None, module.SPEEDUP_TARGET, module.BYTES_TARGET}
    cpu_rows = [row for row in rows if row.implementation == module.CPU_NAME]
    assert len(cpu_rows) == 2
    if module.gil_enabled():
        assert all(not row.measured for row in rows)
        assert all("needs a free-threaded Python" in row.note for row in rows)
    else:
        assert all(row.measured for row in rows)


def test_cpupool_reports_a_free_threaded_interpreter_that_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load(BENCHMARKS / "bench_cpupool.py", "ori_benchmarks_cpupool")
    # This interpreter with the GIL on (PYTHON_GIL=1 turns it on in a free-threaded
    # build; other builds have it anyway) stands in for a wrong setting.
    monkeypatch.setenv("PYTHON_GIL", "1")
    rows = module.rows_from(sys.executable, quick=True)
    # The same benchmarks as a measured run, each unmeasured.
    shapes = [(row.benchmark, row.implementation) for row in module.gil_rows("any reason")]
    assert [(row.benchmark, row.implementation) for row in rows] == shapes
    assert len(shapes) == 7
    assert all(not row.measured for row in rows)
    assert all("is not free-threaded with the GIL off" in row.note for row in rows)
