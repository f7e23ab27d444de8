"""The monorepo's shape: every distribution laid out the same way, one namespace."""

from __future__ import annotations

import configparser
import importlib
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from release_metadata import version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = sorted(p for p in (ROOT / "packages").glob("ori-*") if p.is_dir())
META = ROOT / "packages" / "ori"


def _project(package_dir: Path) -> dict:  # type: ignore[type-arg]
    with (package_dir / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]  # type: ignore[no-any-return]


def _module_name(package_dir: Path) -> str:
    return package_dir.name.removeprefix("ori-")


def test_expected_libraries_exist() -> None:
    names = {p.name for p in LIBRARIES}
    assert {"ori-errors", "ori-concurrency"} <= names


def test_no_namespace_init_anywhere() -> None:
    # An ori/__init__.py in any distribution turns the namespace into a regular
    # package and hides every other Ori package installed beside it.
    offenders = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.glob("packages/*/src/ori/__init__.py")
    )
    assert offenders == []


@pytest.mark.parametrize("package_dir", LIBRARIES, ids=lambda p: p.name)
def test_library_layout(package_dir: Path) -> None:
    module = _module_name(package_dir)
    src = package_dir / "src" / "ori" / module
    assert (src / "__init__.py").is_file()
    assert (src / "py.typed").is_file()
    assert (package_dir / "README.md").is_file()
    assert (package_dir / "CHANGELOG.md").is_file()
    assert any((package_dir / "tests").glob("test_*.py")), "every package has tests"
    project = _project(package_dir)
    assert project["name"] == package_dir.name
    assert project["requires-python"] == ">=3.10"
    assert project["dynamic"] == ["version"], "the version is the module's __version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", version(package_dir))


@pytest.mark.parametrize("package_dir", LIBRARIES, ids=lambda p: p.name)
def test_library_dependencies(package_dir: Path) -> None:
    deps = _project(package_dir).get("dependencies", [])
    ori_deps = [d for d in deps if d.startswith("ori")]
    if package_dir.name == "ori-errors":
        assert deps == []
        return
    # Only ori-errors, with a lower bound; nothing else but typing-extensions.
    assert ori_deps == [d for d in deps if re.match(r"ori-errors>=\d", d)]
    assert len(ori_deps) == 1
    others = [d for d in deps if d not in ori_deps]
    assert all(d.startswith("typing-extensions") for d in others), others


def test_meta_package_pins_every_library_exactly() -> None:
    project = _project(META)
    pins = {}
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", dependency
        pins[requirement.name] = specifier.version
    expected = {p.name: version(p) for p in LIBRARIES}
    assert pins == expected
    assert not (META / "src").exists(), "the meta-package carries no code"
    with (META / "pyproject.toml").open("rb") as f:
        build = tomllib.load(f)["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert build["bypass-selection"] is True


@pytest.mark.parametrize("package_dir", LIBRARIES, ids=lambda p: p.name)
def test_public_names_match_all(package_dir: Path) -> None:
    module = importlib.import_module(f"ori.{_module_name(package_dir)}")
    declared = set(module.__all__)
    for name in declared:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_editable_installs_share_one_namespace() -> None:
    import ori

    assert getattr(ori, "__file__", None) is None, "ori must stay a namespace package"
    locations = {str(Path(p).resolve()) for p in ori.__path__}
    for package_dir in LIBRARIES:
        assert str((package_dir / "src" / "ori").resolve()) in locations
        importlib.import_module(f"ori.{_module_name(package_dir)}")
    assert "ori.errors" in sys.modules


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = "python -m pip install -q -U tox && python -m tox"
    assert f"```bash\n{command}\n```" in readme
    assert command in (ROOT / ".ci" / "run").read_text()


def test_ci_runs_the_suite_on_free_threaded_python() -> None:
    # .ci/run builds (or reuses) python3.13t before the README's test command and
    # hands its path to tox, where py313t is part of the default envlist; a
    # missing interpreter fails CI instead of being skipped.
    ci = (ROOT / ".ci" / "run").read_text()
    build = ci.find("ORI_PYTHON313T=$(../shared/tools/build-free-threaded-python.sh)")
    assert 0 <= build < ci.find("python -m pip install -q -U tox && python -m tox")
    assert "export ORI_PYTHON313T" in ci
    assert "export TOX_SKIP_MISSING_INTERPRETERS=false" in ci
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    assert "py313t" in [env.strip() for env in tox["tox"]["envlist"].split(",")]
    assert "{env:ORI_PYTHON313T:" in tox["testenv:py313t"]["base_python"]


def test_tests_of_the_tooling_run_in_exactly_one_tox_environment() -> None:
    # Tests marked `tooling` (benchmark harness, built distributions) are left
    # out of every environment but py311, which CI always has (.ci/run puts
    # 3.11 first and makes a missing interpreter fail the run).
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    envs = [env.strip() for env in tox["tox"]["envlist"].split(",")]
    assert "py311" in envs
    assert tox["testenv"]["commands"].strip() == 'python -m pytest -m "not tooling" {posargs}'
    assert tox["testenv:py311"]["commands"].strip() == "python -m pytest {posargs}"
    for env in envs:
        if env.startswith("py") and env != "py311" and tox.has_section(f"testenv:{env}"):
            assert "commands" not in tox[f"testenv:{env}"], f"{env}: the default commands"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "[[ $v == 3.11.* ]] && ordered+=" in ci
    marked = [
        path.name
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        if path.name != Path(__file__).name and "pytest.mark.tooling" in path.read_text()
    ]
    assert marked == ["test_benchmarks_smoke.py", "test_packaging.py"]


def test_readme_quick_start_has_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", quick_start, flags=re.S)
    assert len(blocks) == 2
    assert all("\n" not in block for block in blocks), "each command is one line"
    demo, tests = blocks
    assert "examples/download_compute_save.py" in demo
    assert (ROOT / "examples" / "download_compute_save.py").is_file()
    assert tests == "python -m pip install -q -U tox && python -m tox"


def test_process_calls_module_is_the_same_in_both_packages() -> None:
    # ori-concurrency and ori-asyncio depend on ori-errors only, so each carries
    # one copy of the process-call machinery; the copies must never drift apart.
    concurrency = ROOT / "packages/ori-concurrency/src/ori/concurrency/_process_calls.py"
    asyncio_copy = ROOT / "packages/ori-asyncio/src/ori/asyncio/_process_calls.py"
    assert concurrency.read_text() == asyncio_copy.read_text(), (
        "edit packages/ori-concurrency/src/ori/concurrency/_process_calls.py and copy it "
        "to packages/ori-asyncio/src/ori/asyncio/_process_calls.py"
    )


def _section(path: Path, heading: str) -> str:
    """The lines from the comment line starting with *heading* to the next ``# ---`` line."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("# --- ")), len(lines)
    )
    return "\n".join(lines[start:end]).strip()


@pytest.mark.parametrize(
    ("concurrency_file", "asyncio_file", "heading"),
    [
        ("src/ori/concurrency/_compat.py", "src/ori/asyncio/_compat.py", "# --- process pools"),
        ("tests/test_compat.py", "tests/test_compat.py", "# --- process pools"),
        ("tests/concurrency_workers.py", "tests/asyncio_workers.py", "# --- for test_compat.py"),
    ],
)
def test_process_pool_compat_section_is_the_same_in_both_packages(
    concurrency_file: str, asyncio_file: str, heading: str
) -> None:
    # _process_calls.py imports these interpreter-detail wrappers from its own
    # package's _compat.py, so those (and their tests) are kept identical too.
    concurrency = ROOT / "packages/ori-concurrency" / concurrency_file
    asyncio_copy = ROOT / "packages/ori-asyncio" / asyncio_file
    assert _section(concurrency, heading) == _section(asyncio_copy, heading), (
        f"the section {heading!r} of {concurrency} and {asyncio_copy} differ: "
        "edit the ori-concurrency one and copy it over"
    )
