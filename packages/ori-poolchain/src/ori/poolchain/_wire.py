"""The messages on a process-stage worker's pipe, as named types.

Parent to worker: a chunk, the pickled list of its arguments; pickled ``None``
tells the worker to exit.

Worker to parent, every message tagged by its first byte:

* ``R`` + a fixed header (first position, result count, compute seconds,
  done) + the pickled ``(results, errors)``: a :class:`Reply`. The header is
  readable even when the body is not (a result whose class cannot be rebuilt
  in the parent), so the parent still knows which items that reply covered:
  it gets an :class:`UnreadableReply` and blames those items only.
* ``M`` + a pickled control message: :class:`WorkerReady` (first message of a
  worker that loaded its code), :class:`WorkerStartFailed` (it could not),
  :class:`SetupFailed` (its initializer raised) or :class:`ChunkUnreadable`
  (it could not unpickle the chunk it was sent).
"""

from __future__ import annotations

import io
import pickle
import struct
from multiprocessing.reduction import ForkingPickler
from typing import Any, NamedTuple

REPLY_TAG = ord("R")
CONTROL_TAG = ord("M")
_HEADER = struct.Struct("<Bqqd?")  # tag, first, count, seconds, done


class ItemError(NamedTuple):
    """One failed item of a reply; its ``results`` entry is a placeholder."""

    position: int  # in the chunk
    exception: BaseException
    traceback: str  # as formatted in the worker


class Reply(NamedTuple):
    """Results of the chunk positions ``first .. first + len(results) - 1``."""

    first: int
    results: list[Any]
    errors: list[ItemError]
    seconds: float  # compute time, in the final reply of a chunk
    done: bool  # the chunk's final reply (it may hand back an unstarted rest)


class UnreadableReply(NamedTuple):
    """A reply whose body the parent could not unpickle (parent side only)."""

    first: int
    size: int  # how many results it carried
    seconds: float
    done: bool
    exception: Exception


class WorkerReady(NamedTuple):
    """A worker's first message: it loaded its code and takes chunks now."""

    pid: int


class WorkerStartFailed(NamedTuple):
    """A worker's first (and last) message: it could not load its code."""

    exception: BaseException
    traceback: str


class SetupFailed(NamedTuple):
    """The stage's initializer raised in the worker, which then exits."""

    exception: BaseException
    traceback: str


class ChunkUnreadable(NamedTuple):
    """The worker could not unpickle the chunk it was sent (it serves on)."""

    exception: BaseException
    traceback: str


Control = WorkerReady | WorkerStartFailed | SetupFailed | ChunkUnreadable
Message = Reply | UnreadableReply | Control


def dumps(obj: object) -> bytes:
    """Pickle like multiprocessing does (its reducers included), as plain bytes.

    Into a BytesIO of our own rather than through ``ForkingPickler.dumps``:
    ``getvalue()`` hands over the buffer without a copy (about a fifth of the
    cost of a chunk of small items), and no view of it is exported, which
    Python 3.13 would report as an unraisable error if one outlived the call.
    """
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(obj)
    return buffer.getvalue()


def encode_reply(reply: Reply) -> bytes:
    """*reply* as sent; raises whatever pickling its body raises."""
    buffer = io.BytesIO()
    buffer.write(
        _HEADER.pack(REPLY_TAG, reply.first, len(reply.results), reply.seconds, reply.done)
    )
    ForkingPickler(buffer).dump((reply.results, reply.errors))
    return buffer.getvalue()


def encode_control(message: Control) -> bytes:
    return bytes((CONTROL_TAG,)) + dumps(message)


def decode(data: bytes) -> Message:
    """The message in *data*; a reply body that does not unpickle is an UnreadableReply.

    Raises for a control message that does not unpickle (nothing to blame).
    """
    if data[0] == CONTROL_TAG:
        message: Control = pickle.loads(memoryview(data)[1:])
        return message
    _, first, size, seconds, done = _HEADER.unpack_from(data)
    try:
        results, errors = pickle.loads(memoryview(data)[_HEADER.size :])
    except Exception as exc:
        return UnreadableReply(first, size, seconds, done, exc)
    return Reply(first, results, errors, seconds, done)
