from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from ori.errors import OriNoInteractiveProcessPools, OriValidationError
from ori.errors.validation import (
    check_async_function,
    check_bool,
    check_callable,
    check_executor,
    check_executor_class,
    check_int,
    check_mp_context,
    check_positive_int,
    check_positive_number,
    check_process_function,
    cloudpickle_available,
    cloudpickle_hint,
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
    with pytest.raises(OriNoInteractiveProcessPools, match=r"start method; pip install x\[y\]$"):
        check_process_function(f, "spawn", hint="pip install x[y]")


def test_process_function_hint_ends_the_message() -> None:
    with pytest.raises(OriValidationError, match=r"thread pool; install the extra$"):
        check_process_function(lambda: None, "spawn", hint="install the extra")


def test_describe_is_short() -> None:
    text = describe("x" * 1000)
    assert len(text) < 100
    assert "type str" in text


def test_executor_accepts_instances() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        assert check_executor(pool) is pool


def test_executor_refuses_class_with_hint() -> None:
    with pytest.raises(OriValidationError, match=r"got the class ThreadPoolExecutor; create"):
        check_executor(concurrent.futures.ThreadPoolExecutor)


@pytest.mark.parametrize("value", [None, 3, "pool", object()])
def test_executor_refuses_other_values(value: object) -> None:
    with pytest.raises(OriValidationError, match=r"executor must be a concurrent\.futures"):
        check_executor(value)


async def fetch(x: int) -> int:
    await asyncio.sleep(0)
    return x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x

    async def method(self, x: int) -> int:
        return x


class SyncCallable:
    def __call__(self, x: int) -> int:
        return x


def test_async_function_accepts_coroutine_functions_in_every_wrapping() -> None:
    obj = AsyncCallable()
    for func in (fetch, functools.partial(fetch), obj, obj.method, functools.partial(obj)):
        assert check_async_function(func) is func


def test_async_function_accepts_lambdas() -> None:
    func = lambda x: fetch(x)  # noqa: E731 - a lambda is the point
    assert check_async_function(func) is func


def test_async_function_refuses_plain_functions_with_the_fix() -> None:
    for func in (module_level, functools.partial(module_level), SyncCallable()):
        with pytest.raises(OriValidationError, match="define it with 'async def'"):
            check_async_function(func, "async_function")


def test_async_function_refuses_generators_builtins_and_classes() -> None:
    def gen() -> Iterator[int]:
        yield 1

    async def agen() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(OriValidationError, match="a generator function"):
        check_async_function(gen)
    with pytest.raises(OriValidationError, match="async generator function"):
        check_async_function(agen)
    for func in (len, str):
        with pytest.raises(OriValidationError, match="builtin or a class"):
            check_async_function(func)
    with pytest.raises(OriValidationError, match="must be a callable"):
        check_async_function(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-3, 0, 7, 2**70])
def test_int_accepts_any_sign(value: int) -> None:
    assert check_int(value, "exit_code") == value


@pytest.mark.parametrize("value", [True, 1.0, "1", None])
def test_int_refuses_bools_and_other_types(value: object) -> None:
    with pytest.raises(OriValidationError, match="exit_code must be an int, got"):
        check_int(value, "exit_code")


def test_bool_accepts_only_true_and_false() -> None:
    assert check_bool(True, "flag") is True
    assert check_bool(False, "flag") is False
    for value in (1, 0, "yes", None):
        with pytest.raises(OriValidationError, match="flag must be True or False"):
            check_bool(value, "flag")


def test_mp_context_accepts_contexts_and_none() -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    assert check_mp_context(context) is context
    assert check_mp_context(None) is None


def test_mp_context_refuses_a_start_method_name_with_the_fix() -> None:
    with pytest.raises(OriValidationError) as info:
        check_mp_context("spawn")
    message = str(info.value)
    assert message.startswith("mp_context must be a multiprocessing context")
    assert "multiprocessing.get_context('spawn')" in message
    assert "'spawn' (type str)" in message
    assert message.endswith("pass None for the interpreter's default start method")


def test_by_value_extra_accepts_everything_with_cloudpickle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("cloudpickle", reason="needs cloudpickle (requirements-dev installs it)")
    monkeypatch.delitem(sys.modules, "cloudpickle", raising=False)
    assert cloudpickle_available()
    lam = lambda x: x  # noqa: E731
    assert check_process_function(lam, "spawn", by_value_extra="ori-concurrency") is lam


def test_by_value_extra_names_the_extra_without_cloudpickle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    assert not cloudpickle_available()
    with pytest.raises(OriValidationError) as caught:
        check_process_function(lambda x: x, "spawn", by_value_extra="ori-asyncio")
    assert str(caught.value).endswith("; " + cloudpickle_hint("ori-asyncio"))
    assert cloudpickle_hint("ori-asyncio") == (
        "or install cloudpickle, which sends such functions by value: "
        "pip install 'ori-asyncio[cloudpickle]'"
    )
