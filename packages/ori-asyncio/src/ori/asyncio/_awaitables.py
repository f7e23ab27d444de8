"""Recognising awaitables, explaining the common mistakes, and disposing of them.

Every entry point that accepts an awaitable or an async iterable goes through
here first, so that the mistakes people really make (passing an ``async def``
function without calling it, passing an async generator to ``sync``, passing a
``concurrent.futures.Future``) get a message that names the fix.
"""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import inspect
import types
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ori.errors import OriValidationError
from ori.errors.validation import check_callable, describe

T = TypeVar("T")


def _name(obj: object) -> str:
    return str(getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj))


def check_awaitable(value: object, api: str = "sync") -> None:
    """Raise TypeError, with a hint, unless *value* can be awaited."""
    if isinstance(value, types.CoroutineType) or inspect.isawaitable(value):
        return
    if inspect.iscoroutinefunction(value):
        hint = (
            f"got the async function {_name(value)!r} itself; call it to get a "
            f"coroutine: {api}({_name(value)}(...))"
        )
    elif inspect.isasyncgenfunction(value):
        hint = (
            f"got the async generator function {_name(value)!r}; call it and consume "
            f"the result with ori.asyncio.iterate({_name(value)}(...))"
        )
    elif inspect.isasyncgen(value) or isinstance(value, collections.abc.AsyncIterator):
        hint = (
            f"got the async iterator {describe(value)}, which cannot be awaited; "
            "consume it with ori.asyncio.iterate(...)"
        )
    elif isinstance(value, concurrent.futures.Future):
        hint = (
            "got a concurrent.futures.Future, which is not awaitable; call its "
            ".result() to wait for it, or wrap it with asyncio.wrap_future()"
        )
    elif callable(value):
        hint = (
            f"got the callable {describe(value)}; pass the awaitable it returns, not the function"
        )
    else:
        hint = f"got {describe(value)}"
    raise TypeError(
        f"{api}() needs an awaitable (a coroutine object, an asyncio Task or Future, "
        f"or an object with __await__); {hint}"
    )


def check_async_iterable(value: object, api: str = "iterate") -> None:
    """Raise TypeError, with a hint, unless *value* has ``__aiter__``."""
    if isinstance(value, collections.abc.AsyncIterable):
        return
    if inspect.isasyncgenfunction(value):
        hint = (
            f"got the async generator function {_name(value)!r} itself; call it: "
            f"{api}({_name(value)}(...))"
        )
    elif inspect.isawaitable(value):
        hint = f"got the awaitable {describe(value)}; run it with ori.asyncio.sync(...) instead"
    elif isinstance(value, collections.abc.Iterable):
        hint = f"got the ordinary iterable {describe(value)}; loop over it directly"
    else:
        hint = f"got {describe(value)}"
    raise TypeError(f"{api}() needs an async iterable (an object with __aiter__); {hint}")


def is_coroutine(value: object) -> bool:
    """True when *value* can be handed to ``loop.create_task`` as it is."""
    return isinstance(value, (types.CoroutineType, collections.abc.Coroutine))


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """*awaitable* itself when it is a coroutine, else a coroutine awaiting it."""
    if is_coroutine(awaitable):
        return awaitable  # type: ignore[return-value]
    return _await(awaitable)


def discard(awaitable: object) -> None:
    """Close a coroutine that will never run, so Python does not warn it was never awaited.

    Anything else (a Future, a Task, a custom awaitable) belongs to someone
    else and is left alone.
    """
    if isinstance(awaitable, collections.abc.Coroutine) or inspect.isgenerator(awaitable):
        awaitable.close()


def loop_of(awaitable: object) -> asyncio.AbstractEventLoop | None:
    """The event loop an asyncio Future or Task belongs to, if it is one."""
    if asyncio.isfuture(awaitable):
        get_loop = getattr(awaitable, "get_loop", None)
        if get_loop is not None:
            loop = get_loop()
            if isinstance(loop, asyncio.AbstractEventLoop):
                return loop
    return None


def aiter_of(iterable: AsyncIterable[T]) -> AsyncIterator[T]:
    """``iterable.__aiter__()``, checked to return an async iterator."""
    iterator = iterable.__aiter__()
    if not isinstance(iterator, collections.abc.AsyncIterator):
        raise TypeError(
            f"__aiter__ of {describe(iterable)} returned {describe(iterator)}, "
            "which has no __anext__"
        )
    return iterator


def check_blocking_function(fn: Callable[..., Any], name: str) -> None:
    """Raise OriValidationError unless *fn* is a callable that is not an async function."""
    check_callable(fn, name)
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise OriValidationError(
            f"{name} {_name(fn)!r} is an async function; await it directly instead of "
            "sending it to a thread or process"
        )
