"""Bridges between asyncio and blocking code, usable from any thread.

>>> from ori.asyncio import sync
>>> async def add(a: int, b: int) -> int:
...     return a + b
>>> sync(add(1, 2))
3

From blocking code to async code: :func:`sync` runs one awaitable,
:func:`syncify` turns an async function into a blocking one, :func:`iterate`
turns an async iterator into an ordinary one, and :class:`LoopThread` keeps a
loop alive in the background so that loop-bound resources can be reused.

From async code to blocking code: :func:`to_thread` and :func:`asyncify` run
blocking functions in threads under a :class:`ThreadLimiter` cap, and
:func:`asyncify_process` runs CPU-bound functions in worker processes.
"""

# The distribution's version: hatchling reads it from this line when it builds
# (pyproject.toml, [tool.hatch.version]), so the two cannot differ.
__version__ = "1.1.0"

from ._iterate import iterate as iterate
from ._limiter import ThreadLimiter as ThreadLimiter
from ._limiter import default_thread_limiter as default_thread_limiter
from ._loop_thread import LoopThread as LoopThread
from ._process import AsyncProcessFunction as AsyncProcessFunction
from ._process import asyncify_process as asyncify_process
from ._sync import sync as sync
from ._sync import syncify as syncify
from ._to_thread import DEFAULT_LIMITER as DEFAULT_LIMITER
from ._to_thread import asyncify as asyncify
from ._to_thread import to_thread as to_thread

__all__ = (
    "DEFAULT_LIMITER",
    "AsyncProcessFunction",
    "LoopThread",
    "ThreadLimiter",
    "asyncify",
    "asyncify_process",
    "default_thread_limiter",
    "iterate",
    "sync",
    "syncify",
    "to_thread",
)

for _obj in (
    AsyncProcessFunction,
    LoopThread,
    ThreadLimiter,
    asyncify,
    asyncify_process,
    default_thread_limiter,
    iterate,
    sync,
    syncify,
    to_thread,
):
    _obj.__module__ = __name__
del _obj
