"""Lines per second delivered from a command's output, streaming vs capturing.

The workload is a command printing 10^6 lines (``seq``, short lines) and the
same count of 100-byte lines. Each implementation hands every line to a
callback (``list.append``) while the command runs, except the reference,
``subprocess.run(capture_output=True)`` + ``splitlines()``, which waits for all
of the output and splits it afterwards: the fastest way to get the lines at all,
but without streaming and with everything in memory at once. The issue's
target: Ori reaches at least half of that reference's rate while streaming.

Peers: ``subprocess.Popen`` iterating its text stdout (the plain stdlib loop),
``sh`` with an ``_out`` callback, and asyncio's subprocess streams. What each
delivers differs a little (Ori: decoded str without line ending; sh: str with
the newline; asyncio: bytes with the newline), as each is naturally used.

``python benchmarks/bench_subprocess.py [--quick]``
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Row, main, measure, timed, unavailable

UNIT = "lines/s"


def _workloads(count: int) -> dict[str, list[str]]:
    filler = "x" * 99
    return {
        f"{count:.0e} short lines (seq)": ["seq", str(count)],
        f"{count:.0e} lines of 100 bytes": [
            "sh",
            "-c",
            f"yes {filler} | head -n {count}",
        ],
    }


def _capture(command: list[str], count: int) -> None:
    lines = subprocess.run(command, capture_output=True, check=True).stdout.splitlines()
    assert len(lines) == count, len(lines)


def _ori(command: list[str], count: int) -> None:
    from ori.subprocess import run_process_in_background

    lines: list[str] = []
    process = run_process_in_background(command=command, stdout_function=lines.append)
    process.join()
    assert process.exitcode == 0
    assert len(lines) == count, len(lines)


def _popen_iteration(command: list[str], count: int) -> None:
    lines: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
    assert process.returncode == 0
    assert len(lines) == count, len(lines)


def _sh(command: list[str], count: int) -> None:
    import sh

    lines: list[str] = []
    running = sh.Command(command[0])(*command[1:], _out=lines.append, _bg=True, _tty_out=False)
    running.wait()
    assert len(lines) == count, len(lines)


def _asyncio(command: list[str], count: int) -> None:
    lines: list[bytes] = []

    async def read() -> int:
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
        assert process.stdout is not None
        async for line in process.stdout:
            lines.append(line)
        return await process.wait()

    assert asyncio.run(read()) == 0
    assert len(lines) == count, len(lines)


_PEERS: list[tuple[str, Callable[[list[str], int], None], str | None, str]] = [
    ("subprocess.Popen, for line in stdout", _popen_iteration, None, "text mode"),
    ("sh, _out callback", _sh, "sh", "str with newline"),
    ("asyncio streams, async for", _asyncio, None, "bytes with newline"),
]


def _installed(module: str | None) -> bool:
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def run(quick: bool) -> list[Row]:
    count = 100_000 if quick else 1_000_000
    times = 3 if quick else 7
    rows: list[Row] = []
    for name, command in _workloads(count).items():

        def rate(func: Callable[[list[str], int], None], command: list[str] = command) -> float:
            return count / timed(lambda: func(command, count))

        reference = measure(
            name,
            "subprocess.run(capture_output) + splitlines (no streaming)",
            lambda: rate(_capture),
            times=times,
            unit=UNIT,
            higher_is_better=True,
            note="reference: waits for all output, bytes",
        )
        rows.append(reference)
        ori = measure(
            name,
            "ori.subprocess, stdout_function",
            lambda: rate(_ori),
            times=times,
            unit=UNIT,
            higher_is_better=True,
            target=0.5 * reference.value,
        )
        ori.note = f"decoded str, no newline; {ori.value / reference.value:.2f}x the reference"
        rows.append(ori)
        for label, func, module, note in _PEERS:
            if not _installed(module):
                rows.append(
                    unavailable(name, label, "not installed", unit=UNIT, higher_is_better=True)
                )
                continue
            rows.append(
                measure(
                    name,
                    label,
                    functools.partial(rate, func),
                    times=times,
                    unit=UNIT,
                    higher_is_better=True,
                    note=note,
                )
            )
    return rows


if __name__ == "__main__":
    main(run)
