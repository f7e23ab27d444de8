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
stage never loses capacity. Ori does not use ``ProcessPoolExecutor`` here
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
import pickle
import queue
import select
import signal
import socket
import threading
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

from ori.errors import OriTimeoutError, OriWorkerCrashedError

from ._chunking import PROCESS_GIVE_BACK_SECONDS, process_sizer
from ._context import STOP, Batch, Indices, RunContext, concat, setup_failure
from ._errors import ErrorRecord, StageLabel, format_exception_text, short_repr
from ._pickling import for_workers
from ._stages import StageRuntime, StageSpec
from ._worker import SETUP_FAILED, Reply, dumps, worker_main

STOP_GRACE_SECONDS = 1.0
WORKER_START_SECONDS = 60.0
STARTUP_POLL_SECONDS = 0.02
PREFETCH_BELOW_SECONDS = 0.005


class _Worker:
    """One worker process and the parent's end of its pipe."""

    __slots__ = ("_poller", "conn", "prefetch_bytes", "process")

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
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
        """SIGKILL the process and reap it (any thread)."""
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

    def _reap(self, grace: float) -> None:
        process = self.process
        try:
            process.join(grace)
            if process.exitcode is None:
                process.terminate()
                process.join(grace)
            if process.exitcode is None:
                process.kill()
                process.join(grace)
        except (AssertionError, ValueError):  # never started, or already closed
            pass
        with contextlib.suppress(OSError):
            self.conn.close()


class _Lane:
    __slots__ = ("busy", "crashes", "fast", "slot", "thread", "worker")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.worker: _Worker | None = None
        self.thread: threading.Thread | None = None
        self.busy = False
        self.crashes = 0  # workers of this lane that died while running a chunk
        # Whether its last chunk took under PREFETCH_BELOW_SECONDS: only then
        # is a second chunk sent ahead (for slow items it would only tie work
        # to this worker while another one might be idle).
        self.fast = False


class ProcessStage(StageRuntime):
    """A stage whose lanes each drive one worker process."""

    def __init__(self, spec: StageSpec, label: StageLabel, ctx: RunContext) -> None:
        super().__init__(spec, label, ctx)
        self.sizer = process_sizer(spec.chunksize)
        self._mp = spec.mp_context or multiprocessing.get_context()
        self._fork = self._mp.get_start_method() == "fork"
        # Two doubles per worker: with a timeout the chunk position of the
        # running item and its start time, else the running slice [start, stop).
        make_status = functools.partial(self._mp.RawArray, "d", 2 * self.workers)
        pools = ctx.pools
        self._status: Any = (
            make_status() if pools is None else pools.status_array(spec, self.workers, make_status)
        )
        self._lanes = [_Lane(slot) for slot in range(self.workers)]
        self._worker_numbers = 0
        # Lambdas and closures go by value when cloudpickle is installed.
        self._function = for_workers(spec.function, self._mp)
        self._setup = (
            None
            if spec.initializer is None
            else (for_workers(spec.initializer, self._mp), spec.initargs)
        )
        self._setup_failed = False
        self._interrupted: set[int | None] = set()  # pids terminated by begin_stop

    def lane_count(self) -> int:
        return len(self._lanes)

    # -- worker processes -------------------------------------------------

    def _start_worker(self, lane: _Lane) -> _Worker:
        parent_end, child_end = multiprocessing.Pipe(duplex=True)
        self._worker_numbers += 1
        process = self._mp.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(
                child_end,
                self._status,
                lane.slot,
                self._function,
                parent_end if self._fork else None,
                self.spec.timeout is not None,
                PROCESS_GIVE_BACK_SECONDS if self.sizer.adaptive else None,
                self._setup,
            ),
            name=f"{self.ctx.name}-stage{self.label.number}-worker{self._worker_numbers}",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            parent_end.close()
            child_end.close()
            raise
        child_end.close()
        lane.worker = _Worker(process, parent_end)
        return lane.worker

    def start_processes(self) -> None:
        pools = self.ctx.pools
        for lane in self._lanes:
            if pools is not None:
                lane.worker = pools.take(self.ctx, self.spec, self.workers, lane.slot)
                if lane.worker is not None and lane.worker.process.is_alive():
                    continue
                if lane.worker is not None:
                    lane.worker.kill()
            self._start_worker(lane)

    def _keep(self, lane: _Lane, worker: _Worker) -> bool:
        """Give a clean worker back to the warm pools; False: stop it."""
        pools = self.ctx.pools
        if pools is None or lane.busy or self._setup_failed or worker.pid in self._interrupted:
            return False
        try:
            if not worker.process.is_alive() or worker.conn.poll():
                return False  # dead, or a reply nobody read: not clean
        except (OSError, ValueError):
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
            report(ErrorRecord(indices[position], label, exc, short_repr(value), text, value=value))

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
                self.ctx.report(ErrorRecord(index, self.label, exc, short_repr(value), value=value))
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
        if not indices:
            return
        worker = lane.worker
        if worker is None or not worker.process.is_alive():
            if worker is not None:
                worker.kill()
            try:
                worker = self._start_worker(lane)
            except Exception as exc:
                self._report_items(indices, values, range(len(values)), exc)
                return
        status = self._status
        base = 2 * lane.slot
        if self.spec.timeout is not None:
            status[base] = -1  # no item started yet; the worker writes its own
            status[base + 1] = time.monotonic()
        else:
            status[base] = 0  # until the worker says otherwise, the first slice
            status[base + 1] = 1  # is [0, 1)
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
                if not self._await_replies(lane, worker, indices, values, nbytes):
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
    ) -> bool:
        """Wait for this chunk's replies; False if its worker died or was killed."""
        timeout = self.spec.timeout
        base = 2 * lane.slot
        conn = worker.conn
        finished = 0  # chunk positions below this have been answered
        while True:
            wait_for: float | None = None
            if timeout is not None:
                position, deadline = self._deadline(base, timeout)
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
                    reply: Reply = pickle.loads(data)
                except Exception as exc:
                    self._unreadable_reply(lane, worker, indices, values, finished, exc)
                    return False
                finished = self._deliver(reply, indices, values, len(data))
                if reply[4]:
                    self.meter.add_busy(reply[3])  # the compute time the worker measured
                    lane.fast = reply[3] < PREFETCH_BELOW_SECONDS
                    # Big results, not only big arguments, keep chunks small.
                    sent = max(nbytes * finished // len(values), len(data))
                    self.sizer.report(finished, reply[3], sent)
                    # A worker may hand back the end of a chunk that got slow.
                    self._requeue(indices, values, list(range(finished, len(values))))
                    return True
            elif gone:
                finished = self._drain(conn, indices, values, finished)
                if finished >= len(values):
                    return True  # this chunk was answered in full before the end
                self._lost_worker(lane, worker, indices, values, finished)
                return False
            elif timeout is not None:
                position, deadline = self._deadline(base, timeout)
                if time.monotonic() >= deadline:
                    finished = self._drain(conn, indices, values, finished)
                    position = max(position, 0)  # a worker that never started: item 0
                    if finished > position:
                        continue
                    self._timed_out(lane, worker, indices, values, finished, position)
                    return False

    def _deadline(self, base: int, timeout: float) -> tuple[int, float]:
        """(chunk position, deadline) of the item the worker is running.

        The clock starts when the worker starts the item, not when the chunk was
        sent: a worker still starting up (importing, unpickling) is not late.
        Position -1: no item started yet; such a worker gets WORKER_START_SECONDS
        more before its first item counts as stuck.
        """
        status = self._status
        position = int(status[base])
        started = status[base + 1]
        if position < 0:
            return -1, started + timeout + WORKER_START_SECONDS
        return position, started + timeout

    def _drain(self, conn: Connection, indices: Indices, values: list[Any], finished: int) -> int:
        """Deliver replies already in the pipe; the new ``finished`` position."""
        with contextlib.suppress(Exception):
            while conn.poll():
                data = conn.recv_bytes()
                finished = self._deliver(pickle.loads(data), indices, values, len(data))
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
        """A reply that does not unpickle here fails the items it may carry.

        The worker is replaced: where it is in the chunk is no longer known.
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

    def _deliver(self, reply: Reply, indices: Indices, values: list[Any], nbytes: int) -> int:
        """Hand on a reply's results (*nbytes*: its pickled size, their measure)."""
        first, results, errors, _, _ = reply
        end = first + len(results)
        if errors:
            failed: set[int] = set()
            for position, exc, text in errors:
                if position == SETUP_FAILED:
                    self._fail_setup(exc, text)
                    return len(values)
                if position < 0:  # the chunk itself could not be unpickled
                    self._report_items(indices, values, range(len(values)), exc, text)
                    return len(values)
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
        return end

    def _fail_setup(self, exc: BaseException, text: str) -> None:
        """The stage's initializer raised in a worker: the whole run fails."""
        self._setup_failed = True
        if not self.ctx.stopping:
            self.ctx.out_queue.put(setup_failure(self.spec, self.label, exc, text))

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
        index = indices[position]
        error = OriTimeoutError(
            f"{self.label} did not finish input item {index} within its "
            f"{self.spec.timeout:g} s timeout (argument: {short_repr(values[position])}); "
            f"its worker process (pid {worker.pid}) was killed and replaced"
        )
        self.ctx.report(
            ErrorRecord(
                index,
                self.label,
                error,
                short_repr(values[position]),
                None,
                False,
                value=values[position],
            )
        )
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
        base = 2 * lane.slot
        start = min(max(int(self._status[base]), finished), len(values) - 1)
        stop = start + 1 if self.spec.timeout is not None else int(self._status[base + 1])
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
            f"({_describe_exit(worker.process.exitcode)}) while running input item "
            f"{index} (argument: {short_repr(value)}); it was replaced"
        )
        self.ctx.report(
            ErrorRecord(index, self.label, error, short_repr(value), None, False, value=value)
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


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
