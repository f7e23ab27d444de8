"""An async iterable as the input of a run: read on the event loop, fed from the feeder thread.

Data flow::

    async source --(pump task, on the caller's loop: as many items as asked)-->
        AsyncInput buffer --(feeder thread: next())--> stage 1

An async generator belongs to its event loop: it may only be advanced there,
so the run cannot read it from its feeder thread as it reads a sync input. The
feeder still decides when and how much to read (backpressure lives in one
place): it calls :meth:`AsyncInput.request` before each slice, the pump task
reads that many items on the loop and publishes them in bulk (when the
request is read, or as soon as the source makes it wait), and ``next()`` in
the feeder thread takes each bulk under the lock at once. One thread hop per
slice, not per item, and never an item more than the feeder asked for, so an
infinite async source works and the bounds of the run stay exact.

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
        self._items: collections.deque[Any] = collections.deque()  # published, shared
        self._taken: collections.deque[Any] = collections.deque()  # the feeder's own
        self._read: list[Any] = []  # read by the pump, not published yet (loop only)
        self._publish_scheduled = False  # loop only
        self._owed = 0  # items asked for and not published yet
        self._end: object = _OPEN  # then None (exhausted) or the exception it raised
        self._closed = False
        self._feeder_waits = False  # only then does a publish notify
        self._wanted = asyncio.Event()  # the pump's wake-up; set on the loop only

    # -- the feeder thread ------------------------------------------------------

    def request(self, count: int) -> None:
        """Ask the pump for enough items to make *count* buffered ones (never blocks)."""
        with self._lock:
            need = count - len(self._taken) - len(self._items) - self._owed
            if need <= 0 or self._closed or self._end is not _OPEN:
                return
            self._owed += need
        self._wake_pump()

    def read_into(self, values: list[Any], count: int) -> None:
        """Append up to *count* items to *values*: whole bulks at once, waiting only for none."""
        got = 0
        while got < count:
            taken = self._taken
            if taken and not self._closed:
                if len(taken) <= count - got:
                    got += len(taken)
                    values.extend(taken)
                    taken.clear()
                else:
                    for _ in range(count - got):
                        values.append(taken.popleft())
                    got = count
                continue
            try:
                values.append(next(self))  # takes the next bulk, or waits for one
            except StopIteration:
                return
            got += 1

    def __next__(self) -> Any:
        # Items are taken from the shared buffer all at once, under the lock,
        # then handed out from the feeder's own deque without it.
        taken = self._taken
        if taken and not self._closed:
            return taken.popleft()
        with self._lock:
            while True:
                if self._closed:
                    taken.clear()
                    raise StopIteration
                if self._items:
                    self._items, self._taken = self._taken, self._items
                    return self._taken.popleft()
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
                self._feeder_waits = True
                try:
                    self._arrived.wait()
                finally:
                    self._feeder_waits = False

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
        """Read *source* on the loop, as much as the feeder asked for, until it ends.

        Items read go to the feeder in bulk: when the request is read, and
        whenever the source makes the pump wait (a callback scheduled with the
        first item of a bulk runs as soon as the pump's task yields to the
        loop). A source that has items at once costs no hand-off per item; a
        live one gets each item to the feeder one loop iteration after it came.
        """
        read = self._read
        try:
            while True:
                await self._wanted.wait()
                self._wanted.clear()  # before looking at _owed: no request is missed
                if self._closed:
                    return
                while len(read) < self._owed:  # _owed only grows meanwhile
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
                    read.append(item)
                    del item
                    if not self._publish_scheduled:
                        self._publish_scheduled = True
                        self._loop.call_soon(self._publish)
                self._publish()
        finally:
            self.close_if_open()
            if isinstance(source, types.AsyncGeneratorType):
                await source.aclose()

    def _publish(self) -> None:
        """Hand the items the pump read to the feeder (on the loop)."""
        self._publish_scheduled = False
        read = self._read
        if not read:
            return
        with self._lock:
            if not self._closed:
                self._items.extend(read)
                self._owed -= len(read)
                if self._feeder_waits:
                    self._arrived.notify()
        read.clear()

    def _finish(self, end: BaseException | None) -> None:
        self._publish()  # the items before the end come first
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
