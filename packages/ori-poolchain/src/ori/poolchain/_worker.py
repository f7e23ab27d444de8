"""The code that runs inside a process-stage worker.

The worker talks to its lane over its own duplex pipe (one pipe per worker,
so nothing is shared and no lock is needed), in the messages of ``_wire.py``.

A chunk is answered by one reply (``done=True``); with automatic chunk sizes a
chunk that runs far longer than planned is cut short and its final reply covers
only the items done (the parent sends the rest again). When the stage has a timeout,
partial replies go out at most every 50 ms, so that killing a stuck worker
costs at most that much finished work (its unanswered items are run again). ``first`` is the
chunk position of ``results[0]``; ``errors`` lists the failed positions
(:class:`~._wire.ItemError`) and the matching ``results`` entry is a placeholder.
A chunk the worker cannot unpickle is answered by ``ChunkUnreadable``, and the
parent sends its items again one by one to find the one at fault.

The worker publishes what it runs in its slot of the stage's shared array
(``_status.py``), so the parent knows what a dead or stuck worker was running
without any message: with a timeout, each item as it starts; without one (the
fast path), each slice (up to ``UNTIMED_SLICE`` fast items, or one slow item,
run by map() at C speed); the parent then finds the item that killed a worker
by running that slice's items again one by one.

The worker ignores SIGINT: it is the parent that decides how the run ends (it
then stops or kills its workers). It exits by itself when the parent's end of
the pipe closes.

Stage functions may start processes of their own (a library's process pool, a
nested chain, a command). So a worker is not daemonic in its own eyes (the
parent still treats it as daemonic, so that interpreter exit never waits for
it), and a top-level worker leads a process group of its own, which what it
starts joins: when the parent kills or stops the worker, it kills that group
too, so nothing the worker started outlives it. (Workers of a chain nested in
a stage function stay in the outer worker's group.)

Start-up handshake: a worker's first message is ``WorkerReady`` once it
has loaded its stage function (forked workers inherit it; spawn and forkserver
workers unpickle it from the bytes they were given), or
``WorkerStartFailed`` when that failed (an import error in the worker).
The parent sends no chunk before it saw ``WorkerReady`` and gives every start
a deadline, so a worker that dies or hangs while starting is never mistaken
for one that was running an item.

A stage with an initializer runs it once, after ``WorkerReady`` and before
serving anything (its duration is the user's, so it has no start deadline);
if it raises, the worker sends ``SetupFailed`` and exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ori.errors.remote import portable_exception

from ._errors import format_exception_text
from ._status import WorkerSlot
from ._wire import (
    ChunkUnreadable,
    Control,
    ItemError,
    Reply,
    SetupFailed,
    WorkerReady,
    WorkerStartFailed,
    dumps,
    encode_control,
    encode_reply,
)

PARTIAL_REPLY_SECONDS = 0.05
UNTIMED_SLICE = 256

_inside_worker = False  # set in a worker process: chains started there nest


def inside_worker() -> bool:
    """True in a process-stage worker (whose own chains' workers join its group)."""
    return _inside_worker


@dataclass(frozen=True)
class WorkerCode:
    """What a worker runs: the stage function and its optional initializer call."""

    function: Callable[[Any], Any]
    setup: tuple[Callable[..., Any], tuple[Any, ...]] | None = None


def worker_main(
    conn: Connection,
    status: Any,
    slot: int,
    code: WorkerCode | bytes,
    inherited: Connection | None,
    timed: bool,
    give_back: float | None,
    own_group: bool,
) -> None:
    """Load *code* (pickled, unless forked), run its initializer, then serve chunks."""
    global _inside_worker
    _inside_worker = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Its own children are allowed: multiprocessing refuses them to a daemon.
    multiprocessing.current_process().daemon = False
    if own_group and hasattr(os, "setpgid"):
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
    board = WorkerSlot(status, slot)
    if inherited is not None:
        # Under fork the child inherits the parent's end of its own pipe; keep it
        # open and the child would never see EOF when the parent dies.
        inherited.close()
    if isinstance(code, bytes):
        try:
            code = pickle.loads(code)
        except BaseException as exc:
            # Unpickling imports the function's module here: an import error (or
            # a module-level crash) is the worker's, not any item's.
            failed = WorkerStartFailed(_portable_exception(exc), format_exception_text(exc))
            _send_message(conn, failed)
            _wait_for_parent(conn)
            return
    assert isinstance(code, WorkerCode)
    _send_message(conn, WorkerReady(os.getpid()))
    function = code.function
    setup = code.setup
    if setup is not None:
        try:
            setup[0](*setup[1])
        except BaseException as exc:
            text = format_exception_text(exc)
            _send_message(conn, SetupFailed(_portable_exception(exc), text))
            _wait_for_parent(conn)
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
            # importable here): the parent sends the items again one by one.
            text = format_exception_text(exc)
            _send_message(conn, ChunkUnreadable(_portable_exception(exc), text))
            continue
        if values is None:
            return
        _run_chunk(conn, board, function, values, timed, give_back)


def _run_chunk(
    conn: Connection,
    board: WorkerSlot,
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
    errors: list[ItemError] = []
    append = results.append
    first = 0
    if not timed:
        # The hot path: map() over slices runs at C speed; the shared array
        # tells which slice is running. A slice doubles (up to UNTIMED_SLICE)
        # while it takes under a millisecond and drops back to one item when it
        # is slow, so slow items are watched (and blamed for a crash) one by one.
        extend = results.extend
        starting_slice = board.starting_slice
        size = len(values)
        start = 0
        step = 1
        while start < size:
            stop = start + step
            starting_slice(start, stop)
            began = clock()
            try:
                extend(map(function, values[start:stop]))
                start = stop
            except BaseException as exc:
                start = len(results)  # extend() kept what came before the failure
                append(None)
                errors.append(ItemError(start, exc, format_exception_text(exc)))
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
        starting_item = board.starting_item
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
                        _send(conn, Reply(first, results, errors, 0.0, False))
                        first = int(position)
                        results = []
                        errors = []
                        append = results.append
                        last_reply = now
                    starting_item(position, now)
                    append(function(value))
                    position += 1.0
                break
            except BaseException as exc:
                append(None)
                errors.append(ItemError(int(position), exc, format_exception_text(exc)))
                del exc
                position += 1.0
    _send(conn, Reply(first, results, errors, clock() - started, True))


def _wait_for_parent(conn: Connection) -> None:
    """Exit only once the parent sent something (or went away).

    Its first send must not fail on a closed pipe before it read our last message.
    """
    with contextlib.suppress(EOFError, OSError):
        conn.recv_bytes()


def _send_message(conn: Connection, message: Control) -> None:
    with contextlib.suppress(OSError):  # the parent went away: nothing to tell
        conn.send_bytes(encode_control(message))


def _send(conn: Connection, reply: Reply) -> None:
    if reply.errors:  # exceptions must survive the round trip, not only the pickling
        portable = [ItemError(p, _portable_exception(exc), text) for p, exc, text in reply.errors]
        reply = reply._replace(errors=portable)
    try:
        payload = encode_reply(reply)
    except Exception:
        payload = encode_reply(_picklable(reply))
    conn.send_bytes(payload)


def _picklable(reply: Reply) -> Reply:
    """*reply* with every result or exception that cannot be pickled replaced.

    A result that does not pickle becomes an error carrying the pickling
    exception; an exception that does not survive a pickle round trip becomes
    one of the nearest class of its MRO that does (``portable_exception``).
    """
    first, results, errors, seconds, done = reply
    failed = {position for position, _, _ in errors}
    clean_errors: list[ItemError] = []
    for position, exc, text in errors:
        clean_errors.append(ItemError(position, _portable_exception(exc), text))
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
            clean_errors.append(ItemError(position, _portable_exception(exc), text))
    clean_errors.sort(key=lambda entry: entry.position)
    return Reply(first, clean_results, clean_errors, seconds, done)


def _portable_exception(exc: BaseException) -> BaseException:
    # An exception that does not survive pickling becomes the nearest class of
    # its MRO that does, carrying the original class name, message and traceback.
    return portable_exception(exc)
