"""What each worker of a process stage is running, in memory shared with the parent.

A stage has one shared array of doubles, two per lane slot, and no lock: each
slot has one writer (its worker) and one reader (its lane). The worker writes
before every item or slice it starts, so the parent knows what a dead or
stuck worker held without any message:

* with a timeout, ``(position, started)``: the chunk position of the running
  item and the moment it started (monotonic clock); position ``-1`` means no
  item started yet;
* without one (the fast path), ``(start, stop)``: the chunk positions of the
  running slice.

The second number is written first, so the parent never pairs a new position
with the previous item's start time.
"""

from __future__ import annotations

from typing import Any, NamedTuple

NO_ITEM_YET = -1.0


class RunningItem(NamedTuple):
    position: int  # NO_ITEM_YET: the worker has not started an item of the chunk
    started: float  # monotonic clock


class RunningSlice(NamedTuple):
    start: int
    stop: int


def slot_count(workers: int) -> int:
    """The length of the shared array (of doubles) for *workers* slots."""
    return 2 * workers


class WorkerSlot:
    """The worker's side: publish what it starts (the stores are on its hot path)."""

    __slots__ = ("_first", "_second", "_view")

    def __init__(self, array: Any, slot: int) -> None:
        self._view = memoryview(array).cast("B").cast("d")  # faster stores than ctypes
        self._first = 2 * slot
        self._second = self._first + 1

    def starting_item(self, position: float, started: float) -> None:
        self._view[self._second] = started
        self._view[self._first] = position

    def starting_slice(self, start: int, stop: int) -> None:
        self._view[self._second] = float(stop)
        self._view[self._first] = float(start)


class StatusBoard:
    """The lanes' side: read (and reset before each chunk) every worker's slot."""

    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        self.array = array  # what workers get (a multiprocessing RawArray)

    def expect_item(self, slot: int, sent_at: float) -> None:
        """A chunk goes out with a timeout: no item started yet, clock from *sent_at*."""
        self.array[2 * slot + 1] = sent_at
        self.array[2 * slot] = NO_ITEM_YET

    def expect_slice(self, slot: int) -> None:
        """A chunk goes out without a timeout: until the worker says otherwise, [0, 1)."""
        self.array[2 * slot + 1] = 1.0
        self.array[2 * slot] = 0.0

    def item(self, slot: int) -> RunningItem:
        return RunningItem(int(self.array[2 * slot]), self.array[2 * slot + 1])

    def slice(self, slot: int) -> RunningSlice:
        return RunningSlice(int(self.array[2 * slot]), int(self.array[2 * slot + 1]))
