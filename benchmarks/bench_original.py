"""The original Ori 0.1.2 on the workloads of bench_asyncio and bench_subprocess.

The original's ``ori`` package cannot be imported beside this repository's ``ori``
namespace, so each ``original/orig_*.py`` script runs in the original's own venv
(``original/venv.py``; ``run.py`` creates it) and hands its rows back as JSON.
Their benchmark names are taken from the modules they mirror, so in the combined
results the original sits in the same tables as the new packages and the peers.
(Its PoolChain runs in ``bench_peers.py`` and ``bench_poolchain.py``.)

Without the venv, every row says why the original is missing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).parent))

import _groups
from _harness import Row, main, unavailable

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted((HERE / "original").glob("orig_*.py"))
IMPLEMENTATION = "Ori 0.1.2 (original)"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_ori_original_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _missing_rows(script: Path, quick: bool, reason: str) -> list[Row]:
    try:
        names = _load(script).names(quick)
    except Exception as exc:  # a mirrored module changed: say so rather than crash
        return [unavailable(f"original/{script.name}", IMPLEMENTATION, f"{reason}; {exc!r}")]
    return [unavailable(name, IMPLEMENTATION, reason, **options) for name, options in names]


def _run_script(python: Path, script: Path, quick: bool) -> list[Row]:
    """Run one script in the venv, in its own session, killed after a hard limit."""
    limit = 300 if quick else 1800
    with tempfile.TemporaryDirectory(prefix="ori-bench-original-") as tmp:
        out = Path(tmp) / "rows.json"
        command = [str(python), str(script), str(out), *(["--quick"] if quick else [])]
        process = _groups.start(command, cwd=str(HERE))
        failure = None
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            failure = f"hung: killed after {limit} s"
        finally:
            _groups.stop(process)
        if failure is None and process.returncode != 0:
            failure = f"failed with exit code {process.returncode}"
        try:
            return [Row.from_dict(item) for item in json.loads(out.read_text(encoding="utf-8"))]
        except (OSError, ValueError):
            return _missing_rows(script, quick, failure or "produced no rows")


def run(quick: bool) -> list[Row]:
    _groups.kill_children_on_sigterm()  # run.py stops a module with SIGTERM first
    venv = _load(HERE / "original" / "venv.py")
    python, reason = venv.find()
    rows: list[Row] = []
    for script in SCRIPTS:
        if not (HERE / f"bench_{script.stem.removeprefix('orig_')}.py").exists():
            continue  # orig_x.py mirrors bench_x.py: without it there is no table to join
        if python is None:
            rows += _missing_rows(script, quick, f"not available: {reason}")
        else:
            rows += _run_script(python, script, quick)
    return rows


if __name__ == "__main__":
    main(run)
