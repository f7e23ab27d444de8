"""An async iterable as the input of a run: read on the event loop, fed from the feeder thread.

Data flow::

    async source --(pump task, on the caller's loop: as many items as asked)-->
        AsyncInput buffer --(feeder thread: next())--> stage 1

An async generator belongs to its event loop: it may only be advanced there,
so the run cannot read it from its feeder thread as it reads a sync input. The
feeder still decides when and how much to read (backpressure lives in one
place): it calls :meth:`AsyncInput.request` before each slice, the pump task
reads that many items on the loop, and ``next()`` in the feeder thread takes
them one by one as they arrive. One thread hop per slice, not per item, and
never an item more than the feeder asked for, so an infinite async source
works and the bounds of the run stay exact.

The pump ends with the source (its exception goes to the feeder, which hands
it on after the results before it, as for a sync source), or when the run
closes it (:meth:`AsyncInput.close` and a cancelled pump task). An async
generator the run stops reading is closed (``aclose()``) by the pump, on the
loop, so its ``finally`` blocks run where its body ran.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import types
from collections.abc import AsyncIterator
from typing import Any

from ._feeder import RequestedSource

_OPEN = object()  # the source has neither ended nor raised yet


class AsyncInput(RequestedSource):
    """The feeder's view of an async source: a blocking iterator filled by the pump task."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._items: collections.deque[Any] = collections.deque()
        self._owed = 0  # items asked for and not read from the source yet
        self._end: object = _OPEN  # then None (exhausted) or the exception it raised
        self._closed = False
        self._wanted = asyncio.Event()  # the pump's wake-up; set on the loop only

    # -- the feeder thread ------------------------------------------------------

    def request(self, count: int) -> None:
        """Ask the pump for enough items to make *count* buffered ones (never blocks)."""
        with self._lock:
            need = count - len(self._items) - self._owed
            if need <= 0 or self._closed or self._end is not _OPEN:
                return
            self._owed += need
        self._wake_pump()

    def __next__(self) -> Any:
        with self._lock:
            while True:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    raise StopIteration
                end = self._end
                if end is not _OPEN:
                    self._end = None  # an exception is raised once
                    if end is None:
                        raise StopIteration
                    assert isinstance(end, BaseException)
                    raise end
                if self._owed == 0:  # read without a request (a chain with operators)
                    self._owed = 1
                    self._lock.release()
                    try:
                        self._wake_pump()
                    finally:
                        self._lock.acquire()
                    continue
                self._arrived.wait()

    def _wake_pump(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wanted.set)
        except RuntimeError:  # the loop is closed: nobody will ever read the source
            self.close()

    # -- any thread ---------------------------------------------------------------

    def close(self) -> None:
        """Read no more; a feeder waiting in ``next()`` gets the end at once."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self._arrived.notify_all()

    # -- the pump task, on the loop ---------------------------------------------

    async def pump(self, source: AsyncIterator[Any]) -> None:
        """Read *source* on the loop, as much as the feeder asked for, until it ends."""
        try:
            while True:
                await self._wanted.wait()
                self._wanted.clear()  # before looking at _owed: no request is missed
                while True:
                    with self._lock:
                        if self._closed:
                            return
                        if self._owed == 0:
                            break
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        self._finish(None)
                        return
                    except asyncio.CancelledError as exc:
                        # The run closing cancels the pump after close(); any
                        # other cancellation (the loop shutting down, the
                        # source's own) still reaches the consumer, not a quiet end.
                        self._finish(exc)
                        raise
                    except BaseException as exc:  # raised after the results before it
                        self._finish(exc)
                        return
                    with self._lock:
                        if self._closed:
                            return
                        self._items.append(item)
                        self._owed -= 1
                        self._arrived.notify()
                    del item
        finally:
            self.close_if_open()
            if isinstance(source, types.AsyncGeneratorType):
                await source.aclose()

    def _finish(self, end: BaseException | None) -> None:
        with self._lock:
            self._end = end
            self._owed = 0
            self._arrived.notify_all()

    def close_if_open(self) -> None:
        """After the pump stopped: a feeder still waiting for items must not wait forever."""
        with self._lock:
            if self._end is _OPEN:
                self._closed = True
                self._arrived.notify_all()
