"""Output delivery: whole lines, in order, in the caller's process, nothing lost."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from subprocess_helpers import BUFFERED_ENV, HANG, Recorder, py, wait_until

from ori.subprocess import run_process_in_background


def run_lines(command: list[str], **kwargs: object) -> tuple[list[str], list[str]]:
    recorder = Recorder()
    process = run_process_in_background(
        command=command,
        stdout_function=recorder.stdout,
        stderr_function=recorder.stderr,
        **kwargs,  # type: ignore[arg-type]
    )
    process.join(HANG)
    assert not process.is_alive()
    assert process.exitcode == 0
    return recorder.out, recorder.err


def test_partial_writes_are_joined_into_lines() -> None:
    out, _ = run_lines(
        py(
            """
            import sys, time
            for piece in ["ab", "c\\nde", "", "f\\ng", "h\\n"]:
                sys.stdout.write(piece)
                sys.stdout.flush()
                time.sleep(0.05)
            """
        )
    )
    assert out == ["abc", "def", "gh"]


def test_no_final_newline() -> None:
    out, err = run_lines(["sh", "-c", "printf 'one\\ntwo'; printf 'x\\ny' >&2"])
    assert out == ["one", "two"]
    assert err == ["x", "y"]


def test_crlf_line_endings_are_stripped() -> None:
    out, _ = run_lines(["printf", "a\\r\\nb\\r\\n\\r\\nc\\r"])
    assert out == ["a", "b", "", "c\r"]


def test_invalid_utf8_is_replaced() -> None:
    out, _ = run_lines(["printf", "ok\\377\\376\\nend \\342\\202"])
    assert out == ["ok\ufffd\ufffd", "end \ufffd"]


def test_megabyte_line_and_long_unterminated_line() -> None:
    out, _ = run_lines(
        py("import sys; sys.stdout.write('x' * 1_000_000 + '\\n' + 'y' * 70_000 + '\\nz' * 3)")
    )
    assert [len(line) for line in out] == [1_000_000, 70_000, 1, 1, 1]
    assert out[0] == "x" * 1_000_000
    assert out[1] == "y" * 70_000


def test_empty_output_calls_nothing() -> None:
    out, err = run_lines(["true"])
    assert out == []
    assert err == []


def test_blank_lines_are_kept() -> None:
    out, _ = run_lines(["printf", "\\n\\na\\n\\n"])
    assert out == ["", "", "a", ""]


def test_interleaved_streams_keep_their_order_and_never_overlap() -> None:
    recorder = Recorder()
    process = run_process_in_background(
        command=py(
            """
            import sys
            for i in range(3000):
                print(f"out {i}", flush=True)
                print(f"err {i}", file=sys.stderr, flush=(i % 7 == 0))
            """
        ),
        stdout_function=recorder.stdout,
        stderr_function=recorder.stderr,
        env=BUFFERED_ENV,
    )
    process.join(HANG)
    assert recorder.out == [f"out {i}" for i in range(3000)]
    assert recorder.err == [f"err {i}" for i in range(3000)]
    assert recorder.max_active == 1
    assert len(recorder.threads) == 1
    assert threading.get_ident() not in recorder.threads


@pytest.mark.slow
def test_more_than_ten_megabytes_on_both_streams_without_loss() -> None:
    lines_per_stream = 250_000  # 50 bytes each: 12.5 MB per stream
    counts = {"out": 0, "err": 0}
    bad: list[str] = []

    def checker(name: str) -> object:
        def check(line: str) -> None:
            if line != f"{name} {counts[name]:09d} " + "x" * 35:
                bad.append(line)
            counts[name] += 1

        return check

    process = run_process_in_background(
        command=py(
            """
            import sys, threading
            def write(stream, name):
                lines = [f"{name} {i:09d} " + "x" * 35 + "\\n" for i in range(250_000)]
                for start in range(0, len(lines), 1000):
                    stream.write("".join(lines[start:start + 1000]))
                stream.flush()
            t = threading.Thread(target=write, args=(sys.stderr, "err"))
            t.start()
            write(sys.stdout, "out")
            t.join()
            """
        ),
        stdout_function=checker("out"),  # type: ignore[arg-type]
        stderr_function=checker("err"),  # type: ignore[arg-type]
    )
    process.join(HANG)
    assert not process.is_alive()
    assert process.exitcode == 0
    assert bad == []
    assert counts == {"out": lines_per_stream, "err": lines_per_stream}


def test_block_buffered_child_delivers_everything_at_exit() -> None:
    # Without PYTHONUNBUFFERED the child fills an 8 KiB buffer and writes it in
    # blocks that cut lines anywhere; the last block is only written at exit.
    out, err = run_lines(
        py(
            """
            import sys
            for i in range(20_000):
                print(f"line {i}")
                print(f"err {i}", file=sys.stderr)
            print("unterminated", end="")
            """
        ),
        env=BUFFERED_ENV,
    )
    assert out == [f"line {i}" for i in range(20_000)] + ["unterminated"]
    assert err == [f"err {i}" for i in range(20_000)]


def test_block_buffered_child_output_arrives_when_flushed(tmp_path: Path) -> None:
    # The child writes a line it does not flush, then waits for a file; the
    # line must arrive once the child flushes at exit.
    gate = tmp_path / "gate"
    seen = threading.Event()
    lines: list[str] = []

    def collect(line: str) -> None:
        lines.append(line)
        seen.set()

    process = run_process_in_background(
        command=py(
            """
            import os, sys, time
            print("buffered")
            while not os.path.exists(sys.argv[1]):
                time.sleep(0.01)
            """,
            str(gate),
        ),
        stdout_function=collect,
        env=BUFFERED_ENV,
    )
    try:
        assert process.is_alive()
        assert lines == []  # still in the child's buffer while it waits
    finally:
        gate.touch()
    process.join(HANG)
    assert seen.is_set()
    assert lines == ["buffered"]


def test_callbacks_run_in_the_callers_process_with_its_state() -> None:
    class Collector:
        def __init__(self) -> None:
            self.lines: list[tuple[int, str]] = []

        def add(self, line: str) -> None:
            self.lines.append((os.getpid(), line))

    collector = Collector()
    seen_by_lambda: list[str] = []
    process = run_process_in_background(
        command=["sh", "-c", "echo out; echo err >&2"],
        stdout_function=collector.add,
        stderr_function=lambda line: seen_by_lambda.append(line.upper()),
    )
    process.join(HANG)
    assert collector.lines == [(os.getpid(), "out")]
    assert seen_by_lambda == ["ERR"]


def test_join_returns_after_the_last_callback() -> None:
    finished: list[int] = []
    release = threading.Event()

    def slow(line: str) -> None:
        release.wait(HANG)
        finished.append(int(line))

    process = run_process_in_background(command=["seq", "3"], stdout_function=slow)
    process.join(0.2)
    assert process.is_alive()  # the command is done, but a callback still runs
    release.set()
    process.join(HANG)
    assert finished == [1, 2, 3]
    assert not process.is_alive()


def test_stream_without_function_is_discarded(tmp_path: Path) -> None:
    err: list[str] = []
    process = run_process_in_background(
        command=["sh", "-c", "echo to-out; echo to-err >&2"], stderr_function=err.append
    )
    process.join(HANG)
    assert err == ["to-err"]
    assert process.exitcode == 0


def test_no_functions_at_all() -> None:
    process = run_process_in_background(command=["sh", "-c", "seq 100000; exit 4"])
    process.join(HANG)
    assert process.exitcode == 4


def test_slow_callback_slows_the_command_instead_of_buffering(tmp_path: Path) -> None:
    # The child writes 16 MB without blocking until the pipe is full, notes how
    # much it managed to write, then finishes with ordinary blocking writes.
    # While the first callback blocks, Ori must not read on: the child finds the
    # pipe full after at most a few chunks.
    report = tmp_path / "written-before-blocking"
    first_line = threading.Event()
    release = threading.Event()
    count = 0

    def slow(line: str) -> None:
        nonlocal count
        if count == 0:
            first_line.set()
            release.wait(HANG)
        count += 1

    process = run_process_in_background(
        command=py(
            """
            import os, sys
            block = b"x" * 99 + b"\\n"
            block *= 100
            os.set_blocking(1, False)
            written = 0
            reported = False
            for _ in range(1600):
                view = memoryview(block)
                while view:
                    try:
                        view = view[os.write(1, view):]
                    except BlockingIOError:
                        if not reported:
                            open(sys.argv[1] + ".tmp", "w").write(str(written))
                            os.rename(sys.argv[1] + ".tmp", sys.argv[1])
                            reported = True
                            os.set_blocking(1, True)
                written += len(block)
            if not reported:
                open(sys.argv[1], "w").write(str(written))
            """,
            str(report),
        ),
        stdout_function=slow,
    )
    try:
        assert first_line.wait(HANG)
        assert wait_until(report.exists)
        written_before_blocking = int(report.read_text())
    finally:
        release.set()
    process.join(HANG)
    assert written_before_blocking <= 4 * 1024 * 1024  # of 16 MB
    assert count == 160_000
    assert process.exitcode == 0


def test_input_text_and_bytes_reach_stdin() -> None:
    out, _ = run_lines(["cat"], input="héllo\nworld")
    assert out == ["héllo", "world"]
    out, _ = run_lines(["wc", "-c"], input=b"\x00" * 300_000)
    assert out == ["300000"]


def test_input_ignored_by_command_does_not_hang() -> None:
    out, _ = run_lines(["echo", "done"], input="x" * 1_000_000)
    assert out == ["done"]


def test_stdin_from_a_file(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("from file\n")
    with source.open("rb") as f:
        out, _ = run_lines(["cat"], stdin=f)
    assert out == ["from file"]


def test_stdin_defaults_to_devnull() -> None:
    out, _ = run_lines(["sh", "-c", "cat; echo end"])
    assert out == ["end"]


def test_cwd_and_env(tmp_path: Path) -> None:
    out, _ = run_lines(
        ["sh", "-c", 'pwd; echo "$ORI_TEST"'],
        cwd=tmp_path,
        env={"ORI_TEST": "value", "PATH": os.environ["PATH"]},
    )
    assert out == [str(tmp_path.resolve()), "value"]


def test_other_encoding() -> None:
    out, _ = run_lines(["printf", "\\347a\\n"], encoding="latin-1")
    assert out == ["ça"]


def test_strict_decoding_error_counts_as_a_failed_callback() -> None:
    lines: list[str] = []
    errors: list[BaseException] = []
    process = run_process_in_background(
        command=["sh", "-c", "printf 'good\\n\\377bad\\n'; exec sleep 1000"],
        stdout_function=lines.append,
        exception_function=errors.append,
        errors="strict",
        exit_code_on_killed=9,
    )
    process.join(HANG)
    assert lines == ["good"] or lines == []  # "good" may share the failing chunk
    assert len(errors) == 1
    assert isinstance(errors[0], UnicodeDecodeError)
    assert process.exception is errors[0]
    assert process.exitcode == 9
