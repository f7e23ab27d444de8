"""The type-level vocabulary of a generic :class:`~._chain.PoolChain`, free at run time.

``PoolChain[In, Out, Fail]`` says what a chain takes (``In``), what its last
step yields (``Out``) and what may come out in a result's place (``Fail``:
``Never``, or ``Failure[...]`` under ``on_error="return"``). ``Fail`` has a
default (PEP 696), so ``PoolChain[int, str]`` is a chain that returns no
failures, and a bare ``PoolChain`` is ``PoolChain[Any, Any, Never]``.

Type checkers read :class:`typing_extensions.TypeVar`, which takes
``default=`` on every Python version (their own copy of typeshed has it; nothing
needs installing). At run time this module imports only the standard library:
:func:`TypeVar` makes a plain :class:`typing.TypeVar` and drops the default,
and :class:`DefaultedGeneric` fills in the defaults of the type parameters a
subscript leaves out, so ``PoolChain[int, str]`` also works at run time on
Python 3.10 to 3.12 (whose ``typing`` knows no defaults).
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, ClassVar, Generic

if TYPE_CHECKING:
    from typing_extensions import Never as Never
    from typing_extensions import TypeVar
else:
    Never = typing.NoReturn  # the same bottom type (typing.Never is 3.11+)

    def TypeVar(name, *constraints, bound=None, covariant=False, contravariant=False, default=None):
        """A :class:`typing.TypeVar`; *default* is for type checkers only."""
        return typing.TypeVar(
            name, *constraints, bound=bound, covariant=covariant, contravariant=contravariant
        )


class DefaultedGeneric:
    """A base for a generic class whose last type parameters have defaults.

    The class lists one run-time default per type parameter in
    ``_parameter_defaults``; a subscript that gives fewer is completed from it.
    """

    _parameter_defaults: ClassVar[tuple[object, ...]] = ()

    if not TYPE_CHECKING:  # type checkers know the defaults from the TypeVars

        def __class_getitem__(cls, params):
            if not isinstance(params, tuple):
                params = (params,)
            defaults = cls.__dict__.get("_parameter_defaults", ())
            if 0 < len(params) < len(defaults):
                params = (*params, *defaults[len(params) :])
            return super().__class_getitem__(params)


# The chain's: what it takes, what it yields, what may come in a result's place.
In = TypeVar("In", contravariant=True, default=Any)
Out = TypeVar("Out", covariant=True, default=Any)
Fail = TypeVar("Fail", default=Never)  # invariant: see NoStages
# The methods': a new stage's result, an element of a flattened item, the Fail
# that an empty chain hands on. First is a first stage's argument: bound to Any
# so that pyright types a lambda's parameter as Any instead of as the unsolved
# variable, and Any by default so that mypy does the same (not Never).
New = TypeVar("New", default=Any)
Element = TypeVar("Element", default=Any)
EmptyFail = TypeVar("EmptyFail", default=Never)
First = TypeVar("First", bound=Any, default=Any)
# A Failure's argument, and what a run yields.
Item = TypeVar("Item", covariant=True, default=Any)
Result = TypeVar("Result", covariant=True, default=Any)


class NoStages(Generic[EmptyFail]):
    """The type parameters of a chain that has no stage yet (a type, never an object).

    ``PoolChain()`` is a ``PoolChain[NoStages, NoStages, NoStages]``: its first
    stage fixes what the chain takes. In the third place, ``NoStages[F]``
    carries what the chain's own *on_error* makes of failures (``Never``, or
    ``Failure[Any]`` for ``PoolChain(on_error="return")``) over to the first
    stage. The third place is what tells an empty chain from one with stages,
    because after the first stage it is never a ``NoStages``: the first two may
    be ``Any`` (a lambda), which would match anything.
    """


if TYPE_CHECKING:
    from collections.abc import Iterable
    from concurrent.futures import Executor
    from multiprocessing.context import BaseContext
    from typing import Literal, TypeAlias, TypedDict

    # A stage or execution policy that puts no Failure among the results.
    KeepsNoFailure: TypeAlias = "Literal['raise', 'skip'] | None"

    # The keywords of each add* method besides on_error, for the overloads
    # (``**options: Unpack[...]``), so that each lists them once.

    class RetryOptions(TypedDict, total=False):
        retries: int

    class TimeoutOptions(RetryOptions, total=False):
        max_workers: int | None
        timeout: float | None

    class ThreadOptions(TimeoutOptions, total=False):
        initializer: typing.Callable[..., Any] | None
        initargs: Iterable[Any]

    class ProcessOptions(ThreadOptions, total=False):
        chunksize: int | None
        mp_context: BaseContext | None
        start_method: str | None

    class AddOptions(ProcessOptions, total=False):
        executor_class: type[Executor] | None
        executor: Executor | None

    class CpuOptions(TimeoutOptions, total=False):
        chunksize: int | None

    class AsyncOptions(RetryOptions, total=False):
        max_concurrency: int
        timeout: float | None

    class DaskOptions(CpuOptions, total=False):
        pass

    class RunKeywords(TypedDict, total=False):
        """The keywords of execute_lazy and execute_eager besides on_error."""

        ordered: bool
        max_in_flight: int | None
        max_memory: int | str | None
        progress: bool | typing.Callable[..., Any]
