"""``add(function, executor=...)``: a stage on a ``concurrent.futures.Executor`` the user owns."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ori.errors import OriValidationError
from ori.errors.validation import check_callable, check_executor, check_process_function

from ._backend import Backend, ExecutorBackend
from ._compat import executor_start_method
from ._submit_stage import SubmitSpec, check_task_limits


@dataclass(frozen=True, kw_only=True)
class UserExecutorSpec(SubmitSpec):
    """The executor is the user's: Ori submits chunks to it and never shuts it down."""

    thread_suffix: ClassVar[str] = "instance"

    @classmethod
    def create(
        cls,
        function: Callable[[Any], Any],
        executor: object,
        *,
        max_workers: object,
        timeout: object,
        chunksize: object,
    ) -> UserExecutorSpec:
        check_callable(function, "function")
        if type(executor).__module__.split(".")[0] == "distributed":
            raise OriValidationError(
                "executor is a dask.distributed object; run the stage on the cluster with "
                "add_dask(function, client=client) instead, which keeps a bounded window of "
                "tasks and cancels them when the run ends"
            )
        pool = check_executor(executor, "executor")
        workers, seconds, chunk = check_task_limits(
            max_workers, timeout, chunksize, "add(executor=...)"
        )
        if isinstance(pool, concurrent.futures.ProcessPoolExecutor):
            check_process_function(function, executor_start_method(pool), name="function")
        return cls(
            function=function, backend=pool, max_workers=workers, timeout=seconds, chunksize=chunk
        )

    @property
    def kind_name(self) -> str:
        return f"{type(self.backend).__name__} instance"

    def default_workers(self) -> int:
        return self.make_backend().workers()

    def make_backend(self) -> Backend:
        return ExecutorBackend(self.backend)
