"""How a process stage starts its workers, and how it explains a start that failed.

Forking a process that runs threads can deadlock the child before it runs a
line: another thread may hold a lock (the allocator's, a logging handler's,
the import lock) at the moment of the fork, and the child inherits it held by
a thread that does not exist there. Python 3.12 warns about every such fork.
A run forks its first workers before it starts any thread, but workers
started later (a replacement for a crashed or killed worker, a warm-pool
slot refilled) would be forked from beside the run's own lane threads.

So under the ``fork`` start method Ori forks only while the process has a
single thread; any other worker comes from the ``forkserver`` (a clean,
single-threaded server process that multiprocessing starts once, with
fork+exec, and that forks workers on request). Such a worker gets the stage
function pickled, like under spawn: by reference, or by value when the
``cloudpickle`` extra is installed. The one case forkserver cannot serve is a
function defined in an interactive ``__main__`` without cloudpickle: that
stage keeps forking, and the start deadline of ``_process_stage`` still turns
a deadlocked child into a replaced worker instead of a hung run.

Spawn and forkserver workers import the user's main module again; when it
runs the chain at import time (no ``if __name__ == "__main__":`` guard), every
worker dies while it starts. :func:`start_failure_hint` says so.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import sys
import threading
import time
from typing import Any

from ori.errors import OriValidationError
from ori.errors.validation import cloudpickle_available, cloudpickle_hint

from ._pickling import DISTRIBUTION, for_workers, needs_by_value
from ._wire import dumps
from ._worker import WorkerCode

FORKSERVER = "forkserver"
EXITING_THREAD_SECONDS = 0.05


def single_threaded() -> bool:
    """True when this process runs exactly one thread (the caller's).

    On Linux the kernel's count decides, which also sees threads that C
    libraries started (the count Python 3.12 checks before it warns about
    fork). A thread that was just joined may still be exiting in the kernel
    for a moment, so a count above one is read again for up to
    ``EXITING_THREAD_SECONDS`` before it is believed.
    """
    if threading.active_count() > 1:
        return False
    deadline = time.monotonic() + EXITING_THREAD_SECONDS
    while True:
        count = _kernel_thread_count()
        if count is None or count == 1:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


def _kernel_thread_count() -> int | None:
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[17])  # field 20 of proc_pid_stat(5), counted after the name
    except (OSError, IndexError, ValueError):
        return None  # not Linux: the count Python knows was all there is


class StartPlan:
    """The context and the pickled code for each worker one stage starts.

    Built once per stage and run; the code is pickled at most once per start
    method, the first time a worker needs it.
    """

    def __init__(
        self, context: multiprocessing.context.BaseContext, code: WorkerCode, stage: str
    ) -> None:
        self.context = context
        self.method = context.get_start_method()
        self._code = code
        self._stage = stage
        self._payloads: dict[str, WorkerCode | bytes] = {}
        self._forkserver: multiprocessing.context.BaseContext | None = None
        # Once other threads were seen, the rest of the run has them too (its own
        # lanes start next): no need to count threads again, or to wait for a
        # thread that might be exiting, for every worker.
        self._beside_threads = False
        if (
            self.method == "fork"
            and FORKSERVER in multiprocessing.get_all_start_methods()
            and not _stuck_to_fork(code)
        ):
            self._forkserver = multiprocessing.get_context(FORKSERVER)

    def choose(self) -> tuple[multiprocessing.context.BaseContext, WorkerCode | bytes]:
        """The context for the next worker and what its ``worker_main`` gets.

        Raises OriValidationError when the code cannot be pickled for it.
        """
        context = self.context
        if self._forkserver is not None and (self._beside_threads or not single_threaded()):
            self._beside_threads = True
            context = self._forkserver
        method = context.get_start_method()
        payload = self._payloads.get(method)
        if payload is None:
            payload = self._payloads[method] = self._payload_for(context)
        return context, payload

    def _payload_for(self, context: multiprocessing.context.BaseContext) -> WorkerCode | bytes:
        if context.get_start_method() == "fork":
            return self._code  # inherited with the parent's memory: nothing to pickle
        try:
            function = for_workers(self._code.function, context)
            setup = self._code.setup
            if setup is not None:
                setup = (for_workers(setup[0], context), setup[1])
            return dumps(WorkerCode(function, setup))
        except Exception as exc:
            raise OriValidationError(
                f"the function {_name(self._code.function)} (or the initializer) of "
                f"{self._stage} cannot be pickled, so it cannot be sent to worker processes "
                f"started with {context.get_start_method()!r}: {type(exc).__name__}: {exc}. "
                "Pass a function defined with 'def' at the top level of a module that "
                "holds no unpicklable state (locks, open files, connections), create such "
                "resources in an initializer instead, " + cloudpickle_hint(DISTRIBUTION)
            ) from exc


def _stuck_to_fork(code: WorkerCode) -> bool:
    """True when only forked workers can get *code*.

    That is a function that must go by value (defined in an interactive
    ``__main__``) while cloudpickle is not installed.
    """
    functions: list[Any] = [code.function]
    if code.setup is not None:
        functions.append(code.setup[0])
    return not cloudpickle_available() and any(needs_by_value(f) for f in functions)


def _name(function: object) -> str:
    return str(getattr(function, "__qualname__", None) or type(function).__name__)


def start_failure_hint(method: str) -> str:
    """Advice for a worker that died while starting under *method*."""
    if method == "fork":
        return "; the worker's own error output (its standard error) shows what ended it"
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    where = f" ({script})" if script else ""
    return (
        f". Workers started with {method!r} import your main module{where} again: if it "
        "builds and runs the chain when it is imported, put that code under "
        "'if __name__ == \"__main__\":'. Otherwise the worker's own error output (its "
        "standard error) shows what failed, such as an import error"
    )
