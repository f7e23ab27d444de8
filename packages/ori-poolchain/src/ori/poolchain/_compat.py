"""Every use of an interpreter detail that is not a stable public API.

Each function here names the Python versions it was checked on; its test is in
``tests/test_compat.py``.
"""

from __future__ import annotations

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
