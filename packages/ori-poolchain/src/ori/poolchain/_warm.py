"""Warm pools: worker processes a chain keeps between runs inside its ``with``.

Life cycle::

    PoolChain.__enter__  -> WarmPools()
    each execute_*       -> acquire(run): the run may use the pools (one run at
                            a time; a concurrent run gets its own, cold, workers)
        process stage    -> status_array(...) and take(...) per lane slot when
                            it starts; give_back(...) when a lane exits cleanly
        run closes       -> release(run)
    PoolChain.__exit__   -> close(): closes a run still open, stops idle workers

A worker is only given back when it is known to be clean: its lane left
between chunks (every reply of every chunk read), it was not interrupted by
the run's shutdown, it is alive, and nothing is waiting in its pipe. Anything
else is stopped, and the next run starts a fresh worker in that slot, so a run
that was broken off (``break``, an error, Ctrl-C) never leaves a stale reply
for the next one. Gifts are tagged with the run that owns the pools: a lane
that exits after its run released them (stuck past the close deadline) stops
its worker instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol


class PooledWorker(Protocol):
    """What the pools need of a worker (``_process_stage._Worker``)."""

    def stop(self, grace: float) -> None: ...


class WarmPools:
    """The idle workers of one ``with`` block of a chain, per stage and lane slot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (id(spec), workers) -> (spec, status array, {slot: idle worker}); the
        # spec is kept so that its id cannot be reused while the pools live.
        self._stages: dict[tuple[int, int], tuple[Any, Any, dict[int, PooledWorker]]] = {}
        self._owner: object | None = None
        self._close_owner: Callable[[], Callable[[], None] | None] | None = None
        self.closed = False

    def acquire(self, run: object) -> bool:
        """Let *run* use the pools; False if closed or another run uses them."""
        with self._lock:
            if self.closed or self._owner is not None:
                return False
            self._owner = run
            self._close_owner = None
            return True

    def attach(self, run: object, close: Callable[[], Callable[[], None] | None]) -> None:
        """Remember how to close *run* (a weak method), for :meth:`close`."""
        with self._lock:
            if self._owner is run:
                self._close_owner = close

    def release(self, run: object) -> None:
        """*run* is over: the next run may use the pools."""
        with self._lock:
            if self._owner is run:
                self._owner = None
                self._close_owner = None

    def status_array(self, spec: object, workers: int, make: Callable[[], Any]) -> Any:
        """The shared status array of *spec*'s workers, made on first use."""
        key = (id(spec), workers)
        with self._lock:
            entry = self._stages.get(key)
            if entry is None:
                entry = self._stages[key] = (spec, make(), {})
            return entry[1]

    def take(self, run: object, spec: object, workers: int, slot: int) -> Any:
        """The idle worker of *slot*, or None."""
        with self._lock:
            entry = self._stages.get((id(spec), workers))
            if self._owner is not run or entry is None:
                return None
            return entry[2].pop(slot, None)

    def give_back(
        self, run: object, spec: object, workers: int, slot: int, worker: PooledWorker
    ) -> bool:
        """Keep *worker* for the next run; False (caller stops it) if not wanted."""
        with self._lock:
            entry = self._stages.get((id(spec), workers))
            if self.closed or self._owner is not run or entry is None or slot in entry[2]:
                return False
            entry[2][slot] = worker
            return True

    def idle_count(self) -> int:
        """How many workers wait for the next run."""
        with self._lock:
            return sum(len(entry[2]) for entry in self._stages.values())

    def close(self, grace: float) -> None:
        """Close a run still using the pools, then stop every idle worker."""
        with self._lock:
            self.closed = True
            close_owner = self._close_owner
        close = None if close_owner is None else close_owner()
        if close is not None:
            close()
        with self._lock:
            idle = [worker for entry in self._stages.values() for worker in entry[2].values()]
            self._stages.clear()
        for worker in idle:
            worker.stop(grace)
