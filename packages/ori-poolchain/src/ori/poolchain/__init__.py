"""Stream an iterable through a chain of thread-pool and process-pool stages.

>>> from ori.poolchain import PoolChain
>>> chain = (
...     PoolChain()
...     .add_threadpool(lambda n: n * 10)
...     .add_processpool(str, chunksize=2, max_workers=3)
...     .add_threadpool(lambda s: s + " is a number", timeout=5)
... )
>>> chain.execute_eager([1, 2, 3, 4, 5])[:2]
['10 is a number', '20 is a number']

Every stage runs at the same time as the others and items move on as soon as
they are done; the input is read only as far ahead as the stages can work, so
memory stays flat and infinite inputs work with ``execute_lazy``.

How the package is built inside (a glossary of lane, batch, chunk, outlet and
window, and a map of its modules): ``docs/internals.md``.
"""

# The distribution's version: hatchling reads it from this line when it builds
# (pyproject.toml, [tool.hatch.version]), so the two cannot differ.
__version__ = "1.1.0"

import typing as _typing

from ._chain import PoolChain as PoolChain
from ._policy import Failure as Failure
from ._run import PoolChainRun as PoolChainRun
from ._stats import ChainStats as ChainStats
from ._stats import StageStats as StageStats

if _typing.TYPE_CHECKING:
    from ._async_run import PoolChainAsyncRun as PoolChainAsyncRun

__all__ = (
    "ChainStats",
    "Failure",
    "PoolChain",
    "PoolChainAsyncRun",
    "PoolChainRun",
    "StageStats",
)

PoolChain.__module__ = __name__
Failure.__module__ = __name__
PoolChainRun.__module__ = __name__
ChainStats.__module__ = __name__
StageStats.__module__ = __name__


def __getattr__(name: str) -> _typing.Any:
    # PoolChainAsyncRun is imported on first use: it imports asyncio, which a
    # program whose chains never touch asyncio should not pay for.
    if name == "PoolChainAsyncRun":
        from ._async_run import PoolChainAsyncRun

        PoolChainAsyncRun.__module__ = __name__
        return PoolChainAsyncRun
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "PoolChainAsyncRun"})
