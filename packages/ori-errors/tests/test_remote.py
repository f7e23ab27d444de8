"""ori.errors.remote: exceptions that cross a process boundary, and dead-worker wording."""

from __future__ import annotations

import pickle
import signal
import sys
import threading
import traceback

import pytest

from ori.errors import OriError, RemoteTraceback
from ori.errors.remote import (
    add_note,
    attach_remote_traceback,
    describe_exit_code,
    portable_exception,
    worker_crash_message,
    worker_startup_message,
)


class TwoArgs(ValueError):
    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}/{code}")


class Middle(TwoArgs):
    """Also not rebuildable: the nearest rebuildable class is ValueError, two levels up."""


class HoldsALock(LookupError):
    pass


class FatalTwoArgs(BaseException):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(a + b)


def _caught(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def _text(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def test_an_exception_that_pickles_is_returned_unchanged() -> None:
    exc = _caught(KeyError("k"))
    assert portable_exception(exc) is exc


@pytest.mark.parametrize("cls", [TwoArgs, Middle])
def test_the_stand_in_is_the_nearest_class_that_can_be_rebuilt(cls: type[TwoArgs]) -> None:
    exc = _caught(cls("quota", 3))
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(exc))
    sent = pickle.loads(pickle.dumps(portable_exception(exc)))
    assert type(sent) is ValueError
    assert str(sent).startswith(f"{__name__}.{cls.__qualname__}: quota/3")
    text = _text(sent)
    assert f"raised {__name__}.{cls.__qualname__}, which cannot be sent" in text
    assert "it arrives as ValueError" in text
    assert "raise exc" in text  # the traceback of the original travels in the note
    assert "missing 1 required positional argument" in text  # why it was replaced


def test_an_instance_that_does_not_pickle_keeps_its_class() -> None:
    exc = HoldsALock("user")
    exc.lock = threading.Lock()  # type: ignore[attr-defined]
    sent = pickle.loads(pickle.dumps(portable_exception(exc)))
    assert type(sent) is HoldsALock
    assert "cannot pickle" in _text(sent)


def test_outside_the_exception_family_the_floor_is_base_exception() -> None:
    sent = pickle.loads(pickle.dumps(portable_exception(FatalTwoArgs(1, 2))))
    assert type(sent) is BaseException
    assert str(sent).startswith(f"{__name__}.FatalTwoArgs: 3")


def test_the_originals_notes_are_kept_and_the_traceback_can_be_given() -> None:
    exc = add_note(TwoArgs("x", 1), "first note")
    sent = portable_exception(exc, traceback_text="Traceback (most recent call last):\n  here\n")
    text = _text(sent)
    assert "first note" in text
    assert "Traceback in the worker process:\nTraceback (most recent call last):\n  here" in text


def test_python_3_10_has_everything_in_the_message() -> None:
    sent = portable_exception(_caught(TwoArgs("x", 1)))
    if sys.version_info < (3, 11):
        assert "cannot be sent to another process" in str(sent)
        assert "raise exc" in str(sent)
    else:
        assert "\n" not in str(sent)
        assert "cannot be sent to another process" in sent.__notes__[-1]


def test_add_note_on_every_python() -> None:
    exc = add_note(add_note(ValueError("v"), "one"), "two")
    assert exc.__notes__ == ["one", "two"]  # type: ignore[attr-defined]


def test_remote_traceback_is_chained_and_reads_as_a_quoted_traceback() -> None:
    exc = _caught(ValueError("boom"))
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    received = attach_remote_traceback(ValueError("boom"), text, heading="stage 1")
    cause = received.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert isinstance(cause, OriError)
    assert cause.traceback_text == text
    assert str(cause) == f'\nstage 1\n"""\n{text.rstrip()}\n"""'
    printed = "".join(traceback.format_exception(received))
    assert printed.startswith("ori.errors.RemoteTraceback: \nstage 1\n")
    copy = pickle.loads(pickle.dumps(cause))
    assert (copy.traceback_text, copy.heading) == (text, "stage 1")


@pytest.mark.parametrize(
    ("exitcode", "words"),
    [
        (1, "exit code 1"),
        (0, "exit code 0"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-77, "killed by signal 77"),
        (None, "exit status unknown"),
    ],
)
def test_describe_exit_code(exitcode: int | None, words: str) -> None:
    assert describe_exit_code(exitcode) == words


def test_crash_message_names_the_function_and_the_signal() -> None:
    message = worker_crash_message("resize", -signal.SIGKILL)
    assert message.startswith("the worker process running resize died (killed by SIGKILL)")
    assert "the next call starts fresh workers" in message


def test_startup_message_for_a_reimported_main_module() -> None:
    message = worker_startup_message("resize", 1, "spawn", "/srv/job.py")
    assert "died while starting up (exit code 1), before it ran any call" in message
    assert "start method 'spawn'" in message
    assert "(/srv/job.py)" in message
    assert "put that code under 'if __name__ == \"__main__\":'" in message


@pytest.mark.parametrize(("method", "main"), [("fork", "/srv/job.py"), ("spawn", None)])
def test_startup_message_without_a_reimported_main_module(method: str, main: str | None) -> None:
    message = worker_startup_message("resize", 1, method, main)
    assert f"start method {method!r}" in message
    assert "__main__" not in message
    assert "fails to import" in message
