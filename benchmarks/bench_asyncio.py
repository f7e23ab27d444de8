"""ori.asyncio: the cost of crossing between blocking code and asyncio.

* ``sync()`` per call, against ``asyncio.run()`` (what most code does),
  ``asgiref.sync.async_to_sync`` (the best-known bridge) and, for reference,
  ``asyncio.Runner.run()`` (Python 3.11+, which also reuses one loop but must
  be created, passed around and closed by the caller). Measured for a
  coroutine that returns at once, one that suspends once (the path that
  installs the Ctrl-C guard), from a worker thread, and submitted to a loop
  running in another thread.
* ``to_thread()`` per call (sequential awaits of a trivial function, and a
  gathered batch) against ``asyncio.to_thread`` and ``anyio.to_thread.run_sync``.

Targets from the issue: sync() at least 5x faster than asyncio.run() per call
and faster than asgiref; to_thread's overhead close to asyncio.to_thread's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Row, main, measure, unavailable

US = 1e6


async def returns_at_once() -> int:
    return 1


async def suspends_once() -> int:
    await asyncio.sleep(0)
    return 1


def per_call(calls: int, call: Callable[[], object]) -> Callable[[], float]:
    """A measurement: microseconds per call over *calls* calls."""

    def run() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - start) / calls * US

    return run


def in_worker_thread(measurement: Callable[[], float]) -> Callable[[], float]:
    def run() -> float:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(measurement).result()

    return run


def not_installed(benchmark: str, implementation: str) -> Row:
    return unavailable(benchmark, implementation, "not installed", unit="us/call")


def sync_rows(quick: bool) -> list[Row]:
    from ori.asyncio import LoopThread, sync

    calls = 200 if quick else 2000
    times = 3 if quick else 7
    rows: list[Row] = []
    try:
        from asgiref.sync import async_to_sync
    except ImportError:  # pragma: no cover - optional peer
        async_to_sync = None

    for label, coroutine in [
        ("returns at once", returns_at_once),
        ("suspends once", suspends_once),
    ]:
        bench = f"sync: coroutine that {label}, main thread"
        baseline = measure(
            bench,
            "asyncio.run()",
            per_call(calls, lambda c=coroutine: asyncio.run(c())),
            times=times,
            unit="us/call",
        )
        ori = measure(
            bench,
            "ori.asyncio.sync()",
            per_call(calls, lambda c=coroutine: sync(c())),
            times=times,
            unit="us/call",
            target=baseline.value / 5,
            note="target: 5x faster than asyncio.run()",
        )
        rows += [ori, baseline]
        if async_to_sync is not None:
            bridged = async_to_sync(coroutine)
            rows.append(
                measure(
                    bench,
                    "asgiref async_to_sync",
                    per_call(calls, bridged),
                    times=times,
                    unit="us/call",
                )
            )
        else:
            rows.append(not_installed(bench, "asgiref async_to_sync"))
        if sys.version_info >= (3, 11):
            with asyncio.Runner() as runner:
                rows.append(
                    measure(
                        bench,
                        "asyncio.Runner.run() (one runner reused)",
                        per_call(calls, lambda c=coroutine: runner.run(c())),
                        times=times,
                        unit="us/call",
                        note="reference: caller manages the runner",
                    )
                )
        rows.append(
            Row(
                f"sync: speedup over asyncio.run(), {label}",
                "ori.asyncio.sync()",
                baseline.value / ori.value,
                "x",
                higher_is_better=True,
                target=5.0,
            )
        )

    bench = "sync: coroutine that suspends once, worker thread"
    baseline = measure(
        bench,
        "asyncio.run()",
        in_worker_thread(per_call(calls, lambda: asyncio.run(suspends_once()))),
        times=times,
        unit="us/call",
    )
    rows.append(
        measure(
            bench,
            "ori.asyncio.sync()",
            in_worker_thread(per_call(calls, lambda: sync(suspends_once()))),
            times=times,
            unit="us/call",
            target=baseline.value / 5,
        )
    )
    rows.append(baseline)
    if async_to_sync is not None:
        bridged = async_to_sync(suspends_once)
        rows.append(
            measure(
                bench,
                "asgiref async_to_sync",
                in_worker_thread(per_call(calls, bridged)),
                times=times,
                unit="us/call",
            )
        )
    else:
        rows.append(not_installed(bench, "asgiref async_to_sync"))

    bench = "sync: submitted to a loop running in another thread"
    with LoopThread() as loop:
        rows.append(
            measure(
                bench,
                "ori.asyncio.sync(coro, loop)",
                per_call(calls, lambda: sync(suspends_once(), loop)),
                times=times,
                unit="us/call",
            )
        )
        rows.append(
            measure(
                bench,
                "asyncio.run_coroutine_threadsafe().result()",
                per_call(
                    calls, lambda: asyncio.run_coroutine_threadsafe(suspends_once(), loop).result()
                ),
                times=times,
                unit="us/call",
                note="no Ctrl-C handling, no cleanup",
            )
        )

    bench = "sync: called inside a running loop (helper thread)"

    async def nested() -> float:
        return per_call(calls // 4, lambda: sync(suspends_once()))()

    rows.append(
        measure(
            bench,
            "ori.asyncio.sync()",
            lambda: asyncio.run(nested()),
            times=times,
            unit="us/call",
            note="asyncio.run() and asgiref refuse this case",
        )
    )
    return rows


async def blocking_noop() -> None:
    return None


def noop() -> None:
    return None


def to_thread_rows(quick: bool) -> list[Row]:
    from ori.asyncio import sync, to_thread

    calls = 200 if quick else 2000
    batch = 100 if quick else 500
    times = 3 if quick else 7
    rows: list[Row] = []
    try:
        import anyio.to_thread

        anyio_run_sync: Any = anyio.to_thread.run_sync
    except ImportError:  # pragma: no cover - optional peer
        anyio_run_sync = None

    implementations: list[tuple[str, Callable[[], Any] | None]] = [
        ("ori.asyncio.to_thread", lambda: to_thread(noop)),
        ("asyncio.to_thread", lambda: asyncio.to_thread(noop)),
        (
            "anyio.to_thread.run_sync",
            None if anyio_run_sync is None else lambda: anyio_run_sync(noop),
        ),
    ]

    bench = "to_thread: sequential awaits of a no-op"
    for name, make in implementations:
        if make is None:
            rows.append(not_installed(bench, name))
            continue

        async def sequential(make: Callable[[], Any] = make) -> float:
            await make()  # start the executor's first thread outside the timing
            start = time.perf_counter()
            for _ in range(calls):
                await make()
            return (time.perf_counter() - start) / calls * US

        rows.append(
            measure(bench, name, lambda s=sequential: sync(s()), times=times, unit="us/call")
        )

    bench = f"to_thread: {batch} no-ops gathered"
    for name, make in implementations:
        if make is None:
            rows.append(not_installed(bench, name))
            continue

        async def gathered(make: Callable[[], Any] = make) -> float:
            await make()
            start = time.perf_counter()
            await asyncio.gather(*(make() for _ in range(batch)))
            return (time.perf_counter() - start) / batch * US

        rows.append(measure(bench, name, lambda g=gathered: sync(g()), times=times, unit="us/call"))
    return rows


def run(quick: bool) -> list[Row]:
    return sync_rows(quick) + to_thread_rows(quick)


if __name__ == "__main__":
    main(run)
