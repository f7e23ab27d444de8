"""The reader thread: pipes in, line callbacks out, one line at a time.

One thread per command does all the reading and all the calling back:

    select() over stdout, stderr and a wake-up pipe
        -> os.read() up to 64 KiB from whichever pipe is ready
        -> LineSplitter of that stream -> whole decoded lines
        -> the stream's callback, once per line, in order

Because the same thread reads and calls back, callbacks never overlap, the
lines of each stream keep their order, and a slow callback simply stops the
reading: the operating system's pipe fills up and the command blocks in its
next write. At most one chunk per stream, plus an unfinished line, is held in
memory.

The thread ends when both pipes reach end-of-file, or when it is told to
:meth:`~OutputReader.abandon` them (processes outside Ori's reach hold them
open). Either way, whatever can still be read is delivered first, and a last
line without a newline is delivered too.
"""

from __future__ import annotations

import collections
import os
import selectors
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO

from ._lines import LineSplitter
from ._wakeup import Wakeup

__all__ = ("LineCallback", "OutputReader")

LineCallback = Callable[[str], object]

_CHUNK = 65536


def _bytes_waiting(fd: int) -> int:
    """How many bytes pipe *fd* holds now (FIONREAD), or a generous bound if unknown."""
    try:
        import fcntl
        import termios

        answer = fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4)
    except (ImportError, AttributeError, OSError):
        return 64 * _CHUNK
    return int.from_bytes(answer, sys.byteorder, signed=True)


class _Stream:
    __slots__ = ("callback", "fd", "file", "splitter")

    def __init__(self, file: IO[bytes], callback: LineCallback, splitter: LineSplitter) -> None:
        self.file = file
        self.fd = file.fileno()
        self.callback = callback
        self.splitter = splitter


class OutputReader:
    """Reads a command's output pipes in a thread of its own and calls back per line.

    *on_error* is called (in the reader thread) with the first exception a
    callback or the decoder raises (even a ``SystemExit`` from ``sys.exit()``:
    there is nobody above this thread to hand it to); after that, output is still read, so the
    command never blocks on a full pipe, but no more callbacks run. *on_done*
    is called last, from the reader thread, after the pipes are closed.
    """

    def __init__(
        self,
        streams: Sequence[tuple[IO[bytes], LineCallback]],
        *,
        encoding: str,
        errors: str,
        on_error: Callable[[BaseException], None],
        on_done: Callable[[], None],
        name: str,
    ) -> None:
        self._streams = [_Stream(f, cb, LineSplitter(encoding, errors)) for f, cb in streams]
        self._on_error = on_error
        self._on_done = on_done
        self._wakeup = Wakeup()
        self._abandoned = False
        self._failed = False
        # Consumes map(callback, lines) at C speed, keeping nothing.
        self._sink: collections.deque[object] = collections.deque(maxlen=0)
        self.thread = threading.Thread(target=self._run, name=name)

    def start(self) -> None:
        """Start the reader thread.

        Raises:
            RuntimeError: the thread could not be started.
        """
        try:
            self.thread.start()
        except BaseException:
            self._close_all()
            raise

    def abandon(self) -> None:
        """Stop waiting for end-of-file: deliver what is readable now, then finish.

        Any thread may call this, any number of times.
        """
        self._abandoned = True
        self._wakeup.wake()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            for stream in self._streams:
                os.set_blocking(stream.fd, False)
                selector.register(stream.fd, selectors.EVENT_READ, stream)
            selector.register(self._wakeup.fileno, selectors.EVENT_READ, None)
            remaining = len(self._streams)
            while remaining:
                for key, _ in selector.select():
                    stream = key.data
                    if stream is None:
                        self._wakeup.clear()
                        if self._abandoned:
                            for open_stream in self._streams:
                                if not open_stream.file.closed:
                                    self._drain(open_stream)
                            remaining = 0
                            break
                        continue
                    try:
                        data = os.read(stream.fd, _CHUNK)
                    except BlockingIOError:
                        continue
                    if data:
                        self._deliver(stream, data)
                    else:
                        selector.unregister(stream.fd)
                        self._finish(stream)
                        remaining -= 1
        finally:
            selector.close()
            self._close_all()
            self._on_done()

    def _drain(self, stream: _Stream) -> None:
        """Deliver what the pipe holds right now, without waiting, then finish *stream*.

        Only the bytes present when draining starts are read: a process that
        keeps writing cannot keep the reader here forever.
        """
        budget = _bytes_waiting(stream.fd)
        while budget > 0:
            try:
                data = os.read(stream.fd, min(_CHUNK, budget))
            except BlockingIOError:
                break
            if not data:
                break
            budget -= len(data)
            self._deliver(stream, data)
        self._finish(stream)

    def _deliver(self, stream: _Stream, data: bytes) -> None:
        if self._failed:
            return
        try:
            lines = stream.splitter.feed(data)
            if lines:
                self._sink.extend(map(stream.callback, lines))
        except BaseException as exc:  # reported through on_error
            self._fail(exc)

    def _finish(self, stream: _Stream) -> None:
        try:
            if not self._failed:
                lines = stream.splitter.finish()
                if lines:
                    self._sink.extend(map(stream.callback, lines))
        except BaseException as exc:  # reported through on_error
            self._fail(exc)
        finally:
            stream.file.close()

    def _fail(self, exc: BaseException) -> None:
        self._failed = True
        self._on_error(exc)

    def _close_all(self) -> None:
        for stream in self._streams:
            stream.file.close()
        self._wakeup.close()
