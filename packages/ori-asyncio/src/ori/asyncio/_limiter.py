"""A cap on concurrent blocking calls that works across threads and event loops.

``asyncio.Semaphore`` binds itself to one loop, but blocking calls sent to
threads come from many loops at once (each thread's cached loop, every
LoopThread). A :class:`ThreadLimiter` keeps its count under a
``threading.Lock``; a task that has to wait parks a future of its own loop in
a FIFO queue. Releasing a token hands it straight to the oldest waiter
(``borrowed`` does not drop) by resolving that future: directly when the
release runs in the waiter's own loop, else through that loop's
``call_soon_threadsafe``. A waiter cancelled before the hand-over arrives
passes the token on, so tokens are never lost to cancellation.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from types import TracebackType

from ori.errors import OriInvalidStateError
from ori.errors.validation import check_positive_int

from ._compat import running_loop

__all__ = ("ThreadLimiter", "default_thread_limiter")


class ThreadLimiter:
    """At most *total* holders at a time, shared by any number of loops and threads.

    :func:`asyncify` and :func:`to_thread` hold one token while the blocking
    function runs in its thread, so a limiter caps how many threads are busy
    with the functions that share it. Use ``async with limiter:`` to guard
    your own code the same way. Waiters are served first come, first served.
    """

    def __init__(self, total: int) -> None:
        """Create a limiter with *total* tokens.

        Raises:
            OriValidationError: *total* is not a positive int.
        """
        self._total = self._check_total(total)
        self._borrowed = 0
        self._lock = threading.Lock()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @staticmethod
    def _check_total(total: object) -> int:
        checked = check_positive_int(total, "total", allow_none=False)
        assert checked is not None
        return checked

    @property
    def total(self) -> int:
        """How many holders are allowed at once. Assigning a larger value wakes waiters.

        Lowering it does not interrupt current holders; new ones wait until
        the count falls below the new total.
        """
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        value = self._check_total(value)
        with self._lock:
            self._total = value
            self._hand_over_locked()

    @property
    def borrowed(self) -> int:
        """How many tokens are held right now (including ones being handed over)."""
        return self._borrowed

    @property
    def available(self) -> int:
        """How many tokens could be taken right now without waiting."""
        with self._lock:
            return max(0, self._total - self._borrowed)

    def acquire_nowait(self) -> bool:
        """Take a token if one is free and nobody is queued; never blocks.

        Returns:
            True if a token was taken (release it with :meth:`release`).
        """
        with self._lock:
            if self._borrowed < self._total and not self._waiters:
                self._borrowed += 1
                return True
            return False

    async def acquire(self) -> None:
        """Wait (without blocking the loop) until a token is free, then take it.

        Must be awaited inside a running event loop. If the waiting task is
        cancelled, no token is kept.
        """
        with self._lock:
            if self._borrowed < self._total and not self._waiters:
                self._borrowed += 1
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            with self._lock:
                granted = waiter.done() and not waiter.cancelled()
                queued = waiter in self._waiters
                if queued:
                    self._waiters.remove(waiter)
            if granted:
                self.release()
            # Neither granted nor queued: a hand-over is on its way and will find
            # the waiter cancelled and pass the token on (_grant).
            raise

    def release(self) -> None:
        """Give a token back; callable from any thread.

        Raises:
            OriInvalidStateError: more releases than acquisitions.
        """
        with self._lock:
            if self._borrowed <= 0:
                raise OriInvalidStateError(
                    "ThreadLimiter.release() was called more often than acquire()"
                )
            self._borrowed -= 1
            self._hand_over_locked()

    def _hand_over_locked(self) -> None:
        here = running_loop()
        while self._waiters and self._borrowed < self._total:
            waiter = self._waiters.popleft()
            loop = waiter.get_loop()
            if loop is here:
                # The waiter's own loop is running this code: grant it directly.
                if waiter.done():  # cancelled, and about to notice
                    continue
                waiter.set_result(None)
            else:
                try:
                    loop.call_soon_threadsafe(self._grant, waiter)
                except RuntimeError:  # the waiter's loop is closed: it will never run again
                    continue
            self._borrowed += 1

    def _grant(self, waiter: asyncio.Future[None]) -> None:
        # Runs in the waiter's loop.
        if waiter.done():  # cancelled while the token was on its way
            self.release()
        else:
            waiter.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"<ThreadLimiter borrowed={self._borrowed} total={self._total} "
            f"waiting={len(self._waiters)}>"
        )


DEFAULT_TOTAL = 40
_default = ThreadLimiter(DEFAULT_TOTAL)


def default_thread_limiter() -> ThreadLimiter:
    """The limiter :func:`to_thread` and :func:`asyncify` use unless told otherwise.

    It is shared by the whole process and starts with 40 tokens, so no more
    than 40 blocking calls run in threads at once, whatever loop they come
    from. Change the cap with ``default_thread_limiter().total = n``.
    """
    return _default
