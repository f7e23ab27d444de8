"""Error policies: what a failed item becomes, and how many times it is tried.

Data flow of one failure::

    stage lane --ErrorRecord--> RunContext.report
        retries left for (stage, index)?  yes --> the item goes back to the
                                                  same stage's input queue
                                          no  --> counted as failed --> consumer
    consumer --policy of the failing stage-->
        "raise"  : the run stops; the exception is raised at the item's turn
        "skip"   : the item is dropped and counted as skipped
        "return" : a :class:`Failure` takes the item's place in the results

Only :class:`Exception` subclasses are retried, skipped or returned: a
KeyboardInterrupt or SystemExit raised by a stage function always ends the
run. A stage's own ``on_error`` wins over the chain's (given to ``PoolChain()`` or
to an execute method). Whatever the policy, every input item ends up exactly
once as a result, a counted skip or a reported failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeAlias

from ori.errors import OriValidationError
from ori.errors.validation import describe

from ._errors import short_repr
from ._typing import Item

OnError: TypeAlias = Literal["raise", "skip", "return"]
POLICIES: Final = ("raise", "skip", "return")


def check_on_error(value: object, name: str = "on_error", *, allow_none: bool = False) -> Any:
    """*value* if it is one of the policies (or None when allowed); else OriValidationError."""
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value in POLICIES:
        return value
    fallback = " (or None to use the chain's policy)" if allow_none else ""
    raise OriValidationError(
        f"{name} must be 'raise', 'skip' or 'return'{fallback}, got {describe(value)}: "
        "'raise' stops the run at the failed item, 'skip' drops it and counts it, "
        "'return' yields an ori.poolchain.Failure in its place"
    )


def check_retries(value: object, name: str = "retries") -> int:
    """*value* if it is an int >= 0; else OriValidationError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OriValidationError(
            f"{name} must be an int >= 0 (how many more times a failed item is tried "
            f"in this stage), got {describe(value)}; pass 0 for no retries"
        )
    return value


@dataclass(frozen=True, repr=False)
class Failure(Generic[Item]):
    """An item that failed, yielded in its place under ``on_error="return"``.

    Generic in the type of :attr:`item`: a chain typed with its stages (see
    :class:`~ori.poolchain.PoolChain`) yields ``Failure[int]`` in place of the
    results of a stage that takes ``int`` and returns failures.

    Attributes:
        index: the item's position in the input, from 0.
        item: the argument the failing stage was called with (for the first
            stage, the input item itself; a copy kept in the parent for
            process stages).
        stage: the failing stage as messages name it, e.g.
            ``"stage 2/3 (process pool, crunch)"``.
        exception: what the stage raised, with the same note naming stage,
            index and argument that ``on_error="raise"`` would raise it with;
            :class:`~ori.errors.OriTimeoutError` or
            :class:`~ori.errors.OriWorkerCrashedError` for items that ran
            too long or whose worker process died.

    A Failure is immutable and compares by value. Test results with
    ``isinstance(result, Failure)``.
    """

    index: int
    item: Item
    stage: str
    exception: BaseException

    def __repr__(self) -> str:
        return (
            f"Failure(index={self.index}, item={short_repr(self.item)}, "
            f"stage={self.stage!r}, exception={self.exception!r})"
        )


class Retries:
    """How many times each item was retried per stage (any thread may ask)."""

    __slots__ = ("_limits", "_lock", "_submit", "_used")

    def __init__(self) -> None:
        self._limits: dict[int, int] = {}  # stage number -> retries allowed
        self._submit: dict[int, Callable[[Any], None]] = {}
        self._used: dict[tuple[int, int], int] = {}  # (stage, index) -> retries used
        self._lock = threading.Lock()

    def allow(self, stage: int, retries: int, submit: Callable[[Any], None]) -> None:
        """Stage *stage* retries a failed item *retries* times through *submit*."""
        if retries:
            self._limits[stage] = retries
            self._submit[stage] = submit

    def again(self, stage: int, index: int, value: Any) -> bool:
        """Send the item back to its stage if it has retries left; True if sent."""
        limit = self._limits.get(stage)
        if limit is None:
            return False
        key = (stage, index)
        with self._lock:
            used = self._used.get(key, 0)
            if used >= limit:
                del self._used[key]
                return False
            self._used[key] = used + 1
        self._submit[stage](([index], [value]))
        return True
