"""Operators: ``flatten()``, ``filter(predicate)`` and ``batch(size, timeout=...)``.

An operator is not a stage: it runs no pool of its own. It is a step of the
chain that changes the *stream* of items between two stages (or before the
first one, or after the last), and the same code applies it in concurrent runs
(``_segments.py``) and in the single-threaded modes (``_sequential.py``).

The stream an operator reads and writes is a generator of pairs
``(origin, value)``: *origin* is the index of the input item the value comes
from (what a :class:`~._policy.Failure` names; a batch names the input item of
its first element), and *value* is either an item, a :class:`Carried` failure
of an earlier step passing through in its place, or :data:`PAUSE`. A PAUSE
says "nothing more is ready right now": whoever reads the stream may hand on
what it has (the end of a run's batch, an element of a lazy iterable being
flattened, an upstream wait that timed out), and a ``batch`` with a timeout
looks at the clock there.

Each operator's failures (an item ``flatten()`` cannot iterate, a predicate
that raised) follow the execution's error policy (the chain's unless the
execute method gives one): ``"raise"`` raises the exception with the usual note
naming the step and the input item, ``"skip"`` drops the item and counts it,
``"return"`` puts a Failure in its place.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ori.errors import OriValidationError
from ori.errors.validation import describe

from ._errors import ErrorRecord, StageLabel, exception_for
from ._feeder import IN_MEMORY, _close_generator
from ._policy import Failure
from ._stages import StageSpec


class _Pause:
    """The type of :data:`PAUSE`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PAUSE"


PAUSE: Final = _Pause()

Pair: TypeAlias = "tuple[int, Any]"
Stream: TypeAlias = "Generator[Pair, None, None]"


class Carried:
    """A failure of an earlier step travelling in the stream in its item's place.

    Stages and operators hand it on untouched; it becomes the
    :class:`~._policy.Failure` itself when it leaves the run. A wrapper rather
    than the Failure, so that a stage function returning a Failure object of
    its own is still an ordinary result.
    """

    __slots__ = ("failure",)

    def __init__(self, failure: Failure) -> None:
        self.failure = failure


@dataclass(frozen=True)
class OperatorLabel(StageLabel):
    """How messages name an operator: ``flatten() after stage 2/3``.

    *number* is the stage the operator follows (0: it reads the input items).
    """

    def __str__(self) -> str:
        where = "on the input items" if self.number == 0 else f"after stage {self.number}"
        if self.number:
            where += f"/{self.total}"
        return f"{self.kind}({self.function}) {where}"


class Clock:
    """When the timed ``batch`` steps of one stream want to look again.

    Written and read by the one thread that runs the stream.
    """

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due: dict[object, float] = {}  # step -> monotonic deadline

    def set(self, step: object, when: float) -> None:
        self._due[step] = when

    def clear(self, step: object) -> None:
        self._due.pop(step, None)

    def overdue(self, step: object) -> bool:
        due = self._due.get(step)
        return due is not None and time.monotonic() >= due

    def timeout(self) -> float | None:
        """Seconds until the first deadline (0 if past), or None: wait as long as it takes."""
        if not self._due:
            return None
        return max(0.0, min(self._due.values()) - time.monotonic())


@dataclass
class OperatorRun:
    """One operator in one execution: where it is, what its failures do, its counts.

    *clock* is None in the single-threaded modes, which ignore timeouts.
    """

    label: OperatorLabel
    policy: str
    clock: Clock | None = None
    failed: int = 0  # written by the one thread running the stream
    skipped: int = 0

    def fail(self, origin: int, value: Any, exc: BaseException) -> Carried | None:
        """What a failed item becomes: raised, dropped (None) or carried as a Failure."""
        self.failed += 1
        record = ErrorRecord(index=origin, stage=self.label, exception=exc, value=value)
        error = exception_for(record)  # the note naming the operator and the input item
        if self.policy == "raise" or not isinstance(exc, Exception):
            raise error
        if self.policy == "skip":
            self.skipped += 1
            return None
        return Carried(Failure(origin, value, str(self.label), error))


@dataclass(frozen=True)
class OperatorSpec(abc.ABC):
    """One validated operator call of the chain: immutable, reused by every execution."""

    @property
    @abc.abstractmethod
    def kind_name(self) -> str:
        """The operator's name: ``"flatten"``, ``"filter"``, ``"batch"``."""

    @property
    def function_name(self) -> str:
        """What goes between the parentheses of its label."""
        return ""

    def check_run(self) -> None:  # noqa: B027 - the same hook as StageSpec's
        """Nothing can have changed since the chain was built."""

    def label(self, after: int, total: int) -> OperatorLabel:
        return OperatorLabel(after, total, self.kind_name, self.function_name)

    @abc.abstractmethod
    def apply(self, stream: Stream, run: OperatorRun) -> Stream:
        """The stream with this operator applied (closes *stream* when it ends)."""


Step: TypeAlias = "StageSpec | OperatorSpec"


def _passes(value: Any) -> bool:
    """Whether *value* goes by an operator untouched (a pause, a carried failure)."""
    return value is PAUSE or type(value) is Carried


@dataclass(frozen=True)
class FlattenSpec(OperatorSpec):
    """``flatten()``: every element of each item's iterable goes on by itself."""

    @property
    def kind_name(self) -> str:
        return "flatten"

    def apply(self, stream: Stream, run: OperatorRun) -> Stream:
        elements: Any = None
        try:
            for origin, value in stream:
                if _passes(value):
                    yield origin, value
                    continue
                try:
                    elements = iter(value)
                except TypeError as exc:
                    error = TypeError(
                        f"{run.label} needs every item to be iterable (a list, a tuple, a "
                        f"generator...), got {describe(value)}; make the step before it "
                        "return an iterable, or remove flatten()"
                    )
                    error.__cause__ = exc
                    carried = run.fail(origin, value, error)
                    if carried is not None:
                        yield origin, carried
                    continue
                # Elements of a lazy iterable go on one by one as they come
                # (a pause after each); those of a list go on together.
                lazy = type(elements) not in IN_MEMORY
                while True:
                    try:
                        element = next(elements)
                    except StopIteration:
                        break
                    except Exception as exc:  # the elements before it went on already
                        carried = run.fail(origin, value, exc)
                        if carried is not None:
                            yield origin, carried
                        break
                    yield origin, element
                    if lazy:
                        yield origin, PAUSE
                elements = None
        finally:
            if elements is not None:
                _close_generator(elements)  # a generator result left half read
            stream.close()


@dataclass(frozen=True)
class FilterSpec(OperatorSpec):
    """``filter(predicate)``: only the items for which the predicate is truthy go on."""

    predicate: Callable[[Any], Any]

    @property
    def kind_name(self) -> str:
        return "filter"

    @property
    def function_name(self) -> str:
        name = getattr(self.predicate, "__name__", None)
        return str(name) if name else type(self.predicate).__name__

    def apply(self, stream: Stream, run: OperatorRun) -> Stream:
        predicate = self.predicate
        try:
            for origin, value in stream:
                if _passes(value):
                    yield origin, value
                    continue
                try:
                    keep = bool(predicate(value))
                except Exception as exc:
                    carried = run.fail(origin, value, exc)
                    if carried is not None:
                        yield origin, carried
                    continue
                if keep:
                    yield origin, value
        finally:
            stream.close()


@dataclass(frozen=True)
class BatchSpec(OperatorSpec):
    """``batch(size, timeout=...)``: lists of up to *size* consecutive items.

    A carried failure ends the batch being filled (it goes on, shorter, before
    the failure), so that every item keeps its place in an ordered run.
    """

    size: int
    timeout: float | None = None

    @property
    def kind_name(self) -> str:
        return "batch"

    @property
    def function_name(self) -> str:
        return str(self.size) if self.timeout is None else f"{self.size}, timeout={self.timeout:g}"

    def apply(self, stream: Stream, run: OperatorRun) -> Stream:
        size = self.size
        timeout = self.timeout
        clock = run.clock if timeout is not None else None
        key = object()  # this step in this run, for the clock
        items: list[Any] = []
        first = 0
        try:
            for origin, value in stream:
                if value is PAUSE:
                    if items and clock is not None and clock.overdue(key):
                        yield first, items
                        items = []
                        clock.clear(key)
                    yield origin, value
                    continue
                if type(value) is Carried:
                    if items:
                        yield first, items
                        items = []
                        if clock is not None:
                            clock.clear(key)
                    yield origin, value
                    continue
                if not items:
                    first = origin
                items.append(value)
                if len(items) >= size:
                    yield first, items
                    items = []
                    if clock is not None:
                        clock.clear(key)
                elif clock is not None and timeout is not None:
                    clock.set(key, time.monotonic() + timeout)  # counts from the last arrival
            if items:
                yield first, items
        finally:
            if clock is not None:
                clock.clear(key)
            stream.close()


def check_batch_size(size: object) -> int:
    """*size* if it is an int >= 1; else OriValidationError."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise OriValidationError(
            f"batch() size must be an int >= 1 (the most items in one list), got "
            f"{describe(size)}; e.g. batch(100)"
        )
    return size


def check_batch_timeout(timeout: object) -> float | None:
    """*timeout* if it is None or a number of seconds > 0; else OriValidationError."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise OriValidationError(
            "batch() timeout must be a number of seconds > 0 (a partial batch goes on when no "
            f"new item arrived for that long) or None to wait for full batches, got "
            f"{describe(timeout)}; e.g. batch(100, timeout=0.5)"
        )
    if timeout == float("inf"):
        return None
    return float(timeout)


def check_predicate(predicate: object) -> Callable[[Any], Any]:
    """*predicate* if it is callable; else OriValidationError."""
    if not callable(predicate):
        raise OriValidationError(
            f"filter() needs a callable predicate (called with one item, truthy to keep "
            f"it), got {describe(predicate)}; e.g. filter(lambda item: item is not None)"
        )
    return predicate


@dataclass
class Part:
    """A run of consecutive stages and the operators just before them."""

    operators: list[tuple[OperatorSpec, OperatorLabel]]
    stages: list[StageSpec]
    first: int  # the number of its first stage within the chain, from 1


def plan(steps: list[Step]) -> tuple[list[Part], list[tuple[OperatorSpec, OperatorLabel]]]:
    """Cut a chain into parts (operators, then stages) and the operators after the last stage."""
    total = sum(1 for step in steps if isinstance(step, StageSpec))
    parts: list[Part] = []
    operators: list[tuple[OperatorSpec, OperatorLabel]] = []
    number = 0
    for step in steps:
        if isinstance(step, StageSpec):
            number += 1
            if operators or not parts:
                parts.append(Part(operators, [], number))
                operators = []
            parts[-1].stages.append(step)
        else:
            operators.append((step, step.label(number, total)))
    return parts, operators
