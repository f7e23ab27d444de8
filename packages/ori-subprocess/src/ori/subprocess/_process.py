"""The handle of a background command and the watcher thread behind it.

Two threads serve each command. The reader thread (see ``_reader.py``) reads
the output pipes and runs the line callbacks. The watcher thread, defined
here, owns the command's life:

    wait for: the command's exit (a pidfd on Linux, else a short poll),
              a wake-up (terminate()/kill(), a failed callback, reader done),
              room in the stdin pipe (input=...), or the next deadline
    then:     reap the command as soon as it exits (no zombie)
              timeout passed           -> SIGTERM to the group
              SIGTERM ignored too long -> SIGKILL to the group
              command exited but its leftovers still hold the pipes after the
              grace period             -> stop the leftovers
              group empty but pipes still open (held by a process that left
              the group)               -> tell the reader to abandon them
              command reaped, reader done, group empty -> finish

Finishing means: release the parent-death watchdog, record the exit status and
set the "done" event that join() waits on. Everything that needs a decision is
done under one lock, so terminate() from any thread and the watcher never
disagree about who stopped the command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO

from ori.errors import OriInvalidStateError, OriTimeoutError

from ._group import group_has_live_members, signal_group
from ._reader import LineCallback, OutputReader
from ._validation import Argument
from ._wakeup import Wakeup
from ._watchdog import Watchdog

__all__ = ("BackgroundProcess",)

_LOG = logging.getLogger("ori.subprocess")

# How often group membership (and, without pidfd, the command's exit) is polled
# while something is being stopped.
_POLL_SECONDS = 0.05


def _open_pidfd(pid: int) -> int | None:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:  # kernel too old, or forbidden by a sandbox
        return None
    return fd


class BackgroundProcess:
    """A command running in the background, with its output sent to callbacks.

    Returned, already started, by :func:`ori.subprocess.run_process_in_background`;
    do not create it yourself. It keeps the surface of the
    :class:`multiprocessing.Process` that Ori 0.x returned (:attr:`pid`,
    :meth:`is_alive`, :meth:`join`, :meth:`terminate`, :meth:`kill`,
    :attr:`exitcode`) and adds the :class:`subprocess.Popen` names :meth:`wait`
    and :attr:`returncode`, plus use as a context manager.

    The handle counts as alive until the command has exited, every line of its
    output has been passed to the callbacks, and anything it left running in its
    process group has been stopped. All methods may be called from any thread;
    :meth:`join` and :meth:`wait` refuse to be called from a callback.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        *,
        command: Sequence[Argument],
        stdout_function: LineCallback | None,
        stderr_function: LineCallback | None,
        exception_function: Callable[[Exception], object] | None,
        exit_code_on_killed: int,
        timeout: float | None,
        grace_period: float,
        encoding: str,
        errors: str,
        input_data: bytes | None,
        watchdog: Watchdog | None,
    ) -> None:
        """Take over a started command; use :func:`run_process_in_background`."""
        self._popen = popen
        self._pid = popen.pid
        self._command = tuple(command)
        self._exception_function = exception_function
        self._exit_code_on_killed = exit_code_on_killed
        self._grace = grace_period
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._input = memoryview(input_data) if input_data is not None else None
        self._watchdog = watchdog

        self._lock = threading.Lock()
        self._wakeup = Wakeup()
        self._done = threading.Event()
        # Guarded by _lock.
        self._reaped_status: int | None = None
        self._exited_at = 0.0
        self._stop_requested = False
        self._stopped_by_ori = False
        self._timed_out = False
        self._term_at: float | None = None
        self._killed_at: float | None = None
        self._reader_done = False
        self._abandoned = False
        self._exception: Exception | None = None
        # Set once, before _done.
        self._returncode: int | None = None
        self._exitcode: int | None = None

        streams: list[tuple[IO[bytes], LineCallback]] = []
        if stdout_function is not None and popen.stdout is not None:
            streams.append((popen.stdout, stdout_function))
        if stderr_function is not None and popen.stderr is not None:
            streams.append((popen.stderr, stderr_function))
        self._reader = OutputReader(
            streams,
            encoding=encoding,
            errors=errors,
            on_error=self._callback_failed,
            on_done=self._reader_finished,
            name=f"ori-subprocess-reader-{self._pid}",
        )
        self._watcher = threading.Thread(
            target=self._watch, name=f"ori-subprocess-watcher-{self._pid}"
        )

    # -- starting -----------------------------------------------------------------

    def _start(self) -> None:
        """Start both threads; on failure stop the command, reap it and raise."""
        try:
            self._reader.start()
        except BaseException:
            self._abort(reader_started=False)
            raise
        try:
            self._watcher.start()
        except BaseException:
            self._abort(reader_started=True)
            raise

    def _abort(self, *, reader_started: bool) -> None:
        """Undo a start that failed half-way: nothing may be left running."""
        signal_group(self._pid, signal.SIGKILL)
        if reader_started:
            self._reader.abandon()
            self._reader.thread.join()
        self._popen.wait()
        for pipe in (self._popen.stdin, self._popen.stdout, self._popen.stderr):
            if pipe is not None:
                pipe.close()
        if self._watchdog is not None:
            self._watchdog.release()
        self._wakeup.close()

    # -- public surface -----------------------------------------------------------

    @property
    def pid(self) -> int:
        """Process id of the command; also the id of its process group and session."""
        return self._pid

    @property
    def command(self) -> tuple[Argument, ...]:
        """The command as it was given."""
        return self._command

    @property
    def exitcode(self) -> int | None:
        """How the command ended, as Ori 0.x reported it; ``None`` while alive.

        The command's own exit status (negative signal number if a signal
        killed it), except when Ori stopped it (:meth:`terminate` or :meth:`kill`
        before it exited by itself, the timeout) or a callback raised: then
        ``exit_code_on_killed``.
        See :attr:`returncode` for the raw status.
        """
        return self._exitcode

    @property
    def returncode(self) -> int | None:
        """The command's raw exit status, as :class:`subprocess.Popen` reports it.

        ``None`` while the handle is alive; then the exit code, or ``-N`` when
        signal ``N`` ended the command, whoever sent it (``-15`` after
        :meth:`terminate`, ``-9`` after :meth:`kill` or the escalation).
        """
        return self._returncode

    @property
    def exception(self) -> Exception | None:
        """The first exception a callback (or decoding with ``errors="strict"``) raised.

        ``None`` if none did. When set, :attr:`exitcode` is ``exit_code_on_killed``.
        """
        return self._exception

    @property
    def timed_out(self) -> bool:
        """True when Ori stopped the command because its ``timeout`` passed."""
        return self._timed_out

    def is_alive(self) -> bool:
        """True until the command exited and all of its output was delivered. Never blocks."""
        return not self._done.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Block until the command has exited and every callback for every line has run.

        Like :meth:`multiprocessing.Process.join` it returns ``None`` also when
        *timeout* passes first; check :meth:`is_alive` afterwards. Any thread may
        call it, any number of times. KeyboardInterrupt interrupts the wait and
        leaves the command running (use the handle as a context manager to stop
        it in that case).

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as it takes.

        Raises:
            OriInvalidStateError: called from one of this command's own callbacks, which
                would wait for itself forever.
        """
        current = threading.current_thread()
        if current is self._reader.thread or current is self._watcher:
            raise OriInvalidStateError(
                "cannot join a background process from one of its own callbacks: "
                "the callbacks must return before the process can finish"
            )
        if self._done.wait(timeout):
            self._watcher.join()
            self._reader.thread.join()

    def wait(self, timeout: float | None = None) -> int:
        """Block like :meth:`join`, then return :attr:`returncode`.

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as it takes.

        Raises:
            OriTimeoutError: the handle is still alive after *timeout* seconds
                (the command keeps running).
            OriInvalidStateError: called from one of this command's own callbacks.
        """
        self.join(timeout)
        returncode = self._returncode
        if returncode is None:
            raise OriTimeoutError(
                f"command {list(self._command)!r} (pid {self._pid}) is still running after "
                f"{timeout} seconds; wait longer, or stop it with terminate() or kill()"
            )
        return returncode

    def terminate(self) -> None:
        """Ask the command and everything in its process group to stop. Never blocks.

        Sends SIGTERM (and SIGCONT, so stopped processes see it) to the group;
        whatever is still running ``grace_period`` seconds later gets SIGKILL.
        Calling it again, after :meth:`kill`, or after the command ended does no
        harm. If the command had not exited by itself yet, :attr:`exitcode`
        becomes ``exit_code_on_killed``.
        """
        self._stop(signal.SIGTERM)

    def kill(self) -> None:
        """Send SIGKILL to the command and everything in its process group. Never blocks.

        Calling it again or after the command ended does no harm. If the command
        had not exited by itself yet, :attr:`exitcode` becomes
        ``exit_code_on_killed``.
        """
        self._stop(signal.SIGKILL)

    def __enter__(self) -> BackgroundProcess:
        """Return the handle itself; leaving the block waits for the command."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Wait for the command; if the block raised (Ctrl-C included), stop it first."""
        if exc_type is not None:
            self.terminate()
        self.join()

    def __repr__(self) -> str:
        if self.is_alive():
            state = "running" if self._reaped_status is None else "finishing"
        else:
            state = f"exitcode={self._exitcode}"
        return f"<BackgroundProcess pid={self._pid} {state} command={list(self._command)!r}>"

    # -- stopping -----------------------------------------------------------------

    def _stop(self, signum: int, *, timed_out: bool = False) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._stop_locked(signum, timed_out=timed_out)
        self._wakeup.wake()

    def _stop_locked(self, signum: int, *, timed_out: bool = False) -> None:
        now = time.monotonic()
        self._reap_locked(now)
        if self._reaped_status is None and not self._stopped_by_ori:
            self._stopped_by_ori = True
            self._timed_out = timed_out
        self._stop_requested = True
        if signum == signal.SIGKILL:
            if self._killed_at is None:
                signal_group(self._pid, signal.SIGKILL)
                self._killed_at = now
                if self._term_at is None:
                    self._term_at = now
        elif self._term_at is None:
            signal_group(self._pid, signal.SIGTERM)
            self._term_at = now

    def _reap_locked(self, now: float) -> None:
        if self._reaped_status is None:
            status = self._popen.poll()
            if status is not None:
                self._reaped_status = status
                self._exited_at = now

    # -- called from the reader thread --------------------------------------------

    def _callback_failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._exception is None and isinstance(exc, Exception):
                self._exception = exc
            # Ori 0.x reported exit_code_on_killed whenever a callback failed,
            # also if the command happened to finish first.
            self._stopped_by_ori = True
            if not self._done.is_set():
                self._stop_locked(signal.SIGTERM)
        self._wakeup.wake()
        if self._exception_function is None or not isinstance(exc, Exception):
            _LOG.error(
                "a callback for command %r (pid %d) raised; the command was stopped",
                list(self._command),
                self._pid,
                exc_info=exc,
            )
            return
        try:
            self._exception_function(exc)
        except Exception:
            _LOG.exception(
                "exception_function for command %r (pid %d) raised while handling %r",
                list(self._command),
                self._pid,
                exc,
            )

    def _reader_finished(self) -> None:
        with self._lock:
            self._reader_done = True
        self._wakeup.wake()

    # -- the watcher thread -------------------------------------------------------

    def _watch(self) -> None:
        selector = selectors.DefaultSelector()
        pidfd = _open_pidfd(self._pid)
        stdin = self._popen.stdin
        try:
            selector.register(self._wakeup.fileno, selectors.EVENT_READ, "wake")
            if pidfd is not None:
                selector.register(pidfd, selectors.EVENT_READ, "exit")
            if stdin is not None:
                if self._input:
                    os.set_blocking(stdin.fileno(), False)
                    selector.register(stdin.fileno(), selectors.EVENT_WRITE, "stdin")
                else:
                    stdin.close()
            while True:
                finished, wait = self._step(time.monotonic(), polling=pidfd is None)
                if finished:
                    break
                for key, _ in selector.select(wait):
                    if key.data == "wake":
                        self._wakeup.clear()
                    elif key.data == "exit":
                        # The pidfd says the command exited. Reap it with a
                        # blocking wait: on some kernels the status can lag
                        # the notification by a moment, and a poll() that
                        # came too early would leave nothing to wake us.
                        selector.unregister(key.fd)
                        self._popen.wait()
                    elif key.data == "stdin" and self._write_input(key.fd):
                        selector.unregister(key.fd)
                        self._close_stdin()
                if stdin is not None and not stdin.closed and self._stop_requested:
                    selector.unregister(stdin.fileno())
                    self._close_stdin()
        except BaseException:
            # A bug or an unexpected OS error here must not leave anything running.
            with self._lock:
                self._stopped_by_ori = self._stopped_by_ori or self._reaped_status is None
            signal_group(self._pid, signal.SIGKILL)
            self._reader.abandon()
            raise
        finally:
            selector.close()
            if pidfd is not None:
                os.close(pidfd)
            self._close_stdin()
            self._reader.thread.join()
            status = self._popen.wait()
            if self._watchdog is not None:
                self._watchdog.release()
            with self._lock:
                self._returncode = status
                self._exitcode = self._exit_code_on_killed if self._stopped_by_ori else status
                self._wakeup.close()
                self._done.set()

    def _write_input(self, fd: int) -> bool:
        """Write what fits of the input; True when all is written or the command stopped reading."""
        data = self._input
        if data is None:
            return True
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            return False
        except OSError:  # BrokenPipeError: the command closed its stdin
            self._input = None
            return True
        self._input = data[written:]
        return not self._input

    def _close_stdin(self) -> None:
        stdin = self._popen.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()

    def _step(self, now: float, *, polling: bool) -> tuple[bool, float | None]:
        """Advance the state machine: (finished, seconds until the next look or None)."""
        with self._lock:
            self._reap_locked(now)
            grace = self._grace
            waits: list[float] = []
            if self._reaped_status is None:
                # The command is still running.
                if self._deadline is not None and not self._stop_requested:
                    if now >= self._deadline:
                        self._stop_locked(signal.SIGTERM, timed_out=True)
                    else:
                        waits.append(self._deadline - now)
                if self._term_at is not None and self._killed_at is None:
                    if now >= self._term_at + grace:
                        signal_group(self._pid, signal.SIGKILL)
                        self._killed_at = now
                    else:
                        waits.append(self._term_at + grace - now)
                if polling:
                    waits.append(_POLL_SECONDS)
                return False, min(waits, default=None)

            # The command has exited and is reaped.
            if not self._reader_done and not self._stop_requested and self._term_at is None:
                # Its output is still open: something it started holds the pipes.
                # Give that the grace period to finish writing, then stop it.
                drain_end = self._exited_at + grace
                if now < drain_end:
                    return False, drain_end - now
                signal_group(self._pid, signal.SIGTERM)
                self._term_at = now

            if group_has_live_members(self._pid):
                if self._term_at is None:
                    # Leftovers that do not hold the pipes: stop them too.
                    signal_group(self._pid, signal.SIGTERM)
                    self._term_at = now
                if self._killed_at is None:
                    if now >= self._term_at + grace:
                        signal_group(self._pid, signal.SIGKILL)
                        self._killed_at = now
                    return False, min(_POLL_SECONDS, max(0.0, self._term_at + grace - now))
                if now < self._killed_at + grace:
                    return False, _POLL_SECONDS
                # Not even SIGKILL emptied the group (a process stuck in the
                # kernel): nothing more can be done; stop waiting for it.

            if not self._reader_done:
                # Nobody in the group is left, yet the pipes are open: a process
                # that left the group holds them. Stop listening.
                if not self._abandoned:
                    self._abandoned = True
                    self._reader.abandon()
                return False, None
            return True, None
