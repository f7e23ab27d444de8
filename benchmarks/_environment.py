"""What a run of the suite measures with: peers, Ori packages, machine and commit.

``run.py`` reports it before the run (what is missing, and the command that
installs it) and the results page records it, so that every figure can be traced
to the machine, the code and the peer versions that produced it. Nothing here
installs or changes anything.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

from _harness import load_by_path, machine

ROOT = Path(__file__).resolve().parent.parent
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
CHART_LIBRARY = "matplotlib"
# Ori's own packages (import name -> folder under packages/).
ORI_PACKAGES = {
    "ori.errors": "ori-errors",
    "ori.concurrency": "ori-concurrency",
    "ori.asyncio": "ori-asyncio",
    "ori.poolchain": "ori-poolchain",
    "ori.subprocess": "ori-subprocess",
}


@dataclasses.dataclass(frozen=True)
class Environment:
    """What this interpreter has of the peers, the chart library and Ori's packages."""

    missing_peers: list[str]  # import names; the chart library counts as a peer here
    missing_ori: list[str]  # folders under packages/
    versions: dict[str, str]  # import name -> installed version, for what is installed

    @property
    def missing(self) -> list[str]:
        """Everything missing, as the results page lists it."""
        return self.missing_peers + [f"packages/{folder}" for folder in self.missing_ori]

    def peer_versions(self) -> str:
        """``"pypeln 0.4.9, mpire 2.10.2, ..."``: the compared peers only, not the chart library."""
        return ", ".join(
            f"{name} {found}" for name, found in self.versions.items() if name in PEERS
        )


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


def survey() -> Environment:
    """The peers and Ori packages this interpreter is missing, and the versions it has."""
    wanted = {**PEERS, CHART_LIBRARY: CHART_LIBRARY}
    missing_peers = [name for name in wanted if not importable(name)]
    missing_ori = [folder for name, folder in ORI_PACKAGES.items() if not importable(name)]
    versions = {}
    for name, distribution in wanted.items():
        found = version(distribution) if name not in missing_peers else None
        if found:
            versions[name] = found
    return Environment(missing_peers, missing_ori, versions)


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


def original_venv() -> ModuleType:
    """``benchmarks/original/venv.py`` (loaded by path: the name ``venv`` is the stdlib's)."""
    return load_by_path(ROOT / "benchmarks" / "original" / "venv.py", "_ori_original_venv")


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=10
    ).stdout.strip()


def git_revision() -> str:
    """Short commit of the tree being measured, '+ local changes' when it is dirty."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return commit + (" + local changes" if dirty else "")
