"""The distributions' metadata as hatchling computes it from the tree (test helper).

Versions are dynamic (each library's ``__version__`` line, see
``[tool.hatch.version]``), so reading ``pyproject.toml`` alone does not give
them; asking hatchling gives exactly what a build writes into METADATA.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from hatchling.metadata.core import ProjectMetadata
from hatchling.plugin.manager import PluginManager
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())
LIBRARIES = [p for p in PACKAGE_DIRS if p.name.startswith("ori-")]
META = ROOT / "packages" / "ori"


@cache
def metadata(package_dir: Path) -> ProjectMetadata:
    """hatchling's view of one distribution (version resolved)."""
    return ProjectMetadata(str(package_dir), PluginManager())


def version(package_dir: Path) -> str:
    """The version a build of *package_dir* gets."""
    return str(metadata(package_dir).version)


def dist_name(package_dir: Path) -> str:
    """The file-name form of the distribution name (``ori_errors``)."""
    return package_dir.name.replace("-", "_")


def module_name(package_dir: Path) -> str:
    """``ori-errors`` -> ``errors`` (the module is ``ori.errors``)."""
    return package_dir.name.removeprefix("ori-")


def requirements(package_dir: Path) -> list[Requirement]:
    """The distribution's run-time dependencies, parsed."""
    return [Requirement(d) for d in metadata(package_dir).core.dependencies]


def extras(package_dir: Path) -> dict[str, list[Requirement]]:
    """The distribution's optional dependencies, parsed, per extra."""
    optional = metadata(package_dir).core.optional_dependencies
    return {name: [Requirement(d) for d in deps] for name, deps in optional.items()}
