"""The task an executor or a dask worker runs: one chunk of items, errors as data.

Stages that submit to an executor the user owns, or to a dask cluster, send
:func:`run_chunk` with the stage function and a list of arguments as ONE task,
so that a chunk costs one future, not one per item. The task never raises for a
failing item: it returns every result, and for each failure the exception and
its formatted traceback (the exception loses its traceback when it is pickled
back from another process). The compute time it reports drives the stage's
automatic chunk size.

This module is imported on the worker side (by reference, like any library),
so it only needs the standard library and ``ori.poolchain`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._errors import format_exception_text
from ._wire import ItemError
from ._worker import _portable_exception as portable_exception

ChunkOutcome = tuple[list[Any], list[ItemError], float]


def run_chunk(function: Callable[[Any], Any], values: list[Any], portable: bool) -> ChunkOutcome:
    """Call *function* on each value; return (results, errors, seconds).

    ``errors`` lists :class:`~._wire.ItemError` entries; the matching
    ``results`` entry is None. With *portable* (the outcome will be pickled),
    an exception that would not survive a pickle round trip is replaced by an
    :class:`~ori.errors.OriError` naming it.
    """
    clock = time.perf_counter
    started = clock()
    results: list[Any] = []
    errors: list[ItemError] = []
    size = len(values)
    start = 0
    while start < size:
        try:
            results.extend(map(function, values[start:] if start else values))
            break
        except BaseException as exc:
            start = len(results)  # extend() kept what came before the failure
            results.append(None)
            error = portable_exception(exc) if portable else exc
            errors.append(ItemError(start, error, format_exception_text(exc)))
            del exc, error
            start += 1
    return results, errors, clock() - started
