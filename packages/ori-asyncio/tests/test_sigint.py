"""A real SIGINT sent to a child process while it is blocked in sync() (or iterate()).

The first Ctrl-C must cancel the awaitable, let its cleanup (including awaits
in ``finally``) run, and then raise KeyboardInterrupt out of the program,
promptly. A second Ctrl-C during a cleanup that hangs must get out at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = Path(__file__).resolve().parent / "asyncio_sigint_child.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

MODES = [
    "main",
    "busy",
    "after-many-calls",
    "inside-asyncio-run",
    "sync-async-sync",
    "loop-thread",
    "idle-loop",
    "iterate",
]

# Upper bounds that only catch hangs: cleanup takes milliseconds.
START_TIMEOUT = 60.0
EXIT_TIMEOUT = 30.0


class Child:
    def __init__(self, mode: str, cleanup: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), mode, cleanup],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.output = b""

    def wait_for_line(self, line: str, timeout: float) -> None:
        """Read stdout until *line* appears (without blocking past *timeout*)."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while f"{line}\n".encode() not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {line!r} line; got {self.output!r}"
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                assert chunk, f"child exited before {line!r}: {self.output!r}"
                self.output += chunk

    def finish(self, timeout: float) -> tuple[list[str], str, float]:
        """Wait for exit; return stdout lines, stderr and how long it took."""
        start = time.monotonic()
        out, err = self.process.communicate(timeout=timeout)
        elapsed = time.monotonic() - start
        self.output += out
        return self.output.decode().splitlines(), err.decode(), elapsed

    def interrupt_until_exit(self, timeout: float) -> None:
        """Send SIGINT every half second until the child exits."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(0.5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.mark.parametrize("mode", MODES)
def test_first_ctrl_c_cancels_cleans_up_and_raises(mode: str) -> None:
    child = Child(mode, "quick")
    try:
        child.wait_for_line("ready", START_TIMEOUT)
        child.process.send_signal(signal.SIGINT)
        lines, err, elapsed = child.finish(EXIT_TIMEOUT)
    finally:
        child.kill()
    assert "cleanup ran" in lines, (lines, err)
    assert "KeyboardInterrupt raised" in lines, (lines, err)
    assert "not interrupted" not in lines
    assert "outer continued" not in lines
    assert "returned normally" not in lines
    assert "Traceback" in err
    assert "KeyboardInterrupt" in err
    # An uncaught KeyboardInterrupt makes Python exit through SIGINT.
    assert child.process.returncode == -signal.SIGINT, err
    assert elapsed < EXIT_TIMEOUT


def test_tasks_the_awaitable_started_are_cleaned_up_too() -> None:
    child = Child("background-task", "quick")
    try:
        child.wait_for_line("ready", START_TIMEOUT)
        child.process.send_signal(signal.SIGINT)
        lines, err, _ = child.finish(EXIT_TIMEOUT)
    finally:
        child.kill()
    assert "cleanup ran" in lines, (lines, err)
    assert "background cleanup ran" in lines, (lines, err)
    assert "KeyboardInterrupt raised" in lines
    assert child.process.returncode == -signal.SIGINT, err


@pytest.mark.parametrize("mode", ["main", "inside-asyncio-run", "loop-thread", "iterate"])
def test_second_ctrl_c_abandons_a_hanging_cleanup(mode: str) -> None:
    child = Child(mode, "hang")
    try:
        child.wait_for_line("ready", START_TIMEOUT)
        child.process.send_signal(signal.SIGINT)
        child.wait_for_line("cleanup started", EXIT_TIMEOUT)
        child.process.send_signal(signal.SIGINT)
        if mode == "loop-thread":
            # sync() gives up at once; then LoopThread.close() waits for the
            # same stubborn cleanup, and another Ctrl-C interrupts that wait.
            child.wait_for_line("sync raised KeyboardInterrupt", EXIT_TIMEOUT)
            child.interrupt_until_exit(EXIT_TIMEOUT)
        lines, err, elapsed = child.finish(EXIT_TIMEOUT)
    finally:
        child.kill()
    assert "KeyboardInterrupt raised" in lines, (lines, err)
    assert "cleanup ran" not in lines  # it was abandoned, not waited for
    assert child.process.returncode == -signal.SIGINT, err
    assert elapsed < EXIT_TIMEOUT
