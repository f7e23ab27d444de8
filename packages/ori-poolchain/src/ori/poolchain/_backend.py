"""What a stage that submits tasks to something the user owns submits them to.

:class:`Backend` is the interface the :class:`~._submit_stage.SubmitStage`
runtime drives; :class:`ExecutorBackend` serves an Executor instance the user
owns (``add(function, executor=...)``); ``_dask_stage.DaskBackend`` a dask
cluster. Each run has its spec make one (``SubmitSpec.make_backend``) from
the user's object, so the backend can check that object (a closed client)
when the run starts.
"""

from __future__ import annotations

import abc
import concurrent.futures
from collections.abc import Callable
from typing import Any, cast

from ._chunk_task import ChunkOutcome, run_chunk
from ._chunking import PROCESS_TARGET_SECONDS, THREAD_TARGET_SECONDS
from ._compat import executor_max_workers
from ._stages import default_thread_workers


class Backend(abc.ABC):
    """What a :class:`~._submit_stage.SubmitStage` submits its tasks to."""

    #: items are pickled on their way (exceptions must survive a round trip)
    portable: bool = True
    #: seconds of work per task the automatic chunk size aims at
    target_seconds: float = PROCESS_TARGET_SECONDS
    #: how the timeout message says what happened to an overdue task
    abandon_note: str = ""

    @abc.abstractmethod
    def workers(self) -> int:
        """Workers (threads or processes) that could run this stage's tasks."""

    @abc.abstractmethod
    def submit(self, function: Callable[[Any], Any], values: list[Any]) -> Any:
        """Submit ``run_chunk(function, values, portable)``; return its future."""

    @abc.abstractmethod
    def outcome(self, future: Any) -> ChunkOutcome:
        """The finished task's outcome; raises what made the task itself fail."""

    @abc.abstractmethod
    def cancel(self, futures: list[Any]) -> None:
        """Cancel *futures* (never raises, may block briefly)."""


class ExecutorBackend(Backend):
    """A :class:`concurrent.futures.Executor` instance the user owns."""

    abandon_note = (
        "its task was cancelled if it had not started; a call that has started cannot "
        "be stopped, so it finishes in the background and its result is discarded"
    )

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self._executor = executor
        in_process = isinstance(executor, concurrent.futures.ThreadPoolExecutor)
        self.portable = not in_process
        self.target_seconds = THREAD_TARGET_SECONDS if in_process else PROCESS_TARGET_SECONDS

    def workers(self) -> int:
        return executor_max_workers(self._executor) or default_thread_workers()

    def submit(self, function: Callable[[Any], Any], values: list[Any]) -> Any:
        return self._executor.submit(run_chunk, function, values, self.portable)

    def outcome(self, future: Any) -> ChunkOutcome:
        return cast(ChunkOutcome, future.result())

    def cancel(self, futures: list[Any]) -> None:
        for future in futures:
            future.cancel()
