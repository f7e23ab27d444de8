"""One execution of a chain consumed with ``async for``: :class:`PoolChainAsyncRun`.

It drives the same engine as :class:`~._run.PoolChainRun` (``RunEngine``),
from the event loop's thread, without ever blocking that loop:

* fast path: ``__anext__`` hands out the items of the current batch in plain
  Python, awaiting nothing;
* when the batch is used up, ``engine.next_batch(timeout=0)`` on the loop
  takes what is already done (it never waits);
* only when nothing is done yet does the run's one waiting thread (the
  *waiter*) block in ``next_batch()`` and hand the batch back through
  ``loop.call_soon_threadsafe``. The engine is only ever driven by one thread
  at a time: the loop does not touch it while the waiter waits.

Teardown waits (lanes and workers exiting: milliseconds, up to
``CLOSE_SECONDS`` for a busy thread-stage call) never happen on the loop
either when they can be avoided: ``aclose()``, ``async with``, cancellation
and garbage collection hand ``engine.close()`` to a short-lived closing
thread. (When the engine ends itself, at the end of the results or on a
failure raised from ``next_batch(0)``, it closes in the call that saw the end:
its lanes are then idle but for the other items of a failure.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from ._async_input import AsyncInput
from ._run import RunEngine
from ._stats import ChainStats, RunStats
from ._typing import Result

_EMPTY: list[Any] = []
ASYNC_GENERATORS_ARE_FASTER = sys.version_info < (3, 12)  # see PoolChainAsyncRun.__aiter__
JOIN_CLOSED_SECONDS = 1.0  # a closing thread that already said it is done: at most this
# After a wait, the waiter asks the engine to linger this long for more results
# (see RunEngine.next_batch): waking the loop from another thread costs tens of
# microseconds, as much as handing out a few hundred results, so a fast stream
# should wake it once per many results, not once per small batch. A slow stream
# pays at most this in latency.
LINGER_SECONDS = 0.0003


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Complete *future* on the loop (a cancelled one stays cancelled)."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Waiter:
    """The run's one thread that waits off the loop; started at its first job."""

    __slots__ = ("_jobs", "_loop", "_name", "_thread")

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._loop = loop
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def call(self, job: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run *job* in the waiter thread; the future (of the loop) gets its outcome."""
        future = self._loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._main, name=f"{self._name}-async-waiter", daemon=True
            )
            self._thread.start()
        self._jobs.put((job, future))
        return future

    def _main(self) -> None:
        jobs = self._jobs
        loop = self._loop
        while (entry := jobs.get()) is not None:
            job, future = entry
            result: Any = None
            error: BaseException | None = None
            try:
                result = job()
            except BaseException as exc:  # goes to the awaiting task, type kept
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody awaits it
                loop.call_soon_threadsafe(_settle, future, result, error)
            # Hold nothing of the run while waiting for the next job.
            del entry, job, future, result, error

    def stop(self, join: bool = False) -> None:
        """Exit once the job at hand (if any) returns; *join*: wait for that (not on the loop)."""
        thread = self._thread
        if thread is None:
            return
        self._jobs.put(None)
        if join and thread is not threading.current_thread():
            thread.join()


def _shut_down(
    engine: RunEngine,
    waiter: _Waiter,
    source: AsyncInput | None,
    pump: asyncio.Task[None] | None,
    loop: asyncio.AbstractEventLoop,
    done: asyncio.Future[None] | None = None,
) -> threading.Thread:
    """Close the run from any thread without blocking it: the waits go to a closing thread.

    *done* (a future of the loop) is completed once everything the run
    started has exited.
    """
    if source is not None:
        source.close()  # a feeder waiting for async items gets the end at once
    if pump is not None and not pump.done():
        with contextlib.suppress(RuntimeError):  # the loop closed: it cancelled the pump
            loop.call_soon_threadsafe(pump.cancel)

    def close() -> None:
        try:
            engine.close()  # also wakes the waiter if it is inside next_batch()
        finally:
            waiter.stop(join=True)
            if done is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, done, None, None)

    thread = threading.Thread(target=close, name=f"{engine.ctx.name}-async-close")
    thread.start()
    return thread


async def _results(run: PoolChainAsyncRun[Result]) -> AsyncIterator[Result]:
    """Every result of *run*, from the same batches as its ``__anext__``.

    The run holds no reference to this generator (that would be a cycle: a
    run dropped after ``break`` must be freed at once, not by the cyclic
    garbage collector); the generator keeps the run alive while it is used.
    """
    while True:
        items = run._items
        for item in items:
            yield item
        if run._items is items:  # else anext(run) refilled meanwhile: take those first
            try:
                first = await run._refill()
            except StopAsyncIteration:
                return
            yield first


class PoolChainAsyncRun(AsyncIterator[Result]):
    """The async iterator returned by :meth:`PoolChain.execute_async`: one running chain.

    Consume it with ``async for`` from one task at a time, on the event loop
    it was created on. Results come in input order by default (completion
    order for ``ordered=False``); awaiting one never blocks the loop: results
    already done are handed out at once, and only when none is ready does
    the task wait, off the loop. Work starts when the run is created and
    goes on while the task is busy, up to ``max_in_flight`` items and
    ``max_memory`` bytes ahead.

    The run ends, and every thread and worker process it started is stopped,
    when the results run out, when an item fails under the ``"raise"``
    policy (the exception, of the stage function's own type, is raised from
    the ``async for``), on :meth:`aclose`, on leaving an ``async with``
    block, when the consuming task is cancelled, or when the run is garbage
    collected (e.g. after ``break`` out of an ``async for``).

    :attr:`stats` shows what each stage did so far: a :class:`ChainStats`
    snapshot, as for :class:`PoolChainRun`.
    """

    def __init__(
        self,
        engine: RunEngine,
        loop: asyncio.AbstractEventLoop,
        source: AsyncInput | None = None,
        pump: asyncio.Task[None] | None = None,
    ) -> None:
        """Wrap a started run; use :meth:`PoolChain.execute_async`, which validates first."""
        self._engine = engine
        self._loop = loop
        self._source = source
        self._pump = pump
        self._waiter = _Waiter(loop, engine.ctx.name)
        self._items: Iterator[Result] = iter(_EMPTY)
        self._ended = False
        self._done: asyncio.Future[None] | None = None
        self._closing: threading.Thread | None = None
        self._finalizer = weakref.finalize(
            self, _shut_down, engine, self._waiter, source, pump, loop
        )

    @property
    def stats(self) -> ChainStats:
        """A snapshot of this run's per-stage statistics (see :class:`ChainStats`).

        Never blocks; during the run or after it ended.
        """
        return self._engine.ctx.stats.snapshot()

    @property
    def _run_stats(self) -> RunStats:
        """The live counters behind :attr:`stats` (for the chain's own use)."""
        return self._engine.ctx.stats

    def __aiter__(self) -> AsyncIterator[Result]:
        """The run's results; shares its position with ``anext(run)``.

        Up to Python 3.11 an async generator over the run's batches: there
        ``async for`` over a native async generator costs about two thirds of
        what a coroutine per ``__anext__`` call does. From 3.12 on it is the
        other way round (0.127 against 0.096 us per item, measured on 3.12.1
        and 3.13.0), so the run itself is returned.
        """
        if ASYNC_GENERATORS_ARE_FASTER:
            return _results(self)
        return self

    async def __anext__(self) -> Result:
        # The fast path: an item of the current batch, nothing awaited.
        for item in self._items:
            return item
        return await self._refill()

    async def _refill(self) -> Result:
        """The first item of the next batch: at once when done, else waited for off the loop."""
        if self._ended:
            raise StopAsyncIteration
        engine = self._engine
        try:
            batch = engine.next_batch(0)
            if batch is not None and not batch:
                batch = await self._waiter.call(
                    functools.partial(engine.next_batch, None, LINGER_SECONDS)
                )
        except asyncio.CancelledError:
            self._close_soon()
            raise
        except BaseException:
            self._wind_down()  # the engine closed itself before raising
            raise
        if batch is None:
            self._wind_down()
            raise StopAsyncIteration
        items: Iterator[Result] = iter(batch)  # the engine's batches hold Any
        self._items = items
        return next(items)

    def _wind_down(self) -> None:
        """The engine has ended: stop the waiter and the pump (never blocks)."""
        self._ended = True
        self._items = iter(_EMPTY)
        self._finalizer.detach()
        self._waiter.stop()
        if self._source is not None:
            self._source.close()
        pump = self._pump
        if pump is not None and not pump.done():
            pump.cancel()

    def _close_soon(self) -> asyncio.Future[None]:
        """Start closing the run (idempotent); the future completes once all has exited."""
        done = self._done
        if done is None:
            self._done = done = self._loop.create_future()
            self._ended = True
            self._items = iter(_EMPTY)
            if self._finalizer.detach() is None:  # already wound down: nothing to wait for
                done.set_result(None)
            else:
                self._closing = _shut_down(
                    self._engine, self._waiter, self._source, self._pump, self._loop, done
                )
        return done

    async def aclose(self) -> None:
        """Stop the run and everything it started; idempotent.

        Returns once lanes and worker processes have exited (a few seconds at
        most, as for :meth:`PoolChainRun.close`) and an async generator input
        has been closed; the loop runs other tasks meanwhile. Results not yet
        taken are dropped.
        """
        await asyncio.shield(self._close_soon())
        closing = self._closing
        if closing is not None:
            # Its work is done (it completed the future last): this returns at once.
            closing.join(JOIN_CLOSED_SECONDS)
        pump = self._pump
        if pump is not None and not pump.done():
            # The source's own finally blocks run before aclose() returns
            # (wait(), not await: the pump ends cancelled, which is no error here).
            await asyncio.wait([pump])
        self._waiter.stop()

    async def __aenter__(self) -> PoolChainAsyncRun[Result]:
        """Return the run itself; leaving the block awaits :meth:`aclose`."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the run (see :meth:`aclose`); exceptions propagate unchanged."""
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._ended or self._engine.closed else "running"
        stages = len(self._engine.stages)
        return f"<PoolChainAsyncRun {self._engine.ctx.name} {state}, {stages} stages>"
