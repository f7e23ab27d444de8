"""Each interpreter detail ``_compat.py`` relies on, checked on this interpreter."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys

import pytest

from ori.poolchain import _compat


def test_gil_enabled_matches_the_interpreter() -> None:
    check = getattr(sys, "_is_gil_enabled", None)
    if sys.version_info >= (3, 13):
        assert callable(check)  # the API exists from 3.13 on
    assert _compat.gil_enabled() is (True if check is None else bool(check()))


@pytest.mark.parametrize(
    "executor_class",
    [concurrent.futures.ThreadPoolExecutor, concurrent.futures.ProcessPoolExecutor],
)
def test_standard_executors_tell_their_max_workers(
    executor_class: type[concurrent.futures.Executor],
) -> None:
    with executor_class(max_workers=3) as executor:  # type: ignore[call-arg]
        assert _compat.executor_max_workers(executor) == 3


def test_an_executor_without_the_attribute_says_none() -> None:
    class Plain(concurrent.futures.Executor):
        pass

    assert _compat.executor_max_workers(Plain()) is None
    assert _compat.executor_start_method(Plain()) is None


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_process_pools_tell_their_start_method(method: str) -> None:
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        assert _compat.executor_start_method(pool) == method
