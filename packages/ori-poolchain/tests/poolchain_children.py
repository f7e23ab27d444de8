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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent


def consume_announcing_ready(start: Callable[[], Iterable[object]], after: int) -> None:
    """Take every result of ``start()``, printing ``READY`` after *after* of them.

    The child scripts that test Ctrl-C call this inside ``try: ... except
    KeyboardInterrupt`` instead of writing the loop in the ``try`` body: the
    CPython 3.13 compiler leaves the backward jump of a ``for`` loop whose body
    ends in an ``if`` outside the ``try``'s exception table (``dis`` shows the
    gap; python/cpython#130279 is the same gap in a ``while`` loop), and that
    jump is where a signal is checked, so a Ctrl-C landing there escaped the
    handler (seen once in a few hundred runs on 3.13t). Raised in this frame,
    it reaches the caller's ``except`` at the call, which the table covers.

    The run is made here from *start* and held only by the loop, not by a
    local: the exception's traceback keeps this frame and its locals alive,
    and the tests check that a run nobody references closes itself.
    """
    for count, _ in enumerate(start()):
        if count == after:
            print("READY", flush=True)


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
