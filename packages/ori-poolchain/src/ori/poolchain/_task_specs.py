"""Add-time checks of the stages that submit tasks: an Executor instance, a dask cluster."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from ori.errors import OriValidationError
from ori.errors.validation import (
    check_callable,
    check_executor,
    check_positive_int,
    check_positive_number,
    check_process_function,
)

from ._backend import ExecutorBackend
from ._stages import StageSpec


def check_task_limits(
    max_workers: object, timeout: object, chunksize: object, method: str
) -> tuple[int | None, float | None, int | None]:
    """Check the limits of a stage that submits tasks: (workers, seconds, chunk size).

    Each must be positive or None, and since a timeout is per item while these
    stages can only time whole tasks, a timeout needs one item per task.
    """
    workers = check_positive_int(max_workers, "max_workers")
    seconds = check_positive_number(timeout, "timeout")
    chunksize = check_positive_int(chunksize, "chunksize")
    if seconds is not None and chunksize is not None and chunksize > 1:
        raise OriValidationError(
            f"{method} cannot combine timeout with chunksize={chunksize}: the timeout is "
            "per item, and a task can only be timed as a whole, so with a timeout items "
            "are sent one per task; drop chunksize (or set it to 1)"
        )
    return workers, seconds, chunksize


def instance_spec(
    function: Callable[[Any], Any],
    executor: object,
    *,
    max_workers: int | None,
    timeout: float | None,
    chunksize: int | None,
) -> StageSpec:
    """Validate ``add(function, executor=...)`` and describe the stage."""
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
        context = getattr(pool, "_mp_context", None)
        method = context.get_start_method() if context is not None else None
        check_process_function(function, method, name="function")
    return StageSpec(
        function=function,
        kind="instance",
        max_workers=workers,
        timeout=seconds,
        chunksize=chunk,
        backend=pool,
        backend_type=ExecutorBackend,
    )
