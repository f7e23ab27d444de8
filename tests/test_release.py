"""What a release promises, checked on the tree: licence, metadata, versions, changelogs.

The built distributions themselves (wheels, sdists, ``twine check``) are
checked by ``test_packaging.py``; these tests read the sources only and are fast.
"""

from __future__ import annotations

import configparser
import importlib
import re
from pathlib import Path

import pytest
import trove_classifiers
from packaging.version import Version
from release_metadata import (
    LIBRARIES,
    META,
    PACKAGE_DIRS,
    ROOT,
    extras,
    metadata,
    module_name,
    requirements,
    version,
)

ERRORS = ROOT / "packages" / "ori-errors"
POOLCHAIN = ROOT / "packages" / "ori-poolchain"
SUBPROCESS = ROOT / "packages" / "ori-subprocess"


def _tested_pythons() -> list[str]:
    """``3.10`` ... from tox's envlist: what CI runs is what the metadata claims."""
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    envs = [e.strip() for e in tox["tox"]["envlist"].split(",")]
    return sorted(
        (f"3.{m[1]}" for m in map(re.compile(r"py3(\d+)$").match, envs) if m),
        key=Version,
    )


def test_root_licence_is_mit_for_the_ori_contributors() -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the Ori contributors$", licence, re.M)
    assert "Permission is hereby granted, free of charge" in licence


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_every_package_carries_the_same_licence(package_dir: Path) -> None:
    assert (package_dir / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    core = metadata(package_dir).core
    assert core.license_expression == "MIT"
    assert core.license_files == ["LICENSE"]


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_metadata_is_complete(package_dir: Path) -> None:
    core = metadata(package_dir).core
    assert len(core.description) > 30
    assert core.readme_content_type == "text/markdown"
    assert len(core.readme) > 300, "the README is the package's page on the index"
    assert core.requires_python == ">=3.10"
    assert len(core.keywords) >= 4
    classifiers = core.classifiers
    unknown = [c for c in classifiers if c not in trove_classifiers.classifiers]
    assert unknown == []
    pythons = [c.rsplit(" ", 1)[1] for c in classifiers if re.fullmatch(r".*Python :: 3\.\d+", c)]
    assert pythons == _tested_pythons() == ["3.10", "3.11", "3.12", "3.13"]
    assert [c for c in classifiers if c.startswith("Development Status ::")]
    assert ("Typing :: Typed" in classifiers) == (package_dir != META), "only code is typed"
    systems = [c for c in classifiers if c.startswith("Operating System ::")]
    if package_dir == SUBPROCESS:
        assert systems, "ori-subprocess names the systems it runs on"
        assert all(s.startswith("Operating System :: POSIX") for s in systems), systems
    else:
        assert systems == ["Operating System :: OS Independent"]


@pytest.mark.parametrize("package_dir", LIBRARIES, ids=lambda p: p.name)
def test_module_version_is_the_distribution_version(package_dir: Path) -> None:
    module = importlib.import_module(f"ori.{module_name(package_dir)}")
    assert isinstance(module.__version__, str)
    assert module.__version__ == version(package_dir)
    assert Version(module.__version__) >= Version("1.0.0")


def test_meta_package_pins_exactly_the_versions_in_the_tree() -> None:
    pins = {}
    for requirement in requirements(META):
        (specifier,) = requirement.specifier
        assert specifier.operator == "=="
        pins[requirement.name] = (specifier.version, requirement.marker)
    assert {name: pinned for name, (pinned, _) in pins.items()} == {
        p.name: version(p) for p in LIBRARIES
    }
    # POSIX-only: Windows gets every other piece.
    subprocess_marker = pins.pop("ori-subprocess")[1]
    assert subprocess_marker is not None
    assert not subprocess_marker.evaluate({"sys_platform": "win32"})
    assert subprocess_marker.evaluate({"sys_platform": "linux"})
    assert subprocess_marker.evaluate({"sys_platform": "darwin"})
    assert all(marker is None for _, marker in pins.values())


def test_meta_package_extras_are_poolchain_extras() -> None:
    offered = extras(META)
    poolchain_extras = set(extras(POOLCHAIN))
    assert poolchain_extras == {"progress", "cloudpickle", "dask"}
    assert set(offered) == poolchain_extras | {"all"}
    pin = f"=={version(POOLCHAIN)}"
    for name, pulled in offered.items():
        assert [(r.name, str(r.specifier)) for r in pulled] == [("ori-poolchain", pin)]
        wanted = poolchain_extras if name == "all" else {name}
        assert pulled[0].extras == wanted


@pytest.mark.parametrize("package_dir", LIBRARIES, ids=lambda p: p.name)
def test_ori_errors_bound_is_met_by_the_tree(package_dir: Path) -> None:
    for requirement in requirements(package_dir):
        if requirement.name == "ori-errors":
            assert requirement.specifier.contains(version(ERRORS))


def _sections(package_dir: Path) -> list[tuple[str, str]]:
    """(heading, body) of each ``## `` section of the package's changelog."""
    text = (package_dir / "CHANGELOG.md").read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_changelog_tops_with_the_current_version(package_dir: Path) -> None:
    headings = [heading for heading, _ in _sections(package_dir)]
    assert headings[0] == version(package_dir), "a release's changes sit under its version"
    assert "Unreleased" not in headings
    released = [Version(h) for h in headings]
    assert released == sorted(released, reverse=True), "newest first, no duplicates"
    assert len(set(released)) == len(released)


@pytest.mark.parametrize("package_dir", LIBRARIES, ids=lambda p: p.name)
def test_changelog_names_the_required_ori_errors(package_dir: Path) -> None:
    bounds = [
        s.version
        for r in requirements(package_dir)
        if r.name == "ori-errors"
        for s in r.specifier
        if s.operator == ">="
    ]
    if not bounds:
        return  # ori-errors itself
    (bound,) = bounds
    mentioned = re.findall(r"[Rr]equires ori-errors (\d+\.\d+\.\d+)", _sections(package_dir)[0][1])
    assert mentioned in ([], [bound]), "the top section's ori-errors must match the pin"


def test_meta_changelog_lists_the_current_pins() -> None:
    pins_line = re.search(r"^- Pins (.+)$", _sections(META)[0][1], flags=re.M)
    assert pins_line is not None, "the meta-package's top section says what it pins"
    named = dict(re.findall(r"(ori-[a-z]+) (\d+\.\d+\.\d+)", pins_line[1]))
    assert named == {p.name: version(p) for p in LIBRARIES}


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_docs_changelog_is_the_package_changelog(package_dir: Path) -> None:
    # The site includes each package's CHANGELOG.md (snippets) instead of a
    # copy, so the two cannot disagree.
    page = ROOT / "docs" / "changelog" / f"{package_dir.name}.md"
    relative = package_dir.relative_to(ROOT) / "CHANGELOG.md"
    assert page.read_text().strip() == f'--8<-- "{relative.as_posix()}"'


def test_every_docs_changelog_page_belongs_to_a_package() -> None:
    pages = {p.stem for p in (ROOT / "docs" / "changelog").glob("*.md")}
    assert pages == {p.name for p in PACKAGE_DIRS}
