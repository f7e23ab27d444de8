"""tox's py313t environment really runs the suite on free-threaded CPython, GIL off.

The environment sets ORI_REQUIRE_FREE_THREADING=1, so this test fails there if tox
picked up an ordinary build or the GIL got switched on. The root conftest.py also
checks the GIL once more when the whole run ends, after every import.
"""

from __future__ import annotations

import os
import sys
import sysconfig

import pytest

REQUIRED = os.environ.get("ORI_REQUIRE_FREE_THREADING") == "1"
FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.skipif(
    not (REQUIRED or FREE_THREADED_BUILD),
    reason="an ordinary (GIL) build outside tox's py313t environment: nothing to check",
)
def test_the_gil_is_off() -> None:
    assert FREE_THREADED_BUILD, f"py313t must run on a --disable-gil build, not {sys.version}"
    assert not sys._is_gil_enabled(), (
        "the GIL is on: an extension module without free-threading support re-enabled it"
        " (look for its RuntimeWarning) or PYTHON_GIL=1 is set"
    )
