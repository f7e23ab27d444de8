"""The exceptions raised by every Ori package.

All of them derive from :class:`OriError`, so ``except OriError`` catches anything
Ori reports on purpose. Some also derive from the built-in exception a user would
naturally reach for: :class:`OriValidationError` is a :class:`ValueError` and
:class:`OriTimeoutError` is a :class:`TimeoutError`.

Ori packages raise these classes and never define exceptions of their own, so this
small package is the single place to look them up.
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
    message names the work item the worker was running when it died.
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
