"""A stage function whose module hangs when a worker that was not forked imports it.

Importing this module in a worker process started with spawn or forkserver
hangs for an hour while the file ``HANG_FLAG`` exists: a worker that never gets
ready, as a fork that deadlocked would be. (A file, not an environment
variable: a forkserver started earlier passes its own environment on.) Its own
module, because nothing else may pay for that side effect.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

HANG_FLAG = Path(tempfile.gettempdir()) / "ori-test-hang-on-import"

if multiprocessing.parent_process() is not None and HANG_FLAG.exists():
    time.sleep(3600)


def identity(x: int) -> int:
    return x
