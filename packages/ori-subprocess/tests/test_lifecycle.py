"""The handle: exit codes, stopping the whole tree, timeouts, no zombies, no hangs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from subprocess_helpers import HANG, process_gone, py, wait_until

from ori.errors import OriInvalidStateError, OriTimeoutError
from ori.subprocess import BackgroundProcess, run_process_in_background

# A child that says "ready" once it ignores SIGTERM, then sleeps forever.
IGNORES_SIGTERM = py(
    """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    while True:
        time.sleep(1)
    """
)


def started(command: list[str], **kwargs: object) -> tuple[BackgroundProcess, list[str]]:
    """Start *command* and wait for its first line of output."""
    lines: list[str] = []
    first = threading.Event()

    def collect(line: str) -> None:
        lines.append(line)
        first.set()

    process = run_process_in_background(command=command, stdout_function=collect, **kwargs)  # type: ignore[arg-type]
    assert first.wait(HANG), "the command printed nothing"
    return process, lines


def assert_reaped(pid: int) -> None:
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize(
    ("script", "code"),
    [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", -15), ("kill -KILL $$", -9)],
)
def test_exit_status_of_the_command_itself(script: str, code: int) -> None:
    process = run_process_in_background(command=["sh", "-c", script], exit_code_on_killed=42)
    assert process.wait(HANG) == code
    assert process.exitcode == code
    assert process.returncode == code
    assert not process.timed_out
    assert process.exception is None
    assert_reaped(process.pid)


def test_status_is_none_while_alive_and_pid_is_the_commands() -> None:
    process, lines = started(["sh", "-c", "echo $$; exec sleep 1000"])
    try:
        assert process.is_alive()
        assert process.exitcode is None
        assert process.returncode is None
        assert process.pid == int(lines[0])
        assert os.getpgid(process.pid) == process.pid  # its own process group
        assert os.getsid(process.pid) == process.pid  # and its own session
        assert "running" in repr(process)
    finally:
        process.terminate()
        process.join(HANG)
    assert not process.is_alive()
    assert "exitcode=" in repr(process)


def test_terminate_reports_exit_code_on_killed() -> None:
    process, _ = started(["sh", "-c", "echo up; exec sleep 1000"], exit_code_on_killed=42)
    process.terminate()
    process.join(HANG)
    assert process.exitcode == 42
    assert process.returncode == -signal.SIGTERM
    assert_reaped(process.pid)


def test_kill_reports_exit_code_on_killed() -> None:
    process, _ = started(["sh", "-c", "echo up; exec sleep 1000"], exit_code_on_killed=-1)
    process.kill()
    process.join(HANG)
    assert process.exitcode == -1
    assert process.returncode == -signal.SIGKILL


def test_default_exit_code_on_killed_is_zero() -> None:
    process, _ = started(["sh", "-c", "echo up; exec sleep 1000"])
    process.terminate()
    assert process.wait(HANG) == -signal.SIGTERM
    assert process.exitcode == 0


def test_ignored_sigterm_escalates_to_sigkill_after_the_grace_period() -> None:
    process, _ = started(IGNORES_SIGTERM, grace_period=0.5, exit_code_on_killed=7)
    start = time.monotonic()
    process.terminate()
    process.join(HANG)
    elapsed = time.monotonic() - start
    assert not process.is_alive()
    assert process.returncode == -signal.SIGKILL
    assert process.exitcode == 7
    assert elapsed >= 0.5  # SIGKILL only once the grace period is over


def test_sigterm_is_delivered_to_a_stopped_command() -> None:
    process, _ = started(["sh", "-c", "echo up; exec sleep 1000"], grace_period=60)
    os.kill(process.pid, signal.SIGSTOP)
    process.terminate()
    process.join(HANG)  # would take the 60 s grace period without SIGCONT
    assert process.returncode == -signal.SIGTERM


def test_terminate_stops_grandchildren_and_leaves_no_zombie() -> None:
    process, lines = started(
        [
            "sh",
            "-c",
            "sleep 1000 & echo $!; sleep 1000 & echo $!; sh -c 'sleep 1000 & echo $!; wait' & wait",
        ],
    )
    assert wait_until(lambda: len(lines) == 3)
    descendants = [int(pid) for pid in lines]
    assert not any(process_gone(pid) for pid in descendants)
    process.terminate()
    process.join(HANG)
    assert all(process_gone(pid) for pid in descendants)
    assert_reaped(process.pid)


def test_grandchildren_ignoring_sigterm_are_killed() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"
    process, lines = started(
        ["sh", "-c", f"{sys.executable} -c '{code}' & echo $!; wait"],
        grace_period=0.3,
    )
    grandchild = int(lines[0])
    process.terminate()
    process.join(HANG)
    assert process_gone(grandchild)


def test_grandchild_holding_the_pipes_does_not_keep_join_waiting() -> None:
    # The command exits at once; the background sleep keeps stdout open.
    process, lines = started(["sh", "-c", "sleep 1000 & echo $!"], grace_period=0.3)
    process.join(HANG)
    assert not process.is_alive()
    assert process.exitcode == 0  # the command's own status: it exited by itself
    assert process_gone(int(lines[0]))


def test_output_of_stragglers_within_the_grace_period_is_delivered() -> None:
    process, lines = started(["sh", "-c", "echo first; (sleep 0.2; echo late) &"])
    process.join(HANG)
    assert lines == ["first", "late"]
    assert process.exitcode == 0


def test_leftovers_not_holding_the_pipes_are_stopped_when_the_command_exits() -> None:
    process, lines = started(["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"])
    process.join(HANG)
    assert process_gone(int(lines[0]))
    assert process.exitcode == 0


def test_process_that_left_the_group_cannot_keep_join_waiting(tmp_path: Path) -> None:
    # A grandchild in a session of its own still holds the output pipe: Ori
    # cannot signal it, so it stops listening after the grace period.
    pid_file = tmp_path / "escaped.pid"
    process, lines = started(
        py(
            """
            import os, sys, time
            if os.fork() == 0:
                os.setsid()
                with open(sys.argv[1] + ".tmp", "w") as f:
                    f.write(str(os.getpid()))
                os.rename(sys.argv[1] + ".tmp", sys.argv[1])
                time.sleep(1000)
                os._exit(0)
            while not os.path.exists(sys.argv[1]):
                time.sleep(0.01)
            print("start", flush=True)
            """,
            str(pid_file),
        ),
        grace_period=0.3,
    )
    try:
        process.join(HANG)
        assert not process.is_alive()
        assert lines == ["start"]
        assert process.exitcode == 0
    finally:
        assert wait_until(pid_file.exists)
        escaped = int(pid_file.read_text())
        os.kill(escaped, signal.SIGKILL)
    assert wait_until(lambda: process_gone(escaped))


def test_terminate_twice_and_after_exit_is_harmless() -> None:
    process, _ = started(["sh", "-c", "echo up; exec sleep 1000"], exit_code_on_killed=5)
    process.terminate()
    process.terminate()
    process.kill()
    process.join(HANG)
    assert process.exitcode == 5
    process.terminate()
    process.kill()
    assert process.exitcode == 5
    assert process.returncode in (-signal.SIGTERM, -signal.SIGKILL)


def test_terminate_after_natural_exit_keeps_the_commands_status() -> None:
    process = run_process_in_background(command=["sh", "-c", "exit 3"], exit_code_on_killed=42)
    process.join(HANG)
    process.terminate()
    process.kill()
    assert process.exitcode == 3


def test_raising_callback_stops_the_command_and_reports_once() -> None:
    errors: list[BaseException] = []
    seen: list[str] = []
    boom = ValueError("boom")

    def failing(line: str) -> None:
        seen.append(line)
        if line == "2":
            raise boom

    process = run_process_in_background(
        command=["sh", "-c", "seq 5; exec sleep 1000"],
        stdout_function=failing,
        exception_function=errors.append,
        exit_code_on_killed=11,
    )
    process.join(HANG)
    assert seen == ["1", "2"]  # nothing after the failure
    assert errors == [boom]
    assert process.exception is boom
    assert process.exitcode == 11
    assert process.returncode == -signal.SIGTERM


def test_raising_callback_reports_exit_code_on_killed_even_after_a_natural_exit() -> None:
    errors: list[BaseException] = []
    process = run_process_in_background(
        command=["echo", "only line"],
        stdout_function=lambda line: int(line),
        exception_function=errors.append,
        exit_code_on_killed=13,
    )
    process.join(HANG)
    assert len(errors) == 1
    assert isinstance(errors[0], ValueError)
    assert process.exitcode == 13
    assert process.returncode in (0, -signal.SIGTERM)  # echo may be done already


def test_raising_callback_without_exception_function_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing(line: str) -> None:
        raise RuntimeError("bad line")

    with caplog.at_level(logging.ERROR, logger="ori.subprocess"):
        process = run_process_in_background(
            command=["sh", "-c", "echo x >&2; exec sleep 1000"], stderr_function=failing
        )
        process.join(HANG)
    assert isinstance(process.exception, RuntimeError)
    assert process.exitcode == 0
    assert any(
        record.exc_info and record.exc_info[1] is process.exception for record in caplog.records
    )


def test_sys_exit_in_a_callback_stops_the_command(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = []
    with caplog.at_level(logging.ERROR, logger="ori.subprocess"):
        process = run_process_in_background(
            command=["sh", "-c", "echo x; exec sleep 1000"],
            stdout_function=lambda line: sys.exit(1),
            exception_function=errors.append,
            exit_code_on_killed=12,
        )
        process.join(HANG)
    assert errors == []
    assert process.exception is None
    assert process.exitcode == 12
    assert process.returncode == -signal.SIGTERM
    assert [type(r.exc_info[1]) for r in caplog.records if r.exc_info] == [SystemExit]


def test_raising_exception_function_is_logged_and_does_not_hang(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad_handler(exc: BaseException) -> None:
        raise KeyError("handler broke")

    with caplog.at_level(logging.ERROR, logger="ori.subprocess"):
        process = run_process_in_background(
            command=["sh", "-c", "echo x; exec sleep 1000"],
            stdout_function=lambda line: 1 / 0,
            exception_function=bad_handler,
            exit_code_on_killed=3,
        )
        process.join(HANG)
    assert isinstance(process.exception, ZeroDivisionError)
    assert process.exitcode == 3
    assert "exception_function" in caplog.text


def test_timeout_stops_the_command() -> None:
    process = run_process_in_background(
        command=["sleep", "1000"], timeout=0.3, exit_code_on_killed=124
    )
    process.join(HANG)
    assert process.timed_out
    assert process.exitcode == 124
    assert process.returncode == -signal.SIGTERM


def test_timeout_does_not_touch_a_command_that_finishes_in_time() -> None:
    process = run_process_in_background(command=["sh", "-c", "exit 2"], timeout=60)
    process.join(HANG)
    assert not process.timed_out
    assert process.exitcode == 2


def test_timeout_is_kept_while_a_callback_is_slow() -> None:
    # The reader is stuck in a callback; the watcher still enforces the timeout
    # and the SIGKILL escalation.
    release = threading.Event()
    process = run_process_in_background(
        command=IGNORES_SIGTERM,
        stdout_function=lambda line: release.wait(HANG),
        timeout=0.2,
        grace_period=0.2,
    )
    try:
        assert wait_until(lambda: process_gone(process.pid))
    finally:
        release.set()
    process.join(HANG)
    assert process.timed_out
    assert process.returncode == -signal.SIGKILL


def test_terminate_from_inside_a_callback() -> None:
    holder: list[BackgroundProcess] = []
    ready = threading.Event()

    def on_line(line: str) -> None:
        ready.wait(HANG)
        holder[0].terminate()

    process = run_process_in_background(
        command=["sh", "-c", "echo go; exec sleep 1000"], stdout_function=on_line
    )
    holder.append(process)
    ready.set()
    process.join(HANG)
    assert process.returncode == -signal.SIGTERM


def test_join_from_inside_a_callback_is_refused() -> None:
    holder: list[BackgroundProcess] = []
    ready = threading.Event()
    errors: list[BaseException] = []

    def on_line(line: str) -> None:
        ready.wait(HANG)
        holder[0].join()

    process = run_process_in_background(
        command=["echo", "x"], stdout_function=on_line, exception_function=errors.append
    )
    holder.append(process)
    ready.set()
    process.join(HANG)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


def test_join_timeout_and_wait_timeout() -> None:
    process, _ = started(["sh", "-c", "echo up; exec sleep 1000"])
    try:
        process.join(0.05)
        assert process.is_alive()
        with pytest.raises(OriTimeoutError, match="still running"):
            process.wait(0.05)
        with pytest.raises(TimeoutError):
            process.wait(0.01)
    finally:
        process.terminate()
    assert process.wait(HANG) == -signal.SIGTERM


def test_context_manager_waits_for_the_command() -> None:
    lines: list[str] = []
    with run_process_in_background(command=["seq", "3"], stdout_function=lines.append) as p:
        pass
    assert not p.is_alive()
    assert lines == ["1", "2", "3"]


def test_context_manager_terminates_when_the_block_raises() -> None:
    with (
        pytest.raises(KeyError),
        run_process_in_background(command=["sleep", "1000"], exit_code_on_killed=8) as p,
    ):
        raise KeyError("stop")
    assert not p.is_alive()
    assert p.exitcode == 8
    assert p.returncode == -signal.SIGTERM


def test_many_short_commands_leave_nothing_behind() -> None:
    fds_before = set(os.listdir("/proc/self/fd"))
    processes = [
        run_process_in_background(command=["echo", str(i)], stdout_function=lambda line: None)
        for i in range(30)
    ]
    for process in processes:
        process.join(HANG)
        assert process.exitcode == 0
    assert set(os.listdir("/proc/self/fd")) <= fds_before


PARENT = """
import sys, time
from ori.subprocess import run_process_in_background
process = run_process_in_background(
    command=["sleep", "1000"], kill_on_parent_death=sys.argv[1] == "1", grace_period=0.5
)
print(process.pid, flush=True)
time.sleep(1000)
"""


@pytest.mark.parametrize("opt_in", [True, False])
def test_kill_on_parent_death(opt_in: bool) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, "1" if opt_in else "0"], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    try:
        command_pid = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    try:
        if opt_in:
            assert wait_until(lambda: process_gone(command_pid))
        else:
            # Without the opt-in the command outlives its parent.
            time.sleep(0.5)
            assert not process_gone(command_pid)
    finally:
        if not process_gone(command_pid):
            os.kill(command_pid, signal.SIGKILL)


def test_kill_on_parent_death_watchdog_is_released_after_a_normal_end() -> None:
    lines: list[str] = []
    process = run_process_in_background(
        command=["echo", "fine"], stdout_function=lines.append, kill_on_parent_death=True
    )
    process.join(HANG)
    assert lines == ["fine"]
    assert process.exitcode == 0


def test_without_pidfd_the_watcher_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    # Kernels before 5.3 and other systems have no pidfd: the same behaviour,
    # by polling.
    import ori.subprocess._process as process_module

    monkeypatch.setattr(process_module, "_open_pidfd", lambda pid: None)
    natural = run_process_in_background(command=["sh", "-c", "exit 3"])
    assert natural.wait(HANG) == 3

    stubborn, _ = started(IGNORES_SIGTERM, grace_period=0.2, exit_code_on_killed=6)
    stubborn.terminate()
    assert stubborn.wait(HANG) == -signal.SIGKILL
    assert stubborn.exitcode == 6

    slow = run_process_in_background(command=["sleep", "1000"], timeout=0.2)
    assert slow.wait(HANG) == -signal.SIGTERM
    assert slow.timed_out


def test_join_from_own_callback_is_refused_instead_of_deadlocking() -> None:
    errors: list[BaseException] = []
    holder: list[BackgroundProcess] = []
    ready = threading.Event()

    def joins_itself(line: str) -> None:
        ready.wait(HANG)
        holder[0].join()

    process = run_process_in_background(
        command=["sh", "-c", "echo x; exec sleep 1000"],
        stdout_function=joins_itself,
        exception_function=errors.append,
        exit_code_on_killed=7,
    )
    holder.append(process)
    ready.set()
    process.join(HANG)
    assert not process.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], OriInvalidStateError)
    assert isinstance(errors[0], RuntimeError)
    assert "own callbacks" in str(errors[0])
    assert process.exitcode == 7
