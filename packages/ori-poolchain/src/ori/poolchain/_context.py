"""What the consumer and every lane of one run share.

Lanes (the threads that run a stage) hold a :class:`RunContext`, never the
consumer's iterator, so dropping the iterator lets the garbage collector close
the run. The context carries the output queue the last stage and every error
report go to, and the ``stopping`` flag that close() raises before it wakes the
lanes up.

Messages between stages are batches ``(indices, values)``: the input positions
(a ``range`` while they are contiguous, which keeps per-item costs off the hot
path, else a list) and a list of the stage's arguments, of equal length. ``STOP`` in a stage's
input queue tells one lane to exit.
"""

from __future__ import annotations

import itertools
import queue
from typing import Any, Final, TypeAlias

from ori.errors import OriError

from ._errors import ErrorRecord, RunFailure, StageLabel
from ._policy import Retries
from ._stats import RunStats
from ._warm import WarmPools

Indices: TypeAlias = "range | list[int]"
Batch: TypeAlias = "tuple[Indices, list[Any]]"
Message: TypeAlias = "Batch | ErrorRecord | SourceEnd | None"
STOP: Final = None

_run_ids = itertools.count(1)


class SourceEnd:
    """In the run's output queue: the input ended after *pulled* items.

    *error* is the exception it raised (any BaseException), or None when it was
    simply exhausted; the consumer raises it once every result before it is out.
    """

    __slots__ = ("error", "pulled")

    def __init__(self, pulled: int, error: BaseException | None) -> None:
        self.pulled = pulled
        self.error = error


def concat(first: Indices, second: Indices) -> Indices:
    """The indices of two batches joined, staying a range when they touch."""
    if type(first) is range and type(second) is range and first.stop == second.start:
        return range(first.start, second.stop)
    return [*first, *second]


class RunContext:
    """State shared by the consumer and the lanes of one run."""

    __slots__ = ("name", "out_queue", "pools", "retries", "stats", "stopping")

    def __init__(self) -> None:
        self.name = f"ori-poolchain-{next(_run_ids)}"
        self.out_queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        # Written only by close(); lanes read it between items (a plain attribute
        # read is atomic, and a stale read only costs one more item of work).
        self.stopping = False
        self.stats = RunStats()
        self.retries = Retries()
        # The chain's warm pools when this run may use them.
        self.pools: WarmPools | None = None

    def report(self, record: ErrorRecord) -> None:
        """Send one failed item to the consumer (any thread).

        An item with retries left in its stage goes back to that stage's queue
        instead, so it is neither counted nor seen as failed.
        """
        if isinstance(record.exception, Exception) and self.retries.again(
            record.stage.number, record.index, record.value
        ):
            return
        self.stats.count_failure(record.stage.number)
        self.out_queue.put(record)

    def fail(self, stage: StageLabel, exc: BaseException) -> None:
        """Fail the whole run: a lane hit an unexpected error (an Ori bug)."""
        if not self.stopping:
            self.out_queue.put(RunFailure(stage=stage, exception=exc))


def setup_failure(
    initializer: Any,
    stage: StageLabel,
    exc: BaseException,
    remote_traceback: str | None = None,
    start_method: str | None = None,
) -> ErrorRecord:
    """The record that fails a run whose stage *initializer* raised *exc*.

    *start_method* is given for an initializer that ran in a worker process.
    """
    name = getattr(initializer, "__qualname__", None) or repr(initializer)
    where = (
        "a lane thread"
        if start_method is None
        else f"a worker process (start method {start_method!r})"
    )
    error = OriError(
        f"the initializer {name} of {stage} raised {type(exc).__name__}: {exc} in {where} "
        "before it ran any item, so the stage cannot run; fix the initializer (its "
        "traceback is chained below)"
    )
    if remote_traceback is None:
        error.__cause__ = exc
    return RunFailure(stage=stage, exception=error, remote_traceback=remote_traceback)
