"""Dask stages: the tasks of a :class:`~._submit_stage.SubmitStage` on a dask cluster.

Data flow: the stage's dispatcher thread calls ``client.submit(run_chunk,
function, chunk, pure=False)`` while fewer than ``window`` tasks are in flight
(``Client.map`` cannot do that: it refuses iterators and submits everything at
once); dask calls the done callback from its own callback thread; the
dispatcher fetches the outcome with ``future.result()``. On close the
dispatcher cancels every task it still has (``client.cancel``, one round trip
to the scheduler), so the cluster forgets them; a task a worker has already
started cannot be interrupted by dask, it runs to its end and its result is
dropped.

dask is an optional dependency (``pip install 'ori-poolchain[dask]'``): it is
imported only when a dask stage is added, and the client is used through its
public methods only.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from ori.errors import OriValidationError
from ori.errors.validation import (
    check_callable,
    describe,
)

from ._backend import Backend
from ._chunk_task import ChunkOutcome, run_chunk
from ._submit_stage import SubmitSpec, check_task_limits

DASK_TARGET_SECONDS = 0.1  # a dask task costs about a millisecond of scheduling
INSTALL_HINT = "pip install 'ori-poolchain[dask]'"


def import_distributed() -> Any:
    """The ``distributed`` module, or an error telling how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise OriValidationError(
            "add_dask needs dask.distributed, which is not installed in this "
            f"environment; install it with: {INSTALL_HINT}"
        ) from exc
    return distributed


class DaskBackend(Backend):
    """A ``distributed.Client`` the user owns."""

    portable = True
    target_seconds = DASK_TARGET_SECONDS
    abandon_note = (
        "its cluster task was cancelled (a call that has already started on a dask "
        "worker cannot be interrupted: the worker finishes it and drops the result)"
    )

    def __init__(self, client: Any) -> None:
        status = getattr(client, "status", "running")
        if status in ("closing", "closed"):
            raise OriValidationError(
                f"the dask client of this stage is {status}; keep the Client open while "
                "the chain runs (e.g. execute inside 'with Client(...) as client:')"
            )
        self._client = client

    def workers(self) -> int:
        return cluster_threads(self._client)

    def submit(self, function: Callable[[Any], Any], values: list[Any]) -> Any:
        name = re.sub(r"[^A-Za-z0-9_]+", "_", getattr(function, "__name__", "function"))
        key = f"ori-{name}-{uuid.uuid4().hex}"
        return self._client.submit(run_chunk, function, values, True, key=key, pure=False)

    def outcome(self, future: Any) -> ChunkOutcome:
        return cast(ChunkOutcome, future.result())

    def cancel(self, futures: list[Any]) -> None:
        with contextlib.suppress(Exception):  # the client may already be closed
            self._client.cancel(futures)


def cluster_threads(client: Any) -> int:
    """The worker threads of *client*'s cluster now (at least 1)."""
    threads: dict[str, int] = client.nthreads()  # {worker address: threads}
    return max(1, sum(threads.values()))


@dataclass(frozen=True, kw_only=True)
class DaskSpec(SubmitSpec):
    """``add_dask``: tasks on a dask cluster through the user's ``distributed.Client``."""

    kind_name = "dask"
    thread_suffix: ClassVar[str] = "dask"

    @classmethod
    def create(
        cls,
        function: Callable[[Any], Any],
        client: object,
        *,
        max_workers: object,
        timeout: object,
        chunksize: object,
    ) -> DaskSpec:
        check_callable(function, "function")
        distributed = import_distributed()
        if not isinstance(client, distributed.Client):
            raise OriValidationError(
                "client must be a distributed.Client connected to your cluster, such as "
                "Client(LocalCluster()) or Client('tcp://scheduler:8786'), "
                f"got {describe(client)}"
            )
        if client.asynchronous:
            raise OriValidationError(
                "client is an asynchronous dask Client (asynchronous=True), which Ori cannot "
                "drive from its own threads; pass a regular Client"
            )
        workers, seconds, chunk = check_task_limits(max_workers, timeout, chunksize, "add_dask")
        return cls(
            function=function, backend=client, max_workers=workers, timeout=seconds, chunksize=chunk
        )

    def default_workers(self) -> int:
        return self.make_backend().workers()  # refuses a closed client

    def make_backend(self) -> Backend:
        return DaskBackend(self.backend)
