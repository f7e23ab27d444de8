"""Every use of an interpreter detail that is not a stable public API.

Each function here names the Python versions it was checked on; its test is in
``tests/test_compat.py``.
"""

from __future__ import annotations

import concurrent.futures
import sys


def gil_enabled() -> bool:
    """Whether this interpreter runs with the GIL.

    ``sys._is_gil_enabled()`` exists from Python 3.13 (checked on 3.13.0 and
    on 3.13 built with ``--disable-gil``, where importing an extension module
    that is not marked free-threading-safe turns the GIL back on, so the
    answer may change while a program runs). Before 3.13 every interpreter
    has a GIL.
    """
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_gil_enabled is None else bool(is_gil_enabled())


def executor_max_workers(executor: concurrent.futures.Executor) -> int | None:
    """How many workers *executor* was created with, or None if it does not say.

    ``ThreadPoolExecutor`` and ``ProcessPoolExecutor`` keep it in
    ``_max_workers`` (checked on 3.10 to 3.13); other executors may not have it.
    """
    count = getattr(executor, "_max_workers", None)
    return count if isinstance(count, int) and count > 0 else None


def executor_start_method(executor: concurrent.futures.Executor) -> str | None:
    """The start method of a ``ProcessPoolExecutor``'s workers, or None if unknown.

    Kept in ``_mp_context`` (checked on 3.10 to 3.13).
    """
    context = getattr(executor, "_mp_context", None)
    method = getattr(context, "get_start_method", None)
    return str(method()) if callable(method) else None
