"""Each peer's way of expressing the benchmark workloads, written as its users would.

Two shapes cover every workload:

* ``chain(jobs, spec)`` — the 3-stage download (threads) -> compute (processes) ->
  save (threads) pipeline, in whatever form the peer offers (one pipeline object,
  chained lazy maps, or one pool per stage).
* ``pmap(function, items, ...)`` — one process stage over a (possibly infinite)
  stream of items, read lazily by the consumer;
* ``tmap(function, items, workers)`` — the same with one thread stage.

Both are generators: the peer's pools are created on the first ``next()`` and torn
down when the generator finishes or is closed, so teardown (and a teardown that
hangs) is part of what the benchmark sees. Peers are imported inside the functions:
a missing peer fails only its own rows, and this module imports in any venv
(including the one holding the original Ori 0.1.2).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

from _peer_workloads import compute, download, save

# What every adapter returns: a generator, so that close() tears the peer down.
Stream = Generator[Any, None, None]


@dataclasses.dataclass(frozen=True)
class ChainSpec:
    """Workers per stage of the 3-stage chain."""

    download_workers: int = 4
    compute_workers: int = 2
    save_workers: int = 4


@dataclasses.dataclass(frozen=True)
class Peer:
    """How to find a peer and what it can express."""

    name: str
    modules: tuple[str, ...]
    distribution: str | None
    chain: Callable[[Iterable[Any], ChainSpec], Stream] | None
    pmap: Callable[..., Stream] | None
    tmap: Callable[..., Stream] | None = None
    ordered: bool = True
    how: str = ""

    def missing(self) -> list[str]:
        """Modules of this peer that cannot be imported here."""
        return [name for name in self.modules if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# --- concurrent.futures ---------------------------------------------------------------


def _cf_chain(jobs: Iterable[Any], spec: ChainSpec) -> Stream:
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    with (
        ThreadPoolExecutor(spec.download_workers) as first,
        ProcessPoolExecutor(spec.compute_workers) as second,
        ThreadPoolExecutor(spec.save_workers) as third,
    ):
        yield from third.map(save, second.map(compute, first.map(download, jobs)))


def _cf_pmap(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    timeout: float | None = None,
    chunksize: int | None = None,
    keep_going: bool = False,
) -> Stream:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as executor:
        yield from executor.map(function, items, timeout=timeout, chunksize=chunksize or 1)


def _cf_tmap(function: Callable[[Any], Any], items: Iterable[Any], *, workers: int) -> Stream:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as executor:
        yield from executor.map(function, items)


# --- multiprocessing.Pool -----------------------------------------------------------


def _mp_chain(jobs: Iterable[Any], spec: ChainSpec) -> Stream:
    from multiprocessing.pool import Pool, ThreadPool

    with (
        ThreadPool(spec.download_workers) as first,
        Pool(spec.compute_workers) as second,
        ThreadPool(spec.save_workers) as third,
    ):
        yield from third.imap(save, second.imap(compute, first.imap(download, jobs)))


def _mp_pmap(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    timeout: float | None = None,
    chunksize: int | None = None,
    keep_going: bool = False,
) -> Stream:
    from multiprocessing.pool import Pool

    with Pool(workers) as pool:
        results = pool.imap(function, items, chunksize=chunksize or 1)
        if timeout is None or chunksize not in (None, 1):
            # With chunks, imap returns a plain generator (no next(timeout)).
            yield from results
            return
        while True:
            try:
                yield results.next(timeout)
            except StopIteration:
                return


def _mp_tmap(function: Callable[[Any], Any], items: Iterable[Any], *, workers: int) -> Stream:
    from multiprocessing.pool import ThreadPool

    with ThreadPool(workers) as pool:
        yield from pool.imap(function, items)


# --- pypeln ---------------------------------------------------------------------------
# Stages are bounded with maxsize (pypeln's default, 0, is an unbounded queue).


def _pypeln_chain(jobs: Iterable[Any], spec: ChainSpec) -> Stream:
    import pypeln as pl

    stage = pl.thread.map(
        download, jobs, workers=spec.download_workers, maxsize=2 * spec.download_workers
    )
    stage = pl.process.map(
        compute, stage, workers=spec.compute_workers, maxsize=2 * spec.compute_workers
    )
    stage = pl.thread.map(save, stage, workers=spec.save_workers, maxsize=2 * spec.save_workers)
    yield from stage


def _pypeln_pmap(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    timeout: float | None = None,
    chunksize: int | None = None,
    keep_going: bool = False,
) -> Stream:
    import pypeln as pl

    # pypeln has no chunking; its timeout is a number of seconds or 0 for none.
    yield from pl.process.map(
        function, items, workers=workers, maxsize=4 * workers, timeout=timeout or 0
    )


def _pypeln_tmap(function: Callable[[Any], Any], items: Iterable[Any], *, workers: int) -> Stream:
    import pypeln as pl

    yield from pl.thread.map(function, items, workers=workers, maxsize=4 * workers)


# --- mpire ------------------------------------------------------------------------------
# mpire unpacks tuple items into arguments: every item is wrapped in a 1-tuple.


def _wrap(items: Iterable[Any]) -> Iterator[tuple[Any]]:
    return ((item,) for item in items)


def _mpire_chain(jobs: Iterable[Any], spec: ChainSpec) -> Stream:
    from mpire import WorkerPool

    with (
        WorkerPool(n_jobs=spec.download_workers, start_method="threading") as first,
        WorkerPool(n_jobs=spec.compute_workers) as second,
        WorkerPool(n_jobs=spec.save_workers, start_method="threading") as third,
    ):
        downloaded = first.imap(download, _wrap(jobs), chunk_size=1)
        computed = second.imap(compute, _wrap(downloaded), chunk_size=1)
        yield from third.imap(save, _wrap(computed), chunk_size=1)


def _mpire_pmap(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    timeout: float | None = None,
    chunksize: int | None = None,
    keep_going: bool = False,
) -> Stream:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=workers) as pool:
        yield from pool.imap(
            function, _wrap(items), chunk_size=chunksize or 1, task_timeout=timeout
        )


def _mpire_tmap(function: Callable[[Any], Any], items: Iterable[Any], *, workers: int) -> Stream:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=workers, start_method="threading") as pool:
        yield from pool.imap(function, _wrap(items), chunk_size=1)


# --- joblib ---------------------------------------------------------------------------


def _joblib_chain(jobs: Iterable[Any], spec: ChainSpec) -> Stream:
    from joblib import Parallel, delayed

    downloaded = Parallel(n_jobs=spec.download_workers, prefer="threads", return_as="generator")(
        delayed(download)(job) for job in jobs
    )
    computed = Parallel(n_jobs=spec.compute_workers, return_as="generator")(
        delayed(compute)(item) for item in downloaded
    )
    yield from Parallel(n_jobs=spec.save_workers, prefer="threads", return_as="generator")(
        delayed(save)(item) for item in computed
    )


def _joblib_pmap(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    timeout: float | None = None,
    chunksize: int | None = None,
    keep_going: bool = False,
) -> Stream:
    from joblib import Parallel, delayed

    # batch_size="auto" is joblib's own answer to chunking.
    parallel = Parallel(n_jobs=workers, return_as="generator", timeout=timeout)
    yield from parallel(delayed(function)(item) for item in items)


def _joblib_tmap(function: Callable[[Any], Any], items: Iterable[Any], *, workers: int) -> Stream:
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=workers, prefer="threads", return_as="generator")
    yield from parallel(delayed(function)(item) for item in items)


# --- loky -------------------------------------------------------------------------------


def _loky_chain(jobs: Iterable[Any], spec: ChainSpec) -> Stream:
    from concurrent.futures import ThreadPoolExecutor

    import loky

    with (
        ThreadPoolExecutor(spec.download_workers) as first,
        loky.ProcessPoolExecutor(spec.compute_workers) as second,
        ThreadPoolExecutor(spec.save_workers) as third,
    ):
        yield from third.map(save, second.map(compute, first.map(download, jobs)))


def _loky_pmap(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    timeout: float | None = None,
    chunksize: int | None = None,
    keep_going: bool = False,
) -> Stream:
    import loky

    with loky.ProcessPoolExecutor(workers) as executor:
        yield from executor.map(function, items, timeout=timeout, chunksize=chunksize or 1)


# --- Ori: this repository's PoolChain and the original 0.1.2 ---------------------------
# Both expose the same reference API; which one is imported depends on the interpreter
# (the original lives in its own venv). The original accepts only int timeouts.


def _ori_chain(jobs: Iterable[Any], spec: ChainSpec) -> Stream:
    from ori.poolchain import PoolChain

    chain = (
        PoolChain()
        .add_threadpool(download, max_workers=spec.download_workers)
        .add_processpool(compute, max_workers=spec.compute_workers)
        .add_threadpool(save, max_workers=spec.save_workers)
    )
    results = chain.execute_lazy(jobs)
    try:
        yield from results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _ori_pmap(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    timeout: float | None = None,
    chunksize: int | None = None,
    keep_going: bool = False,
) -> Stream:
    from ori.poolchain import PoolChain

    options: dict[str, Any] = {"max_workers": workers}
    if original_ori():
        # The original needs a chunk size and accepts only int timeouts.
        if chunksize:
            options["chunksize"] = chunksize
        if timeout is not None:
            options["timeout"] = max(1, math.ceil(timeout))
    elif timeout is not None:
        options["timeout"] = timeout
    # Error policy "return" (where this PoolChain has one): a failure object comes
    # out in the failed item's place and the run goes on.
    policy: dict[str, Any] = {"on_error": "return"} if keep_going else {}
    chain = PoolChain(**policy) if policy and _accepts(PoolChain, "on_error") else PoolChain()
    if policy and _accepts(chain.add_processpool, "on_error"):
        options.update(policy)
    execute_options: dict[str, Any] = (
        policy if policy and _accepts(chain.execute_lazy, "on_error") else {}
    )
    results = chain.add_processpool(function, **options).execute_lazy(items, **execute_options)
    try:
        yield from results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _accepts(function: Callable[..., Any], name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _ori_tmap(function: Callable[[Any], Any], items: Iterable[Any], *, workers: int) -> Stream:
    from ori.poolchain import PoolChain

    results = PoolChain().add_threadpool(function, max_workers=workers).execute_lazy(items)
    try:
        yield from results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def original_ori() -> bool:
    """True when ``ori`` here is the original 0.1.2 distribution (its own venv)."""
    from importlib import metadata

    try:
        return metadata.version("ori") == "0.1.2"
    except metadata.PackageNotFoundError:
        return False


ORI = "Ori"
ORI_ORIGINAL = "Ori 0.1.2 (original)"

PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in [
        Peer(
            ORI,
            ("ori.poolchain",),
            "ori-poolchain",
            _ori_chain,
            _ori_pmap,
            _ori_tmap,
            how="PoolChain: add_threadpool -> add_processpool -> add_threadpool",
        ),
        Peer(
            ORI_ORIGINAL,
            ("ori.poolchain",),
            "ori",
            _ori_chain,
            _ori_pmap,
            _ori_tmap,
            how="its PoolChain (chained Executor.map), in its own venv",
        ),
        Peer(
            "concurrent.futures",
            (),
            None,
            _cf_chain,
            _cf_pmap,
            _cf_tmap,
            how="ThreadPoolExecutor.map -> ProcessPoolExecutor.map -> ThreadPoolExecutor.map",
        ),
        Peer(
            "multiprocessing.Pool",
            (),
            None,
            _mp_chain,
            _mp_pmap,
            _mp_tmap,
            how="ThreadPool.imap -> Pool.imap -> ThreadPool.imap",
        ),
        Peer(
            "pypeln",
            ("pypeln",),
            "pypeln",
            _pypeln_chain,
            _pypeln_pmap,
            _pypeln_tmap,
            ordered=False,
            how="pl.thread.map -> pl.process.map -> pl.thread.map, maxsize 2 x workers",
        ),
        Peer(
            "mpire",
            ("mpire",),
            "mpire",
            _mpire_chain,
            _mpire_pmap,
            _mpire_tmap,
            how="three WorkerPools (threading, processes, threading), chained imap",
        ),
        Peer(
            "joblib",
            ("joblib",),
            "joblib",
            _joblib_chain,
            _joblib_pmap,
            _joblib_tmap,
            how='three Parallel(return_as="generator"), chained',
        ),
        Peer(
            "loky",
            ("loky",),
            "loky",
            _loky_chain,
            _loky_pmap,
            how="ThreadPoolExecutor.map -> loky.ProcessPoolExecutor.map -> ThreadPoolExecutor.map",
        ),
    ]
}
