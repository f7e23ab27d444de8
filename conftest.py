"""Fixtures shared by every test in the repository.

The autouse ``no_leaks`` fixture fails a test that leaves behind a thread or a
descendant process (including zombies) that was not there before it started:
Ori promises that nothing outlives its owner, and this is how we hold it to that.
Long-lived helpers that multiprocessing itself keeps for the whole session (the
resource tracker, the forkserver) are not counted, but their children are.
On free-threaded CPython the run also fails if the GIL is on when it ends.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

# Worker processes started with spawn or forkserver import the functions they run
# by module name. Test helpers that run in workers live in uniquely named modules
# (``<package>_workers.py``) inside each tests/ folder; putting those folders on
# sys.path here, before any forkserver starts, makes them importable everywhere.
for _tests_dir in [*sorted(ROOT.glob("packages/*/tests")), ROOT / "tests"]:
    if str(_tests_dir) not in sys.path:
        sys.path.insert(0, str(_tests_dir))
LEAK_GRACE_SECONDS = 10.0


def _parent_map() -> dict[int, int]:
    """pid -> ppid for every process visible in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def _multiprocessing_helpers() -> set[int]:
    """Pids of the session-long helper processes multiprocessing keeps."""
    helpers: set[int] = set()
    try:
        from multiprocessing import resource_tracker

        pid = getattr(resource_tracker._resource_tracker, "_pid", None)
        if pid:
            helpers.add(pid)
    except Exception:
        pass
    try:
        from multiprocessing import forkserver

        pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
        if pid:
            helpers.add(pid)
    except Exception:
        pass
    return helpers


def descendant_pids() -> set[int]:
    """Every live or zombie descendant of this process, minus multiprocessing's helpers."""
    if not Path("/proc/self/stat").exists():  # not Linux: fall back to direct children
        return {p.pid for p in multiprocessing.active_children() if p.pid is not None}
    parents = _parent_map()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [os.getpid()]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found - _multiprocessing_helpers()


def _describe_pid(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return str(pid)
    return f"{pid} [{state}] {cmd.strip()[:120]}"


def leftovers(
    threads_before: set[threading.Thread], pids_before: set[int], grace: float
) -> tuple[list[threading.Thread], set[int]]:
    """Threads and processes started since the snapshot that are still there after *grace*."""
    deadline = time.monotonic() + grace
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        # Reap our own exited children so that a joined child is not seen as a zombie.
        multiprocessing.active_children()
        pids = descendant_pids() - pids_before
        if (not threads and not pids) or time.monotonic() > deadline:
            return threads, pids
        time.sleep(0.05)


# Forking a process that runs threads can deadlock the child (Python 3.12+
# warns, but under the suite's "error" filter CPython drops that warning inside
# os.fork() silently). So every fork of the test process is checked here, as
# CPython checks it, and fails the test that made it; the count is read again
# for up to 50 ms, as Ori does, while a thread that was just joined exits. A
# test that forks beside threads on purpose is marked allow_fork_beside_threads.
_current_test = [""]
_forks_beside_threads: dict[str, list[str]] = {}


def _thread_count() -> int:
    try:
        with open("/proc/self/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[17])
    except (OSError, IndexError, ValueError):
        return threading.active_count()


def _before_fork() -> None:
    deadline = time.monotonic() + 0.05
    while (count := _thread_count()) > 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    if count > 1:
        where = "".join(traceback.format_stack(limit=10)[:-1])
        _forks_beside_threads.setdefault(_current_test[0], []).append(
            f"{count} threads, forked from:\n{where}"
        )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_fork_beside_threads: the test forks while threads run, on purpose",
    )


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves threads or descendant processes behind.

    Also if it forked this process while it ran other threads.
    """
    threads_before = set(threading.enumerate())
    pids_before = descendant_pids()
    _current_test[0] = request.node.nodeid
    yield
    forks = _forks_beside_threads.pop(request.node.nodeid, [])
    if forks and request.node.get_closest_marker("allow_fork_beside_threads") is None:
        pytest.fail("forked beside running threads:\n" + "\n".join(forks), pytrace=False)
    threads, pids = leftovers(threads_before, pids_before, LEAK_GRACE_SECONDS)
    if threads or pids:
        lines = [f"thread {t.name!r} (daemon={t.daemon})" for t in threads]
        lines += [f"process {_describe_pid(p)}" for p in sorted(pids)]
        pytest.fail("test left these behind:\n  " + "\n  ".join(lines), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On free-threaded CPython, fail the run if anything turned the GIL back on.

    Importing an extension module that does not declare itself free-threading safe
    re-enables the GIL for the whole process with a RuntimeWarning. Inside a test
    that warning is an error; an import outside any test (a plugin, a conftest, a
    session fixture's teardown) would otherwise go unnoticed.
    """
    if sysconfig.get_config_var("Py_GIL_DISABLED") and sys._is_gil_enabled():
        print(
            "\nERROR: the GIL is on at the end of the run on free-threaded CPython: an extension"
            " module without free-threading support was imported (see its RuntimeWarning"
            " above) or PYTHON_GIL=1 / -X gil=1 is set.",
            file=sys.stderr,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(params=multiprocessing.get_all_start_methods())
def start_method_context(request: pytest.FixtureRequest) -> multiprocessing.context.BaseContext:
    """A multiprocessing context, once per start method of this platform (fork, spawn, ...)."""
    context: multiprocessing.context.BaseContext = multiprocessing.get_context(request.param)
    return context


def message_and_notes(exc: BaseException) -> str:
    """What a reader of a printed exception sees of it: its message and its notes."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


@pytest.fixture
def text_of() -> Callable[[BaseException], str]:
    """:func:`message_and_notes`, for tests (conftest modules cannot be imported)."""
    return message_and_notes
