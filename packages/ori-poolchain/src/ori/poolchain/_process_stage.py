"""Process stages: one lane thread per worker process that Ori owns.

Data flow of one lane (see ``_worker.py`` for the other end of the pipe)::

    in_queue --batches--> gather a chunk (1 blocking get, then only what is
        already queued, up to the stage's chunk size) --pickle--> worker pipe
        (+ the next chunk, prefetched, when the stage has no timeout)
    worker pipe --replies--> successes to the outlet, failures to the consumer

While a chunk runs, the lane waits on the worker's pipe *and* its process
sentinel (one ``select.poll`` object per worker), with a deadline when the stage
has a timeout. The worker publishes what it is running in a shared array (the
item and its start time with a timeout, else the current slice of items), so
the lane knows what a stuck or dead worker held:

* a reply arrives: forward it; the chunk is done when the reply says so (a
  worker may hand back the unstarted end of a chunk that got slow: requeued);
* the deadline passes: kill that one worker, report the item as
  :class:`~ori.errors.OriTimeoutError`, hand the chunk's unfinished items back to
  the queue;
* the worker dies (sentinel ready or EOF): report the item as
  :class:`~ori.errors.OriWorkerCrashedError` (a slice of several items first
  runs again item by item to find it), hand the rest back, prefetched chunk
  included.

Either way the lane starts a replacement worker when it next has work, so a
stage never loses capacity. A new worker gets no chunk before it reported
ready (see ``_worker.py``), within ``READY_DEADLINE_SECONDS``; one that dies or
hangs before that blames no item: it is replaced, and ``MAX_START_FAILURES``
failed starts in a row end the run with :class:`~ori.errors.OriWorkerStartError`.
Which start method each worker gets is ``_starting.py``'s business (under
fork, none is forked beside running threads). Ori does not use ``ProcessPoolExecutor`` here
because it can neither stop one task nor survive a worker's death.

Inside a chain's ``with`` block, lanes take their workers from the chain's
warm pools and give clean ones back when they exit (see ``_warm.py``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import queue
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ori.errors import (
    OriValidationError,
    OriWorkerCrashedError,
    OriWorkerStartError,
)
from ori.errors.remote import describe_exit_code
from ori.errors.validation import (
    check_callable,
    check_mp_context,
    check_positive_int,
    check_positive_number,
    describe,
)

from ._chunking import PROCESS_GIVE_BACK_SECONDS, process_sizer
from ._context import STOP, Batch, Indices, RunContext, concat, setup_failure
from ._errors import (
    ErrorRecord,
    RunFailure,
    StageLabel,
    format_exception_text,
    short_repr,
    timeout_record,
)
from ._pickling import check_stage_function
from ._stages import StageRuntime, StageSpec, check_initializer, usable_cpus
from ._starting import StartPlan, start_failure_hint
from ._status import StatusBoard, slot_count
from ._wire import (
    ChunkUnreadable,
    Message,
    Reply,
    SetupFailed,
    UnreadableReply,
    WorkerReady,
    WorkerStartFailed,
    decode,
    dumps,
)
from ._worker import WorkerCode, inside_worker, worker_main

STOP_GRACE_SECONDS = 1.0
WORKER_START_SECONDS = 60.0
STARTUP_POLL_SECONDS = 0.02
# A worker that has not reported ready this long after its start is killed and
# replaced: generous, because a spawned worker imports the user's main module
# (and whatever it imports) on a machine that may be busy.
READY_DEADLINE_SECONDS = 60.0
MAX_START_FAILURES = 3  # failed starts in a row (no worker got ready between) end the run
PREFETCH_BELOW_SECONDS = 0.005


def context_for(
    mp_context: object, start_method: object
) -> multiprocessing.context.BaseContext | None:
    """The checked context of ``mp_context=`` or ``start_method=`` (at most one)."""
    context = check_mp_context(mp_context)
    if start_method is None:
        return context
    if context is not None:
        raise OriValidationError(
            "give either mp_context or start_method, not both: start_method="
            f"{start_method!r} is a shorthand for mp_context=multiprocessing.get_context(...)"
        )
    methods = multiprocessing.get_all_start_methods()
    if not isinstance(start_method, str) or start_method not in methods:
        raise OriValidationError(
            f"start_method must be one of {', '.join(map(repr, methods))} on this platform, "
            f"got {describe(start_method)}; or None for the interpreter's default"
        )
    return multiprocessing.get_context(start_method)


@dataclass(frozen=True, kw_only=True)
class ProcessSpec(StageSpec):
    """``add_processpool`` (and ``add_cpupool`` with the GIL): worker processes Ori owns."""

    chunksize: int | None = None  # None: automatic
    mp_context: multiprocessing.context.BaseContext | None = None  # None: the default
    # Called as initializer(*initargs) once per worker process before its first item.
    initializer: Callable[..., Any] | None = None
    initargs: tuple[Any, ...] = ()
    cpu_bound: bool = False  # add_cpupool: a label that says so

    @classmethod
    def create(
        cls,
        function: Callable[[Any], Any],
        *,
        max_workers: object,
        timeout: object,
        chunksize: object,
        mp_context: object = None,
        start_method: object = None,
        initializer: object = None,
        initargs: object = (),
        cpu_bound: bool = False,
    ) -> ProcessSpec:
        check_callable(function, "function")
        workers = check_positive_int(max_workers, "max_workers")
        seconds = check_positive_number(timeout, "timeout")
        chunk = check_positive_int(chunksize, "chunksize")
        context = context_for(mp_context, start_method)
        method = None if context is None else context.get_start_method()
        check_stage_function(function, method, "function")
        setup = check_initializer(initializer, initargs)
        if setup is not None:
            check_stage_function(setup[0], method, "initializer")
        return cls(
            function=function,
            max_workers=workers,
            timeout=seconds,
            chunksize=chunk,
            mp_context=context,
            initializer=None if setup is None else setup[0],
            initargs=() if setup is None else setup[1],
            cpu_bound=cpu_bound,
        )

    @property
    def kind_name(self) -> str:
        return "cpu pool on processes" if self.cpu_bound else "process pool"

    def default_workers(self) -> int:
        return usable_cpus()

    def check_run(self) -> None:
        # The default start method may have changed since add time.
        method = None if self.mp_context is None else self.mp_context.get_start_method()
        check_stage_function(self.function, method, "function")
        if self.initializer is not None:
            check_stage_function(self.initializer, method, "initializer")

    def build(self, label: StageLabel, ctx: RunContext) -> StageRuntime:
        return ProcessStage(self, label, ctx)


class _Worker:
    """One worker process and the parent's end of its pipe."""

    __slots__ = ("_poller", "conn", "method", "prefetch_bytes", "process", "ready", "started")

    def __init__(
        self, process: multiprocessing.process.BaseProcess, conn: Connection, method: str
    ) -> None:
        self.process = process
        self.conn = conn
        self.method = method  # its start method, for messages
        self.started = time.monotonic()
        self.ready = False  # it sent WorkerReady (and that was read)
        # A second chunk may wait in the pipe while the worker computes the
        # first only if it fits in the socket's buffer: a send that blocked
        # while the worker blocked sending its reply would deadlock.
        self.prefetch_bytes = _send_buffer_size(conn) // 4
        # One poll object for the worker's life: multiprocessing.connection.wait
        # builds a selector per call, a cost paid on every chunk.
        self._poller: Any = None
        if hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(conn.fileno(), select.POLLIN)
            self._poller.register(process.sentinel, select.POLLIN)

    def wait(self, timeout: float | None) -> tuple[bool, bool]:
        """Wait up to *timeout* seconds: (a reply is readable, the process ended)."""
        if self._poller is None:
            ready = multiprocessing.connection.wait([self.conn, self.process.sentinel], timeout)
            return self.conn in ready, self.process.sentinel in ready
        events = self._poller.poll(None if timeout is None else timeout * 1000)
        conn_fd = self.conn.fileno()
        readable = gone = False
        for fd, _ in events:
            if fd == conn_fd:
                readable = True  # POLLHUP and POLLERR too: recv_bytes() reports them
            else:
                gone = True
        return readable, gone

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the process and what it started, and reap it (any thread)."""
        self._kill_group()
        with contextlib.suppress(OSError, AttributeError, ValueError):
            self.process.kill()
        self._reap(STOP_GRACE_SECONDS)

    def stop(self, grace: float) -> None:
        """Ask the worker to exit, then escalate: wait, SIGTERM, SIGKILL."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send_bytes(dumps(None))
        self._reap(grace)

    def terminate(self) -> None:
        """SIGTERM without waiting (any thread; used to interrupt a busy worker)."""
        with contextlib.suppress(OSError, AttributeError, ValueError):
            self.process.terminate()

    def _kill_group(self) -> None:
        """SIGKILL the worker's process group: what its stage function started.

        Called while the worker is alive or not yet reaped, so the group id
        cannot have been reused. A worker that did not lead a group yet (it
        was still starting) has no group to kill.
        """
        pid = self.process.pid
        if pid is not None and hasattr(os, "killpg"):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

    def _reap(self, grace: float) -> None:
        process = self.process
        try:
            # Wait for the exit without reaping, so that the group can be killed
            # before the worker's pid (its group id) is released.
            for escalate in (None, process.terminate, process.kill):
                if escalate is not None:
                    escalate()
                if multiprocessing.connection.wait([process.sentinel], grace):
                    break
            self._kill_group()
            process.join(grace)
        except (AssertionError, ValueError):  # never started, or already closed
            pass
        with contextlib.suppress(OSError):
            self.conn.close()


class _Lane:
    """One lane of a process stage: a thread that drives the worker of its slot.

    The slot (its place in the status array and the warm pools) outlives the
    workers it drives: a worker that dies or is killed is replaced in the
    same slot.
    """

    __slots__ = ("busy", "crashes", "fast", "slot", "solo", "thread", "worker")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.worker: _Worker | None = None
        self.thread: threading.Thread | None = None
        self.busy = False
        self.crashes = 0  # workers of this lane that died while running a chunk
        # Items to run again one per chunk, once the current chunk is done: their
        # chunk (or reply) could not be unpickled, and only alone is one blamed.
        self.solo: list[tuple[int, Any]] = []
        # Whether its last chunk took under PREFETCH_BELOW_SECONDS: only then
        # is a second chunk sent ahead (for slow items it would only tie work
        # to this worker while another one might be idle).
        self.fast = False


class ProcessStage(StageRuntime):
    """A stage whose lanes each drive one worker process."""

    spec: ProcessSpec

    def __init__(self, spec: ProcessSpec, label: StageLabel, ctx: RunContext) -> None:
        super().__init__(spec, label, ctx)
        self.sizer = process_sizer(spec.chunksize)
        self._mp = spec.mp_context or multiprocessing.get_context()
        # What each worker is running, shared with the workers (see _status.py).
        make_status = functools.partial(self._mp.RawArray, "d", slot_count(self.workers))
        pools = ctx.pools
        self._status = StatusBoard(
            make_status() if pools is None else pools.status_array(spec, self.workers, make_status)
        )
        self._lanes = [_Lane(slot) for slot in range(self.workers)]
        self._worker_numbers = 0
        setup = None if spec.initializer is None else (spec.initializer, spec.initargs)
        self._plan = StartPlan(self._mp, WorkerCode(spec.function, setup), str(label))
        self._setup_failed = False
        self._start_lock = threading.Lock()
        self._start_failures = 0  # failed starts since a worker last got ready
        self._cannot_start = False  # MAX_START_FAILURES reached: the run is failing
        self._interrupted: set[int | None] = set()  # pids terminated by begin_stop

    def lane_count(self) -> int:
        return len(self._lanes)

    # -- worker processes -------------------------------------------------

    def _start_worker(self, lane: _Lane) -> _Worker | None:
        """Start the lane's worker; None (the failure counted) if it could not start."""
        context, code = self._plan.choose()
        method = context.get_start_method()
        parent_end, child_end = multiprocessing.Pipe(duplex=True)
        self._worker_numbers += 1
        process = context.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(
                child_end,
                self._status.array,
                lane.slot,
                code,
                parent_end if method == "fork" else None,
                self.spec.timeout is not None,
                PROCESS_GIVE_BACK_SECONDS if self.sizer.adaptive else None,
                not inside_worker(),  # a top-level worker leads a process group
            ),
            name=f"{self.ctx.name}-stage{self.label.number}-worker{self._worker_numbers}",
            daemon=True,
        )
        try:
            process.start()
        except Exception as exc:
            # e.g. the forkserver died while importing an unguarded main module
            parent_end.close()
            child_end.close()
            self._start_failed(
                f"a worker process could not be started ({type(exc).__name__}: {exc})", method
            )
            return None
        except BaseException:
            parent_end.close()
            child_end.close()
            raise
        child_end.close()
        lane.worker = _Worker(process, parent_end, method)
        return lane.worker

    def start_processes(self) -> None:
        # Raises here, before anything runs, when the function cannot be pickled
        # for the workers (the message names the stage and the fix).
        self._plan.choose()
        pools = self.ctx.pools
        for lane in self._lanes:
            if pools is not None:
                lane.worker = pools.take(self.ctx, self.spec, self.workers, lane.slot)
                if lane.worker is not None and lane.worker.process.is_alive():
                    continue
                if lane.worker is not None:
                    lane.worker.kill()
                    lane.worker = None
            self._start_worker(lane)

    def _await_ready(self, lane: _Lane, worker: _Worker) -> bool:
        """Wait for a new worker's first message; False: it failed (and was handled)."""
        deadline = worker.started + READY_DEADLINE_SECONDS
        while not self.ctx.stopping:
            readable, gone = worker.wait(max(0.0, deadline - time.monotonic()))
            if readable:
                try:
                    message = decode(worker.conn.recv_bytes())
                except (EOFError, OSError):
                    gone = True
                except Exception as exc:
                    self._abandon(lane, worker)
                    what = f"its first message could not be read ({exc})"
                    self._start_failed(what, worker.method)
                    return False
                else:
                    if isinstance(message, WorkerReady):
                        worker.ready = True
                        with self._start_lock:
                            self._start_failures = 0
                        return True
                    self._abandon(lane, worker)
                    if isinstance(message, WorkerStartFailed):
                        self._cannot_load(worker, message)
                    else:  # an Ori bug: the protocol was not kept
                        self._start_failed(f"it sent {short_repr(message)} first", worker.method)
                    return False
            if gone:
                self._abandon(lane, worker)
                exit_text = describe_exit_code(worker.process.exitcode)
                self._start_failed(
                    f"worker process (pid {worker.pid}) ended ({exit_text}) before it was ready",
                    worker.method,
                )
                return False
            if time.monotonic() >= deadline:
                self._abandon(lane, worker)
                self._start_failed(
                    f"worker process (pid {worker.pid}) did not report ready within "
                    f"{READY_DEADLINE_SECONDS:g} s and was killed",
                    worker.method,
                )
                return False
        return False

    def _abandon(self, lane: _Lane, worker: _Worker) -> None:
        """Kill a worker that failed to start; the lane starts another when needed."""
        lane.worker = None
        self.meter.count_lost_worker()
        worker.kill()

    def _start_failed(self, what: str, method: str) -> None:
        """Count one failed start; the run fails after MAX_START_FAILURES in a row."""
        with self._start_lock:
            self._start_failures += 1
            if self._start_failures < MAX_START_FAILURES or self._cannot_start:
                return
            self._cannot_start = True
        self._fail_run(
            OriWorkerStartError(
                f"the worker processes of {self.label} cannot start (start method {method!r}): "
                f"{what}, {MAX_START_FAILURES} times in a row; no input item was run by them"
                + start_failure_hint(method)
            )
        )

    def _cannot_load(self, worker: _Worker, message: WorkerStartFailed) -> None:
        """The worker could not load the stage function: no retry can help."""
        with self._start_lock:
            if self._cannot_start:
                return
            self._cannot_start = True
        exc = message.exception
        error = OriWorkerStartError(
            f"the worker processes of {self.label} cannot start (start method "
            f"{worker.method!r}): worker process (pid {worker.pid}) could not load the stage "
            f"function before it ran any item: {type(exc).__name__}: {exc}; the function's "
            "module must be importable in the worker (its traceback is chained below)"
        )
        self._fail_run(error, message.traceback)

    def _fail_run(self, error: BaseException, remote_traceback: str | None = None) -> None:
        """End the whole run with *error*: the stage cannot work, whatever the policy."""
        if not self.ctx.stopping:
            self.ctx.out_queue.put(
                RunFailure(stage=self.label, exception=error, remote_traceback=remote_traceback)
            )

    def _keep(self, lane: _Lane, worker: _Worker) -> bool:
        """Give a clean worker back to the warm pools; False: stop it."""
        pools = self.ctx.pools
        if pools is None or lane.busy or self._setup_failed or worker.pid in self._interrupted:
            return False
        try:
            if not worker.ready and worker.conn.poll():
                # Started but never given work: its first message is still unread.
                worker.ready = isinstance(decode(worker.conn.recv_bytes()), WorkerReady)
                if not worker.ready:
                    return False
            if not worker.process.is_alive() or worker.conn.poll():
                return False  # dead, or a reply nobody read: not clean
        except Exception:
            return False
        return bool(pools.give_back(self.ctx, self.spec, self.workers, lane.slot, worker))

    def start_threads(self) -> None:
        for lane in self._lanes:
            lane.thread = threading.Thread(
                target=self._lane_main,
                args=(lane,),
                name=f"{self.ctx.name}-stage{self.label.number}-lane{lane.slot + 1}",
                daemon=True,
            )
            lane.thread.start()

    # -- the lane ---------------------------------------------------------

    def _lane_main(self, lane: _Lane) -> None:
        get = self.in_queue.get
        ctx = self.ctx
        clean = False  # left between chunks, every reply read: may stay warm
        try:
            while True:
                message = get()
                if message is STOP or ctx.stopping:
                    clean = True
                    return
                assert isinstance(message, tuple)
                chunk = self._gather(message)
                if chunk is None or ctx.stopping:
                    clean = True
                    return
                self._run_chunk(lane, *chunk, prefetch=self.spec.timeout is None)
        except BaseException as exc:  # an Ori bug: fail the run rather than hang it
            ctx.fail(self.label, exc)
        finally:
            worker, lane.worker = lane.worker, None
            if worker is not None and not (clean and self._keep(lane, worker)):
                worker.stop(STOP_GRACE_SECONDS)

    def _gather(self, first: Batch) -> tuple[Indices, list[Any]] | None:
        """*first* plus what is already queued, up to the chunk size; None on STOP.

        Never waits for more items: a chunk goes out with what there is, so
        chunking adds no latency.
        """
        indices, values = first
        target = self.sizer.size
        get_nowait = self.in_queue.get_nowait
        while len(values) < target:
            try:
                more = get_nowait()
            except queue.Empty:
                break
            if more is STOP:
                return None
            assert isinstance(more, tuple)
            indices = concat(indices, more[0])
            values = values + more[1]
        return indices, values

    def _report_items(
        self,
        indices: Indices,
        values: list[Any],
        positions: Iterable[int],
        exc: BaseException,
        text: str | None = None,
    ) -> None:
        """One failure (the same exception object) for each of these chunk positions.

        *text* is the traceback as the worker formatted it; by default, this
        process's own formatting of *exc*.
        """
        if text is None:
            text = format_exception_text(exc)
        report = self.ctx.report
        label = self.label
        for position in positions:
            value = values[position]
            record = ErrorRecord(index=indices[position], stage=label, exception=exc, value=value)
            record.remote_traceback = text
            report(record)

    def _dumps(self, indices: Indices, values: list[Any]) -> tuple[Any, Indices, list[Any]]:
        """Pickle a chunk; arguments that do not pickle are reported and dropped."""
        with contextlib.suppress(Exception):
            return dumps(values), indices, values
        keep_indices: list[int] = []
        keep_values: list[Any] = []
        for index, value in zip(indices, values, strict=True):
            try:
                dumps(value)
            except Exception as exc:
                self.ctx.report(
                    ErrorRecord(index=index, stage=self.label, exception=exc, value=value)
                )
                continue
            keep_indices.append(index)
            keep_values.append(value)
        return dumps(keep_values), keep_indices, keep_values

    def _run_chunk(
        self, lane: _Lane, indices: Indices, values: list[Any], *, prefetch: bool = False
    ) -> None:
        """Send one chunk to the lane's worker and see it through.

        With *prefetch*, while the worker computes, the lane sends it the next
        chunk too (if chunks are quick, one is queued, and it is small enough to
        sit in the pipe without blocking), so the worker does not idle while the
        lane waits for the GIL or does its bookkeeping.
        """
        payload, indices, values = self._dumps(indices, values)
        if not indices or self._cannot_start:
            return
        worker = lane.worker
        if worker is None or not worker.process.is_alive():
            if worker is not None:
                worker.kill()
                lane.worker = None
            try:
                worker = self._start_worker(lane)
            except Exception as exc:  # the code cannot be pickled for a forkserver worker
                self._cannot_start = True
                self._fail_run(exc)
                return
            if worker is None:
                self._requeue(indices, values, list(range(len(values))))
                return
        if not worker.ready:
            lane.busy = True  # so that close() interrupts the wait
            try:
                ready = self._await_ready(lane, worker)
            finally:
                lane.busy = False
            if not ready:
                self._requeue(indices, values, list(range(len(values))))
                return
        if self.spec.timeout is not None:
            self._status.expect_item(lane.slot, time.monotonic())
        else:
            self._status.expect_slice(lane.slot)
        lane.busy = True
        outstanding: collections.deque[tuple[Indices, list[Any], int]] = collections.deque()
        try:
            if self.ctx.stopping:  # close() may have missed that we were busy
                return
            try:
                worker.conn.send_bytes(payload)
            except OSError:
                self._lost_worker(lane, worker, indices, values, 0)
                return
            outstanding.append((indices, values, len(payload)))
            while outstanding:
                if prefetch and lane.fast and len(outstanding) == 1 and not self.ctx.stopping:
                    self._prefetch(worker, outstanding)
                indices, values, nbytes = outstanding[0]
                waited = time.perf_counter()
                last = len(outstanding) == 1
                if not self._await_replies(lane, worker, indices, values, nbytes, last):
                    # No final reply, so no reported time: count the wait instead.
                    self.meter.add_busy(time.perf_counter() - waited)
                    # The worker is gone; what was sent after this chunk never started.
                    for later_indices, later_values, _ in list(outstanding)[1:]:
                        self._requeue(later_indices, later_values, list(range(len(later_values))))
                    outstanding.clear()
                    return
                outstanding.popleft()
        finally:
            lane.busy = False
        while lane.solo and not self.ctx.stopping:
            index, value = lane.solo.pop(0)
            self._run_chunk(lane, [index], [value])

    def _prefetch(
        self, worker: _Worker, outstanding: collections.deque[tuple[Indices, list[Any], int]]
    ) -> None:
        """Send the worker its next chunk now, if one is queued and fits the pipe."""
        limit = worker.prefetch_bytes
        if outstanding[0][2] > limit:  # chunks this big would not fit: do not try
            return
        try:
            message = self.in_queue.get_nowait()
        except queue.Empty:
            return
        if message is STOP:
            self.in_queue.put(STOP)  # for the main loop of this lane
            return
        assert isinstance(message, tuple)
        chunk = self._gather(message)
        if chunk is None:
            self.in_queue.put(STOP)
            return
        payload, indices, values = self._dumps(*chunk)
        if not indices:
            return
        if len(payload) > limit:
            self.in_queue.put((indices, values))  # another worker, or us when idle
            return
        try:
            worker.conn.send_bytes(payload)
        except OSError:
            self.in_queue.put((indices, values))
            return
        outstanding.append((indices, values, len(payload)))

    def _await_replies(
        self,
        lane: _Lane,
        worker: _Worker,
        indices: Indices,
        values: list[Any],
        nbytes: int,
        last: bool = True,
    ) -> bool:
        """Wait for this chunk's replies; False if its worker died or was killed.

        *last*: no other chunk was sent after this one, so the worker is idle
        once its final reply arrived. The lane then stops counting as busy
        before it hands the results on: the consumer may close the run as soon
        as it has them, and a busy worker would be interrupted (and not kept
        warm) although it is done.
        """
        timeout = self.spec.timeout
        conn = worker.conn
        finished = 0  # chunk positions below this have been answered
        while True:
            wait_for: float | None = None
            if timeout is not None:
                position, deadline = self._deadline(lane.slot, timeout)
                wait_for = max(0.0, deadline - time.monotonic())
                if position < 0:  # look again soon: the item's clock starts any moment
                    wait_for = min(wait_for, STARTUP_POLL_SECONDS)
            readable, gone = worker.wait(wait_for)
            if readable:
                try:
                    data = conn.recv_bytes()
                except (EOFError, OSError):
                    self._lost_worker(lane, worker, indices, values, finished)
                    return False
                try:
                    message = decode(data)
                except Exception as exc:
                    self._unreadable_reply(lane, worker, indices, values, finished, exc)
                    return False
                if last and _is_final(message):
                    lane.busy = False
                finished, seconds = self._deliver(lane, message, indices, values, len(data))
                if seconds is not None:  # the chunk's final reply
                    self.meter.add_busy(seconds)  # the compute time the worker measured
                    lane.fast = seconds < PREFETCH_BELOW_SECONDS
                    # Big results, not only big arguments, keep chunks small.
                    sent = max(nbytes * finished // len(values), len(data))
                    self.sizer.report(finished, seconds, sent)
                    # A worker may hand back the end of a chunk that got slow.
                    self._requeue(indices, values, list(range(finished, len(values))))
                    return True
            elif gone:
                finished = self._drain(lane, conn, indices, values, finished)
                if finished >= len(values):
                    return True  # this chunk was answered in full before the end
                self._lost_worker(lane, worker, indices, values, finished)
                return False
            elif timeout is not None:
                position, deadline = self._deadline(lane.slot, timeout)
                if time.monotonic() >= deadline:
                    finished = self._drain(lane, conn, indices, values, finished)
                    position = max(position, 0)  # a worker that never started: item 0
                    if finished > position:
                        continue
                    self._timed_out(lane, worker, indices, values, finished, position)
                    return False

    def _deadline(self, slot: int, timeout: float) -> tuple[int, float]:
        """(chunk position, deadline) of the item the worker is running.

        The clock starts when the worker starts the item, not when the chunk was
        sent: a worker still starting up (importing, unpickling) is not late.
        Position -1: no item started yet; such a worker gets WORKER_START_SECONDS
        more before its first item counts as stuck.
        """
        position, started = self._status.item(slot)
        if position < 0:
            return -1, started + timeout + WORKER_START_SECONDS
        return position, started + timeout

    def _drain(
        self, lane: _Lane, conn: Connection, indices: Indices, values: list[Any], finished: int
    ) -> int:
        """Deliver replies already in the pipe; the new ``finished`` position."""
        with contextlib.suppress(Exception):
            while conn.poll():
                data = conn.recv_bytes()
                finished = self._deliver(lane, decode(data), indices, values, len(data))[0]
        return finished

    def _unreadable_reply(
        self,
        lane: _Lane,
        worker: _Worker,
        indices: Indices,
        values: list[Any],
        finished: int,
        exc: Exception,
    ) -> None:
        """A message whose header cannot be read fails the items it may carry.

        The worker is replaced: where it is in the chunk is no longer known.
        (A reply whose *body* does not unpickle is an ``UnreadableReply``:
        its header still says which items it covered, see :meth:`_deliver`.)
        """
        lane.worker = None
        self.meter.count_lost_worker()
        worker.kill()
        if self.ctx.stopping:
            return
        text = (
            "A reply from the worker process could not be unpickled in the parent:\n"
            + format_exception_text(exc)
        )
        self._report_items(indices, values, range(finished, len(values)), exc, text)

    def _deliver(
        self, lane: _Lane, message: Message, indices: Indices, values: list[Any], nbytes: int
    ) -> tuple[int, float | None]:
        """Hand on what *message* says about the chunk (*nbytes*: its pickled size).

        Returns the chunk position answered up to, and the worker's compute
        seconds when the message was the chunk's last (else None).
        """
        if isinstance(message, Reply):
            self._deliver_reply(message, indices, values, nbytes)
            end = message.first + len(message.results)
            return end, (message.seconds if message.done else None)
        if isinstance(message, UnreadableReply):
            end = message.first + message.size
            text = (
                "The stage function's result could not be unpickled in the parent process "
                "(the worker sent it, but its type cannot be rebuilt here):\n"
                + format_exception_text(message.exception)
            )
            self._blame_alone(
                lane, indices, values, range(message.first, end), message.exception, text
            )
            return end, (message.seconds if message.done else None)
        if isinstance(message, ChunkUnreadable):
            text = (
                "The argument could not be unpickled in the worker process:\n" + message.traceback
            )
            self._blame_alone(lane, indices, values, range(len(values)), message.exception, text)
            return len(values), 0.0
        if isinstance(message, SetupFailed):
            self._fail_setup(message.exception, message.traceback)
            return len(values), 0.0
        raise AssertionError(f"unexpected message from a worker: {short_repr(message)}")

    def _blame_alone(
        self,
        lane: _Lane,
        indices: Indices,
        values: list[Any],
        positions: range,
        exc: BaseException,
        text: str,
    ) -> None:
        """Report the one item at *positions*, or run several again one by one.

        Only an item that fails alone is to blame; the others' results are kept.
        """
        if len(positions) == 1:
            self._report_items(indices, values, positions, exc, text)
        else:
            lane.solo.extend((indices[p], values[p]) for p in positions)

    def _deliver_reply(
        self, reply: Reply, indices: Indices, values: list[Any], nbytes: int
    ) -> None:
        """Hand on a reply's results (*nbytes*: its pickled size, their measure)."""
        first, results, errors, _, _ = reply
        end = first + len(results)
        if errors:
            failed: set[int] = set()
            for position, exc, text in errors:
                failed.add(position)
                self._report_items(indices, values, (position,), exc, text)
            ok = [p for p in range(first, end) if p not in failed]
            if ok:
                self.outlet.put(
                    [indices[p] for p in ok],
                    [results[p - first] for p in ok],
                    nbytes * len(ok) // len(results),
                )
        elif results:
            self.outlet.put(indices[first:end], results, nbytes)

    def _fail_setup(self, exc: BaseException, text: str) -> None:
        """The stage's initializer raised in a worker: the whole run fails."""
        self._setup_failed = True
        if not self.ctx.stopping:
            failure = setup_failure(self.spec.initializer, self.label, exc, text, self._plan.method)
            self.ctx.out_queue.put(failure)

    def _requeue(self, indices: Indices, values: list[Any], positions: list[int]) -> None:
        if positions and not self.ctx.stopping:
            self.in_queue.put(([indices[p] for p in positions], [values[p] for p in positions]))

    def _timed_out(
        self,
        lane: _Lane,
        worker: _Worker,
        indices: Indices,
        values: list[Any],
        finished: int,
        position: int,
    ) -> None:
        lane.worker = None
        self.meter.count_lost_worker()
        worker.kill()
        if self.ctx.stopping:
            return
        assert self.spec.timeout is not None
        aftermath = f"its worker process (pid {worker.pid}) was killed and replaced"
        record = timeout_record(
            self.label, indices[position], values[position], self.spec.timeout, aftermath
        )
        self.ctx.report(record)
        rest = [p for p in range(finished, len(values)) if p != position]
        self._requeue(indices, values, rest)

    def _lost_worker(
        self,
        lane: _Lane,
        worker: _Worker,
        indices: Indices,
        values: list[Any],
        finished: int,
    ) -> None:
        """The worker died (or its pipe broke) with items of this chunk unanswered.

        With a timeout the worker published the exact item; otherwise only the
        slice it was in, and the slice's items run again one at a time: the one
        that kills a worker on its own is reported, the others are kept (so a
        one-off kill from outside costs a re-run, not an error; every lost
        worker is counted in the stage's ``workers_lost``).
        """
        lane.worker = None
        lane.crashes += 1
        self.meter.count_lost_worker()
        worker.kill()
        if self.ctx.stopping or finished >= len(values):
            return
        if self.spec.timeout is not None:
            start = self._status.item(lane.slot).position
        else:
            start, stop = self._status.slice(lane.slot)
        start = min(max(start, finished), len(values) - 1)
        if self.spec.timeout is not None:
            stop = start + 1
        suspects = list(range(start, min(stop, len(values))))
        others = [p for p in range(finished, len(values)) if p < start or p >= stop]
        self._requeue(indices, values, others)
        if len(suspects) == 1:
            self._report_crash(worker, indices[start], values[start])
            return
        for number, position in enumerate(suspects):
            if self._run_alone(lane, indices[position], values[position]):
                self._requeue(indices, values, suspects[number + 1 :])
                return

    def _run_alone(self, lane: _Lane, index: int, value: Any) -> bool:
        """Run one item in its own chunk; True if it killed its worker."""
        crashes = lane.crashes
        self._run_chunk(lane, [index], [value], prefetch=False)
        return lane.crashes != crashes

    def _report_crash(self, worker: _Worker, index: int, value: Any) -> None:
        error = OriWorkerCrashedError(
            f"the worker process (pid {worker.pid}) of {self.label} died "
            f"({describe_exit_code(worker.process.exitcode)}) while running input item "
            f"{index} (argument: {short_repr(value)}); it was replaced"
        )
        self.ctx.report(
            ErrorRecord(index=index, stage=self.label, exception=error, value=value, annotate=False)
        )

    # -- stopping ---------------------------------------------------------

    def begin_stop(self) -> None:
        super().begin_stop()
        for lane in self._lanes:
            worker = lane.worker
            if lane.busy and worker is not None:
                self._interrupted.add(worker.pid)
                worker.terminate()

    def finish_stop(self, deadline: float) -> None:
        current = threading.current_thread()
        for lane in self._lanes:
            thread = lane.thread
            if thread is not None and thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        for lane in self._lanes:
            worker = lane.worker
            if worker is None:
                continue
            thread = lane.thread
            if thread is not None and thread.is_alive():
                # The lane is still busy with this worker: kill it, the lane reaps.
                with contextlib.suppress(OSError, AttributeError, ValueError):
                    worker.process.kill()
            else:  # never started, or a start that failed half-way
                lane.worker = None
                if not self._keep(lane, worker):
                    worker.kill()

    def lanes_alive(self) -> bool:
        return all(lane.thread is not None and lane.thread.is_alive() for lane in self._lanes)


def _is_final(message: Message) -> bool:
    """True for the last message a worker sends about a chunk."""
    if isinstance(message, (Reply, UnreadableReply)):
        return message.done
    return isinstance(message, (ChunkUnreadable, SetupFailed))


def _send_buffer_size(conn: Connection) -> int:
    """SO_SNDBUF of the socket under *conn* (0 if it is not a socket)."""
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    except OSError:
        return 0
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
    except OSError:
        return 0
    finally:
        sock.close()
