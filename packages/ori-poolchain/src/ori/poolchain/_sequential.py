"""Single-threaded execution: every item through every stage, in the caller's thread.

Used for debugging and as the reference the concurrent engine must agree with:
same results, same order, and a failure surfaces the same way (the function's
own exception, with the same note naming stage, input index and argument).
Timeouts are not enforced here: there is no second thread to watch the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._async_stage import LoopCaller
from ._errors import ErrorRecord, exception_for, short_repr
from ._stages import StageSpec


def run_sequentially(specs: Sequence[StageSpec], source: Iterator[Any]) -> Iterator[Any]:
    """Yield each input item after it went through every stage function in turn."""
    # asyncio stages: each call runs to completion on one private event loop.
    loops = [LoopCaller(spec.function) if spec.kind == "async" else None for spec in specs]
    try:
        functions = [loop or spec.function for loop, spec in zip(loops, specs, strict=True)]
        yield from _run(specs, functions, source)
    finally:
        for loop in loops:
            if loop is not None:
                loop.close()


def _run(
    specs: Sequence[StageSpec], functions: list[Callable[[Any], Any]], source: Iterator[Any]
) -> Iterator[Any]:
    total = len(specs)
    for index, item in enumerate(source):
        value = item
        for number, function in enumerate(functions, 1):
            try:
                value = function(value)
            except BaseException as exc:
                label = specs[number - 1].label(number, total)
                exception_for(ErrorRecord(index, label, exc, short_repr(value)))  # adds the note
                raise
        yield value
