"""Run one example script as ``python script.py`` would, under a chosen start method.

Usage::

    python docs_script_runner.py START_METHOD REPORT SCRIPT [ARGUMENT ...]

``START_METHOD`` is ``fork``, ``spawn``, ``forkserver``, or ``default`` to leave
the interpreter's default alone. The runner sets it with
``multiprocessing.set_start_method`` and then runs *SCRIPT* the way
``python SCRIPT`` does: ``sys.argv``, ``sys.path[0]`` and an absolute
``__file__`` as that command sets them, and a fresh module that is both
``sys.modules["__main__"]`` and ``sys.modules["__mp_main__"]`` (the alias
multiprocessing makes when it is first imported, which would otherwise name
this runner, and through which the parent unpickles the script's classes
coming back from workers). So a worker started with spawn or forkserver
re-imports *SCRIPT* itself, as it would for a reader: an example that starts
its work without an ``if __name__ == "__main__":`` guard fails here as it
fails for them. ``runpy.run_path`` is not used because it leaves that alias
on the runner.

When the script is done, the runner writes *REPORT* (JSON, see ``Report``): the
start methods of the processes the script started (so the test knows whether
an example started worker processes at all) and what the script left behind,
threads or multiprocessing children still alive after a grace period once the
script's globals are gone. The test process checks the rest: it runs the
runner in a session of its own and fails if any process of that session
outlives it.

The runner never runs in a worker: workers import the script, not this file.
The test module imports it only for ``Report`` and ``DEFAULT``.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import sys
import threading
import time
import types
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TypedDict

# How long threads and processes get to finish after the script; the test's
# teeth for this check shorten it.
LEAK_GRACE_SECONDS = float(os.environ.get("ORI_DOCS_LEAK_GRACE", "10"))
DEFAULT = "default"


class Report(TypedDict):
    """What the runner tells the test about one run of a script."""

    start_method: str  # what multiprocessing.get_start_method() said at the end
    process_start_methods: list[str]  # one entry per process the script started
    leftovers: list[str]  # threads and processes still alive after the grace period


def record_process_starts() -> list[str]:
    """Count every multiprocessing process start from now on, by its start method."""
    starts: list[str] = []
    start = BaseProcess.start

    def counting_start(self: BaseProcess) -> None:
        # Context classes (SpawnProcess, ...) name their method; the default
        # Process class uses whatever the default is.
        method = getattr(self, "_start_method", None) or multiprocessing.get_start_method()
        starts.append(method)
        start(self)

    BaseProcess.start = counting_start  # type: ignore[method-assign]
    return starts


def leftovers(threads_before: set[threading.Thread]) -> list[str]:
    """Threads and multiprocessing children that are still alive after the grace period."""
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before]
        children = multiprocessing.active_children()  # also reaps the finished ones
        if not (threads or children) or time.monotonic() > deadline:
            return [f"thread {t.name!r} (daemon={t.daemon})" for t in threads] + [
                f"process {p.pid} ({p.name})" for p in children
            ]
        time.sleep(0.05)


def run_as_main(path: str) -> None:
    """Run the file *path* as the main module, then drop its globals."""
    module = types.ModuleType("__main__")
    module.__file__ = path
    saved = {name: sys.modules[name] for name in ("__main__", "__mp_main__")}
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    try:
        # dont_inherit: the runner's own __future__ imports are not the script's.
        code = compile(Path(path).read_bytes(), path, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    finally:
        sys.modules.update(saved)
        module.__dict__.clear()


def main(argv: list[str]) -> None:
    method, report_path, script, *arguments = argv
    if method != DEFAULT:
        multiprocessing.set_start_method(method)
    starts = record_process_starts()
    report: Report = {"start_method": "", "process_start_methods": starts, "leftovers": []}
    # What `python SCRIPT` sets: argv as given, an absolute __file__ and the
    # script's folder first on sys.path (instead of the runner's).
    sys.argv = [script, *arguments]
    path = os.path.abspath(script)
    sys.path[0] = os.path.dirname(path)
    threads_before = set(threading.enumerate())
    try:
        run_as_main(path)
        gc.collect()  # release what the script's objects owned before looking for leaks
        report["leftovers"] = leftovers(threads_before)
    finally:
        report["start_method"] = multiprocessing.get_start_method()
        Path(report_path).write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
