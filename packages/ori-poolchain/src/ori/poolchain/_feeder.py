"""The feeder: the one thread of a run that reads the input.

Data flow::

    source --(feeder: slices, while the window and the byte budget have room)-->
        stage 1 queue
    end of the input, or the exception it raised --(SourceEnd)--> run output queue

Reading the input in a thread of its own means that a source that blocks (a
queue, a socket, a message broker, a slow file) never holds back results that
are already done: the consumer only ever waits on the output queue. Only this
thread touches the source, so it is still read by one thread at a time. A
generator the run stops reading early (a ``break``, a failure) is closed here
too, explicitly: its ``finally`` and ``with`` blocks run at once and in the
thread its body ran in (a sqlite connection opened inside it must be closed by
that thread). Dropping the last reference would not do: on free-threaded
CPython, an object freed by another thread than the one that created it is
handed back to its creator to be deallocated (biased reference counting). An input already
in memory (the iterator of a list, tuple, range, dict, set, str or bytes)
cannot block: the consumer reads it as room appears (:meth:`Feeder.nudge`),
which saves a thread hop per slice, and the feeder thread only fills in while
nobody consumes (under a lock: one thread at a time still).

Admission (backpressure lives here): the feeder pulls only while

* the items in flight (read and not yet handed out or skipped) are fewer than
  the item window (``max_in_flight``, or what the stages can hold), and
* those items, each counted at the largest average size items were measured at
  anywhere in the chain (the input or any stage's results), fit in the byte
  budget (``max_memory``). Counting every item at its largest size keeps the
  bound when a stage makes items bigger (download, decode); an item larger
  than the whole budget still goes through, alone.

Sizes are only known once items were produced, so until the first stage has
finished an item the feeder lets in at most what that stage can work on at
once (one batch per worker; the *probe*): enough for the first results to come
quickly, too few to blow the budget before the sizes are known. (Stages are
usually where items grow: a download, a decode. Growth in a later stage is
seen at its first results, a few milliseconds later.)

Slices adapt to the source: a source that yields at once is read in slices of
the first stage's batch size (one queue hand-off per batch), a slow one item by
item (each enters the chain the moment it exists). When a source blocks in the
middle of a slice, the consumer, which waits for results meanwhile, sends on
what the slice already holds after ``FLUSH_SECONDS`` (:meth:`Feeder.flush`),
so no item waits for the source to yield the next one.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
import types
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ._chunking import Sizer
from ._context import RunContext, SourceEnd
from ._sizes import batch_nbytes
from ._stages import StageRuntime

SLICE_TARGET_SECONDS = 0.0005  # a slice of the input holds its first item at most this long
MAX_SLICE = 4096
WEIGH_SECONDS = 0.005  # how often the item sizes measured by the stages are looked at
RECHECK_SECONDS = 0.05  # a sleeping feeder looks again this often even if nobody wakes it
# ...and this often during the probe's first second: its end (the first
# stage's first items done) is seen by nobody else, and the first stage must
# not wait for it (a first item slower than that may wait a little).
PROBE_RECHECK_SECONDS = 0.001
PROBE_FAST_SECONDS = 1.0
FLUSH_SECONDS = 0.002  # a slice blocked this long sends on what it already read
SLIVER_WAIT_SECONDS = 0.002  # room for less than a batch waits this long (see _inline_take)
JOIN_STEP_SECONDS = 0.01  # close() looks this often whether the feeder is stuck in the source


# Iterators over data already in memory: reading them cannot block, so the
# consumer reads them itself, as room appears (no thread hop per slice).
_EXAMPLES: tuple[Iterable[Any], ...] = (
    [],
    (),
    range(0),
    range(1 << 64),
    {},
    {}.values(),
    {}.items(),
    set(),
    "",
    b"",
    bytearray(),
)
IN_MEMORY = frozenset(type(iter(example)) for example in _EXAMPLES)


class RequestedSource(Iterator[Any]):
    """A source that reads ahead only what it was asked for (``execute_async``'s async input).

    Its items come from another thread (the event loop), one hand-off per
    request rather than per item, so the feeder tells it how many items the
    next slice may take; it never reads more, which keeps the window and the
    byte budget exact.
    """

    def request(self, count: int) -> None:
        """The next slice may take *count* items (feeder thread; never blocks)."""
        raise NotImplementedError

    def read_into(self, values: list[Any], count: int) -> None:
        """Append up to *count* items to *values* as they come, as ``extend(islice())`` would.

        Items go in as they arrive (a slice whose source blocks is flushed from
        *values* by the consumer meanwhile); fewer only at the end of the
        source; its exception is raised after the items before it.
        """
        values.extend(itertools.islice(self, count))


def _close_generator(source: Iterator[Any]) -> None:
    """Close a generator the run no longer reads (a no-op once it is exhausted).

    Only generators: closing other iterators, such as a file object the user
    handed in, is the user's call. An exception raised while it closes has
    nobody left to go to in the run (which is closing), so it leaves the
    feeder thread for :func:`threading.excepthook`, which names the thread.
    """
    if isinstance(source, types.GeneratorType):
        source.close()


class _Point:
    """The size of the items at one point of the chain: recent averages."""

    __slots__ = ("items", "nbytes", "size")

    def __init__(self) -> None:
        self.items = 0  # counts at the previous look
        self.nbytes = 0
        self.size = 0.0  # bytes per item: rises at once, falls by halves

    def update(self, items: int, nbytes: int) -> None:
        if items <= self.items:
            return
        recent = (nbytes - self.nbytes) / (items - self.items)
        self.items, self.nbytes = items, nbytes
        self.size = recent if recent >= self.size else (self.size + recent) / 2


class Feeder:
    """Reads the source into the first stage from a thread of its own.

    The consumer writes :attr:`waiting` and calls :meth:`nudge` when it made
    room; :meth:`stop` and :meth:`join` come from whichever thread closes the
    run. Holds no reference to the consumer, so the run can still be collected.
    """

    def __init__(
        self,
        source: Iterator[Any],
        stages: Sequence[StageRuntime],
        ctx: RunContext,
        *,
        max_in_flight: int | None,
        max_memory: int | None,
    ) -> None:
        self._source: Iterator[Any] | None = source
        self._stages = stages
        self._ctx = ctx
        self._fixed_window = max_in_flight
        self._budget = max_memory
        # Results done but waiting for an earlier one (ordered runs); the
        # consumer writes it, the window grows with it (see _window).
        self.waiting = 0
        self._stopped = False
        self._reading = False  # inside the source: cannot be woken up
        # The slice being read (see flush), under the lock with the indices.
        self._lock = threading.Lock()
        self._slice: list[Any] | None = None
        self._slice_began = 0.0
        self._flushed = 0  # items of the open slice the consumer already sent on
        self._next_index = 0
        self._asleep = False
        self._wakeup = threading.Event()
        self._points = [_Point() for _ in range(len(stages) + 1)]  # input, each stage
        self._weight = 0.0  # the largest of their sizes
        self._probing = max_memory is not None
        self._next_weigh = 0.0
        self._thread: threading.Thread | None = None
        # An input already in memory is read by the consumer (see fill).
        self.inline = type(source) in IN_MEMORY
        self._ended = False
        self._sliver_since: float | None = None  # since when a sliver of room waits

    def start(self) -> None:
        """Start the feeder thread (in a copy of the caller's context variables).

        For an input already in memory, the thread only fills in while nobody
        consumes (the consumer's :meth:`nudge` reads it otherwise).
        """
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run,
            args=(self._main_inline if self.inline else self._main,),
            name=f"{self._ctx.name}-feeder",
            daemon=True,
        )
        self._thread.start()

    def nudge(self) -> None:
        """The consumer made room (handed out, skipped, results now waiting)."""
        if self.inline:
            if self._lock.acquire(blocking=False):  # else the feeder thread is at it
                try:
                    self._fill()
                finally:
                    self._lock.release()
        elif self._asleep:
            self._wakeup.set()

    def _main_inline(self) -> None:
        """The feeder thread of an input in memory: fill in when nobody else does."""
        try:
            while not (self._ended or self._stopped or self._ctx.stopping):
                with self._lock:
                    self._fill()
                if not self._ended:
                    self._sleep()
        except BaseException as exc:  # an Ori bug: fail the run rather than hang it
            self._ctx.fail(self._stages[0].label, exc)

    def _fill(self) -> None:
        """Read an input already in memory while there is room (lock held)."""
        source = self._source
        if self._ended or self._stopped or self._ctx.stopping or source is None:
            return
        try:
            while (take := self._inline_take()) > 0:
                values = list(itertools.islice(source, take))
                if values:
                    self._send(values)
                if len(values) < take:
                    self._end(None)
                    return
        except Exception as exc:  # e.g. a dict changed size while read: after the rest
            self._end(exc)

    def _inline_take(self) -> int:
        """How many items of an input in memory to read now (0 or less: none).

        A slice of the first stage's batch size at most. A smaller one only
        when less than a batch is in flight: room for a few items (the
        window's slack, freed by a short batch handed out) otherwise waits
        until a whole batch fits, so the first stage gets full batches rather
        than a stream of tiny chunks, each a round trip to a worker process.
        It waits ``SLIVER_WAIT_SECONDS`` at most: usually the next batch
        handed out makes room well before, but items in flight may also wait
        for items not read yet (coroutines meeting at a barrier, say).
        """
        room = self._room()
        size = self._stages[0].sizer.size
        if 0 < room < size and self._in_flight() >= size:
            now = time.perf_counter()
            if self._sliver_since is None:
                self._sliver_since = now
            if now - self._sliver_since < SLIVER_WAIT_SECONDS:
                return 0
        self._sliver_since = None
        return min(room, size)

    def _end(self, error: BaseException | None) -> None:
        self._ended = True
        self._source = None
        self._ctx.out_queue.put(SourceEnd(self._next_index, error))

    def stop(self) -> None:
        """Pull no more (any thread; never blocks)."""
        self._stopped = True
        self._wakeup.set()

    def join(self, deadline: float) -> None:
        """Wait until *deadline* (monotonic) for the feeder thread to exit.

        Once stopped, the feeder exits at once unless it is inside the source,
        which nothing can interrupt: then it is not waited for. It is a daemon
        thread holding nothing but the source, and it exits as soon as the
        source returns, dropping what it read.
        """
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        while thread.is_alive() and not self._reading:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            thread.join(min(left, JOIN_STEP_SECONDS))

    # -- the feeder thread ------------------------------------------------------

    def _main(self) -> None:
        ctx = self._ctx
        hint = self._stages[0].sizer
        source = self._source
        assert source is not None
        self._source = None  # from now on only this frame holds it: finalized here
        pace = Sizer(None, target_seconds=SLICE_TARGET_SECONDS, maximum=MAX_SLICE)
        pace.size = MAX_SLICE  # until the source proves slow, slices are the first stage's
        clock = time.perf_counter
        lock = self._lock
        requested = source if isinstance(source, RequestedSource) else None
        error: BaseException | None = None
        try:
            while not (self._stopped or ctx.stopping):
                room = self._room()
                if room <= 0:
                    self._sleep()
                    continue
                take = min(room, hint.size, pace.size)
                values: list[Any] = []
                with lock:
                    self._slice = values
                    self._flushed = 0
                    self._slice_began = began = clock()
                self._reading = True
                try:
                    if requested is not None:
                        requested.request(room)  # read ahead: it fills its buffer meanwhile
                        requested.read_into(values, take)
                    else:
                        values.extend(itertools.islice(source, take))
                except BaseException as exc:  # raised after the results before it
                    error = exc
                finally:
                    self._reading = False
                with lock:
                    self._slice = None
                    got = len(values) + self._flushed
                    if ctx.stopping:
                        return  # the run is closing: what was read goes nowhere
                    if values:
                        self._send(values)
                if got:
                    pace.report(got, clock() - began)
                    ctx.stats.tick()
                if error is not None or got < take:
                    ctx.out_queue.put(SourceEnd(self._next_index, error))
                    return
        except BaseException as exc:  # an Ori bug: fail the run rather than hang it
            ctx.fail(self._stages[0].label, exc)
        finally:
            _close_generator(source)
            del source, error, requested

    def _send(self, values: list[Any]) -> None:
        """Give items read from the source to the first stage (lock held)."""
        stats = self._ctx.stats
        index = self._next_index
        got = len(values)
        stats.pulled_bytes += batch_nbytes(values)
        self._points[0].update(index + got, stats.pulled_bytes)
        self._weight = max(self._weight, self._points[0].size)
        self._next_index = stats.pulled = index + got  # before stage 1 can finish them
        self._stages[0].submit((range(index, index + got), values))

    def stuck(self) -> bool:
        """Whether items the source yielded wait for it to yield more (consumer)."""
        return self._reading and bool(self._slice)

    def flush(self) -> None:
        """Send on the items of a slice whose source has been blocked a while (consumer).

        The feeder reads the source a slice at a time; when the source blocks
        in the middle of one, what it yielded before must not wait with it.
        Only the list the slice is read into is touched here, never the
        source: the feeder thread is blocked inside it, and sends the rest
        of the slice itself once the source returns.
        """
        if time.perf_counter() - self._slice_began < FLUSH_SECONDS:
            return
        with self._lock:
            values = self._slice
            if not self._reading or not values:
                return
            taken = values[:]
            del values[: len(taken)]  # the source may append meanwhile: only these go
            self._flushed += len(taken)
            self._send(taken)

    def _sleep(self) -> None:
        """Wait for the consumer to make room (or for a look now and then)."""
        self._wakeup.clear()
        self._asleep = True  # the consumer sees this, or we see its room below
        try:
            if self.inline:
                # Under the lock, as in the consumer's nudge(): both weigh the
                # items (_room -> _weigh), and two threads updating one size
                # average at once could divide by zero.
                with self._lock:
                    room = self._inline_take()
            else:
                room = self._room()
            if room <= 0 and not (self._stopped or self._ctx.stopping):
                young = time.perf_counter() - self._ctx.stats.started < PROBE_FAST_SECONDS
                fast = self._probing and young
                wait = PROBE_RECHECK_SECONDS if fast else RECHECK_SECONDS
                if self._sliver_since is not None:  # a sliver of room waits: not for long
                    wait = min(wait, SLIVER_WAIT_SECONDS)
                self._wakeup.wait(wait)
        finally:
            self._asleep = False

    def _window(self) -> int:
        if self._fixed_window is not None:
            return self._fixed_window
        # Twice what the stages can hold (each worker busy with one batch and
        # one queued), plus four items of slack per worker: stages of equal
        # speed in a row drift apart, and the first must not run dry...
        window = sum(2 * stage.capacity() + 4 * stage.workers for stage in self._stages)
        # ...and, in order, results done but waiting for a slower item before
        # them do not stop new work until they are as many again: one slow
        # item must not starve every stage (memory stays within twice this).
        return window + min(self.waiting, window)

    def _in_flight(self) -> int:
        """Items read and not yet handed out or skipped."""
        stats = self._ctx.stats
        return stats.pulled - stats.handed_out - stats.skipped

    def _room(self) -> int:
        """How many more items may enter the chain now."""
        in_flight = self._in_flight()
        room = self._window() - in_flight
        budget = self._budget
        if budget is None or room <= 0:
            return room
        if self._probing:
            first = self._stages[0].meter.totals()
            self._probing = first[0] + first[1] == 0  # nothing out or failed yet
            self._weigh()  # at every look until the sizes are known, and once more then
            if self._probing:
                room = min(room, self._stages[0].capacity() - in_flight)
        elif time.perf_counter() >= self._next_weigh:
            self._weigh()
        weight = self._weight
        if weight > 0:
            room = min(room, int((budget - in_flight * weight) // weight))
        # Nothing in flight: one item goes in, however large.
        return room if in_flight > 0 or room > 0 else 1

    def _weigh(self) -> None:
        """Refresh the largest item size from what the stages measured."""
        self._next_weigh = time.perf_counter() + WEIGH_SECONDS
        weight = self._points[0].size
        for stage, point in zip(self._stages, self._points[1:], strict=True):
            point.update(*stage.meter.output())
            weight = max(weight, point.size)
        self._weight = weight
