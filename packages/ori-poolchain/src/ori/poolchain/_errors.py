"""Errors as data: how a failed item travels to the consumer and is raised there.

A lane that sees a stage function fail does not raise: it builds an
:class:`ErrorRecord` (input index, stage, exception, traceback text from a worker
process if any, short repr of the argument) and puts it on the run's output
queue. The consumer turns the record back into an exception with
:func:`exception_for` at the moment the policy says to raise it, so every error
reaches the user the same way, whichever kind of stage produced it.
"""

from __future__ import annotations

import reprlib
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from ori.errors import OriError, OriTimeoutError
from ori.errors.remote import add_note, attach_remote_traceback

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlong = 40
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6
_short.maxlevel = 3


def short_repr(value: object) -> str:
    """A repr of *value* cut to about 60 characters; never raises."""
    try:
        text = _short.repr(value)
    except Exception:
        return f"<{type(value).__name__} object (repr failed)>"
    if len(text) > 80:
        text = text[:77] + "..."
    return text


@dataclass(frozen=True)
class StageLabel:
    """How messages name a stage: ``stage 2/3 (process pool, compress)``."""

    number: int  # 1-based position in the chain
    total: int
    kind: str  # "thread pool", "process pool" or the executor class name
    function: str

    def __str__(self) -> str:
        return f"stage {self.number}/{self.total} ({self.kind}, {self.function})"


@dataclass(kw_only=True)
class ErrorRecord:
    """One item that failed in one stage.

    ``remote_traceback`` is the formatted traceback when the exception was
    raised in another process (its own ``__traceback__`` did not survive
    pickling); ``annotate`` is False for errors Ori made itself (timeouts,
    crashes), whose message already names the stage and the item. ``value``
    is the stage's argument (what a retry sends again and a
    :class:`~._policy.Failure` shows).
    """

    index: int
    stage: StageLabel
    exception: BaseException
    value: Any = None
    remote_traceback: str | None = None
    annotate: bool = True

    @property
    def item_repr(self) -> str:
        return short_repr(self.value)


@dataclass(kw_only=True)
class RunFailure(ErrorRecord):
    """Not one item's failure: the whole run fails with it, whatever the policy.

    An initializer that raised, workers that cannot start, an Ori bug.
    """

    index: int = -1  # no input item
    annotate: bool = False


def timeout_record(
    stage: StageLabel, index: int, value: Any, timeout: float, aftermath: str
) -> ErrorRecord:
    """The failure of an item that ran past its stage's *timeout* seconds.

    *aftermath* says what became of the call (killed, cancelled, abandoned).
    """
    error = OriTimeoutError(
        f"{stage} did not finish input item {index} within its {timeout:g} s timeout "
        f"(argument: {short_repr(value)}); {aftermath}"
    )
    return ErrorRecord(index=index, stage=stage, exception=error, value=value, annotate=False)


def exception_for(record: ErrorRecord) -> BaseException:
    """The exception to raise in the consumer for *record*.

    It is the stage function's own exception object (same type, same args),
    with a note naming the stage, the input index and the argument, and for
    process stages the worker's traceback chained as ``__cause__`` (a
    :class:`~ori.errors.RemoteTraceback`) so that the printed traceback shows
    where in the worker it was raised. On Python 3.10,
    where notes are not printed, the note goes into the chained cause instead.
    """
    exc = record.exception
    note = (
        f"ori.poolchain: raised in {record.stage} on input item {record.index}: {record.item_repr}"
    )
    if record.annotate:
        add_note(exc, note)
    show_note_in_cause = record.annotate and sys.version_info < (3, 11)
    if record.remote_traceback is not None:
        heading = note if show_note_in_cause else None
        attach_remote_traceback(exc, record.remote_traceback, heading=heading)
    elif show_note_in_cause and exc.__cause__ is None and exc.__context__ is None:
        exc.__cause__ = OriError(note)  # pragma: no cover - Python 3.10 only
    return exc


def format_exception_text(exc: BaseException) -> str:
    """The full traceback text of *exc*, as printed by the interpreter."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
