"""Turning the first Ctrl-C during a blocking wait into a cancellation.

Python's default SIGINT handler raises KeyboardInterrupt wherever the main
thread happens to be. Inside an event loop that can be in the middle of the
loop's own bookkeeping, which may lose a callback and leave the awaitable
pending forever. While a :class:`SigintGuard` is installed, the first SIGINT
instead calls a ``cancel`` function (which cancels the awaitable thread-safely)
and the waiting code raises KeyboardInterrupt itself once the awaitable has
finished its cleanup. A second SIGINT raises KeyboardInterrupt at once, for
cleanup that hangs.

When the guarded thread runs the loop itself and the signal arrives while a
task's own code is executing (a coroutine busy computing, which would never
see a cancellation), the first SIGINT raises KeyboardInterrupt right there,
in that code, as Python normally does; its ``finally`` blocks run as the
exception unwinds.

Guards nest: a guard installed over another guard relays the first signal to
it, so ``sync() -> async code -> sync()`` cancels both levels. A relayed
signal only cancels: the outer guard's thread is blocked in the inner wait,
not running the outer awaitable's code, so raising there would skip the
inner awaitable's cleanup. The handler
``asyncio.Runner`` (``asyncio.run()``, Python 3.11+) installs is treated the
same way, so one Ctrl-C during ``sync()`` called inside ``asyncio.run()``
cancels the awaitable and the main task. Any other handler the program
installed is left alone.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeGuard

from ._compat import getsignal, is_asyncio_runner_sigint_handler, setsignal

__all__ = ("SigintGuard",)


class SigintGuard:
    """A SIGINT handler that cancels one awaitable, installed for one wait."""

    __slots__ = ("_busy", "_cancel", "_handler", "_outer", "_restore", "count", "forced")

    def __init__(
        self,
        cancel: Callable[[], None],
        restore: Callable[[int, FrameType | None], Any],
        outer: Callable[[int, FrameType | None], Any] | None,
        busy: Callable[[], bool] | None,
    ) -> None:
        self._cancel = cancel
        self._restore = restore
        self._outer = outer
        self._busy = busy
        self.count = 0
        self.forced = False
        # One bound-method object, so that uninstall() can recognise it.
        self._handler = self._handle

    @property
    def interrupted(self) -> bool:
        """True once a SIGINT arrived while the guard was installed."""
        return self.count > 0

    @classmethod
    def install(
        cls,
        cancel: Callable[[], None],
        *,
        busy: Callable[[], bool] | None = None,
    ) -> SigintGuard | None:
        """Install a guard for the calling thread's wait, when that is possible and wanted.

        Only the main thread receives signals, so elsewhere this returns None.
        The guard replaces Python's default handler and stacks on another
        guard or on asyncio.Runner's handler; it never replaces a handler the
        program installed itself (then None is returned). *busy* tells whether
        the loop is executing a task's code at this instant (only for a loop
        run by this thread).
        """
        if threading.current_thread() is not threading.main_thread():
            return None
        try:
            current = getsignal(signal.SIGINT)
        except ValueError:  # pragma: no cover - signals unsupported here
            return None
        if _chains_to(current):
            guard = cls(cancel, current, current, busy)
        elif current is signal.default_int_handler:
            guard = cls(cancel, signal.default_int_handler, None, busy)
        else:
            return None
        try:
            setsignal(signal.SIGINT, guard._handler)
        except ValueError:  # pragma: no cover - not the main interpreter
            return None
        return guard

    def uninstall(self) -> None:
        """Put the previous handler back, unless someone replaced ours meanwhile."""
        replaced = setsignal(signal.SIGINT, self._restore)
        if replaced is not self._handler:  # not ours any more: put it back
            setsignal(signal.SIGINT, replaced)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            self.forced = True
            raise KeyboardInterrupt
        self._relay_outward(signum, frame)
        if self._busy is not None and self._busy():
            raise KeyboardInterrupt
        self._cancel()

    def _relayed(self, signum: int, frame: FrameType | None) -> None:
        # An inner guard got the signal while this one's thread was blocked in
        # the inner wait: cancel, but never raise from here (this guard's loop
        # is not running user code; it is stuck in that wait).
        self.count += 1
        if self.count == 1:
            self._relay_outward(signum, frame)
            self._cancel()

    def _relay_outward(self, signum: int, frame: FrameType | None) -> None:
        outer = self._outer
        if outer is None:
            return
        owner = getattr(outer, "__self__", None)
        if isinstance(owner, SigintGuard):
            owner._relayed(signum, frame)
        else:  # asyncio.Runner's handler: cancels its main task on a first signal
            outer(signum, frame)


def _chains_to(handler: object) -> TypeGuard[Callable[[int, FrameType | None], Any]]:
    """True for handlers that cancel an outer awaitable: another guard, or asyncio.Runner's."""
    if isinstance(getattr(handler, "__self__", None), SigintGuard):
        return True
    return is_asyncio_runner_sigint_handler(handler)
