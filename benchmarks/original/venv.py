"""The throwaway venv that holds the original Ori (``ori==0.1.2`` from the package index).

The original ships a regular top-level ``ori`` package, which cannot live beside
this repository's ``ori`` namespace packages, so its benchmarks run in a venv of
their own under ``benchmarks/.cache/`` (git-ignored; ``$ORI_BENCH_CACHE`` moves
it), made with the interpreter that runs the suite. ``benchmarks/run.py`` calls
:func:`ensure` before the benchmarks; run this file directly to (re)create the
venv by hand::

    python benchmarks/original/venv.py [--force]

Nothing here touches the interpreter's own environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = "0.1.2"
_SKIP_ENV = "ORI_BENCH_NO_ORIGINAL"
_CACHE_ENV = "ORI_BENCH_CACHE"  # another cache folder (tests use it)


def cache() -> Path:
    """The git-ignored cache folder: ``benchmarks/.cache`` unless ``$ORI_BENCH_CACHE`` is set."""
    override = os.environ.get(_CACHE_ENV)
    return Path(override) if override else Path(__file__).resolve().parent.parent / ".cache"


def venv() -> Path:
    """Folder of the original Ori's venv."""
    return cache() / f"ori-{VERSION}-venv"


def _ready() -> Path:
    return venv() / "ori-bench-ready.json"


def python() -> Path:
    """Path of the venv's interpreter (whether or not it exists yet)."""
    if os.name == "nt":
        return venv() / "Scripts" / "python.exe"
    return venv() / "bin" / "python"


def _wanted() -> dict[str, str]:
    return {"ori": VERSION, "python": ".".join(map(str, sys.version_info[:3]))}


def find() -> tuple[Path | None, str]:
    """The venv's interpreter if the venv is ready for this Python, else None and why."""
    if os.environ.get(_SKIP_ENV):
        return None, "skipped (--no-original)"
    try:
        ready = json.loads(_ready().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, f"its venv ({venv()}) is not set up; `python benchmarks/run.py` creates it"
    if ready != _wanted() or not python().exists():
        return None, f"its venv was made for {ready}; `python benchmarks/run.py` remakes it"
    return python(), f"ori {VERSION} in {venv()}"


def ensure(create: bool = True) -> tuple[Path | None, str]:
    """Return the venv's interpreter, creating the venv first if allowed and needed.

    Returns ``(None, reason)`` when the venv is missing and *create* is false, or
    when creating it failed (no network, no ``venv``/``ensurepip`` module...): the
    reason is a message meant for the user. Blocks while pip runs (seconds).
    """
    found, reason = find()
    if found is not None or not create or os.environ.get(_SKIP_ENV):
        return found, reason
    target = venv()
    shutil.rmtree(target, ignore_errors=True)
    try:
        cache().mkdir(parents=True, exist_ok=True)
        # A cache folder that ignores itself, like .pytest_cache: never committed by accident.
        (cache() / ".gitignore").write_text("# created by benchmarks/original/venv.py\n*\n")
    except OSError as exc:
        return None, f"could not create its venv: cannot write {cache()}: {exc}"
    steps = [
        [sys.executable, "-m", "venv", str(target)],
        [
            str(python()),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"ori=={VERSION}",
        ],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(target, ignore_errors=True)
            return None, f"could not create its venv: {' '.join(step[:4])}... failed: {exc}"
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            return None, f"could not create its venv ({' '.join(step[1:4])} failed): {tail}"
    _ready().write_text(json.dumps(_wanted()), encoding="utf-8")
    return python(), f"ori {VERSION} installed in {target}"


if __name__ == "__main__":
    if "--force" in sys.argv[1:]:
        shutil.rmtree(venv(), ignore_errors=True)
    path, message = ensure()
    print(message)
    sys.exit(0 if path else 1)
