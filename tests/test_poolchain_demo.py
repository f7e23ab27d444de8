"""The README's demo command keeps working: run the example end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "download_compute_save.py"


def test_demo_runs_and_verifies_every_file() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--files", "12", "--size-kib", "64", "--latency-ms", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "all 12 verified" in done.stdout
    assert re.search(r"wall time [\d.]+ s for [\d.]+ s of work", done.stdout)
    for stage in ("download (threads)", "compress + sha256 (processes)", "save (threads)"):
        assert stage in done.stdout
    assert done.stderr == ""
