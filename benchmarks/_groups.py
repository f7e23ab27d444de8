"""Child processes in sessions of their own, and none left behind.

The suite runs every benchmark module, and every peer scenario, in a fresh process
of its own session, so that the whole group (the child and every worker it
started) can be killed at once with ``killpg``. Sessions nest: ``run.py`` starts a
module in one, the module starts scenarios in others. A plain SIGKILL of the
module's group would miss the scenarios' groups, so stopping is two-step:
:func:`stop` sends SIGTERM to the group first, and a module that starts groups of
its own calls :func:`kill_children_on_sigterm`, whose handler kills them before
exiting; SIGKILL follows after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

_active: set[int] = set()
_lock = threading.Lock()
_POSIX = os.name == "posix"


def start(command: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """Start *command* as the leader of a new session; remember it until :func:`stop`."""
    process: subprocess.Popen[bytes] = subprocess.Popen(
        list(command), start_new_session=True, **options
    )
    with _lock:
        _active.add(process.pid)
    return process


def _signal_group(pid: int, signum: int) -> None:
    if _POSIX:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)


def stop(process: subprocess.Popen[bytes], grace: float = 0.0) -> None:
    """End *process* and everything left in its group; returns once it is reaped.

    With *grace*, SIGTERM first (so a module can stop its own children), then
    SIGKILL after *grace* seconds. Safe to call when the process already exited:
    leftover workers in its group are killed all the same.
    """
    if grace and process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    _signal_group(process.pid, signal.SIGKILL)
    if not _POSIX and process.poll() is None:
        process.kill()
    process.wait()
    with _lock:
        _active.discard(process.pid)


def run_in_session(
    command: Sequence[str], *, timeout: float, grace: float = 0.0, **options: Any
) -> int | None:
    """Run *command* in a session of its own until it exits; its exit code, None if it hung.

    After *timeout* seconds it is stopped (see :func:`stop`, which *grace* is for).
    Either way, nothing it started is left in its group when this returns.
    """
    process = start(command, **options)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        stop(process, grace=grace)


def kill_all() -> None:
    """SIGKILL every group started here and not yet stopped."""
    with _lock:
        pids = list(_active)
        _active.clear()
    for pid in pids:
        _signal_group(pid, signal.SIGKILL)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    kill_all()
    raise SystemExit(128 + signum)


def kill_children_on_sigterm() -> None:
    """On SIGTERM, kill every group started here, then exit (main thread only)."""
    if _POSIX and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
