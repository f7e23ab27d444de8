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

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _groups
from _environment import original_venv
from _harness import Row, load_by_path, main, read_rows, unavailable

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted((HERE / "original").glob("orig_*.py"))
IMPLEMENTATION = "Ori 0.1.2 (original)"


def _missing_rows(script: Path, quick: bool, reason: str) -> list[Row]:
    try:
        names = load_by_path(script, f"_ori_original_{script.stem}").names(quick)
    except Exception as exc:  # a mirrored module changed: say so rather than crash
        return [unavailable(f"original/{script.name}", IMPLEMENTATION, f"{reason}; {exc!r}")]
    return [unavailable(name, IMPLEMENTATION, reason, **options) for name, options in names]


def _run_script(python: Path, script: Path, quick: bool) -> list[Row]:
    """Run one script in the venv, in its own session, killed after a hard limit."""
    limit = 300 if quick else 1800
    with tempfile.TemporaryDirectory(prefix="ori-bench-original-") as tmp:
        out = Path(tmp) / "rows.json"
        command = [str(python), str(script), str(out), *(["--quick"] if quick else [])]
        code = _groups.run_in_session(command, timeout=limit, cwd=str(HERE))
        rows = read_rows(out)
    if rows is not None:
        return rows
    if code is None:
        return _missing_rows(script, quick, f"hung: killed after {limit} s")
    failure = f"failed with exit code {code}" if code else "produced no rows"
    return _missing_rows(script, quick, failure)


def run(quick: bool) -> list[Row]:
    _groups.kill_children_on_sigterm()  # run.py stops a module with SIGTERM first
    venv = original_venv()
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
