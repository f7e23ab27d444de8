"""Single-threaded execution: every item through every stage, in the caller's thread.

Used for debugging and as the reference the concurrent engine must agree with:
same results, same order, and a failure surfaces the same way (the function's
own exception, with the same note naming stage, input index and argument).
Error policies and retries apply as in a concurrent run: a failing call is
tried again up to the stage's ``retries``, then the item raises, is skipped or
becomes a :class:`~._policy.Failure`. Timeouts are not enforced here: there is
no second thread to watch the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._errors import ErrorRecord, exception_for
from ._operators import PAUSE, Carried, OperatorRun, Step, Stream, plan
from ._policy import Failure
from ._stages import StageSpec


def run_sequentially(
    specs: Sequence[Step], source: Iterator[Any], on_error: str = "raise"
) -> Iterator[Any]:
    """Yield each input item after it went through every stage function in turn."""
    stages = [spec for spec in specs if isinstance(spec, StageSpec)]
    calls = [spec.sequential() for spec in stages]
    functions = [function for function, _ in calls]
    try:
        yield from _run(specs, functions, source, on_error)
    finally:
        for _, close in calls:
            if close is not None:
                close()


def _run(
    specs: Sequence[Step],
    functions: list[Callable[[Any], Any]],
    source: Iterator[Any],
    on_error: str,
) -> Iterator[Any]:
    """The chain as the concurrent runs see it: parts of stages with operators between.

    A chain without operators is one part, so plain chains take this path too.

    The operators are the very code the concurrent runs use (``_operators.py``),
    without a clock: batch timeouts are not enforced here.
    """
    parts, trailing = plan(list(specs))
    total = sum(len(part.stages) for part in parts)
    stream: Stream = _numbered(source)
    done = 0
    for part in parts:
        for operator, label in part.operators:
            stream = operator.apply(stream, OperatorRun(label, on_error))
        count = len(part.stages)
        stream = _stages(
            stream, part.stages, functions[done : done + count], part.first, total, on_error
        )
        done += count
    for operator, label in trailing:
        stream = operator.apply(stream, OperatorRun(label, on_error))
    try:
        for _, value in stream:
            if value is PAUSE:
                continue
            yield value.failure if type(value) is Carried else value
    finally:
        stream.close()


_SKIPPED = object()  # an item dropped by on_error="skip"


def _numbered(source: Iterator[Any]) -> Stream:
    yield from enumerate(source)


def _stages(
    stream: Stream,
    specs: list[StageSpec],
    functions: list[Callable[[Any], Any]],
    first: int,
    total: int,
    on_error: str,
) -> Stream:
    """Every item of *stream* through *specs*; failures of earlier steps pass untouched."""
    policies = [spec.on_error or on_error for spec in specs]
    try:
        for origin, item in stream:
            if item is PAUSE or type(item) is Carried:
                yield origin, item
                continue
            value = item
            for offset, function in enumerate(functions):
                spec = specs[offset]
                tries = spec.retries
                while True:
                    try:
                        value = function(value)
                        break
                    except BaseException as exc:
                        if tries > 0 and isinstance(exc, Exception):
                            tries -= 1
                            continue
                        label = spec.label(first + offset, total)
                        record = ErrorRecord(index=origin, stage=label, exception=exc, value=value)
                        error = exception_for(record)
                        policy = policies[offset]
                        if policy == "raise" or not isinstance(exc, Exception):
                            raise
                        if policy == "skip":
                            value = _SKIPPED
                        else:
                            value = Carried(Failure(origin, value, str(label), error))
                        break
                if value is _SKIPPED or type(value) is Carried:
                    break
            if value is not _SKIPPED:
                yield origin, value
    finally:
        stream.close()
