"""A long-lived event loop running in a background thread.

``start()`` creates the loop and a daemon thread running ``run_forever()``,
and returns once the loop is really running (so ``sync(coro, loop)`` submits
to it instead of trying to run it). ``close()`` asks the loop to stop; the
thread then cancels what is left, closes async generators, shuts down the
default executor, closes the loop and ends, and ``close()`` joins it.

The thread holds no reference to the LoopThread object, only to the loop; a
LoopThread that is garbage-collected, or still open at interpreter exit, is
stopped by a :func:`weakref.finalize` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import weakref
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

from ori.errors import OriInvalidStateError

from ._awaitables import discard
from ._loops import finalize, join
from ._sync import sync

T = TypeVar("T")

__all__ = ("LoopThread",)

_counter = itertools.count(1)


def _serve(loop: asyncio.AbstractEventLoop, running: threading.Event) -> None:
    loop.call_soon(running.set)
    try:
        while True:
            try:
                loop.run_forever()
            except (KeyboardInterrupt, SystemExit):
                # Raised by a task, which asyncio lets escape the loop; whoever
                # awaits the task gets it. Keep serving the other callers.
                continue
            break
    finally:
        finalize(loop)


def _request_stop(loop: asyncio.AbstractEventLoop) -> None:
    with contextlib.suppress(RuntimeError):  # already closed
        loop.call_soon_threadsafe(loop.stop)


class LoopThread:
    """An asyncio event loop running in its own thread for as long as you need it.

    Loop-bound resources (an HTTP client session, a database pool, a
    connection) must be used from the loop that created them. A LoopThread
    keeps one loop alive across many :func:`sync` calls so that such resources
    can be created once and reused::

        with LoopThread() as loop:
            session = sync(open_session(), loop)
            for url in urls:
                print(sync(session.get(url), loop))
            sync(session.close(), loop)

    Any number of threads may submit work to the loop at the same time.
    Entering the ``with`` block starts the thread and gives the loop; leaving
    it stops the loop and joins the thread. A LoopThread runs once: after
    :meth:`close` it cannot be started again.
    """

    def __init__(self, *, name: str | None = None) -> None:
        """Prepare a loop thread; nothing starts until :meth:`start` or ``with``.

        Args:
            name: the thread's name, for debuggers and thread dumps.
        """
        self._name = name or f"ori.asyncio.LoopThread-{next(_counter)}"
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._finalizer: weakref.finalize[..., LoopThread] | None = None

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the thread if needed and return its running loop.

        Blocks until the loop is running. Idempotent; callable from any thread.

        Raises:
            OriInvalidStateError: the LoopThread was already closed, or its thread failed
                to start the loop.
        """
        with self._lock:
            if self._closed:
                raise OriInvalidStateError(
                    f"{self._name} was closed; a LoopThread runs once, create a new one"
                )
            if self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            running = threading.Event()
            thread = threading.Thread(
                target=_serve, args=(loop, running), name=self._name, daemon=True
            )
            thread.start()
            while not running.wait(0.1):
                if not thread.is_alive():  # pragma: no cover - defensive
                    raise OriInvalidStateError(f"{self._name} ended before its loop started")
            self._loop, self._thread = loop, thread
            self._finalizer = weakref.finalize(self, _stop_and_join, loop, thread)
            return loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (pass it to :func:`sync` as ``event_loop``).

        Raises:
            OriInvalidStateError: the LoopThread was not started yet, or is closed.
        """
        loop = self._loop
        if loop is None or self._closed:
            state = "closed" if self._closed else "not started; use start() or 'with'"
            raise OriInvalidStateError(f"{self._name} has no running loop: it is {state}")
        return loop

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._loop is not None and not self._closed

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run *awaitable* on this thread's loop and block until done: ``sync(aw, self.loop)``.

        Callable from any thread except the loop's own (that would deadlock).
        Ctrl-C cancels the awaitable as described in :func:`sync`.

        Raises:
            OriInvalidStateError: the LoopThread is not running, or this is its own thread.
            TypeError: *awaitable* is not awaitable.
            BaseException: whatever the awaitable raises.
        """
        try:
            loop = self.loop
        except OriInvalidStateError:
            discard(awaitable)
            raise
        return sync(awaitable, loop)

    def close(self) -> None:
        """Stop the loop and join its thread; idempotent and safe from any other thread.

        Tasks still running on the loop are cancelled and awaited, async
        generators are closed and the loop's default executor is shut down
        before the thread ends. Blocks until then. A KeyboardInterrupt during
        the join propagates; the thread still finishes its shutdown on its own.

        Raises:
            OriInvalidStateError: called from the loop's own thread, which cannot join itself.
        """
        with self._lock:
            thread, finalizer = self._thread, self._finalizer
            if thread is not None and threading.current_thread() is thread:
                raise OriInvalidStateError(
                    f"{self._name}.close() was called from its own loop thread, which "
                    "cannot wait for itself to end; close it from another thread"
                )
            self._closed = True
        if thread is None or finalizer is None:
            return
        finalizer()
        join(thread)

    def __enter__(self) -> asyncio.AbstractEventLoop:
        """Start the thread (see :meth:`start`) and return its running loop."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the loop and join its thread (see :meth:`close`)."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._loop else "not started"
        return f"<LoopThread {self._name} {state}>"


def _stop_and_join(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    _request_stop(loop)
    if threading.current_thread() is not thread:
        join(thread)
