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
from ._policy import Failure
from ._stages import StageSpec


def run_sequentially(
    specs: Sequence[StageSpec], source: Iterator[Any], on_error: str = "raise"
) -> Iterator[Any]:
    """Yield each input item after it went through every stage function in turn."""
    calls = [spec.sequential() for spec in specs]
    try:
        yield from _run(specs, [function for function, _ in calls], source, on_error)
    finally:
        for _, close in calls:
            if close is not None:
                close()


def _run(
    specs: Sequence[StageSpec],
    functions: list[Callable[[Any], Any]],
    source: Iterator[Any],
    on_error: str,
) -> Iterator[Any]:
    total = len(specs)
    policies = [spec.on_error or on_error for spec in specs]
    for index, item in enumerate(source):
        value = item
        failure: Failure | None = None
        policy = "raise"
        for number, function in enumerate(functions, 1):
            tries = specs[number - 1].retries
            while True:
                try:
                    value = function(value)
                    break
                except BaseException as exc:
                    if tries > 0 and isinstance(exc, Exception):
                        tries -= 1
                        continue
                    label = specs[number - 1].label(number, total)
                    # exception_for adds the note naming stage, index and argument.
                    record = ErrorRecord(index=index, stage=label, exception=exc, value=value)
                    error = exception_for(record)
                    policy = policies[number - 1]
                    if policy == "raise" or not isinstance(exc, Exception):
                        raise
                    failure = Failure(index, value, str(label), error)
                    break
            if failure is not None:
                break
        if failure is None:
            yield value
        elif policy == "return":
            yield failure
