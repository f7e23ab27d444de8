"""The exceptions raised by every Ori package.

All of them derive from :class:`OriError`, so ``except OriError`` catches anything
Ori reports on purpose. Some also derive from the built-in exception a user would
naturally reach for: :class:`OriValidationError` is a :class:`ValueError` and
:class:`OriTimeoutError` is a :class:`TimeoutError`.

Ori packages raise these classes and never define exceptions of their own, so this
small package is the single place to look them up. :mod:`ori.errors.remote` holds
what Ori does with exceptions that cross a process boundary, and
:mod:`ori.errors.validation` the argument checks every package shares.
"""

from __future__ import annotations

# The distribution's version: hatchling reads it from this line when it builds
# (pyproject.toml, [tool.hatch.version]), so the two cannot differ.
__version__ = "1.3.0"

__all__ = (
    "OriError",
    "OriInvalidStateError",
    "OriNoInteractiveProcessPools",
    "OriTimeoutError",
    "OriValidationError",
    "OriWorkerCrashedError",
    "OriWorkerStartError",
    "RemoteTraceback",
)


class OriError(Exception):
    """Root of every exception Ori raises on purpose.

    ``except OriError`` catches anything Ori reports itself. Exceptions raised
    by your own functions are not wrapped: they reach you with their own type.
    """


class OriValidationError(OriError, ValueError):
    """An argument given to Ori was of the wrong type or had an unusable value.

    The message names the argument, the rule it broke and what to pass instead.
    Raised before any work starts, so nothing needs cleaning up.
    """


class OriInvalidStateError(OriError, RuntimeError):
    """An operation was asked of an object that is in the wrong state for it.

    Examples: running work on an event loop that is closed, or waiting from
    inside a callback for the very thing that runs the callback (which could
    never finish). It is also a :class:`RuntimeError`, the built-in family for
    such problems. The message says what state the object was in and what to
    do instead.
    """


class OriNoInteractiveProcessPools(OriError):
    """A process pool was asked to run a function it cannot send to a worker.

    Worker processes started with the ``spawn`` or ``forkserver`` method import
    the function by its module and name. Functions typed into an interactive
    session (a REPL, ``python -c``) or defined in ``__main__`` without a file have
    no importable home, so Ori refuses them up front instead of failing later
    inside the pool. Move the function into a module (a ``.py`` file) and import
    it, use a thread instead, or install the ``cloudpickle`` extra where the
    package offers one.
    """


class OriTimeoutError(OriError, TimeoutError):
    """A unit of work ran longer than the timeout it was given.

    Because it is also a :class:`TimeoutError`, ``except TimeoutError`` catches it.
    """


class OriWorkerCrashedError(OriError):
    """A worker process died while it was running a unit of work.

    Causes include ``os._exit()``, a signal such as SIGKILL, a segmentation fault
    in an extension module, or the operating system's out-of-memory killer. The
    message names the work item (or the function) the worker was running and its
    exit code or signal. A worker that died while starting up, before it ran
    anything, gets a message that says so instead of blaming a work item: it
    names the start method and, where a re-imported main module is the likely
    cause, tells you to put the script's code under
    ``if __name__ == "__main__":``.
    """


class OriWorkerStartError(OriWorkerCrashedError):
    """A worker process could not start, so it never ran any work item.

    No input item is to blame: the process died or hung before it was ready
    (for instance a script without an ``if __name__ == "__main__":`` guard,
    which the ``spawn`` and ``forkserver`` start methods import again in every
    worker), or it could not load the function it was given (an import error
    in the worker). The message names the start method and the cause. It is an
    :class:`OriWorkerCrashedError`, so code that catches crashed workers also
    catches workers that never started.
    """


class RemoteTraceback(OriError):
    """The traceback of an exception raised in a worker process, as text.

    An exception that travels back from a worker process loses its traceback
    (tracebacks cannot be pickled). Ori sends the formatted text along and
    attaches it as this exception's instance to the rebuilt exception's
    ``__cause__``, so a printed traceback shows first where the worker raised
    it, then where your code received it. It is never raised by itself; you
    meet it only as a cause. :class:`concurrent.futures.ProcessPoolExecutor`
    does the same with a private class of its own.

    Args:
        traceback_text: the worker's traceback, as ``traceback.format_exception``
            prints it.
        heading: an optional line printed above the quoted traceback (Ori uses
            it on Python 3.10, which does not print exception notes).

    Attributes:
        traceback_text: the worker's traceback text, unchanged.
        heading: the line shown above it, or ``None``.
    """

    def __init__(self, traceback_text: str, *, heading: str | None = None) -> None:
        super().__init__(traceback_text)
        self.traceback_text = traceback_text
        self.heading = heading

    def __str__(self) -> str:
        # Quoted like CPython's, so the worker's traceback stands apart from the
        # "direct cause" line the interpreter prints after it.
        heading = f"{self.heading}\n" if self.heading else ""
        return f'\n{heading}"""\n{self.traceback_text.rstrip()}\n"""'
