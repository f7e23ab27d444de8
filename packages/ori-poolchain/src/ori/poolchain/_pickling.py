"""Sending a process stage's function (and initializer) to its worker processes.

Standard pickle sends a function by reference (module and qualified name), and
the worker imports it. Lambdas, closures and functions typed into a REPL or
``python -c`` cannot travel that way to a spawned or forkserver worker. With
the optional ``cloudpickle`` package installed, such a function is pickled by
value, once per stage and run, and sent wrapped in :class:`ByValue`: standard
pickle carries the wrapper as bytes and the worker rebuilds the function with
``cloudpickle.loads`` when its process starts. Only the function goes this
way; items and results keep the fast standard pickle path. Forked workers
inherit the function from the parent's memory and need none of this.
"""

from __future__ import annotations

import importlib
import multiprocessing.context
import pickle
import sys
from collections.abc import Callable
from typing import Any

from ori.errors.validation import check_process_function, cloudpickle_available

DISTRIBUTION = "ori-poolchain"  # whose cloudpickle extra sends functions by value


def check_stage_function(function: Any, start_method: str | None, name: str) -> None:
    """The add-time check of a process stage's *function* (or initializer).

    The rule every Ori process helper shares (``by_value_extra``): every
    callable passes when cloudpickle is installed; without it, the error for
    a function that cannot go by reference says how to install it.
    """
    check_process_function(function, start_method, name=name, by_value_extra=DISTRIBUTION)


class ByValue:
    """A function pickled by cloudpickle, unpickled in the worker at start-up."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
        # The worker gets the function itself, not this wrapper.
        loads: Callable[[bytes], Any] = importlib.import_module("cloudpickle").loads
        return loads, (self.payload,)


def for_workers(function: Any, context: multiprocessing.context.BaseContext) -> Any:
    """What to hand to ``Process(args=...)`` so that the worker gets *function*.

    *function* itself when it pickles by reference (or the workers are
    forked); a :class:`ByValue` when it does not and cloudpickle is
    installed. Without cloudpickle, *function* itself: the add-time check has
    already refused what could not work.
    """
    if function is None or context.get_start_method() == "fork":
        return function
    if not needs_by_value(function) or not cloudpickle_available():
        return function
    cloudpickle = importlib.import_module("cloudpickle")
    return ByValue(cloudpickle.dumps(function))


def needs_by_value(function: Any) -> bool:
    module = getattr(function, "__module__", None)
    if module == "__main__":
        main = sys.modules.get("__main__")
        if main is None or getattr(main, "__file__", None) is None:
            return True  # a REPL or python -c: workers cannot import it
    try:
        pickle.dumps(function)
    except Exception:
        return True
    return False
