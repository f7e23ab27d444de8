"""The original Ori 0.1.2's ``sync()`` on bench_asyncio's workloads.

Runs inside the original's venv (``python orig_asyncio.py ROWS.json [--quick]``).
The benchmark names, call counts and repeats are those of ``bench_asyncio.py``, so
the rows land in the same tables as ``ori.asyncio.sync()`` and its peers
(``tests/test_benchmarks_smoke.py`` checks that the names still match).

The original was ``asyncio.get_event_loop().run_until_complete(awaitable)``. Where
that raises (a worker thread, a running loop, a loop running in another thread),
the row says so instead of giving a figure. The main-thread figures are taken in
a fresh process before anything calls ``asyncio.run()``: after it, the original
fails in the main thread too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import Row, repeat, unavailable

IMPLEMENTATION = "Ori 0.1.2 (original)"
UNIT = "us/call"
US = 1e6
LABELS = ("returns at once", "suspends once")


def main_thread_name(label: str) -> str:
    return f"sync: coroutine that {label}, main thread"


def speedup_name(label: str) -> str:
    return f"sync: speedup over asyncio.run(), {label}"


WORKER_THREAD = "sync: coroutine that suspends once, worker thread"
OTHER_LOOP = "sync: submitted to a loop running in another thread"
RUNNING_LOOP = "sync: called inside a running loop (helper thread)"


def names(quick: bool) -> list[tuple[str, dict[str, Any]]]:
    """Benchmark names and row options, for rows that say the original is unavailable."""
    timing: dict[str, Any] = {"unit": UNIT}
    result: list[tuple[str, dict[str, Any]]] = []
    for label in LABELS:
        result.append((main_thread_name(label), timing))
        result.append((speedup_name(label), {"unit": "x", "higher_is_better": True}))
    result += [(WORKER_THREAD, timing), (OTHER_LOOP, timing), (RUNNING_LOOP, timing)]
    return result


async def returns_at_once() -> int:
    return 1


async def suspends_once() -> int:
    await asyncio.sleep(0)
    return 1


COROUTINES = {"returns at once": returns_at_once, "suspends once": suspends_once}


def per_call(calls: int, call: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - start) / calls * US

    return run


def _calling(runner: Callable[[Any], object], coroutine: Callable[[], Any]) -> Callable[[], object]:
    """A no-argument call of runner(coroutine())."""
    return lambda: runner(coroutine())


def failure(exc: BaseException) -> str:
    return f"fails: {type(exc).__name__}: {exc}"[:160]


def run(quick: bool) -> list[Row]:
    from ori.asyncio import sync

    calls = 200 if quick else 2000
    times = 3 if quick else 7
    rows: list[Row] = []
    original: dict[str, float] = {}

    # Main thread, before any asyncio.run(): the only place the original works.
    for label in LABELS:
        coroutine = COROUTINES[label]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                median, low, high = repeat(per_call(calls, _calling(sync, coroutine)), times)
            except Exception as exc:  # recorded as data
                rows.append(unavailable(main_thread_name(label), IMPLEMENTATION, failure(exc)))
                continue
        note = "reuses the thread's current loop"
        kinds = sorted({w.category.__name__ for w in caught})
        if kinds:
            note += "; warns: " + ", ".join(kinds)
        original[label] = median
        rows.append(
            Row(
                main_thread_name(label), IMPLEMENTATION, median, UNIT, low=low, high=high, note=note
            )
        )

    # The cases where get_event_loop().run_until_complete() cannot work.
    def closing(call: Callable[[Any], object]) -> object:
        """Run call(coroutine); close the coroutine if the call failed before awaiting it."""
        coroutine = suspends_once()
        try:
            return call(coroutine)
        finally:
            coroutine.close()  # no-op once it ran to completion

    def in_worker_thread() -> object:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(closing, sync).result()

    def with_loop_in_other_thread() -> object:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            return closing(lambda coroutine: sync(coroutine, loop))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

    def inside_running_loop() -> object:
        async def nested() -> object:
            return closing(sync)

        return asyncio.run(nested())

    for name, attempt in [
        (WORKER_THREAD, in_worker_thread),
        (OTHER_LOOP, with_loop_in_other_thread),
        (RUNNING_LOOP, inside_running_loop),
    ]:
        try:
            median, low, high = repeat(per_call(calls, attempt), 1)
        except Exception as exc:
            rows.append(unavailable(name, IMPLEMENTATION, failure(exc)))
            continue
        rows.append(Row(name, IMPLEMENTATION, median, UNIT, low=low, high=high))

    # Speedup over asyncio.run(), measured here, after the original's own figures.
    for label in LABELS:
        if label not in original:
            rows.append(unavailable(speedup_name(label), IMPLEMENTATION, "no figure", unit="x"))
            continue
        coroutine = COROUTINES[label]
        baseline, _, _ = repeat(per_call(calls, _calling(asyncio.run, coroutine)), times)
        rows.append(
            Row(
                speedup_name(label),
                IMPLEMENTATION,
                baseline / original[label],
                "x",
                higher_is_better=True,
                note="but fails in threads, in running loops and after asyncio.run()",
            )
        )
    return rows


if __name__ == "__main__":
    result = run("--quick" in sys.argv[2:])
    Path(sys.argv[1]).write_text(json.dumps([row.to_dict() for row in result]), encoding="utf-8")
