"""Stop a command's process group when the Python process that started it dies.

The watchdog is a tiny separate Python process (standard library only, started
with ``-I`` so nothing from the caller's environment is imported) in a session
of its own, so terminal signals such as Ctrl-C do not reach it. Its stdin is
a pipe whose only write end is held by the parent:

    parent alive      -> the watchdog blocks reading its stdin
    command finished  -> the parent writes one byte; the watchdog exits quietly
    parent died       -> the kernel closes the write end; the watchdog reads
                         end-of-file and stops the group (SIGTERM, then
                         SIGKILL after the grace period)

Unlike ``prctl(PR_SET_PDEATHSIG)`` this reaches grandchildren too, works on
every POSIX system, and does not fire when merely the thread that started the
command ends.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

__all__ = ("Watchdog",)

# Runs in the watchdog process; argv: pgid, grace period in seconds.
_PROGRAM = """
import os, signal, sys, time
pgid, grace = int(sys.argv[1]), float(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    released = os.read(0, 1)
except OSError:
    released = b""
if released:
    sys.exit(0)
def send(signum):
    try:
        os.killpg(pgid, signum)
    except OSError:
        return False
    return True
if send(signal.SIGTERM):
    send(signal.SIGCONT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if not send(0):
            sys.exit(0)
    send(signal.SIGKILL)
"""


class Watchdog:
    """A watchdog process guarding one process group. Not thread-safe."""

    def __init__(self, pgid: int, grace_period: float) -> None:
        """Start the watchdog process.

        Raises:
            OSError: the Python interpreter could not be started.
        """
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", _PROGRAM, str(pgid), repr(grace_period)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def release(self) -> None:
        """Tell the watchdog the command is finished, then reap it. Idempotent."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.write(b"x")
                stdin.flush()
            except OSError:
                pass
            with contextlib.suppress(OSError):
                stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
