"""The typed PoolChain: what mypy --strict and pyright infer, and what they flag.

Each checker runs once per session on ``typing_cases/typed_chain.py``, a user
script whose ``# revealed: T`` comments say what ``reveal_type`` on that line
must show and whose ``# error`` comments mark the lines that must be errors
(and no other). Both checkers must agree with the script, so they agree with
each other. The run-time tests below check that the generics cost nothing:
subscripts work on every Python version and no typing module is imported.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

from ori.poolchain import Failure, PoolChain, PoolChainRun

ROOT = Path(__file__).resolve().parents[3]
CASES = Path(__file__).parent / "typing_cases" / "typed_chain.py"

# mypy and pyright are linters (requirements-dev.txt); the free-threaded 3.13
# environment installs requirements-test.txt only.
needs_mypy = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy does not install on free-threaded 3.13 (its compiled dependencies ship no "
    "cp313t wheel); every other tox env runs this",
)
needs_pyright = pytest.mark.skipif(
    importlib.util.find_spec("pyright") is None,
    reason="pyright comes with the linters (requirements-dev.txt), which free-threaded 3.13 "
    "does not install; every other tox env runs this",
)


@dataclass(frozen=True)
class Expected:
    """What the case script asks of a checker."""

    revealed: dict[int, str]  # line -> type
    errors: frozenset[int]  # lines


@dataclass(frozen=True)
class Report:
    """What a checker said about the case script."""

    revealed: dict[int, str]
    errors: dict[int, list[str]]  # line -> messages


def expected_of(text: str) -> Expected:
    revealed: dict[int, str] = {}
    errors: set[int] = set()
    for number, line in enumerate(text.splitlines(), 1):
        _, hash_, comment = line.partition("  # ")
        if not hash_:
            continue
        if comment.startswith("revealed: "):
            revealed[number] = comment.removeprefix("revealed: ").strip()
        elif comment.startswith("error"):
            errors.add(number)
    return Expected(revealed, frozenset(errors))


def without_modules(type_text: str) -> str:
    """``ori.poolchain._chain.PoolChain[typing.Iterable[Any]]`` -> ``PoolChain[Iterable[Any]]``."""
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", type_text)


def parse_mypy(output: str, path: Path) -> Report:
    revealed: dict[int, str] = {}
    errors: dict[int, list[str]] = {}
    pattern = re.compile(rf"^{re.escape(str(path))}:(\d+): (error|note): (.*)$")
    for line in output.splitlines():
        match = pattern.match(line)
        if match is None:
            continue
        number, kind, message = int(match[1]), match[2], match[3]
        if kind == "error":
            errors.setdefault(number, []).append(message)
        elif message.startswith("Revealed type is "):
            revealed[number] = without_modules(message.removeprefix("Revealed type is ")[1:-1])
    return Report(revealed, errors)


def parse_pyright(output: str) -> Report:
    revealed: dict[int, str] = {}
    errors: dict[int, list[str]] = {}
    for diagnostic in json.loads(output)["generalDiagnostics"]:
        number = diagnostic["range"]["start"]["line"] + 1
        message = diagnostic["message"]
        if diagnostic["severity"] == "error":
            errors.setdefault(number, []).append(message)
        elif diagnostic["severity"] == "information" and message.startswith("Type of "):
            type_text = message.split('" is "', 1)[1].removesuffix('"')
            revealed[number] = without_modules(type_text)
    return Report(revealed, errors)


@pytest.fixture(scope="session")
def expected() -> Expected:
    return expected_of(CASES.read_text())


@pytest.fixture(scope="session")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    cache = tmp_path_factory.mktemp("mypy-cache")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(CASES)],
        cwd=ROOT,  # the repository's configuration (mypy_path: every package's src)
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: errors were found
    return parse_mypy(done.stdout, CASES.relative_to(ROOT))


@pytest.fixture(scope="session")
def pyright_report() -> Report:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyright",
            "--outputjson",
            "--pythonpath",
            sys.executable,
            str(CASES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return parse_pyright(done.stdout)


def check(report: Report, expected: Expected) -> None:
    assert report.revealed == expected.revealed
    unexpected = {line: report.errors[line] for line in set(report.errors) - expected.errors}
    assert unexpected == {}, "errors on lines that should be fine"
    missing = sorted(expected.errors - set(report.errors))
    assert missing == [], "lines marked '# error' that the checker accepted"


@needs_mypy
def test_mypy_infers_and_flags_what_the_cases_say(mypy_report: Report, expected: Expected) -> None:
    check(mypy_report, expected)


@needs_pyright
def test_pyright_infers_and_flags_what_the_cases_say(
    pyright_report: Report, expected: Expected
) -> None:
    check(pyright_report, expected)


def test_the_cases_cover_every_kind_of_claim(expected: Expected) -> None:
    # A parser that found nothing would let both checker tests pass.
    assert len(expected.revealed) >= 25
    assert len(expected.errors) >= 9
    assert "list[str]" in expected.revealed.values()


def test_the_report_parsers_read_what_the_checkers_print() -> None:
    path = Path("cases.py")
    mypy = parse_mypy(
        f'{path}:3: note: Revealed type is "ori.poolchain._chain.PoolChain[typing.Iterable[Any]]"'
        f"\n{path}:5: error: List item 0 has incompatible type\nother.py:1: error: elsewhere\n",
        path,
    )
    assert mypy == Report(
        {3: "PoolChain[Iterable[Any]]"}, {5: ["List item 0 has incompatible type"]}
    )
    diagnostics = [
        {"severity": "information", "message": 'Type of "c" is "list[str]"', "line": 1},
        {"severity": "error", "message": "Argument of type", "line": 4},
        {"severity": "warning", "message": "unused", "line": 6},
    ]
    pyright = parse_pyright(
        json.dumps(
            {
                "generalDiagnostics": [
                    {**d, "range": {"start": {"line": d.pop("line"), "character": 0}}}
                    for d in diagnostics
                ]
            }
        )
    )
    assert pyright == Report({2: "list[str]"}, {5: ["Argument of type"]})


# -- run time: the generics change nothing ------------------------------------


def test_subscripts_work_at_run_time_with_defaults_filled_in() -> None:
    assert typing.get_args(PoolChain[int, str]) == (int, str, typing.NoReturn)
    assert typing.get_args(PoolChain[int]) == (int, typing.Any, typing.NoReturn)
    assert typing.get_args(PoolChain[int, str, Failure[int]]) == (int, str, Failure[int])
    assert typing.get_args(Failure[int]) == (int,)
    assert typing.get_args(PoolChainRun[str]) == (str,)
    with pytest.raises(TypeError):
        PoolChain[int, str, None, None]  # type: ignore[misc]


def test_a_subscripted_chain_runs_like_a_plain_one() -> None:
    chain = PoolChain[int, str]().add_threadpool(str)
    assert chain.execute_eager_single_threaded([1, 2]) == ["1", "2"]
    assert isinstance(chain, PoolChain)


def test_importing_the_package_imports_no_typing_module() -> None:
    code = "import sys, ori.poolchain; print('typing_extensions' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
