"""``iterate()``: an async iterator consumed by ordinary ``for`` loops.

Every ``next()`` runs one ``__anext__()`` with :func:`sync`, always on the same
loop, because an async generator's state (its tasks, its connections) belongs
to the loop it started on. Without an explicit loop, iterate() creates a
private one on the first ``next()``; the loop sits idle between items while
the consumer works. When the iteration ends early (``break``, an exception,
``close()``, garbage collection) the iterator's ``aclose()`` runs on that
loop, and a private loop is then shut down and closed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Generator
from typing import Final, TypeVar

from ori.errors import OriValidationError
from ori.errors.validation import describe

from ._awaitables import aiter_of, check_async_iterable
from ._compat import running_loop
from ._drive import left_running
from ._loops import finalize, join
from ._sync import sync

T = TypeVar("T")

__all__ = ("iterate",)


class _End:
    """Marks the end of the async iterator in the value returned by one step."""


_END: Final = _End()


async def _next(iterator: AsyncIterator[T]) -> T | _End:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _END


def _retire(loop: asyncio.AbstractEventLoop, forced: bool) -> None:
    """Shut down an idle private loop, from a helper thread if this one runs a loop.

    After a second Ctrl-C abandoned a step, the loop is closed without running
    it again: the user asked not to wait for that cleanup.
    """
    if forced:
        loop.close()
        return
    if running_loop() is None:
        finalize(loop)
        return
    helper = threading.Thread(target=finalize, args=(loop,), name="ori.asyncio-iterate-close")
    helper.start()
    join(helper)


def _steps(
    iterator: AsyncIterator[T], event_loop: asyncio.AbstractEventLoop | None
) -> Generator[T, None, None]:
    loop = asyncio.new_event_loop() if event_loop is None else event_loop
    # The async iterator only needs closing when the consumer leaves at a
    # yield. A step that raised has either finished the iterator (its own
    # exception, or a cancellation by Ctrl-C) or, after a second Ctrl-C, is
    # still running and must not be touched.
    at_yield = False
    forced = False
    try:
        while True:
            try:
                item = sync(_next(iterator), loop)
            except BaseException:
                forced = left_running(loop)
                raise
            if isinstance(item, _End):
                return
            at_yield = True
            yield item
            at_yield = False
    finally:
        try:
            aclose = getattr(iterator, "aclose", None)
            if at_yield and aclose is not None and not loop.is_closed():
                sync(aclose(), loop)
        finally:
            if event_loop is None:
                _retire(loop, forced)


def iterate(
    async_iterable: AsyncIterable[T], event_loop: asyncio.AbstractEventLoop | None = None
) -> Generator[T, None, None]:
    """Consume an async iterable (an async generator, a stream) from synchronous code.

    Returns a generator: ``for row in iterate(fetch_rows()): ...``. Each
    ``next()`` blocks until the async iterator produces its next item. All
    items are produced on one event loop: *event_loop* if given (for example
    a :class:`LoopThread`'s loop, so that a stream opened there can be read
    here), else a private loop created on the first ``next()``. The
    generator can be handed from thread to thread, but used by one at a time.

    Stopping early closes the async iterator properly: leaving a ``for`` loop
    with ``break`` or an exception, calling ``.close()``, or dropping the last
    reference (immediately on CPython) runs its ``aclose()``, so its
    ``finally`` blocks and ``async with`` exits run, and then shuts down and
    closes the private loop. Use ``contextlib.closing(iterate(...))`` to make
    this explicit on other interpreters.

    KeyboardInterrupt during a ``next()`` cancels the pending ``__anext__``
    (the generator's cleanup runs) and propagates, as with :func:`sync`.

    Args:
        async_iterable: an object with ``__aiter__``, such as ``agen(...)``.
        event_loop: the loop to run the iteration on; ``None`` for a private one.

    Returns:
        A generator of the async iterator's items.

    Raises:
        TypeError: *async_iterable* is not an async iterable (for instance an
            async generator function that was not called, or a plain list).
        OriValidationError: *event_loop* is not an asyncio event loop.
        OriInvalidStateError: from ``next()``: *event_loop* is closed, or is the loop
            running in the consuming thread (see :func:`sync`).
        BaseException: from ``next()``: whatever the async iterator raises.
    """
    check_async_iterable(async_iterable)
    if event_loop is not None and not isinstance(event_loop, asyncio.AbstractEventLoop):
        raise OriValidationError(
            f"event_loop must be an asyncio event loop or None, got {describe(event_loop)}"
        )
    return _steps(aiter_of(async_iterable), event_loop)
