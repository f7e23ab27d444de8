"""On Windows ori.subprocess refuses clearly, before it starts anything.

Windows is simulated by setting ``sys.platform`` to ``"win32"``: in this process
for the call, and in a fresh interpreter before Ori's first import, so that a
check moved to import time (or Ori code that breaks there) is caught too. The
standard library is imported before the switch: on real Windows it loads its
Windows halves (``_winapi``), which a Linux interpreter does not have.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ori.errors import OriError, OriValidationError
from ori.subprocess import run_process_in_background


def _assert_says_posix_only(message: str) -> None:
    assert "POSIX-only" in message
    assert "Windows" in message
    assert "subprocess.Popen" in message  # what to use instead
    assert "CREATE_NEW_PROCESS_GROUP" in message


def test_windows_call_raises_ori_error_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(OriError) as caught:
        run_process_in_background(command=["touch", str(marker)])
    monkeypatch.undo()
    assert not isinstance(caught.value, OriValidationError), "the arguments were fine"
    _assert_says_posix_only(str(caught.value))
    assert not marker.exists(), "the command must not have started"


def test_windows_guard_comes_before_argument_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Windows user fixing an argument error would otherwise only then learn
    # that nothing here can work for them.
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(OriError) as caught:
        run_process_in_background(command="echo hello")  # type: ignore[arg-type]
    monkeypatch.undo()
    _assert_says_posix_only(str(caught.value))


_FRESH_IMPORT = """
import json, sys
import codecs, logging, multiprocessing.connection, selectors, signal, subprocess, threading
sys.platform = "win32"
assert not [name for name in sys.modules if name.startswith("ori")]
import ori.subprocess
from ori.errors import OriError
try:
    ori.subprocess.run_process_in_background(command=["true"])
except OriError as exc:
    print(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"type": None}))
"""


def test_import_works_on_windows_and_the_first_call_raises() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_IMPORT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["type"] == "OriError"
    _assert_says_posix_only(outcome["message"])


def test_posix_runs_as_before(tmp_path: Path) -> None:
    # The guard must not fire elsewhere (the rest of the suite relies on it;
    # this says so where the guard is tested).
    assert sys.platform != "win32"
    marker = tmp_path / "started"
    with run_process_in_background(command=["touch", str(marker)]) as process:
        process.join()
    assert process.exitcode == 0
    assert marker.exists()
