"""Argument checks shared by the Ori packages.

Every Ori package validates its arguments the same way and with the same
wording, so the checks live here, next to the exceptions they raise. Each check
returns the value it accepted (narrowed for type checkers) or raises
:class:`~ori.errors.OriValidationError` / :class:`~ori.errors.OriNoInteractiveProcessPools`
with a message that names the argument, the rule and the fix.

This module is public and stable: its names, signatures and the wording of
its messages follow ori-errors' semantic versioning (a change that breaks them
is a new major version), because every other Ori package depends on it with a
lower bound only, and code built on Ori may reuse it too. The checks are
deliberately small: a type or value check each, nothing more.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib.util
import inspect
import multiprocessing
import multiprocessing.context
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from . import OriNoInteractiveProcessPools, OriValidationError

__all__ = (
    "check_async_function",
    "check_bool",
    "check_callable",
    "check_executor",
    "check_executor_class",
    "check_int",
    "check_mp_context",
    "check_positive_int",
    "check_positive_number",
    "check_process_function",
    "cloudpickle_available",
    "cloudpickle_hint",
    "describe",
)

_C = TypeVar("_C", bound=Callable[..., Any])


def describe(value: object) -> str:
    """Describe *value* for an error message: a short ``repr`` and its type.

    Args:
        value: any object.

    Returns:
        The ``repr`` of *value*, cut to 60 characters, followed by its type
        name, e.g. ``"'3' (type str)"``. Never raises.
    """
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} (type {type(value).__name__})"


def check_callable(value: _C, name: str = "func") -> _C:
    """Accept *value* only if it can be called.

    Args:
        value: the object to check.
        name: the argument name used in the error message.

    Returns:
        *value* itself, unchanged.

    Raises:
        OriValidationError: *value* is not callable (a common cause is passing
            ``f()`` instead of ``f``).
    """
    if not callable(value):
        raise OriValidationError(
            f"{name} must be a callable such as a function, got {describe(value)}; "
            "pass the function itself, not the result of calling it"
        )
    return value


def check_int(value: object, name: str) -> int:
    """Accept *value* only if it is an ``int`` (any sign).

    Args:
        value: the object to check.
        name: the argument name used in the error message.

    Returns:
        *value* itself.

    Raises:
        OriValidationError: *value* is not an ``int``; ``bool`` is refused too,
            since ``True`` where a number belongs is always a mistake.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise OriValidationError(f"{name} must be an int, got {describe(value)}")
    return value


def check_bool(value: object, name: str) -> bool:
    """Accept *value* only if it is ``True`` or ``False``.

    Truthy stand-ins (``1``, ``"yes"``) are refused: a flag given the wrong
    value usually means an argument landed in the wrong position.

    Args:
        value: the object to check.
        name: the argument name used in the error message.

    Returns:
        *value* itself.

    Raises:
        OriValidationError: *value* is not a ``bool``.
    """
    if not isinstance(value, bool):
        raise OriValidationError(f"{name} must be True or False, got {describe(value)}")
    return value


def check_mp_context(
    value: object, name: str = "mp_context"
) -> multiprocessing.context.BaseContext | None:
    """Accept *value* only if it is a multiprocessing context, or ``None``.

    Args:
        value: the object to check.
        name: the argument name used in the error message.

    Returns:
        *value* itself; ``None`` means the interpreter's default start method.

    Raises:
        OriValidationError: *value* is something else; a start method's name
            (``"spawn"``) is a common slip, and the message shows the fix.
    """
    if value is None or isinstance(value, multiprocessing.context.BaseContext):
        return value
    raise OriValidationError(
        f"{name} must be a multiprocessing context such as "
        f"multiprocessing.get_context('spawn'), got {describe(value)}; pass None for "
        "the interpreter's default start method"
    )


def check_positive_int(value: object, name: str, *, allow_none: bool = True) -> int | None:
    """Accept *value* only if it is an ``int`` of at least 1.

    ``bool`` is refused even though it subclasses ``int``: ``max_workers=True``
    is always a mistake.

    Args:
        value: the object to check.
        name: the argument name used in the error message.
        allow_none: also accept ``None`` (meaning "use the default").

    Returns:
        *value* itself, or ``None``.

    Raises:
        OriValidationError: *value* is not an ``int`` (floats, strings and
            bools included), is less than 1, or is ``None`` while
            *allow_none* is false.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        hint = "; pass None for the default" if allow_none else ""
        raise OriValidationError(f"{name} must be a positive int, got {describe(value)}{hint}")
    if value < 1:
        hint = "; pass None for the default" if allow_none else ""
        raise OriValidationError(f"{name} must be a positive int, got {value}{hint}")
    return value


def check_positive_number(value: object, name: str, *, allow_none: bool = True) -> float | None:
    """Accept *value* only if it is a finite number of seconds greater than 0.

    Args:
        value: the object to check.
        name: the argument name used in the error message.
        allow_none: also accept ``None`` (meaning "no limit").

    Returns:
        *value* converted to ``float``, or ``None``.

    Raises:
        OriValidationError: *value* is not an ``int`` or ``float`` (bools
            included), is zero, negative, NaN or infinite, or is ``None``
            while *allow_none* is false.
    """
    if value is None and allow_none:
        return None
    hint = "; pass None for no limit" if allow_none else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OriValidationError(
            f"{name} must be a number of seconds greater than 0, got {describe(value)}{hint}"
        )
    if not value > 0 or value != value or value == float("inf"):
        raise OriValidationError(
            f"{name} must be a finite number of seconds greater than 0, got {value!r}{hint}"
        )
    return float(value)


def check_executor_class(
    value: object, name: str = "executor_class"
) -> type[concurrent.futures.Executor]:
    """Accept *value* only if it is a :class:`concurrent.futures.Executor` subclass.

    Args:
        value: the object to check.
        name: the argument name used in the error message.

    Returns:
        *value* itself, typed as an Executor class.

    Raises:
        OriValidationError: *value* is an executor *instance* (the message
            shows how to pass the class), or anything that is not a subclass
            of :class:`concurrent.futures.Executor`.
    """
    if isinstance(value, concurrent.futures.Executor):
        raise OriValidationError(
            f"{name} must be an Executor class, got an instance {describe(value)}; "
            f"pass the class itself, e.g. {name}={type(value).__name__}"
        )
    if not isinstance(value, type) or not issubclass(value, concurrent.futures.Executor):
        raise OriValidationError(
            f"{name} must be a subclass of concurrent.futures.Executor such as "
            f"ThreadPoolExecutor or ProcessPoolExecutor, got {describe(value)}"
        )
    return value


def check_executor(value: object, name: str = "executor") -> concurrent.futures.Executor:
    """Accept *value* only if it is a :class:`concurrent.futures.Executor` instance.

    Args:
        value: the object to check.
        name: the argument name used in the error message.

    Returns:
        *value* itself, typed as an Executor.

    Raises:
        OriValidationError: *value* is an Executor *class* (the message shows
            how to create an instance), or anything else that is not an
            instance of :class:`concurrent.futures.Executor`.
    """
    if isinstance(value, type) and issubclass(value, concurrent.futures.Executor):
        raise OriValidationError(
            f"{name} must be an Executor instance, got the class {value.__name__}; "
            f"create one first, e.g. {name}={value.__name__}(max_workers=4)"
        )
    if not isinstance(value, concurrent.futures.Executor):
        raise OriValidationError(
            f"{name} must be a concurrent.futures.Executor instance such as "
            f"ThreadPoolExecutor(max_workers=4), got {describe(value)}"
        )
    return value


def _unwrap_callable(func: object) -> object:
    """The function that actually runs when *func* is called, where it can be found."""
    for _ in range(100):  # partials of partials, bound methods of partials...
        if isinstance(func, functools.partial):
            func = func.func
        elif inspect.ismethod(func):
            func = func.__func__
        else:
            break
    if (
        not inspect.isfunction(func)
        and not inspect.isbuiltin(func)
        and not isinstance(func, type)
        and callable(func)
    ):
        call = type(func).__call__
        if inspect.isfunction(call):
            return call
    return func


def check_async_function(func: _C, name: str = "func") -> _C:
    """Accept *func* only if calling it gives something to ``await``.

    Accepted: functions defined with ``async def`` (also as bound methods,
    through :func:`functools.partial`, or as the ``__call__`` of an object) and
    lambdas, which cannot be ``async`` themselves and so are taken to return an
    awaitable (``lambda url: fetch(session, url)``); whoever calls a lambda
    should still check what it returns. Anything else that is recognisably
    synchronous (a plain ``def`` function, a generator or async generator
    function, a builtin, a class, an object with a plain ``__call__``) is
    refused. Other callables (e.g. compiled extensions) cannot be inspected
    and are accepted.

    Args:
        func: the object to check.
        name: the argument name used in the error message.

    Returns:
        *func* itself, unchanged.

    Raises:
        OriValidationError: *func* is not callable, or is a synchronous
            function, a generator or async generator function, a builtin or a
            class.
    """
    check_callable(func, name)
    target = _unwrap_callable(func)
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(func):
        return func
    label = getattr(target, "__qualname__", None) or describe(func)
    if inspect.isasyncgenfunction(target):
        raise OriValidationError(
            f"{name} {label!r} is an async generator function (it uses 'yield'), which "
            "gives many values instead of one; pass an 'async def' function that "
            "returns its result"
        )
    if inspect.isfunction(target) and target.__name__ == "<lambda>":
        return func
    if inspect.isgeneratorfunction(target):
        kind = "a generator function"
    elif inspect.isfunction(target):
        kind = "a plain (not async) function"
    elif inspect.isbuiltin(target) or isinstance(target, type):
        kind = "a builtin or a class, not an async function"
    else:
        return func  # cannot be inspected: trust it, callers check what it returns
    raise OriValidationError(
        f"{name} must be an async function (defined with 'async def'), got {label!r}, "
        f"{kind}; define it with 'async def', wrap a function that returns an "
        "awaitable in a lambda, or run blocking functions in a thread pool instead"
    )


def _is_interactive_main(module_name: str) -> bool:
    """True when *module_name* is a ``__main__`` that a worker could not re-import."""
    if module_name != "__main__":
        return False
    main = sys.modules.get("__main__")
    return main is None or getattr(main, "__file__", None) is None


def check_process_function(
    func: _C,
    start_method: str | None = None,
    *,
    name: str = "func",
    allow_by_value: bool = False,
    hint: str | None = None,
    by_value_extra: str | None = None,
) -> _C:
    """Check that *func* can be sent to a worker process started by *start_method*.

    Functions travel to worker processes by reference: pickle records their module
    and qualified name, and the worker imports them. That fails for lambdas,
    functions defined inside other functions, and (unless workers are forked)
    functions typed into an interactive session or ``python -c``. This check
    finds those cases up front.

    Args:
        func: the function that will run in the worker.
        start_method: the multiprocessing start method the workers use; ``None``
            means the default of this interpreter.
        name: the argument name used in error messages.
        allow_by_value: ``True`` when the caller can pickle functions by value
            (cloudpickle is available), in which case every callable is accepted.
        hint: one more way to fix the problem, appended to the error messages
            (e.g. which optional extra to install so that *func* can be sent
            by value).
        by_value_extra: the distribution whose ``cloudpickle`` extra lets the
            caller send functions by value (``"ori-poolchain"``). With it,
            every callable is accepted when cloudpickle is installed, and
            otherwise the messages end with :func:`cloudpickle_hint`: the
            rule every Ori process helper applies.

    Returns:
        *func* itself, unchanged.

    Raises:
        OriValidationError: *func* is not callable, or is a lambda or a
            function defined inside another function (and *allow_by_value*
            is false).
        OriNoInteractiveProcessPools: *func* lives in an interactive ``__main__``
            and the workers are not forked.
    """
    check_callable(func, name)
    if by_value_extra is not None:
        allow_by_value = allow_by_value or cloudpickle_available()
        hint = "; ".join(filter(None, [hint, cloudpickle_hint(by_value_extra)]))
    if allow_by_value:
        return func
    # get_start_method(allow_none=False) would fix the default for the whole
    # program as a side effect; the first entry of get_all_start_methods() is
    # the default without committing to it.
    method = (
        start_method
        or multiprocessing.get_start_method(allow_none=True)
        or multiprocessing.get_all_start_methods()[0]
    )
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if module_name is None or qualname is None:
        # Instances with __call__, functools.partial and builtins pickle by their
        # own rules; let pickle decide when the work is sent.
        return func
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise OriValidationError(
            f"{name} {qualname!r} is a lambda or a function defined inside another "
            "function, which cannot be sent to a worker process; define it with "
            "'def' at the top level of a module, or use a thread pool" + _hint(hint)
        )
    if method != "fork" and _is_interactive_main(module_name):
        raise OriNoInteractiveProcessPools(
            f"{name} {qualname!r} was defined in an interactive session or 'python -c', "
            f"so worker processes started with {method!r} cannot import it; save it in "
            "a .py file and import it from there, use a thread pool, or use the "
            "'fork' start method" + _hint(hint)
        )
    return func


def _hint(hint: str | None) -> str:
    return f"; {hint}" if hint else ""


def cloudpickle_available() -> bool:
    """True when the optional ``cloudpickle`` package can be imported.

    Ori's process helpers send lambdas, closures and functions typed into an
    interactive session by value when it is installed. The answer for a
    package not yet imported is cached, as a search of ``sys.path`` costs
    file-system calls.
    """
    if "cloudpickle" in sys.modules:
        return sys.modules["cloudpickle"] is not None
    return _cloudpickle_installed()


@functools.lru_cache(maxsize=1)
def _cloudpickle_installed() -> bool:
    try:
        return importlib.util.find_spec("cloudpickle") is not None
    except (ImportError, ValueError):
        return False


def cloudpickle_hint(distribution: str) -> str:
    """The end of a refusal message that names *distribution*'s ``cloudpickle`` extra.

    Args:
        distribution: the package to install with the extra, e.g. ``"ori-concurrency"``.

    Returns:
        ``"or install cloudpickle, which sends such functions by value: pip
        install 'ori-concurrency[cloudpickle]'"``.
    """
    return (
        "or install cloudpickle, which sends such functions by value: "
        f"pip install '{distribution}[cloudpickle]'"
    )
