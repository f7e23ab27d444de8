"""Child Python processes for the tests that need an interpreter of their own.

:func:`python_c` runs code the way ``python -c`` does (``__main__`` is then
interactive), with this folder on the child's path so that it can import the
worker modules. :func:`ready_child` starts a script in a session of its own,
waits for the ``READY`` line it prints once results flow, and kills that whole
session (workers included) if the test fails before the child ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent


def python_c(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run *code* (dedented) with ``python -c``; its output and exit status."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@contextlib.contextmanager
def ready_child(script: Path) -> Iterator[subprocess.Popen[str]]:
    """Run *script* in its own session (like a shell job) once it printed READY.

    The block signals the child and collects its output with
    ``communicate()``; whatever happens, no process of the session outlives it.
    """
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "READY", line + (child.stderr.read() if child.stderr else "")
        yield child
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
