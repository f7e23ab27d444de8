"""ori.subprocess needs POSIX; on Windows it says so before anything starts.

The package runs each command in a session of its own and stops the whole
process group with POSIX signals (``os.killpg``, SIGTERM then SIGKILL), waits
on pidfds and polls pipes with ``select``: Windows has none of these. The
check runs at call time rather than at import, so code meant for several
platforms may import ``ori.subprocess`` unconditionally (and type-checkers and
documentation builds on Windows still can) as long as it calls it on POSIX only.
"""

from __future__ import annotations

import sys

from ori.errors import OriError

POSIX_ONLY_MESSAGE = (
    "ori.subprocess is POSIX-only (Linux, macOS, BSD): it runs each command in a "
    "process group of its own and stops the group with POSIX signals, which Windows "
    "does not have. On Windows, start the command with subprocess.Popen(command, "
    "stdout=subprocess.PIPE, text=True, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP) "
    "and read its output line by line in a thread, e.g. one started with "
    "ori.concurrency.run_in_background_thread."
)


def check_posix() -> None:
    """Raise :class:`~ori.errors.OriError` on Windows (read at every call)."""
    if sys.platform == "win32":
        raise OriError(POSIX_ONLY_MESSAGE)
