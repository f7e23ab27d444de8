"""The public module: names, their home, and the docstring example."""

from __future__ import annotations

import doctest
import inspect

import ori.subprocess
from ori.subprocess import BackgroundProcess, run_process_in_background


def test_all_matches_public_names() -> None:
    public = {name for name in dir(ori.subprocess) if not name.startswith("_")}
    assert set(ori.subprocess.__all__) == public
    for name in ori.subprocess.__all__:
        assert getattr(ori.subprocess, name).__module__ == "ori.subprocess"


def test_reference_signature_is_kept() -> None:
    parameters = inspect.signature(run_process_in_background).parameters
    reference = [
        ("command", inspect.Parameter.empty),
        ("stdout_function", None),
        ("stderr_function", None),
        ("exception_function", None),
        ("exit_code_on_killed", 0),
    ]
    assert [(name, parameters[name].default) for name, _ in reference] == reference
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())


def test_handle_keeps_the_process_surface() -> None:
    for name in ("pid", "exitcode", "returncode"):
        assert isinstance(inspect.getattr_static(BackgroundProcess, name), property)
    for name in ("is_alive", "join", "terminate", "kill", "wait", "__enter__", "__exit__"):
        assert callable(getattr(BackgroundProcess, name))


def test_module_docstring_example() -> None:
    result = doctest.testmod(ori.subprocess)
    assert result.attempted > 0
    assert result.failed == 0
