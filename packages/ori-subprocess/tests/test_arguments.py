"""Argument checks and programs that cannot start: errors at call time, nothing left running."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ori.errors import OriValidationError
from ori.subprocess import run_process_in_background


def start(**kwargs: Any) -> None:
    """Call run_process_in_background expecting an error; join if it started anyway."""
    kwargs.setdefault("command", ["true"])
    run_process_in_background(**kwargs).join()
    pytest.fail("expected an error, but the command started")


@pytest.mark.parametrize("command", ["ls -l", b"ls -l", bytearray(b"ls")])
def test_string_command_suggests_shlex_split(command: object) -> None:
    with pytest.raises(OriValidationError, match=r"shlex\.split"):
        start(command=command)


def test_validation_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        start(command="ls")


@pytest.mark.parametrize("command", [[], ()])
def test_empty_command(command: object) -> None:
    with pytest.raises(OriValidationError, match="empty"):
        start(command=command)


@pytest.mark.parametrize("command", [None, 42, Path("/bin/true"), {"ls"}, iter(["ls"])])
def test_command_that_is_not_a_sequence(command: object) -> None:
    with pytest.raises(OriValidationError, match="list or tuple"):
        start(command=command)


@pytest.mark.parametrize(
    ("command", "index"),
    [(["echo", 1], 1), ([None], 0), (["echo", "a", ["b"]], 2), (["echo", 1.5], 1)],
)
def test_wrong_element_types_name_the_index(command: list[object], index: int) -> None:
    with pytest.raises(OriValidationError, match=rf"command\[{index}\]"):
        start(command=command)


def test_nul_character_in_argument() -> None:
    with pytest.raises(OriValidationError, match="NUL"):
        start(command=["echo", "a\0b"])


def test_str_bytes_and_paths_are_accepted_as_arguments() -> None:
    lines: list[str] = []
    process = run_process_in_background(
        command=[Path("/bin/sh"), b"-c", "echo $0 $1", Path("zero"), b"one"],
        stdout_function=lines.append,
    )
    process.join()
    assert lines == ["zero one"]
    assert process.exitcode == 0


@pytest.mark.parametrize("name", ["stdout_function", "stderr_function", "exception_function"])
def test_callbacks_must_be_callable(name: str) -> None:
    with pytest.raises(OriValidationError, match=name):
        start(**{name: "print"})


@pytest.mark.parametrize("value", [1.0, "0", None, True])
def test_exit_code_on_killed_must_be_int(value: object) -> None:
    with pytest.raises(OriValidationError, match="exit_code_on_killed"):
        start(exit_code_on_killed=value)


@pytest.mark.parametrize("value", [0, -1, "5", float("nan"), float("inf")])
def test_timeout_must_be_positive(value: object) -> None:
    with pytest.raises(OriValidationError, match="timeout"):
        start(timeout=value)


@pytest.mark.parametrize("value", [0, None, -2.0])
def test_grace_period_must_be_positive(value: object) -> None:
    with pytest.raises(OriValidationError, match="grace_period"):
        start(grace_period=value)


def test_unknown_encoding_and_error_handler() -> None:
    with pytest.raises(OriValidationError, match="encoding"):
        start(encoding="no-such-codec")
    with pytest.raises(OriValidationError, match="encoding"):
        start(encoding=None)
    with pytest.raises(OriValidationError, match="errors"):
        start(errors="no-such-handler")


@pytest.mark.parametrize("env", [["A=1"], {"A": 1}, {1: "a"}, {"A=B": "c"}, {"A": "a\0b"}])
def test_env_must_map_str_to_str(env: object) -> None:
    with pytest.raises(OriValidationError, match="env"):
        start(env=env)


def test_stdin_and_input_together() -> None:
    with pytest.raises(OriValidationError, match="stdin and input"):
        start(stdin=subprocess.DEVNULL, input="x")


@pytest.mark.parametrize("stdin", [subprocess.PIPE, subprocess.STDOUT, "file.txt", True])
def test_bad_stdin(stdin: object) -> None:
    with pytest.raises(OriValidationError, match="stdin"):
        start(stdin=stdin)


def test_bad_input_type() -> None:
    with pytest.raises(OriValidationError, match="input"):
        start(input=123)


def test_kill_on_parent_death_must_be_bool() -> None:
    with pytest.raises(OriValidationError, match="kill_on_parent_death"):
        start(kill_on_parent_death=1)


def test_missing_program_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        start(command=[str(tmp_path / "no-such-program")], stdout_function=print)
    with pytest.raises(FileNotFoundError):
        start(command=["ori-no-such-program-on-path"], stdout_function=print)


def test_program_without_execute_permission(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(PermissionError):
        start(command=[str(script)], stdout_function=print, stderr_function=print)


def test_missing_working_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        start(command=["true"], cwd=tmp_path / "missing", stdout_function=print)


def test_failed_start_leaves_no_descriptor_open(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(FileNotFoundError):
            start(command=[str(tmp_path / "missing")], stdout_function=print, input="x")
    assert set(os.listdir("/proc/self/fd")) <= before
