from __future__ import annotations

import concurrent.futures
import math

import pytest

from ori.errors import OriNoInteractiveProcessPools, OriValidationError
from ori.errors.validation import (
    check_callable,
    check_executor_class,
    check_positive_int,
    check_positive_number,
    check_process_function,
    describe,
)


def module_level(x: int) -> int:
    return x


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True, False, None, [1]])
def test_positive_int_refuses(value: object) -> None:
    with pytest.raises(OriValidationError, match="max_workers must be a positive int"):
        check_positive_int(value, "max_workers", allow_none=False)


@pytest.mark.parametrize("value", [1, 7, 10**6])
def test_positive_int_accepts(value: int) -> None:
    assert check_positive_int(value, "n") == value


def test_positive_int_none_is_default_when_allowed() -> None:
    assert check_positive_int(None, "n") is None


@pytest.mark.parametrize("value", [0, -1, "1", True, math.nan, math.inf, -0.5, object()])
def test_positive_number_refuses(value: object) -> None:
    with pytest.raises(OriValidationError, match="timeout must be"):
        check_positive_number(value, "timeout")


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), (0.25, 0.25), (None, None)])
def test_positive_number_accepts(value: float | None, expected: float | None) -> None:
    assert check_positive_number(value, "timeout") == expected


def test_callable() -> None:
    assert check_callable(len) is len
    with pytest.raises(OriValidationError, match="func must be a callable"):
        check_callable(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [concurrent.futures.ThreadPoolExecutor, concurrent.futures.ProcessPoolExecutor]
)
def test_executor_class_accepts(value: type[concurrent.futures.Executor]) -> None:
    assert check_executor_class(value) is value


def test_executor_class_refuses_instance_with_hint() -> None:
    with concurrent.futures.ThreadPoolExecutor() as pool:
        with pytest.raises(OriValidationError, match="got an instance"):
            check_executor_class(pool)


@pytest.mark.parametrize("value", [int, dict, 3, "ThreadPoolExecutor", None])
def test_executor_class_refuses(value: object) -> None:
    with pytest.raises(OriValidationError, match=r"subclass of concurrent\.futures\.Executor"):
        check_executor_class(value)


def test_process_function_refuses_lambda_and_closure() -> None:
    def inner() -> None: ...

    for func in (lambda: None, inner):
        with pytest.raises(OriValidationError, match="define it with 'def' at the top level"):
            check_process_function(func, "spawn")
    assert check_process_function(inner, "spawn", allow_by_value=True) is inner


def test_process_function_accepts_module_level_and_builtins() -> None:
    assert check_process_function(module_level, "spawn") is module_level
    assert check_process_function(str, "spawn") is str


def test_process_function_refuses_interactive_main(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    fake_main = types.ModuleType("__main__")  # no __file__: like a REPL or python -c
    monkeypatch.setitem(sys.modules, "__main__", fake_main)

    def f() -> None: ...

    f.__module__ = "__main__"
    f.__qualname__ = "f"
    with pytest.raises(OriNoInteractiveProcessPools, match="interactive session"):
        check_process_function(f, "spawn")
    assert check_process_function(f, "fork") is f


def test_describe_is_short() -> None:
    text = describe("x" * 1000)
    assert len(text) < 100
    assert "type str" in text
