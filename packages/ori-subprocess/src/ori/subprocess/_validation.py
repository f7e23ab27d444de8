"""Checks for the arguments of :func:`run_process_in_background`.

Generic checks come from :mod:`ori.errors.validation`; the ones here know about
commands, streams and codecs. Each returns the value in the form Popen wants,
or raises :class:`~ori.errors.OriValidationError` naming the argument, the rule
and the fix.
"""

from __future__ import annotations

import codecs
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO, TypeAlias

from ori.errors import OriValidationError
from ori.errors.validation import describe

__all__ = (
    "Argument",
    "StdinSource",
    "check_command",
    "check_encoding",
    "check_env",
    "check_stdin",
)

Argument: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"
StdinSource: TypeAlias = "int | IO[bytes] | IO[str]"


def check_command(command: object) -> list[Argument]:
    """Return *command* as a list of program arguments.

    Raises:
        OriValidationError: *command* is a string, not a sequence, empty, or
            holds something other than str, bytes or path objects.
    """
    if isinstance(command, (str, bytes, bytearray)):
        raise OriValidationError(
            f"command must be a sequence of arguments such as ['ls', '-l'], got the string "
            f"{describe(command)}; Ori never runs a shell, so split it first with "
            "shlex.split(command), or pass ['sh', '-c', command] if you need shell syntax"
        )
    if not isinstance(command, Sequence):
        raise OriValidationError(
            f"command must be a list or tuple of arguments such as ['ls', '-l'], got "
            f"{describe(command)}; wrap a single program in a list, e.g. [program]"
        )
    if len(command) == 0:
        raise OriValidationError(
            "command must name a program to run, got an empty sequence; pass e.g. ['ls', '-l']"
        )
    argv: list[Argument] = []
    for index, arg in enumerate(command):
        if not isinstance(arg, (str, bytes, os.PathLike)):
            raise OriValidationError(
                f"command[{index}] must be a str, bytes or path object, got {describe(arg)}; "
                f"convert it first, e.g. str({arg!r})"
            )
        raw = os.fspath(arg)
        if ("\0" if isinstance(raw, str) else b"\0") in raw:
            raise OriValidationError(
                f"command[{index}] contains a NUL character, which no program argument "
                f"can hold: {describe(arg)}"
            )
        argv.append(arg)
    return argv


def check_encoding(encoding: object, errors: object) -> tuple[str, str]:
    """Return ``(encoding, errors)`` if the codecs module knows both."""
    if not isinstance(encoding, str):
        raise OriValidationError(
            f"encoding must be the name of a text encoding such as 'utf-8', "
            f"got {describe(encoding)}"
        )
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise OriValidationError(
            f"encoding {encoding!r} is not known to Python's codecs module; "
            "pass a name such as 'utf-8' or 'latin-1'"
        ) from None
    if not isinstance(errors, str):
        raise OriValidationError(
            f"errors must be the name of an error handler such as 'replace', got {describe(errors)}"
        )
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise OriValidationError(
            f"errors {errors!r} is not a known codec error handler; "
            "pass 'replace', 'strict', 'ignore' or 'backslashreplace'"
        ) from None
    return encoding, errors


def check_env(env: object) -> Mapping[str, str] | None:
    """Return *env* if it is ``None`` or a mapping of str to str."""
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise OriValidationError(
            f"env must be a mapping of variable names to values such as "
            f"{{'PATH': '/usr/bin'}}, or None to inherit this process's, got {describe(env)}"
        )
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise OriValidationError(
                f"env must map str to str, got {describe(key)}: {describe(value)}; "
                "convert the values with str() first"
            )
        if "=" in key or "\0" in key or "\0" in value:
            raise OriValidationError(
                f"env variable name {key!r} or its value contains '=' in the name or a "
                "NUL character, which the operating system cannot store"
            )
    return env


def check_stdin(stdin: object, input_data: object) -> tuple[StdinSource, bool]:
    """Check *stdin* and *input_data*; return (what Popen gets as stdin, whether to pipe input).

    Raises:
        OriValidationError: both are given, *stdin* is not a file descriptor or
            a file object, *stdin* asks for a pipe, or *input_data* is neither
            str nor bytes.
    """
    if input_data is not None:
        if stdin is not None:
            raise OriValidationError(
                "stdin and input cannot both be given: input is written to the command "
                "through a pipe Ori creates; pass only one of them"
            )
        if not isinstance(input_data, (str, bytes, bytearray, memoryview)):
            raise OriValidationError(
                f"input must be str or bytes to write to the command, got {describe(input_data)}"
            )
        return subprocess.PIPE, True
    if stdin is None:
        return subprocess.DEVNULL, False
    if isinstance(stdin, bool) or (
        isinstance(stdin, int) and stdin < 0 and stdin != subprocess.DEVNULL
    ):
        raise OriValidationError(
            f"stdin must be a file object, a file descriptor or subprocess.DEVNULL, got "
            f"{describe(stdin)}; to send data to the command pass it as input=..."
        )
    if not isinstance(stdin, int) and not callable(getattr(stdin, "fileno", None)):
        raise OriValidationError(
            f"stdin must be a file object, a file descriptor or subprocess.DEVNULL, got "
            f"{describe(stdin)}; to send data to the command pass it as input=..."
        )
    return stdin, False  # type: ignore[return-value]
