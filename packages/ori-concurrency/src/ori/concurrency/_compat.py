"""Every use of an interpreter detail that is not a stable public API.

Each function here names the Python versions it was checked on and what
happens if the detail goes away; its test is in ``tests/test_compat.py``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from multiprocessing.process import BaseProcess

# --- process pools: the same in ori-asyncio and ori-concurrency -------------
# Both packages' _process_calls.py use these; tests/test_layout.py fails when
# this section differs between the two _compat.py files.


def pool_processes(executor: concurrent.futures.ProcessPoolExecutor) -> list[BaseProcess]:
    """The worker processes *executor* has started and not yet reaped.

    ``ProcessPoolExecutor`` keeps them in the dict ``_processes`` (pid to
    process; ``shutdown()`` sets it to None) (checked
    on 3.10, 3.11, 3.12, 3.13 and free-threaded 3.13t). Without that
    attribute this returns an empty list, and a crash report says the exit
    code is unknown.
    """
    processes = getattr(executor, "_processes", None) or {}
    return list(processes.values())


def in_pool_manager_thread(executor: concurrent.futures.ProcessPoolExecutor) -> bool:
    """True when called from *executor*'s management thread.

    That thread is kept in ``_executor_manager_thread`` from 3.9 on (checked
    on 3.10, 3.11, 3.12, 3.13 and free-threaded 3.13t); it runs the done
    callbacks of the pool's futures, and it cannot join itself. Without the
    attribute this says False, and shutting down a broken pool from one of
    those callbacks would wait for the thread that is waiting.
    """
    manager = getattr(executor, "_executor_manager_thread", None)
    return manager is threading.current_thread()


def bootstrapping_worker() -> bool:
    """True while this process is a spawn or forkserver child still starting up.

    multiprocessing sets ``current_process()._inheriting`` while such a
    child unpickles its preparation data, imports the main module again and
    unpickles its process object, and deletes it before the target runs; its
    own "bootstrapping phase" check reads the same flag (checked on 3.10,
    3.11, 3.12, 3.13 and free-threaded 3.13t; never set under fork). Without
    the flag this says False, and multiprocessing's own, less helpful error
    is raised a moment later instead.
    """
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))
