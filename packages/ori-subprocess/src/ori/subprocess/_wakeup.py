"""A self-pipe that lets one thread interrupt another thread's ``select``."""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ("Wakeup",)


class Wakeup:
    """A non-blocking pipe: :meth:`wake` makes :attr:`fileno` readable.

    :meth:`wake` may be called from any thread, also after :meth:`close`
    (it then does nothing): the lock makes sure a closed descriptor number,
    possibly reused by now for something else, is never written to.
    """

    __slots__ = ("_lock", "_read_fd", "_write_fd")

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._lock = threading.Lock()

    @property
    def fileno(self) -> int:
        """The descriptor to select on for reading."""
        return self._read_fd

    def wake(self) -> None:
        """Make the read end readable (coalesces with pending wake-ups)."""
        with self._lock:
            if self._write_fd < 0:
                return
            # A full pipe means a wake-up is pending anyway.
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, b"\0")

    def clear(self) -> None:
        """Consume pending wake-ups. Called by the thread that selects."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close both ends. Idempotent."""
        with self._lock:
            if self._write_fd >= 0:
                os.close(self._write_fd)
                os.close(self._read_fd)
                self._write_fd = self._read_fd = -1
