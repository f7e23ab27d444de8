"""Build every distribution for real and install pieces of Ori into fresh venvs.

Marked ``tooling``: the distributions are the same whichever interpreter builds
them, so tox builds and checks them in its py311 environment only (tox.ini).
"""

from __future__ import annotations

import email.parser
import importlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from release_metadata import PACKAGE_DIRS, ROOT, module_name
from release_metadata import dist_name as _dist_name
from release_metadata import version as _version

pytestmark = [pytest.mark.slow, pytest.mark.tooling]


@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    for package_dir in PACKAGE_DIRS:
        # hatchling is already installed with the dev requirements: no isolation
        # keeps the build offline and fast.
        subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
             "--outdir", str(out), str(package_dir)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return out


def _wheel(dist_dir: Path, package_dir: Path) -> Path:
    return dist_dir / f"{_dist_name(package_dir)}-{_version(package_dir)}-py3-none-any.whl"


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_wheel_and_sdist_build(dist_dir: Path, package_dir: Path) -> None:
    wheel = _wheel(dist_dir, package_dir)
    sdist = dist_dir / f"{_dist_name(package_dir)}-{_version(package_dir)}.tar.gz"
    assert wheel.is_file()
    assert sdist.is_file()
    names = zipfile.ZipFile(wheel).namelist()
    assert "ori/__init__.py" not in names
    if package_dir.name == "ori":
        assert not [n for n in names if n.startswith("ori/")], "meta-package ships no code"
    else:
        module = module_name(package_dir)
        assert f"ori/{module}/__init__.py" in names
        assert f"ori/{module}/py.typed" in names


def _wheel_metadata(dist_dir: Path, package_dir: Path) -> Message:
    info = f"{_dist_name(package_dir)}-{_version(package_dir)}.dist-info"
    with zipfile.ZipFile(_wheel(dist_dir, package_dir)) as wheel:
        return email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())


def test_meta_wheel_requires_exact_versions(dist_dir: Path) -> None:
    meta = ROOT / "packages" / "ori"
    requires = [Requirement(r) for r in _wheel_metadata(dist_dir, meta).get_all("Requires-Dist")]
    windows = {"sys_platform": "win32", "extra": ""}
    linux = {"sys_platform": "linux", "extra": ""}
    always = {str(r) for r in requires if r.marker is None}
    on_linux = {f"{r.name}{r.specifier}" for r in requires if r.marker and r.marker.evaluate(linux)}
    on_windows = {
        f"{r.name}{r.specifier}" for r in requires if r.marker and r.marker.evaluate(windows)
    }
    expected = {f"{p.name}=={_version(p)}" for p in PACKAGE_DIRS if p.name != "ori"}
    subprocess_pin = f"ori-subprocess=={_version(ROOT / 'packages' / 'ori-subprocess')}"
    assert always | on_linux == expected
    assert always | on_windows == expected - {subprocess_pin}, "POSIX-only: not on Windows"


@pytest.mark.parametrize("extra", ["progress", "cloudpickle", "dask"])
def test_meta_wheel_extras_pull_in_poolchain_extras(dist_dir: Path, extra: str) -> None:
    meta = ROOT / "packages" / "ori"
    metadata = _wheel_metadata(dist_dir, meta)
    assert {extra, "all"} <= set(metadata.get_all("Provides-Extra"))
    poolchain = _version(ROOT / "packages" / "ori-poolchain")
    for name in (extra, "all"):
        pulled = [
            r
            for r in map(Requirement, metadata.get_all("Requires-Dist"))
            if r.marker is not None and r.marker.evaluate({"extra": name, "sys_platform": "linux"})
            and "extra" in str(r.marker)
        ]  # fmt: skip
        assert [(r.name, str(r.specifier)) for r in pulled] == [("ori-poolchain", f"=={poolchain}")]
        assert extra in pulled[0].extras


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_every_distribution_ships_the_licence(dist_dir: Path, package_dir: Path) -> None:
    licence = (ROOT / "LICENSE").read_text()
    metadata = _wheel_metadata(dist_dir, package_dir)
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    info = f"{_dist_name(package_dir)}-{_version(package_dir)}.dist-info"
    with zipfile.ZipFile(_wheel(dist_dir, package_dir)) as wheel:
        assert wheel.read(f"{info}/licenses/LICENSE").decode() == licence
    sdist_root = f"{_dist_name(package_dir)}-{_version(package_dir)}"
    with tarfile.open(dist_dir / f"{sdist_root}.tar.gz") as sdist:
        member = sdist.extractfile(f"{sdist_root}/LICENSE")
        assert member is not None
        assert member.read().decode() == licence


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_wheel_version_is_the_module_version(dist_dir: Path, package_dir: Path) -> None:
    built = _wheel_metadata(dist_dir, package_dir)["Version"]
    if package_dir.name == "ori":
        assert built == _version(package_dir)  # the meta-package has no module
        return
    module = importlib.import_module(f"ori.{module_name(package_dir)}")
    assert built == module.__version__


@pytest.mark.skipif(
    importlib.util.find_spec("twine") is None,
    reason="twine does not install on free-threaded 3.13 (cffi); every other tox env runs this",
)
def test_package_index_accepts_every_distribution(dist_dir: Path) -> None:
    # What an upload would check: metadata fields and that each README renders.
    files = sorted(str(f) for f in dist_dir.iterdir())
    assert len(files) == 2 * len(PACKAGE_DIRS)
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == len(files), checked.stdout


def _fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=True, clear=True)
    return path / "bin" / "python"


def _check(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=120, env=env,
        cwd=python.parent,
    )  # fmt: skip


def test_one_piece_installs_alone(dist_dir: Path, tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "venv")
    wheels = [_wheel(dist_dir, ROOT / "packages" / n) for n in ("ori-errors", "ori-concurrency")]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--find-links", str(dist_dir),
         *map(str, wheels)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    ok = _check(
        python,
        "import ori.concurrency, ori.errors; "
        "f = ori.concurrency.run_in_background_thread(abs); "
        "print(f(-3).result()); f.shutdown()",
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "3"
    missing = _check(python, "import ori.poolchain")
    assert missing.returncode != 0
    assert "ModuleNotFoundError" in missing.stderr


def test_meta_package_installs_everything(dist_dir: Path, tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--find-links", str(dist_dir), "ori"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    modules = [p.name.removeprefix("ori-") for p in PACKAGE_DIRS if p.name != "ori"]
    ok = _check(python, "; ".join(f"import ori.{m}" for m in modules) + "; print('ok')")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "ok"
