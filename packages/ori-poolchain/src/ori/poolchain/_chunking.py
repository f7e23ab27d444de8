"""How many items a stage takes at a time, adapted from what it measures.

Moving one item between threads or processes has a fixed cost (a queue hand-off,
a pickle, a pipe write). When the stage function is fast that cost dominates, so
items should travel in batches; when it is slow, batching only delays items and
starves idle workers, so they should travel one by one. A :class:`Sizer` keeps
the current batch size of one stage: lanes report how long a batch took and how
big it was, and the sizer grows the size (at most doubling per report) while a
batch is cheap, and cuts it at once when a batch gets expensive.

Process stages aim at about 10 ms of work and 256 KiB of pickled arguments per
chunk; thread stages at about 2 ms per batch (a thread hand-off is cheaper than
a pipe round trip). A size fixed by the user is never changed.
"""

from __future__ import annotations

PROCESS_TARGET_SECONDS = 0.010
PROCESS_TARGET_BYTES = 256 << 10  # also bounds the bytes in flight: the window holds a few chunks
PROCESS_MAX_CHUNK = 3072
THREAD_TARGET_SECONDS = 0.002
THREAD_MAX_BATCH = 64
# A batch or chunk still running after this long hands its unstarted items back
# to the queue, so that items that suddenly got slow spread over all workers.
THREAD_GIVE_BACK_SECONDS = 0.02
PROCESS_GIVE_BACK_SECONDS = 0.1


class Sizer:
    """The current batch size of one stage; read by anyone, updated by its lanes.

    Updates race harmlessly: every read sees some recent size.
    """

    __slots__ = ("_fixed", "_max", "_target_bytes", "_target_seconds", "size")

    def __init__(
        self,
        fixed: int | None,
        *,
        target_seconds: float,
        maximum: int,
        target_bytes: int | None = None,
    ) -> None:
        self._fixed = fixed is not None
        self.size = fixed if fixed is not None else 1
        self._target_seconds = target_seconds
        self._target_bytes = target_bytes
        self._max = maximum

    @property
    def adaptive(self) -> bool:
        return not self._fixed

    def cap(self, maximum: int) -> None:
        """Never grow beyond *maximum* (a user-given in-flight bound)."""
        if not self._fixed:
            self._max = max(1, min(self._max, maximum))
            self.size = min(self.size, self._max)

    def report(self, items: int, seconds: float, nbytes: int = 0) -> None:
        """A batch of *items* took *seconds* of work and *nbytes* to send."""
        if self._fixed or items <= 0:
            return
        per_item = max(seconds / items, 1e-7)
        target = self._target_seconds / per_item
        if self._target_bytes is not None and nbytes > 0:
            target = min(target, self._target_bytes * items / nbytes)
        wanted = max(1, min(int(target), self._max))
        # Grow gently (a single fast batch proves little), shrink at once.
        self.size = min(wanted, self.size * 2) if wanted > self.size else wanted


def process_sizer(chunksize: int | None) -> Sizer:
    """The sizer of a process stage (``chunksize=None`` means automatic)."""
    return Sizer(
        chunksize,
        target_seconds=PROCESS_TARGET_SECONDS,
        maximum=PROCESS_MAX_CHUNK,
        target_bytes=PROCESS_TARGET_BYTES,
    )


def thread_sizer() -> Sizer:
    """The sizer of a thread stage (always automatic)."""
    return Sizer(None, target_seconds=THREAD_TARGET_SECONDS, maximum=THREAD_MAX_BATCH)
