"""Signals for a command's process group, and whether anyone is left in it.

Every command runs in a session of its own, so its process group id equals its
pid and every process it starts (unless that process leaves on purpose with
``setsid``) belongs to the same group. Signalling the group reaches the whole
tree at once.

Whether a group still has members is less simple than ``killpg(pgid, 0)``: a
member that exited but was never reaped (a zombie) still counts for the
kernel, and in containers whose init process does not reap orphans such
zombies stay forever. On Linux the members are therefore looked up in
``/proc`` and zombies are ignored; elsewhere ``killpg`` is the answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

__all__ = ("group_has_live_members", "signal_group")

_PROC = Path("/proc")


def signal_group(pgid: int, signum: int) -> bool:
    """Send *signum* to every process in group *pgid*; False if the group is gone.

    A group that only holds processes we may not signal (they changed user)
    counts as gone: nothing more can be done about it.
    """
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    if signum == signal.SIGTERM:
        # A stopped process would only see SIGTERM once continued.
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGCONT)
    return True


def group_has_live_members(pgid: int) -> bool:
    """True while group *pgid* holds at least one process that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not (_PROC / "self" / "stat").exists():
        return True
    target = str(pgid)
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split(maxsplit=3)
        if len(fields) >= 3 and fields[2] == target and fields[0] not in ("Z", "X"):
            return True
    return False
