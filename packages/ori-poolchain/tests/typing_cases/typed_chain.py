"""What mypy --strict and pyright infer for typed chains (checked by test_typing.py).

Never run: type checkers read it. ``# revealed: T`` says what both checkers
must reveal on that line (module prefixes left out); ``# error`` marks a line
that both must report as an error, and no other line may have one.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from typing_extensions import reveal_type

from ori.poolchain import Failure, PoolChain


def times_ten(n: int) -> int:
    return n * 10


def describe(n: int) -> str:
    return f"number {n}"


def words(text: str) -> list[str]:
    return text.split()


def is_long(word: str) -> bool:
    return len(word) > 3


async def fetch(word: str) -> bytes:
    await asyncio.sleep(0)
    return word.encode()


# Stages of every kind fix and follow the types.
chain = PoolChain().add_threadpool(times_ten).add_processpool(describe)
reveal_type(chain)  # revealed: PoolChain[int, str, Never]
reveal_type(chain.execute_eager([1, 2, 3]))  # revealed: list[str]
reveal_type(chain.execute_lazy(range(3)))  # revealed: PoolChainRun[str]
reveal_type(chain.execute_eager_single_threaded([1]))  # revealed: list[str]
reveal_type(chain.execute_lazy_single_threaded([1]))  # revealed: Iterator[str]
on_cpus = PoolChain().add(times_ten, executor_class=None).add_cpupool(describe)
reveal_type(on_cpus)  # revealed: PoolChain[int, str, Never]
reveal_type(chain.add_asyncpool(fetch))  # revealed: PoolChain[int, bytes, Never]
reveal_type(chain.add_dask(words, client=None))  # revealed: PoolChain[int, list[str], Never]
with chain.execute_lazy([1]) as run:
    for text in run:
        reveal_type(text)  # revealed: str

# Operators.
split = chain.add_threadpool(words)
reveal_type(split.flatten())  # revealed: PoolChain[int, str, Never]
reveal_type(split.flatten().filter(is_long))  # revealed: PoolChain[int, str, Never]
reveal_type(chain.batch(10))  # revealed: PoolChain[int, list[str], Never]
first_flattens = PoolChain().flatten().add_threadpool(describe)
reveal_type(first_flattens)  # revealed: PoolChain[Iterable[Any], str, Never]
first_filters = PoolChain().filter(is_long).add_threadpool(words)
reveal_type(first_filters)  # revealed: PoolChain[str, list[str], Never]

# on_error="return" on the chain, a stage or the execution.
returning = PoolChain(on_error="return").add_threadpool(times_ten)
reveal_type(returning.execute_eager([1]))  # revealed: list[int | Failure[Any]]
stage_returns = PoolChain().add_threadpool(describe, on_error="return")
reveal_type(stage_returns.execute_eager([1]))  # revealed: list[str | Failure[int]]
reveal_type(chain.execute_eager([1], on_error="return"))  # revealed: list[str | Failure[Any]]
reveal_type(chain.execute_lazy([1], on_error="skip"))  # revealed: PoolChainRun[str]
for result in stage_returns.execute_eager([1]):
    if isinstance(result, Failure):
        reveal_type(result.item)  # revealed: int
    else:
        reveal_type(result)  # revealed: str


def with_policy(policy: Literal["raise", "skip", "return"]) -> None:
    unknown = PoolChain(on_error=policy).add_threadpool(times_ten)
    reveal_type(unknown)  # revealed: PoolChain[int, int, Failure[Any]]


# Untyped code stays untyped: lambdas give Any, never a false error.
untyped = PoolChain().add_threadpool(lambda n: n * 10).add_processpool(str)
reveal_type(untyped)  # revealed: PoolChain[Any, str, Never]
reveal_type(untyped.execute_eager(["anything", 1]))  # revealed: list[str]
then_typed = PoolChain().add_threadpool(lambda n: n * 10).add_threadpool(describe)
reveal_type(then_typed)  # revealed: PoolChain[Any, str, Never]
plain: PoolChain = untyped
reveal_type(plain.execute_eager([1]))  # revealed: list[Any]
wider: PoolChain[int, object] = chain  # a chain yielding str yields objects


# execute_async yields the same element types to async for.
async def consume_async() -> None:
    reveal_type(chain.execute_async([1]))  # revealed: PoolChainAsyncRun[str]
    async for text in chain.execute_async([1, 2]):
        reveal_type(text)  # revealed: str
    async with returning.execute_async([1]) as returned:
        async for value in returned:
            reveal_type(value)  # revealed: int | Failure[Any]
    async for maybe in chain.execute_async([1], on_error="return"):
        reveal_type(maybe)  # revealed: str | Failure[Any]


# What the checkers flag.
PoolChain().add_threadpool(describe).add_threadpool(times_ten)  # error: str is not int
chain.execute_eager(["one", "two"])  # error: the chain takes int
split.flatten().add_threadpool(times_ten)  # error: the elements are str
chain.flatten().add_threadpool(times_ten)  # error: an element of a str is a str
PoolChain().add_threadpool(times_ten).flatten()  # error: an int is not iterable
chain.filter(lambda text: text + 1)  # error: the predicate gets a str
PoolChain().execute_eager([1])  # error: a chain without stages
chain.add_asyncpool(words)  # error: words returns no awaitable
chain.execute_async(["one"])  # error: the chain takes int
wrong: PoolChain[str, str] = chain  # error: the chain takes int
