"""Build every distribution for real and install pieces of Ori into fresh venvs."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())

pytestmark = pytest.mark.slow


def _version(package_dir: Path) -> str:
    with (package_dir / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def _dist_name(package_dir: Path) -> str:
    return package_dir.name.replace("-", "_")


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
        module = package_dir.name.removeprefix("ori-")
        assert f"ori/{module}/__init__.py" in names
        assert f"ori/{module}/py.typed" in names


def test_meta_wheel_requires_exact_versions(dist_dir: Path) -> None:
    meta = ROOT / "packages" / "ori"
    with zipfile.ZipFile(_wheel(dist_dir, meta)) as wheel:
        metadata = wheel.read(f"ori-{_version(meta)}.dist-info/METADATA").decode()
    requires = {
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    expected = {f"{p.name}=={_version(p)}" for p in PACKAGE_DIRS if p.name != "ori"}
    assert requires == expected


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
