"""``run_process_in_background``: check the arguments, start the command, hand it over."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from ori.errors.validation import check_bool, check_callable, check_int, check_positive_number

from ._group import signal_group
from ._platform import check_posix
from ._process import BackgroundProcess
from ._reader import LineCallback
from ._validation import (
    Argument,
    StdinSource,
    check_command,
    check_encoding,
    check_env,
    check_stdin,
)
from ._watchdog import Watchdog

__all__ = ("run_process_in_background",)


def run_process_in_background(
    *,
    command: Sequence[Argument],
    stdout_function: LineCallback | None = None,
    stderr_function: LineCallback | None = None,
    exception_function: Callable[[Exception], object] | None = None,
    exit_code_on_killed: int = 0,
    cwd: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    stdin: StdinSource | None = None,
    input: str | bytes | None = None,
    encoding: str = "utf-8",
    errors: str = "replace",
    grace_period: float = 5.0,
    kill_on_parent_death: bool = False,
) -> BackgroundProcess:
    """Start *command* in the background and pass each line of its output to a callback.

    The command runs directly (never through a shell) in a new session, so it
    and everything it starts form one process group that :meth:`~BackgroundProcess.terminate`
    stops as a whole. Its output is read by a thread of this process:
    ``stdout_function(line)`` and ``stderr_function(line)`` are called in the
    caller's process (closures, lambdas and bound methods all work), once per
    line, in the order of each stream, never two at once, with the text decoded
    and the line ending (``"\\n"`` or ``"\\r\\n"``) removed. A last line without
    a newline is delivered too. A slow callback slows the command down (its
    writes block once the pipe is full) instead of piling output up in memory.

    A stream without a function is discarded (connected to ``os.devnull``).

    If a callback raises, no further lines are delivered, the command is stopped
    like :meth:`~BackgroundProcess.terminate` does, ``exception_function(exc)``
    is called (or, without one, the exception is logged to the ``ori.subprocess``
    logger) and :attr:`~BackgroundProcess.exitcode` becomes *exit_code_on_killed*.

    When the command exits while something it started still holds its output
    open, those stragglers get *grace_period* seconds to finish, then the rest
    of the process group is stopped, so :meth:`~BackgroundProcess.join` never
    hangs on them. Processes the command leaves running in its group are stopped
    when it exits; a program meant to outlive the command must start a session
    of its own (``setsid``).

    Does not block beyond starting the program; may be called from any thread.
    The threads serving the command are not daemons: like a non-daemon
    :class:`multiprocessing.Process`, a running command keeps the interpreter
    from exiting until it ends (terminate it, or use the handle as a context
    manager, if that is not wanted). POSIX only (Linux, macOS, BSD).

    Args:
        command: the program and its arguments, e.g. ``["ls", "-l", "/home"]``;
            use :func:`shlex.split` to turn a command line into this form.
        stdout_function: called with each line of standard output.
        stderr_function: called with each line of standard error.
        exception_function: called with the exception when a callback raises
            (an ``Exception``; anything else, such as ``SystemExit`` from
            ``sys.exit()`` in a callback, also stops the command but is only
            logged).
        exit_code_on_killed: the :attr:`~BackgroundProcess.exitcode` reported
            when Ori stopped the command (terminate, kill, timeout, failed callback).
        cwd: working directory of the command; default: this process's.
        env: the command's complete environment; default: this process's.
        timeout: stop the command (as terminate does) if it still runs after
            this many seconds; ``None`` lets it run forever.
        stdin: a file object or file descriptor the command reads from, or
            ``subprocess.DEVNULL``; default: nothing (``os.devnull``).
        input: text or bytes written to the command's stdin, which is then
            closed; text is encoded with *encoding* and *errors*.
        encoding: how to decode the output (and encode *input*).
        errors: codec error handler; the default ``"replace"`` turns
            undecodable bytes into U+FFFD. With ``"strict"``, undecodable output
            counts as a failed callback.
        grace_period: seconds between SIGTERM and SIGKILL when stopping, and
            how long stragglers may keep the output open after the command exits.
        kill_on_parent_death: also stop the command's process group if this
            Python process dies without cleaning up (even by SIGKILL). Costs one
            small watchdog process per command.

    Returns:
        The already-started :class:`BackgroundProcess` handle.

    Raises:
        OriError: on Windows, where this package cannot work (it needs POSIX
            process groups and signals); the message says what to use instead.
        OriValidationError: *command* is a string (use :func:`shlex.split`), empty,
            or holds something other than str, bytes or path objects; a function
            is not callable; or another argument has the wrong type or value.
        FileNotFoundError: the program or *cwd* does not exist.
        PermissionError: the program is not executable.
        OSError: the program could not be started for another reason. In every
            error case nothing is left running.
    """
    check_posix()
    argv = check_command(command)
    for name, function in (
        ("stdout_function", stdout_function),
        ("stderr_function", stderr_function),
        ("exception_function", exception_function),
    ):
        if function is not None:
            check_callable(function, name)
    check_int(exit_code_on_killed, "exit_code_on_killed")
    timeout = check_positive_number(timeout, "timeout")
    grace = check_positive_number(grace_period, "grace_period", allow_none=False)
    assert grace is not None
    encoding, errors = check_encoding(encoding, errors)
    env = check_env(env)
    stdin_source, _ = check_stdin(stdin, input)
    check_bool(kill_on_parent_death, "kill_on_parent_death")
    input_data: bytes | None = None
    if isinstance(input, str):
        input_data = input.encode(encoding, errors)
    elif input is not None:
        input_data = bytes(input)

    popen = subprocess.Popen(
        argv,
        stdin=stdin_source,
        stdout=subprocess.PIPE if stdout_function is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE if stderr_function is not None else subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    watchdog: Watchdog | None = None
    try:
        if kill_on_parent_death:
            watchdog = Watchdog(popen.pid, grace)
        handle = BackgroundProcess(
            popen,
            command=argv,
            stdout_function=stdout_function,
            stderr_function=stderr_function,
            exception_function=exception_function,
            exit_code_on_killed=exit_code_on_killed,
            timeout=timeout,
            grace_period=grace,
            encoding=encoding,
            errors=errors,
            input_data=input_data,
            watchdog=watchdog,
        )
    except BaseException:
        signal_group(popen.pid, signal.SIGKILL)
        popen.wait()
        for pipe in (popen.stdin, popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()
        if watchdog is not None:
            watchdog.release()
        raise
    handle._start()
    return handle
