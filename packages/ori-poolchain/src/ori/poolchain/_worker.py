"""The code that runs inside a process-stage worker.

Protocol on the worker's own duplex pipe (one pipe per worker, so nothing is
shared and no lock is needed)::

    parent -> worker   pickled list of arguments (a chunk), or pickled None: exit
    worker -> parent   pickled (first, results, errors, seconds, done) replies

A chunk is answered by one reply (``done=True``); with automatic chunk sizes a
chunk that runs far longer than planned is cut short and its final reply covers
only the items done (the parent sends the rest again). When the stage has a timeout,
partial replies go out at most every 50 ms, so that killing a stuck worker
costs at most that much finished work (its unanswered items are run again). ``first`` is the
chunk position of ``results[0]``; ``errors`` lists ``(position, exception,
traceback text)`` and the matching ``results`` entry is a placeholder.

The worker publishes progress in its two slots of a shared array, so the parent
knows what a dead or stuck worker was running without any message. With a
timeout: the chunk position of the running item and its start time, before
each call. Without one (the fast path): the start and end positions of the
running slice (up to ``UNTIMED_SLICE`` fast items, or one slow item, run by
map() at C speed); the parent then finds the item that killed a worker by
running that slice's items again one by one.

The worker ignores SIGINT: Ctrl-C in a terminal reaches the whole process group,
and it is the parent that decides how the run ends (it then stops or kills its
workers). It exits by itself when the parent's end of the pipe closes.

A stage with an initializer runs it once, before serving anything; if it
raises, the worker sends one reply whose only error has position
``SETUP_FAILED`` and exits.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from ori.errors.remote import portable_exception

from ._errors import format_exception_text

PARTIAL_REPLY_SECONDS = 0.05
UNTIMED_SLICE = 256
SETUP_FAILED = -2  # error position of a reply saying the initializer raised

ErrorEntry = tuple[int, BaseException, str]
Reply = tuple[int, list[Any], list[ErrorEntry], float, bool]


def dumps(obj: object) -> bytes:
    """Pickle like multiprocessing does, as plain bytes.

    ``ForkingPickler.dumps`` returns a view of a BytesIO; releasing it here
    means no buffer export can outlive its call (Python 3.13 reports a BytesIO
    collected while exported as an unraisable error).
    """
    view = ForkingPickler.dumps(obj)
    try:
        return bytes(view)
    finally:
        view.release()


def worker_main(
    conn: Connection,
    status: Any,
    slot: int,
    function: Callable[[Any], Any],
    inherited: Connection | None,
    timed: bool,
    give_back: float | None,
    setup: tuple[Callable[..., Any], tuple[Any, ...]] | None = None,
) -> None:
    """Run the *setup* initializer, then serve chunks on *conn* until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    view = memoryview(status).cast("B").cast("d")  # faster stores than the ctypes array
    if inherited is not None:
        # Under fork the child inherits the parent's end of its own pipe; keep it
        # open and the child would never see EOF when the parent dies.
        inherited.close()
    if setup is not None:
        try:
            setup[0](*setup[1])
        except BaseException as exc:
            text = format_exception_text(exc)
            _send(conn, (0, [], [(SETUP_FAILED, _portable_exception(exc), text)], 0.0, True))
            # Exit only once the parent sent something (or went away): its
            # first send must not fail on a closed pipe before it read this.
            with contextlib.suppress(EOFError, OSError):
                conn.recv_bytes()
            return
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            values = pickle.loads(data)
        except Exception as exc:
            # An argument the worker cannot rebuild (e.g. its class is not
            # importable here): position -1 fails the whole chunk.
            text = format_exception_text(exc)
            _send(conn, (0, [], [(-1, _portable_exception(exc), text)], 0.0, True))
            continue
        if values is None:
            return
        _run_chunk(conn, view, 2 * slot, function, values, timed, give_back)


def _run_chunk(
    conn: Connection,
    status: Any,
    base: int,
    function: Callable[[Any], Any],
    values: list[Any],
    timed: bool,
    give_back: float | None,
) -> None:
    """Run one chunk and reply; the loops are kept lean (they are the hot path).

    With *give_back*, a chunk still unfinished after that many seconds is cut
    short: the final reply then covers fewer items than were sent, and the
    parent queues the rest again for any worker (items that suddenly got slow
    must not pile up behind one worker while the others idle).
    """
    started = time.perf_counter()
    clock = time.perf_counter
    results: list[Any] = []
    errors: list[ErrorEntry] = []
    append = results.append
    first = 0
    if not timed:
        # The hot path: map() over slices runs at C speed; the shared array
        # tells which slice is running. A slice doubles (up to UNTIMED_SLICE)
        # while it takes under a millisecond and drops back to one item when it
        # is slow, so slow items are watched (and blamed for a crash) one by one.
        extend = results.extend
        size = len(values)
        start = 0
        step = 1
        while start < size:
            stop = start + step
            status[base + 1] = float(stop)
            status[base] = float(start)
            began = clock()
            try:
                extend(map(function, values[start:stop]))
                start = stop
            except BaseException as exc:
                start = len(results)  # extend() kept what came before the failure
                append(None)
                errors.append((start, exc, format_exception_text(exc)))
                del exc
                start += 1
            now = clock()
            if now - began < 0.001:
                step = min(2 * step, UNTIMED_SLICE)
            elif now - began > 0.005:
                step = 1
            if give_back is not None and start < size and now - started > give_back:
                break
    else:
        # With a timeout the parent also needs each item's start time, and
        # partial replies bound what a killed worker takes with it.
        monotonic = time.monotonic
        last_reply = monotonic()
        items = iter(values)
        position = 0.0  # a float: storing it in the 'd' array needs no conversion
        while True:
            try:
                for value in items:
                    now = monotonic()
                    if give_back is not None and position and clock() - started > give_back:
                        break  # the rest goes back to the parent unstarted
                    if now - last_reply > PARTIAL_REPLY_SECONDS and results:
                        _send(conn, (first, results, errors, 0.0, False))
                        first = int(position)
                        results = []
                        errors = []
                        append = results.append
                        last_reply = now
                    status[base + 1] = now
                    status[base] = position
                    append(function(value))
                    position += 1.0
                break
            except BaseException as exc:
                append(None)
                errors.append((int(position), exc, format_exception_text(exc)))
                del exc
                position += 1.0
    _send(conn, (first, results, errors, clock() - started, True))


def _send(conn: Connection, reply: Reply) -> None:
    first, results, errors, seconds, done = reply
    if errors:  # exceptions must survive the round trip, not only the pickling
        errors = [(position, _portable_exception(exc), text) for position, exc, text in errors]
        reply = (first, results, errors, seconds, done)
    try:
        payload = dumps(reply)
    except Exception:
        payload = dumps(_picklable(reply))
    conn.send_bytes(payload)


def _picklable(reply: Reply) -> Reply:
    """*reply* with every result or exception that cannot be pickled replaced.

    A result that does not pickle becomes an error carrying the pickling
    exception; an exception that does not survive a pickle round trip becomes an
    :class:`~ori.errors.OriError` naming its type and message.
    """
    first, results, errors, seconds, done = reply
    failed = {position for position, _, _ in errors}
    clean_errors: list[ErrorEntry] = []
    for position, exc, text in errors:
        clean_errors.append((position, _portable_exception(exc), text))
    clean_results = list(results)
    for offset, result in enumerate(results):
        position = first + offset
        if position in failed:
            continue
        try:
            dumps(result)
        except Exception as exc:
            clean_results[offset] = None
            text = (
                "The stage function returned a value that cannot be pickled, so the "
                "worker process could not send it back:\n" + format_exception_text(exc)
            )
            clean_errors.append((position, _portable_exception(exc), text))
    clean_errors.sort(key=lambda entry: entry[0])
    return first, clean_results, clean_errors, seconds, done


def _portable_exception(exc: BaseException) -> BaseException:
    # An exception that does not survive pickling becomes the nearest class of
    # its MRO that does, carrying the original class name, message and traceback.
    return portable_exception(exc)
