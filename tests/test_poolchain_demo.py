"""The README's demo command keeps working: run the example end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "download_compute_save.py"
SMALL_RUN = ["--files", "12", "--size-kib", "64", "--latency-ms", "5"]
STAGE_ROWS = {
    "1/3 thread pool: download": 8,
    "2/3 process pool: compress_and_hash": 2,
    "3/3 thread pool: save": 4,
}


def _run_demo(*options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *SMALL_RUN, "--processes", "2", *options],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _stats_rows(stdout: str) -> dict[str, list[str]]:
    """The rows of print_stats()'s table, by stage label."""
    rows = {}
    for line in stdout.splitlines():
        for label in STAGE_ROWS:
            if line.startswith(label):
                rows[label] = line[len(label) :].split()
    return rows


def test_demo_runs_and_verifies_every_file() -> None:
    done = _run_demo()
    assert done.returncode == 0, done.stderr
    assert "all 12 verified" in done.stdout
    assert re.search(r"wall time [\d.]+ s for [\d.]+ s of work", done.stdout)
    for stage in ("download (threads)", "compress + sha256 (processes)", "save (threads)"):
        assert stage in done.stdout
    assert done.stderr == ""


def test_demo_prints_the_chain_statistics() -> None:
    done = _run_demo()
    assert done.returncode == 0, done.stderr
    first = r"^PoolChain run, finished after [\d.]+ s: 12 items read, 12 results; in flight peak "
    assert re.search(first + r"[\d.]+ [KMG]?i?B \(max_memory 256 MiB\)$", done.stdout, flags=re.M)
    rows = _stats_rows(done.stdout)
    assert set(rows) == set(STAGE_ROWS)
    for label, workers in STAGE_ROWS.items():
        # workers, in, out, failed, queue: every file went through every stage
        assert rows[label][:5] == [str(workers), "12", "12", "0", "0"], rows[label]
    assert re.search(r"^bottleneck: stage \d/3 ", done.stdout, flags=re.M)


def test_demo_progress_draws_a_bar_per_stage() -> None:
    pytest.importorskip("tqdm", reason="the bars need tqdm (requirements-dev installs it)")
    done = _run_demo("--progress")
    assert done.returncode == 0, done.stderr
    assert "all 12 verified" in done.stdout
    # tqdm draws on stderr; each stage's bar ends full.
    for name in ("download", "compress_and_hash", "save"):
        assert re.search(rf"stage \d/3 {name}\s*: 100%.*12/12", done.stderr), done.stderr


def test_demo_progress_without_tqdm_says_what_to_install(tmp_path: Path) -> None:
    # A tqdm package that cannot be imported stands in for "not installed".
    hidden = tmp_path / "tqdm"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('tqdm hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = _run_demo("--progress", env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("--progress: progress=True draws its bars with tqdm")
    assert "pip install 'ori-poolchain[progress]'" in message
    assert "verified" not in done.stdout
