"""Exceptions that cross a process boundary, and the words for a dead worker.

Every Ori package that runs functions in worker processes sends the exceptions
those functions raise back to the caller, and reports workers that die. The
rules are shared, so they live here:

* :func:`portable_exception` makes sure an exception survives pickling. Some
  cannot: a class whose ``__init__`` takes other arguments than the ones it
  passes to ``Exception.__init__``, or one that holds a lock. Such an exception
  is replaced by an instance of the nearest class of its MRO that does survive
  (at worst :class:`Exception`), so ``except ValueError`` still catches a
  ``ValueError`` subclass, and the replacement's message names the original
  class and repeats its message.
* :func:`attach_remote_traceback` chains the worker's traceback text to the
  rebuilt exception as a :class:`~ori.errors.RemoteTraceback`.
* :func:`describe_exit_code`, :func:`worker_crash_message` and
  :func:`worker_startup_message` word an :class:`~ori.errors.OriWorkerCrashedError`
  the same way everywhere: what died, how (exit code or signal), and, for a
  worker that died before it ran anything, the likely fix.

Everything here is pure: nothing starts a process or touches one.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import sys
import traceback
from multiprocessing.reduction import ForkingPickler
from typing import TypeVar

from . import RemoteTraceback

__all__ = (
    "add_note",
    "attach_remote_traceback",
    "describe_exit_code",
    "portable_exception",
    "worker_crash_message",
    "worker_startup_message",
)

_E = TypeVar("_E", bound=BaseException)


def add_note(exc: _E, note: str) -> _E:
    """Add *note* to *exc*'s notes, on every Python Ori supports.

    ``BaseException.add_note`` exists from Python 3.11 on; on 3.10 the note is
    appended to ``__notes__`` by hand, which the ``exceptiongroup`` backport
    (and pytest) print, while the plain 3.10 interpreter does not.

    Args:
        exc: the exception to annotate.
        note: one line (or several) of text.

    Returns:
        *exc* itself.
    """
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10 only
        notes = getattr(exc, "__notes__", None)
        # An exception type that refuses new attributes simply goes without.
        with contextlib.suppress(AttributeError):
            exc.__notes__ = [*(notes or []), note]  # type: ignore[attr-defined]
    return exc


def attach_remote_traceback(exc: _E, traceback_text: str, *, heading: str | None = None) -> _E:
    """Chain a worker's traceback text to *exc* as its ``__cause__``.

    Args:
        exc: the exception rebuilt in the calling process.
        traceback_text: the traceback the worker formatted before sending *exc*.
        heading: an optional line shown above the quoted traceback.

    Returns:
        *exc* itself, whose ``__cause__`` is now a :class:`~ori.errors.RemoteTraceback`.
    """
    exc.__cause__ = RemoteTraceback(traceback_text, heading=heading)
    return exc


def _round_trip_problem(obj: object) -> str | None:
    """Why *obj* does not survive being pickled and unpickled, or ``None`` if it does."""
    try:
        view = ForkingPickler.dumps(obj)  # what multiprocessing itself sends
        try:
            pickle.loads(view)
        finally:
            view.release()
    except Exception as problem:
        return f"{type(problem).__name__}: {problem}"
    return None


def _qualified_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    if module in (None, "builtins"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _message_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<the message could not be read: str() of the {type(exc).__name__} failed>"


def _stand_in(cls: type[BaseException], message: str, notes: list[str]) -> BaseException | None:
    """An instance of *cls* carrying *message* and *notes* that survives pickling, or None."""
    try:
        candidate = cls(message)
    except Exception:  # an __init__ that wants other arguments
        return None
    if type(candidate) is not cls:
        return None
    if sys.version_info >= (3, 11):
        for note in notes:
            candidate.add_note(note)
    if _round_trip_problem(candidate) is not None:
        return None
    return candidate


def portable_exception(exc: BaseException, *, traceback_text: str | None = None) -> BaseException:
    """*exc* itself if it survives pickling, else the nearest stand-in that does.

    Call it in the worker process, before sending *exc*. The check is a real
    round trip (pickle, then unpickle), because the usual failure is on the
    unpickling side: ``BaseException`` pickles its ``args``, and a class whose
    ``__init__`` needs other arguments cannot be rebuilt from them.

    The stand-in is an instance of the first class of ``type(exc).__mro__``
    that can be built from one message string and survives the round trip;
    ``Exception`` (or ``BaseException`` for exceptions outside the
    ``Exception`` family) always can. Its message is the original's qualified
    class name and message (``"myapp.errors.QuotaError: over quota"``); a note
    says why it was replaced and holds the worker's traceback, which the
    stand-in would otherwise lose. The original's own notes are kept. On
    Python 3.10, whose interpreter prints no notes, the notes are part of the
    message.

    Args:
        exc: the exception a worker caught.
        traceback_text: the worker's formatted traceback of *exc*; by default
            it is formatted from ``exc.__traceback__``.

    Returns:
        *exc* unchanged, or a stand-in that pickles. Never raises.
    """
    problem = _round_trip_problem(exc)
    if problem is None:
        return exc
    if traceback_text is None and exc.__traceback__ is not None:
        traceback_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    original = _qualified_name(type(exc))
    message = f"{original}: {_message_of(exc)}"
    old_notes = [note for note in getattr(exc, "__notes__", None) or () if isinstance(note, str)]
    for cls in type(exc).__mro__:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            continue
        note = (
            f"ori: the worker process raised {original}, which cannot be sent to "
            f"another process ({problem}); it arrives as {_qualified_name(cls)}, "
            "the nearest class of its MRO that can, with the original class and "
            "message in its message"
        )
        if traceback_text:
            note += f"\nTraceback in the worker process:\n{traceback_text.rstrip()}"
        notes = [*old_notes, note]
        text = message if sys.version_info >= (3, 11) else "\n".join([message, *notes])
        stand_in = _stand_in(cls, text, notes)
        if stand_in is not None:
            return stand_in
    # Unreachable in practice: BaseException(str) always round-trips.
    return Exception(message)  # pragma: no cover


def describe_exit_code(exitcode: int | None) -> str:
    """How a process ended, from :attr:`multiprocessing.Process.exitcode`.

    Args:
        exitcode: the exit code; negative for a signal (multiprocessing's
            convention); ``None`` when it is not known.

    Returns:
        ``"exit code 1"``, ``"killed by SIGKILL"``, ``"killed by signal 77"``
        or ``"exit status unknown"``.
    """
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def worker_crash_message(function: str, exitcode: int | None) -> str:
    """The message of an :class:`~ori.errors.OriWorkerCrashedError` for a call that was running.

    Args:
        function: the qualified name of the function the worker was running.
        exitcode: the dead worker's exit code (see :func:`describe_exit_code`).

    Returns:
        A sentence naming the function and how the worker ended.
    """
    return (
        f"the worker process running {function} died ({describe_exit_code(exitcode)}) "
        "while this call was running or waiting in its pool; causes include os._exit(), "
        "a signal such as SIGKILL, a crash in an extension module or the out-of-memory "
        "killer. The pool was replaced: the next call starts fresh workers"
    )


def worker_startup_message(
    function: str, exitcode: int | None, start_method: str, main_path: str | None
) -> str:
    """The message of an :class:`~ori.errors.OriWorkerCrashedError` for a worker that never started.

    Args:
        function: the qualified name of the function the worker was to run.
        exitcode: the dead worker's exit code (see :func:`describe_exit_code`).
        start_method: the multiprocessing start method of the worker.
        main_path: the file of the program's ``__main__`` module, which
            ``spawn`` and ``forkserver`` workers import again; ``None`` when
            there is none (a REPL) or the worker was forked.

    Returns:
        A message that says the worker died before it ran anything, names the
        start method and, when the main module is re-imported, says how to
        guard it.
    """
    text = (
        f"a worker process for {function} died while starting up "
        f"({describe_exit_code(exitcode)}), before it ran any call; start method "
        f"{start_method!r}"
    )
    if main_path is not None and start_method != "fork":
        text += (
            f". Workers started with {start_method!r} import the main module "
            f"({main_path}) again before they run anything: if it starts process work "
            "when imported, put that code under 'if __name__ == \"__main__\":'. Other "
            "causes: a module that fails to import in a fresh process"
        )
    else:
        text += ". A module that fails to import in the worker is a likely cause"
    return text + "; the worker printed its own traceback on stderr"
