"""The :class:`PoolChain` builder: validated stage specs and the execute methods.

A chain only records what to run. Every ``execute_*`` call starts a new,
independent run (see ``_run.py``), so one chain can be executed any number of
times, one after the other or at once from several threads.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import multiprocessing.context
import sys
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Generic, Literal, overload

from ori.errors import OriInvalidStateError, OriValidationError
from ori.errors.validation import (
    check_callable,
    check_executor_class,
    check_positive_int,
    describe,
)

from ._budget import check_max_memory
from ._compat import gil_enabled
from ._dask_stage import DaskSpec
from ._executor_class_stage import ExecutorClassSpec
from ._operators import (
    BatchSpec,
    FilterSpec,
    FlattenSpec,
    Step,
    check_batch_size,
    check_batch_timeout,
    check_predicate,
)
from ._policy import Failure, OnError, check_on_error, check_retries
from ._process_stage import STOP_GRACE_SECONDS, ProcessSpec
from ._progress import progress_setup
from ._run import PoolChainRun, RunOptions
from ._segments import start_engine
from ._sequential import run_sequentially
from ._stages import DEFAULT_MAX_CONCURRENCY, StageSpec, check_initializer
from ._stats import ChainStats, RunStats
from ._thread_stage import ThreadSpec
from ._typing import (
    DefaultedGeneric,
    Element,
    EmptyFail,
    Fail,
    First,
    In,
    Never,
    New,
    NoStages,
    Out,
)
from ._user_executor import UserExecutorSpec
from ._warm import WarmPools

if TYPE_CHECKING:
    import asyncio
    from typing import TypeAlias

    from typing_extensions import Unpack

    from ._async_run import PoolChainAsyncRun
    from ._typing import (
        AddOptions,
        AsyncOptions,
        CpuOptions,
        DaskOptions,
        KeepsNoFailure,
        ProcessOptions,
        RunKeywords,
        ThreadOptions,
    )

    # A chain without stages, whatever the on_error it was made with (see NoStages).
    EmptyChain: TypeAlias = "PoolChain[NoStages[Any], NoStages[Any], NoStages[EmptyFail]]"


def _no_initializer(initializer: object, where: str) -> None:
    if initializer is not None:
        raise OriValidationError(
            f"initializer only applies to thread and process stages, not to {where}; "
            "set the executor up yourself, or use add_threadpool/add_processpool"
        )


def _check_iterable(iterable: object, also: str = "") -> Iterator[Any]:
    try:
        return iter(iterable)  # type: ignore[call-overload, no-any-return]
    except TypeError:
        raise OriValidationError(
            f"iterable must be an iterable such as a list or a generator{also}, "
            f"got {describe(iterable)}"
        ) from None


def _is_async_iterable(iterable: object) -> bool:
    return hasattr(type(iterable), "__aiter__")


def _running_loop() -> asyncio.AbstractEventLoop:
    import asyncio  # here: a program that never runs a chain from asyncio need not import it

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise OriInvalidStateError(
            "execute_async() needs a running event loop and there is none in this thread; "
            "call it from a coroutine (e.g. inside asyncio.run(main())), or use "
            "execute_lazy() in synchronous code"
        ) from None


class PoolChain(DefaultedGeneric, Generic[In, Out, Fail]):
    """A chain of stages that an iterable streams through, each on its own pool.

    Build it with :meth:`add_threadpool`, :meth:`add_processpool` or :meth:`add`
    (each returns the chain, so calls can be chained), then run it with one of
    the ``execute_*`` methods. Every stage runs concurrently with the others:
    an item moves on to the next stage as soon as it is done, so downloading,
    computing and saving overlap. Use thread stages for functions that wait
    (network, disk) and process stages for pure-Python computation.

    Building a chain starts nothing; each execution starts its own threads and
    worker processes and stops all of them when it ends, so a chain can be
    executed again. Inside ``with chain:`` the worker processes stay alive
    from one execution to the next instead (see :meth:`__enter__`).
    Building is not thread-safe; executing is.

    A failing item stops the run by default; *on_error* chooses otherwise for
    the whole chain, each ``add*`` method's *on_error* for one stage, and an
    execute method's *on_error* for one execution (see ``Failure``).

    What every ``add*`` method has in common: it records a stage and returns
    the chain, for chaining calls; it never blocks and starts nothing (call it
    from the thread that builds the chain); it checks its arguments at once,
    raising :class:`~ori.errors.OriValidationError` with the fix. And each
    takes these two keywords:

    * *on_error*: this stage's error policy, winning over the chain's and the
      execution's: ``"raise"``, ``"skip"`` or ``"return"`` (see below);
      ``None`` (the default) uses theirs.
    * *retries*: how many more times an item that failed in this stage (an
      exception, a timeout, a crashed worker) is tried before the policy
      applies; ``0`` (the default): none. A retried item goes back to this
      stage's queue, so it may run more than once.

    The chain is generic, ``PoolChain[In, Out, Fail]``, for type checkers
    only: ``In`` is what its first stage takes, ``Out`` what its last step
    yields and ``Fail`` what may come out in a result's place (``Never``, or
    a :class:`~ori.poolchain.Failure` under ``on_error="return"``). Each
    ``add*`` method returns the chain typed with its function's result, and a
    function that does not take the previous result is an error for mypy and
    pyright; ``execute_eager`` then returns ``list[Out]``. Nothing changes at
    run time.

    Examples:
        >>> from ori.poolchain import PoolChain
        >>> chain = PoolChain().add_threadpool(lambda n: n * 10).add_processpool(str)
        >>> chain.execute_eager([1, 2, 3])
        ['10', '20', '30']

    Args:
        on_error: what a failed item does, for stages that do not set their
            own: ``"raise"`` (default) stops the run and raises the item's
            exception at its turn; ``"skip"`` drops the item, counts it in
            :attr:`ChainStats.items_skipped` and goes on; ``"return"`` yields
            an :class:`~ori.poolchain.Failure` in the item's place and goes on.

    Raises:
        OriValidationError: *on_error* is not one of the three policies.
    """

    _parameter_defaults = (Any, Any, Never)  # PoolChain[int, str] at run time

    @overload
    def __init__(
        self: PoolChain[NoStages, NoStages, NoStages],
        *,
        on_error: Literal["raise", "skip"] = ...,
    ) -> None: ...
    @overload
    def __init__(
        self: PoolChain[NoStages, NoStages, NoStages[Failure[Any]]], *, on_error: OnError
    ) -> None: ...
    def __init__(self, *, on_error: OnError = "raise") -> None:
        self._on_error: str = check_on_error(on_error)
        self._specs: list[Step] = []  # stages and operators, in chain order
        self._latest: RunStats | None = None  # statistics of the most recent run
        self._pools: WarmPools | None = None  # inside ``with``: workers kept between runs

    def _append(
        self, spec: StageSpec, on_error: object, retries: object
    ) -> PoolChain[Any, Any, Any]:
        policy = check_on_error(on_error, allow_none=True)
        count = check_retries(retries)
        self._specs.append(dataclasses.replace(spec, on_error=policy, retries=count))
        return self

    # -- building -------------------------------------------------------------
    #
    # Every add* method has four overloads: on a chain without stages (the
    # function's parameter fixes In) or after a stage (the parameter must take
    # Out), each with a stage policy that returns no Failure or one that may.

    @overload
    def add(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[AddOptions],
    ) -> PoolChain[First, New, EmptyFail]: ...
    @overload
    def add(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        on_error: OnError | None,
        **options: Unpack[AddOptions],
    ) -> PoolChain[First, New, EmptyFail | Failure[First]]: ...
    @overload
    def add(
        self,
        function: Callable[[Out], New],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[AddOptions],
    ) -> PoolChain[In, New, Fail]: ...
    @overload
    def add(
        self,
        function: Callable[[Out], New],
        *,
        on_error: OnError | None,
        **options: Unpack[AddOptions],
    ) -> PoolChain[In, New, Fail | Failure[Out]]: ...
    def add(
        self,
        function: Callable[[Any], Any],
        *,
        executor_class: type[concurrent.futures.Executor] | None = None,
        max_workers: int | None = None,
        timeout: float | None = None,
        chunksize: int | None = None,
        mp_context: multiprocessing.context.BaseContext | None = None,
        executor: concurrent.futures.Executor | None = None,
        on_error: OnError | None = None,
        retries: int = 0,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        start_method: str | None = None,
    ) -> PoolChain[Any, Any, Any]:
        """Append a stage that runs *function* on every item, on *executor_class* or *executor*.

        ``ThreadPoolExecutor`` and ``ProcessPoolExecutor`` themselves select Ori's
        own thread and process stages (what :meth:`add_threadpool` and
        :meth:`add_processpool` add). Any other
        :class:`concurrent.futures.Executor` subclass, including subclasses of
        those two, is created per execution as ``executor_class(max_workers=...)``
        (or ``executor_class()`` when *max_workers* is None), fed through its
        ``submit`` with at most one item in flight per worker, and shut down when
        the execution ends.

        Pass *executor* instead of *executor_class* to run the stage on an
        executor you own (exactly one of the two): Ori submits at most two tasks
        per worker it may use (one with a timeout), sends fast items in chunks
        (*chunksize*, automatic by default), cancels its tasks that have not
        started when the execution ends and never shuts the executor down.

        Args:
            function: called with one item, returns the item for the next stage.
                For process stages it must be picklable by reference: a function
                defined with ``def`` at the top level of a module, a builtin, or
                a picklable callable object.
            executor_class: the :class:`concurrent.futures.Executor` subclass
                (the class, not an instance).
            max_workers: threads or processes of this stage. ``None``: for
                threads what ``ThreadPoolExecutor`` would use
                (``min(32, CPUs + 4)``), for processes one per usable CPU. With
                *executor*: how many of its workers this stage may keep busy
                (``None``: all of them).
            timeout: seconds one item may run in this stage (int or float > 0);
                an item that runs longer fails with
                :class:`~ori.errors.OriTimeoutError`. ``None``: no limit. With
                *executor* it counts from the moment the item is submitted.
            chunksize: items sent to a worker process (or, with *executor*, in
                one task) at a time. ``None`` (the default) sizes chunks
                automatically from measured run times; ``1`` sends items one by
                one. Process stages and *executor* use it; with *executor* it
                cannot exceed 1 when a *timeout* is set.
            mp_context: a :mod:`multiprocessing` context choosing the start
                method of a process stage (``multiprocessing.get_context("spawn")``);
                ``None`` uses the interpreter's default.
            executor: a :class:`concurrent.futures.Executor` instance you own
                and shut down yourself; Ori never shuts it down.
            on_error: this stage's error policy (see :class:`PoolChain`).
            retries: tries more for a failed item (see :class:`PoolChain`).
            initializer: called as ``initializer(*initargs)`` once in every
                worker process (process stages) or lane thread (thread stages)
                before its first item, e.g. to open a connection or load a
                model into a module-level variable. If it raises, the
                execution fails with :class:`~ori.errors.OriError` naming the
                stage, the initializer's exception chained. Thread and process
                stages only.
            initargs: the arguments of *initializer* (a tuple or other
                iterable; picklable for process stages).
            start_method: ``"spawn"``, ``"fork"`` or ``"forkserver"`` for a
                process stage: a shorthand for *mp_context* (give at most one
                of the two).

        Returns:
            This chain, for chaining calls.

        Raises:
            OriValidationError: *function* is not callable; both or neither of
                *executor_class* and *executor* are given; *executor_class* is
                an instance or not an Executor subclass; *executor* is a class,
                a dask client (use :meth:`add_dask`) or not an Executor;
                *max_workers*,
                *timeout* or *chunksize* is not a positive number of the right
                type; *mp_context* is not a multiprocessing context or is given
                for a stage that is not a process stage; *start_method* is not
                a start method of this platform, or given with *mp_context*;
                *initializer* is not callable or given for a stage that is not
                a thread or process stage; a process stage was given a lambda
                or a nested function and cloudpickle is not installed (the
                message says how to install the extra); *on_error* is not a
                policy or *retries* not an int >= 0.
            OriNoInteractiveProcessPools: a process stage was given a function
                defined in an interactive session or ``python -c`` and its
                workers are not forked, so they could not import it.
        """
        return self._add(
            function,
            executor_class=executor_class,
            max_workers=max_workers,
            timeout=timeout,
            chunksize=chunksize,
            mp_context=mp_context,
            executor=executor,
            on_error=on_error,
            retries=retries,
            initializer=initializer,
            initargs=initargs,
            start_method=start_method,
        )

    def _add(
        self,
        function: Callable[[Any], Any],
        *,
        executor_class: type[concurrent.futures.Executor] | None,
        max_workers: int | None,
        timeout: float | None,
        chunksize: int | None = None,
        mp_context: multiprocessing.context.BaseContext | None = None,
        executor: concurrent.futures.Executor | None = None,
        on_error: OnError | None,
        retries: int,
        initializer: Callable[..., Any] | None,
        initargs: Iterable[Any],
        start_method: str | None = None,
    ) -> PoolChain[Any, Any, Any]:
        """:meth:`add` without its overloads, for the other add* methods."""
        if executor is not None or executor_class is None:
            if executor_class is not None or executor is None:
                raise OriValidationError(
                    "add() needs exactly one of executor_class= (a subclass of "
                    "concurrent.futures.Executor such as ThreadPoolExecutor, which Ori creates "
                    "and shuts down per execution) and executor= (an Executor instance you "
                    f"own), got {'both' if executor is not None else 'neither'}"
                )
            if mp_context is not None or start_method is not None:
                which = "mp_context" if mp_context is not None else "start_method"
                raise OriValidationError(
                    f"{which} does not apply to executor=: your executor already has "
                    "its start method; leave it None"
                )
            _no_initializer(initializer, "executor=")
            spec: StageSpec = UserExecutorSpec.create(
                function, executor, max_workers=max_workers, timeout=timeout, chunksize=chunksize
            )
            return self._append(spec, on_error, retries)
        check_callable(function, "function")
        cls = check_executor_class(executor_class)
        if cls is concurrent.futures.ProcessPoolExecutor:
            spec = ProcessSpec.create(
                function,
                max_workers=max_workers,
                timeout=timeout,
                chunksize=chunksize,
                mp_context=mp_context,
                start_method=start_method,
                initializer=initializer,
                initargs=initargs,
            )
            return self._append(spec, on_error, retries)
        if mp_context is not None or start_method is not None:
            which = "mp_context" if mp_context is not None else "start_method"
            raise OriValidationError(
                f"{which} only applies to process stages (add_processpool, or add with "
                f"executor_class=ProcessPoolExecutor), not to {cls.__name__}; leave it None"
            )
        check_positive_int(chunksize, "chunksize")  # accepted for every stage, used by some
        if cls is concurrent.futures.ThreadPoolExecutor:
            spec = ThreadSpec.create(
                function,
                max_workers=max_workers,
                timeout=timeout,
                initializer=initializer,
                initargs=initargs,
            )
        else:
            _no_initializer(initializer, cls.__name__)
            if initargs != ():
                check_initializer(initializer, initargs)  # the initargs-without-initializer error
            spec = ExecutorClassSpec.create(function, cls, max_workers=max_workers, timeout=timeout)
        return self._append(spec, on_error, retries)

    @overload
    def add_threadpool(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[ThreadOptions],
    ) -> PoolChain[First, New, EmptyFail]: ...
    @overload
    def add_threadpool(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        on_error: OnError | None,
        **options: Unpack[ThreadOptions],
    ) -> PoolChain[First, New, EmptyFail | Failure[First]]: ...
    @overload
    def add_threadpool(
        self,
        function: Callable[[Out], New],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[ThreadOptions],
    ) -> PoolChain[In, New, Fail]: ...
    @overload
    def add_threadpool(
        self,
        function: Callable[[Out], New],
        *,
        on_error: OnError | None,
        **options: Unpack[ThreadOptions],
    ) -> PoolChain[In, New, Fail | Failure[Out]]: ...
    def add_threadpool(
        self,
        function: Callable[[Any], Any],
        *,
        max_workers: int | None = None,
        timeout: float | None = None,
        on_error: OnError | None = None,
        retries: int = 0,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
    ) -> PoolChain[Any, Any, Any]:
        """Append a stage that runs *function* in a pool of threads.

        Suits functions that spend their time waiting (HTTP requests, disk,
        subprocesses, C code that releases the GIL). Any callable works,
        lambdas included. A thread cannot be stopped from outside: when an item
        exceeds *timeout*, the execution reports it at once, but the call itself
        goes on in the background and its result is thrown away.

        Args:
            function: called with one item, returns the item for the next stage.
            max_workers: number of threads; ``None`` means ``min(32, CPUs + 4)``,
                like ``ThreadPoolExecutor``.
            timeout: seconds one item may run (int or float > 0), or ``None``.
            on_error: this stage's error policy (see :class:`PoolChain`).
            retries: tries more for a failed item (see :class:`PoolChain`).
            initializer: called as ``initializer(*initargs)`` once in every
                lane thread before its first item (threads are started per
                execution, so once per thread per execution); if it raises,
                the execution fails with :class:`~ori.errors.OriError` naming
                the stage.
            initargs: the arguments of *initializer*.

        Returns:
            This chain, for chaining calls.

        Raises:
            OriValidationError: *function* or *initializer* is not callable,
                or *max_workers* or *timeout* is not a positive number of the
                right type, or *on_error* is not a policy or *retries* not an
                int >= 0.
        """
        return self._add(
            function,
            executor_class=concurrent.futures.ThreadPoolExecutor,
            max_workers=max_workers,
            timeout=timeout,
            on_error=on_error,
            retries=retries,
            initializer=initializer,
            initargs=initargs,
        )

    @overload
    def add_processpool(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[ProcessOptions],
    ) -> PoolChain[First, New, EmptyFail]: ...
    @overload
    def add_processpool(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        on_error: OnError | None,
        **options: Unpack[ProcessOptions],
    ) -> PoolChain[First, New, EmptyFail | Failure[First]]: ...
    @overload
    def add_processpool(
        self,
        function: Callable[[Out], New],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[ProcessOptions],
    ) -> PoolChain[In, New, Fail]: ...
    @overload
    def add_processpool(
        self,
        function: Callable[[Out], New],
        *,
        on_error: OnError | None,
        **options: Unpack[ProcessOptions],
    ) -> PoolChain[In, New, Fail | Failure[Out]]: ...
    def add_processpool(
        self,
        function: Callable[[Any], Any],
        *,
        max_workers: int | None = None,
        timeout: float | None = None,
        chunksize: int | None = None,
        mp_context: multiprocessing.context.BaseContext | None = None,
        on_error: OnError | None = None,
        retries: int = 0,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        start_method: str | None = None,
    ) -> PoolChain[Any, Any, Any]:
        """Append a stage that runs *function* in worker processes Ori owns.

        Suits pure-Python computation, which threads cannot run in parallel.
        Items and results are pickled (standard pickle), so they must be
        picklable. The function travels by reference: a function defined with
        ``def`` at the top level of a module, or a builtin. With the
        ``cloudpickle`` extra installed (``pip install
        'ori-poolchain[cloudpickle]'``), lambdas, closures and functions typed
        into a REPL or ``python -c`` work too, under every start method: such
        a function is sent by value once per worker process start, never per
        item. Without the extra they are refused here, with the fix in the
        message.

        Inside ``with chain:`` the stage's worker processes stay alive between
        executions (see :meth:`__enter__`), so *initializer* then runs once
        per worker for the whole block.

        An item that exceeds *timeout* has its worker process killed and
        replaced, and fails with :class:`~ori.errors.OriTimeoutError`; a worker
        that dies (``os._exit``, a signal, a crash in C code) is replaced and
        fails the item it was running with
        :class:`~ori.errors.OriWorkerCrashedError` (fast items are tracked per
        small slice: after a death the slice's items run again one by one, and
        only one that kills a worker on its own is reported; a death that
        does not happen again is counted in ``StageStats.workers_lost``, not
        as a failure). Whatever happened, the other workers' items are not
        lost, and the error policy decides whether the run goes on. Worker processes
        ignore SIGINT, so Ctrl-C is handled once, by the consumer.

        Args:
            function: a picklable, module-level function or callable.
            max_workers: number of worker processes; ``None`` means one per
                usable CPU.
            timeout: seconds one item may run (int or float > 0), or ``None``.
            chunksize: items sent to a worker at a time; ``None`` (the default)
                picks and adapts it automatically, aiming at about 10 ms of
                work per chunk; ``1`` sends items one by one.
            mp_context: a :mod:`multiprocessing` context selecting the start
                method (fork, spawn, forkserver); ``None`` uses the default.
            on_error: this stage's error policy (see :class:`PoolChain`).
            retries: tries more for a failed item (see :class:`PoolChain`).
            initializer: called as ``initializer(*initargs)`` once in every
                worker process before its first item (also in a worker that
                replaces a crashed or killed one), e.g. to load a model into a
                module-level variable. Same pickling rules as *function*. If
                it raises, the execution fails with
                :class:`~ori.errors.OriError` naming the stage, the worker's
                traceback chained; its workers are stopped, nothing hangs.
            initargs: the (picklable) arguments of *initializer*.
            start_method: ``"spawn"``, ``"fork"`` or ``"forkserver"``: a
                shorthand for ``mp_context=multiprocessing.get_context(...)``;
                give at most one of the two.

        Returns:
            This chain, for chaining calls.

        Raises:
            OriValidationError: *function* or *initializer* is not callable,
                or is a lambda or a nested function while cloudpickle is not
                installed; *max_workers*, *timeout* or *chunksize* is not a
                positive number of the right type; *mp_context* is not a
                multiprocessing context; *start_method* is unknown on this
                platform or given together with *mp_context*; *on_error* is
                not a policy or *retries* not an int >= 0.
            OriNoInteractiveProcessPools: *function* was defined in an
                interactive session or ``python -c``, the start method is not
                fork and cloudpickle is not installed, so the workers could not
                import it.
        """
        return self._add(
            function,
            executor_class=concurrent.futures.ProcessPoolExecutor,
            max_workers=max_workers,
            timeout=timeout,
            chunksize=chunksize,
            mp_context=mp_context,
            on_error=on_error,
            retries=retries,
            initializer=initializer,
            initargs=initargs,
            start_method=start_method,
        )

    @overload
    def add_cpupool(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[CpuOptions],
    ) -> PoolChain[First, New, EmptyFail]: ...
    @overload
    def add_cpupool(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        on_error: OnError | None,
        **options: Unpack[CpuOptions],
    ) -> PoolChain[First, New, EmptyFail | Failure[First]]: ...
    @overload
    def add_cpupool(
        self,
        function: Callable[[Out], New],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[CpuOptions],
    ) -> PoolChain[In, New, Fail]: ...
    @overload
    def add_cpupool(
        self,
        function: Callable[[Out], New],
        *,
        on_error: OnError | None,
        **options: Unpack[CpuOptions],
    ) -> PoolChain[In, New, Fail | Failure[Out]]: ...
    def add_cpupool(
        self,
        function: Callable[[Any], Any],
        *,
        max_workers: int | None = None,
        timeout: float | None = None,
        chunksize: int | None = None,
        on_error: OnError | None = None,
        retries: int = 0,
    ) -> PoolChain[Any, Any, Any]:
        """Append a stage for CPU-bound work, on threads or processes, whichever runs in parallel.

        On a free-threaded interpreter (Python 3.13t and later with the GIL
        off: ``sys._is_gil_enabled()`` is false) the stage runs on threads,
        like :meth:`add_threadpool`: items and results are not pickled, which
        makes large items far cheaper, and any callable works. With the GIL,
        threads could not compute in parallel, so the stage runs on worker
        processes, like :meth:`add_processpool`, with its pickling rules. The
        choice is made here, when the stage is added; the results are the
        same either way. The stage's label (in errors, :class:`ChainStats`,
        ``print_stats()`` and progress bars) says which it picked: ``cpu pool
        on threads`` or ``cpu pool on processes``.

        What differs on threads: nothing is pickled; an item that exceeds
        *timeout* is reported at once, but its thread cannot be killed, so the
        call runs on in the background and its result is dropped; a crash in
        C code takes the whole program down instead of one worker; and
        *chunksize* has no effect (thread stages batch by themselves).

        Args:
            function: called with one item, returns the item for the next
                stage; on processes it must be picklable (see
                :meth:`add_processpool`).
            max_workers: threads or processes; ``None`` means one per usable CPU.
            timeout: seconds one item may run (int or float > 0), or ``None``.
            chunksize: items sent to a worker process at a time (processes
                only); ``None`` (the default) is automatic.
            on_error: this stage's error policy (see :class:`PoolChain`).
            retries: tries more for a failed item (see :class:`PoolChain`).

        Returns:
            This chain, for chaining calls.

        Raises:
            OriValidationError: as :meth:`add_processpool` (or
                :meth:`add_threadpool` on threads) for the same arguments.
        """
        spec: StageSpec
        if gil_enabled():
            spec = ProcessSpec.create(
                function,
                max_workers=max_workers,
                timeout=timeout,
                chunksize=chunksize,
                cpu_bound=True,
            )
        else:
            check_positive_int(chunksize, "chunksize")  # checked, though threads do not chunk
            spec = ThreadSpec.create(
                function, max_workers=max_workers, timeout=timeout, cpu_bound=True
            )
        return self._append(spec, on_error, retries)

    @overload
    def add_asyncpool(
        self: EmptyChain[EmptyFail],
        async_function: Callable[[First], Awaitable[New]],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[AsyncOptions],
    ) -> PoolChain[First, New, EmptyFail]: ...
    @overload
    def add_asyncpool(
        self: EmptyChain[EmptyFail],
        async_function: Callable[[First], Awaitable[New]],
        *,
        on_error: OnError | None,
        **options: Unpack[AsyncOptions],
    ) -> PoolChain[First, New, EmptyFail | Failure[First]]: ...
    @overload
    def add_asyncpool(
        self,
        async_function: Callable[[Out], Awaitable[New]],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[AsyncOptions],
    ) -> PoolChain[In, New, Fail]: ...
    @overload
    def add_asyncpool(
        self,
        async_function: Callable[[Out], Awaitable[New]],
        *,
        on_error: OnError | None,
        **options: Unpack[AsyncOptions],
    ) -> PoolChain[In, New, Fail | Failure[Out]]: ...
    def add_asyncpool(
        self,
        async_function: Callable[[Any], Awaitable[Any]],
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        timeout: float | None = None,
        on_error: OnError | None = None,
        retries: int = 0,
    ) -> PoolChain[Any, Any, Any]:
        """Append a stage that awaits *async_function* on every item, on one event loop.

        Suits I/O with an asyncio library (HTTP clients, databases): thousands
        of items can wait at once, for one thread. Each execution starts an
        event loop in a background thread of its own; at most
        *max_concurrency* coroutines run at a time, and results move on as
        each finishes. The loop is private to the execution: create loop-bound
        objects (client sessions) inside the coroutine or lazily on the
        first call, not before executing. Blocking calls inside the coroutine
        stall every item of the stage; use :meth:`add_threadpool` for those.

        An item that runs past *timeout* has its coroutine cancelled and fails
        with :class:`~ori.errors.OriTimeoutError` at once (a coroutine that
        ignores cancellation goes on in the background until the execution
        ends). When the execution ends (end of input, error, ``break``,
        ``close()``, Ctrl-C in the consumer), every running coroutine is
        cancelled, the loop is closed and its thread exits within a few
        seconds. The single-threaded execute methods run each call to its end
        on a private loop in the calling thread.

        Args:
            async_function: an ``async def`` function (or a bound method,
                :func:`functools.partial` or object with an ``async def
                __call__``), called with one item; what it returns goes to the
                next stage. A lambda that returns an awaitable is accepted too
                (``lambda url: fetch(session, url)``).
            max_concurrency: most items awaited at once (an int >= 1;
                default 100).
            timeout: seconds one item may take (int or float > 0), or
                ``None`` for no limit.
            on_error: this stage's error policy (see :class:`PoolChain`).
            retries: tries more for a failed item (see :class:`PoolChain`).

        Returns:
            This chain, for chaining calls.

        Raises:
            OriValidationError: *async_function* is not callable or is a plain
                (not async) function, a generator or async generator function,
                a builtin or a class; *max_concurrency* or *timeout* is not a
                positive number of the right type; *on_error* is not a policy
                or *retries* not an int >= 0. At run time, an item whose
                call returns something that cannot be awaited fails with it.
        """
        from ._async_stage import AsyncSpec  # asyncio is imported only when used

        spec = AsyncSpec.create(async_function, max_concurrency=max_concurrency, timeout=timeout)
        return self._append(spec, on_error, retries)

    @overload
    def add_dask(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        client: Any,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[DaskOptions],
    ) -> PoolChain[First, New, EmptyFail]: ...
    @overload
    def add_dask(
        self: EmptyChain[EmptyFail],
        function: Callable[[First], New],
        *,
        client: Any,
        on_error: OnError | None,
        **options: Unpack[DaskOptions],
    ) -> PoolChain[First, New, EmptyFail | Failure[First]]: ...
    @overload
    def add_dask(
        self,
        function: Callable[[Out], New],
        *,
        client: Any,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[DaskOptions],
    ) -> PoolChain[In, New, Fail]: ...
    @overload
    def add_dask(
        self,
        function: Callable[[Out], New],
        *,
        client: Any,
        on_error: OnError | None,
        **options: Unpack[DaskOptions],
    ) -> PoolChain[In, New, Fail | Failure[Out]]: ...
    def add_dask(
        self,
        function: Callable[[Any], Any],
        *,
        client: Any,
        max_workers: int | None = None,
        timeout: float | None = None,
        chunksize: int | None = None,
        on_error: OnError | None = None,
        retries: int = 0,
    ) -> PoolChain[Any, Any, Any]:
        """Append a stage that runs *function* on a dask cluster through *client*.

        Needs the ``dask`` extra: ``pip install 'ori-poolchain[dask]'``. Items
        (or chunks of fast items) become tasks submitted with
        ``client.submit`` while the stage has fewer than two per worker thread
        it may use in flight, so an endless input streams through the cluster
        with bounded memory (``Client.map`` would want the whole input at once).
        The function and items travel with cloudpickle, so lambdas and
        closures work; the workers need the libraries the function uses, and
        ``ori-poolchain`` itself. A failing item raises its own exception with
        the worker's traceback and a note naming stage and item, like any
        stage. When the execution ends (including ``break``, errors and
        Ctrl-C) the stage cancels every task it still has, so none is left on
        the cluster; a task already running on a worker cannot be interrupted
        by dask, it finishes there and its result is dropped. The client and
        cluster are yours: Ori never closes them. The single-threaded execute
        methods call *function* locally.

        Args:
            function: called with one item on a dask worker; what it returns
                goes to the next stage.
            client: a connected, synchronous ``distributed.Client``.
            max_workers: how many of the cluster's worker threads this stage
                may keep busy; ``None``: all of those the cluster has when
                the execution starts (pass a number for clusters that scale
                up later).
            timeout: seconds one item may take from its submission
                (int or float > 0); the task is then cancelled and the item
                fails with :class:`~ori.errors.OriTimeoutError`. With a
                timeout each task holds one item and the stage keeps one task
                per worker thread in flight.
            chunksize: items per task; ``None`` (the default) sizes chunks
                automatically (about 0.1 s of work per task); ``1`` sends items
                one by one. Cannot exceed 1 when *timeout* is set.
            on_error: this stage's error policy (see :class:`PoolChain`).
            retries: tries more for a failed item (see :class:`PoolChain`).

        Returns:
            This chain, for chaining calls.

        Raises:
            OriValidationError: dask.distributed is not installed (the
                message says how to install it); *function* is not callable;
                *client* is not a ``distributed.Client`` or is asynchronous;
                *max_workers*, *timeout* or *chunksize* is not a positive
                number of the right type; *chunksize* > 1 with a *timeout*;
                *on_error* is not a policy or *retries* not an int >= 0.
                At execution, a closed client.
        """
        spec = DaskSpec.create(
            function, client, max_workers=max_workers, timeout=timeout, chunksize=chunksize
        )
        return self._append(spec, on_error, retries)

    # -- operators ---------------------------------------------------------------

    @overload
    def flatten(self: EmptyChain[EmptyFail]) -> PoolChain[Iterable[Any], Any, EmptyFail]: ...
    @overload
    def flatten(self: PoolChain[In, Iterable[Element], Fail]) -> PoolChain[In, Element, Fail]: ...
    def flatten(self) -> PoolChain[Any, Any, Any]:
        """Append a step that hands on each element of every item, one by one.

        Each result of the stage before (or each input item, if no stage
        comes before) must be an iterable: a list, a tuple, a generator...
        Its elements go on to the next step in the iterable's own order, as
        soon as each exists: a lazy iterable (a generator) is read element by
        element, so the chain keeps streaming, and infinite inputs work. In an
        ordered run all elements of input item *i* come before those of input
        item *i + 1*; with ``ordered=False`` every element comes exactly once.
        ``.batch(n).flatten()`` gives the items back as they were. The step
        runs in a thread of the run (the feeder of the stage after it), or in
        the thread iterating the run when no stage follows.

        An item that is not iterable, or whose iteration raises, fails (under
        the execution's error policy) with a message naming ``flatten()``;
        the elements it yielded before go on.

        Returns:
            This chain, for chaining calls.
        """
        self._specs.append(FlattenSpec())
        return self

    # On a chain without stages filter() keeps it one: In is still unknown, the
    # next stage fixes it. (mypy sees an overlap; the second overload, given
    # the first one's self, returns the same type.)
    @overload
    def filter(  # type: ignore[overload-overlap]
        self: EmptyChain[EmptyFail], predicate: Callable[[Any], object]
    ) -> EmptyChain[EmptyFail]: ...
    @overload
    def filter(self, predicate: Callable[[Out], object]) -> PoolChain[In, Out, Fail]: ...
    def filter(self, predicate: Callable[[Any], object]) -> PoolChain[Any, Any, Any]:
        """Append a step that keeps only the items for which *predicate* is truthy.

        The predicate runs in a thread of the run (the feeder of the stage
        after it), or in the thread iterating the run when no stage follows:
        keep it quick, or make it a stage. Dropped items are not counted as
        skipped (``items_skipped`` counts failures only).

        Args:
            predicate: called with one item; a truthy return keeps the item.
                An exception it raises is a failure of that item, under the
                execution's error policy (the note names ``filter()`` and the
                input item).

        Returns:
            This chain, for chaining calls.

        Raises:
            OriValidationError: *predicate* is not callable.
        """
        self._specs.append(FilterSpec(check_predicate(predicate)))
        return self

    @overload
    def batch(
        self: EmptyChain[EmptyFail], size: int, *, timeout: float | None = ...
    ) -> PoolChain[Any, list[Any], EmptyFail]: ...
    @overload
    def batch(
        self, size: int, *, timeout: float | None = ...
    ) -> PoolChain[In, list[Out], Fail]: ...
    def batch(self, size: int, *, timeout: float | None = None) -> PoolChain[Any, Any, Any]:
        """Append a step that groups consecutive items into lists of up to *size*.

        Each list holds *size* items, except the last one of the run, which
        may be shorter, and (with *timeout*) a partial list that waited too
        long. Items keep their order within and across lists in an ordered
        run. A failure returned by an earlier step (``on_error="return"``)
        ends the list being filled, which goes on shorter, and then goes on
        itself, so every result keeps its place. A Failure of a list names
        the input item of its first element.

        Args:
            size: the most items in one list (an int >= 1).
            timeout: seconds (int or float > 0): a partial list goes on when
                no new item arrived for that long, so that a live source
                that pauses does not hold items back. ``None`` (default):
                lists fill up (or the input ends). The single-threaded
                execute methods ignore it.

        Returns:
            This chain, for chaining calls.

        Raises:
            OriValidationError: *size* is not an int >= 1 (``True`` is
                refused), or *timeout* is not None or a number > 0.
        """
        self._specs.append(BatchSpec(check_batch_size(size), check_batch_timeout(timeout)))
        return self

    # -- executing --------------------------------------------------------------

    def _checked_specs(self) -> list[Step]:
        if not any(isinstance(spec, StageSpec) for spec in self._specs):
            raise OriValidationError(
                "this PoolChain has no stages; add at least one with add_threadpool(), "
                "add_processpool() or add() before executing it"
            )
        return list(self._specs)

    @overload
    def execute_lazy(
        self,
        iterable: Iterable[In],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[RunKeywords],
    ) -> PoolChainRun[Out | Fail]: ...
    @overload
    def execute_lazy(
        self,
        iterable: Iterable[In],
        *,
        on_error: OnError | None,
        **options: Unpack[RunKeywords],
    ) -> PoolChainRun[Out | Fail | Failure[Any]]: ...
    def execute_lazy(
        self,
        iterable: Iterable[Any],
        *,
        ordered: bool = True,
        max_in_flight: int | None = None,
        max_memory: int | str | None = "256MiB",
        progress: bool | Callable[..., Any] = False,
        on_error: OnError | None = None,
    ) -> PoolChainRun[Any]:
        """Start streaming *iterable* through the chain; return an iterator of results.

        Work begins before this returns: worker processes and threads start and
        the first items enter the chain. The input is read only as far ahead as
        *max_in_flight* and *max_memory* allow, so infinite inputs such as
        ``itertools.count()`` work and memory stays flat for any input length;
        an input that could block (a generator, a file, a queue) is read by a
        feeder thread of the run, never two threads at once, so that it never
        delays results that are done; a list, tuple, range, dict, set, str or
        bytes (which cannot block) is read by the thread iterating the run.

        Iterate the result from one thread at a time; each ``next()`` blocks
        until a result is ready. Under the ``"raise"`` policy (the default),
        if a stage function raises, ``next()`` raises
        the same exception (same type) when its item's turn comes, with a note
        naming the stage, the input index and the argument, and for process
        stages the worker's traceback chained as the cause; the run is shut
        down first. An exception raised by the input iterable itself is raised
        after the results of the items before it. ``break``, ``close()``,
        leaving a ``with`` block, garbage collection and KeyboardInterrupt all
        stop every thread and worker process of the run within a few seconds.

        Args:
            iterable: the items to process.
            ordered: ``True`` (default) yields results in input order;
                ``False`` yields them as they complete, which keeps the chain
                busier when item times vary.
            max_in_flight: most items between "read from the input" and
                "returned by next()", including results waiting for their turn
                in input order. ``None`` (default): twice what all stages can
                work on at once at their current batch sizes plus four per
                worker, and in ordered runs up to as many again for results
                waiting behind a slow item. A number is a hard bound and also
                caps automatic chunks so that every worker gets work.
            max_memory: most bytes those items may take, as an int or a
                string such as ``"64MiB"`` or ``"2GB"`` (``KiB``, ``MiB``,
                ``GiB``, ``TiB``: powers of 1024; ``KB``, ``MB``, ``GB``,
                ``TB``: powers of 1000; case and spaces do not matter). Each
                item counts at the largest average size measured anywhere in
                the chain (``len()`` of bytes and str, ``.nbytes`` of buffers,
                the pickled size of process-stage results,
                ``sys.getsizeof`` otherwise), so stages that make items bigger
                stay within it; an item larger than the whole budget goes
                through alone. Both bounds apply: whichever is reached first
                holds the input back. The default, ``"256MiB"``, keeps a
                small container safe without tuning and never binds for
                small items; ``None``: no byte bound.
            progress: ``True`` shows a live tqdm progress bar per stage (items
                done, rate, queue depth, how busy its workers are; the total is
                the input's ``len()`` when it has one), redrawn by a small
                thread of the run and closed when the run ends, however it
                ends. Needs the ``progress`` extra (``pip install
                'ori-poolchain[progress]'``). A callable is used instead of
                tqdm to make each bar, as ``progress(total=..., desc=...,
                unit="item", leave=True)``; the object it returns needs
                ``update(n)`` and ``close()`` (``set_postfix_str(text)`` is
                used when present), e.g. ``functools.partial(tqdm.tqdm,
                file=sys.stdout)`` or ``tqdm.notebook.tqdm``. ``False``
                (default): no bars. Errors of a bar while the run goes on
                stop its redrawing, not the run.
            on_error: the error policy of this execution, replacing the
                chain's for stages without their own: ``"raise"``,
                ``"skip"`` or ``"return"`` (see :class:`PoolChain`);
                ``None`` (default) keeps the chain's.

        Returns:
            A :class:`PoolChainRun`: an iterator, context manager and closable;
            its :attr:`~PoolChainRun.stats` give per-stage statistics, also
            available as :attr:`PoolChain.stats` until the chain's next run.

        Raises:
            OriValidationError: the chain has no stages, *iterable* is not
                iterable, *ordered* is not a bool, *max_in_flight* is not a
                positive int, *max_memory* is not None, a positive int or a
                string such as ``"64MiB"``, *progress* is neither a bool nor a
                callable, or it is True and tqdm is not installed, or
                *on_error* is not a policy.
            OriNoInteractiveProcessPools: a process stage's function cannot be
                imported by workers of the start method now in effect.
            Exception: anything raised while starting workers (e.g. a function
                that cannot be pickled for spawn) is raised after cleanup.
        """
        specs = self._checked_specs()
        options, source = self._run_options(
            iterable,
            ordered=ordered,
            max_in_flight=max_in_flight,
            max_memory=max_memory,
            progress=progress,
            on_error=on_error,
            specs=specs,
        )
        assert source is not None
        run = PoolChainRun(start_engine(specs, source, options))
        self._latest = run._run_stats
        return run

    @overload
    def execute_async(
        self,
        iterable: Iterable[In] | AsyncIterable[In],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[RunKeywords],
    ) -> PoolChainAsyncRun[Out | Fail]: ...
    @overload
    def execute_async(
        self,
        iterable: Iterable[In] | AsyncIterable[In],
        *,
        on_error: OnError | None,
        **options: Unpack[RunKeywords],
    ) -> PoolChainAsyncRun[Out | Fail | Failure[Any]]: ...
    def execute_async(
        self,
        iterable: Iterable[Any] | AsyncIterable[Any],
        *,
        ordered: bool = True,
        max_in_flight: int | None = None,
        max_memory: int | str | None = "256MiB",
        progress: bool | Callable[..., Any] = False,
        on_error: OnError | None = None,
    ) -> PoolChainAsyncRun[Any]:
        """Start streaming *iterable* through the chain; return an async iterator of results.

        For asyncio code: ``async for result in chain.execute_async(items):``.
        Call it from a coroutine (it needs the running event loop, and it
        does not block it); the run belongs to that loop. Work begins before
        this returns, as for :meth:`execute_lazy` (starting a worker process
        takes a few milliseconds of the loop's time here). Awaiting a result
        never blocks the loop: results already done are handed out at once,
        and only when none is ready does the task wait, in a thread of the run.

        The input may be an ordinary iterable (read as for
        :meth:`execute_lazy`: a list in the loop's thread, a generator or a
        queue by the run's feeder thread, so one that blocks never blocks the
        loop) or an async iterable such as an async generator, which is read
        on the loop, only as far ahead as *max_in_flight* and *max_memory*
        allow (an infinite one works), and closed with ``aclose()`` if the
        run stops reading it early.

        Results, errors and bounds are those of :meth:`execute_lazy`: under
        ``"raise"`` a failing stage function's exception (same type, with
        Ori's note) is raised from the ``async for`` when its item's turn
        comes, and an exception raised by the input, async or not, comes
        after the results of the items before it. ``break`` (once the run is
        garbage collected), :meth:`PoolChainAsyncRun.aclose`, leaving an
        ``async with`` block and cancelling the consuming task all stop every
        thread and worker process of the run.

        Args:
            iterable: the items to process: an iterable or an async iterable.
            ordered: ``True`` (default) yields results in input order;
                ``False`` in completion order.
            max_in_flight: the bound on items in the chain at once, as for
                :meth:`execute_lazy`; ``None`` picks one from the stages.
            max_memory: the bound on the bytes of those items (``"64MiB"``,
                an int, ``None`` for none), as for :meth:`execute_lazy`.
            progress: ``True`` (needs the ``progress`` extra) or a bar factory
                shows one live bar per stage, as for :meth:`execute_lazy`.
            on_error: the error policy for this execution (``"raise"``,
                ``"skip"`` or ``"return"``); ``None`` uses the chain's.

        Returns:
            A :class:`PoolChainAsyncRun`: an async iterator and async context
            manager with :meth:`~PoolChainAsyncRun.aclose` and
            :attr:`~PoolChainAsyncRun.stats` (also available as
            :attr:`PoolChain.stats` until the chain's next run).

        Raises:
            OriValidationError: as for :meth:`execute_lazy`, an async
                iterable being accepted as *iterable*.
            OriInvalidStateError: no event loop is running in this thread
                (called outside a coroutine).
            OriNoInteractiveProcessPools: as for :meth:`execute_lazy`.
        """
        specs = self._checked_specs()
        options, source = self._run_options(
            iterable,
            ordered=ordered,
            max_in_flight=max_in_flight,
            max_memory=max_memory,
            progress=progress,
            on_error=on_error,
            specs=specs,
            allow_async=True,
        )
        loop = _running_loop()
        from ._async_input import AsyncInput
        from ._async_run import PoolChainAsyncRun

        if source is not None:
            run: PoolChainAsyncRun[Any] = PoolChainAsyncRun(
                start_engine(specs, source, options), loop
            )
        else:
            assert _is_async_iterable(iterable)
            bridge = AsyncInput(loop)
            engine = start_engine(specs, bridge, options)
            pump = loop.create_task(
                bridge.pump(aiter(iterable)),  # type: ignore[arg-type]
                name=f"{engine.ctx.name}-async-input",
            )
            run = PoolChainAsyncRun(engine, loop, bridge, pump)
        self._latest = run._run_stats
        return run

    def _run_options(
        self,
        iterable: object,
        *,
        ordered: object,
        max_in_flight: object,
        max_memory: object,
        progress: object,
        on_error: object,
        specs: list[Step],
        allow_async: bool = False,
    ) -> tuple[RunOptions, Iterator[Any] | None]:
        """The checked keywords of an execution and its source (None: async, for the caller)."""
        if not isinstance(ordered, bool):
            raise OriValidationError(f"ordered must be True or False, got {describe(ordered)}")
        window = check_positive_int(max_in_flight, "max_in_flight")
        budget = check_max_memory(max_memory)
        policy = check_on_error(on_error, allow_none=True) or self._on_error
        for spec in specs:
            spec.check_run()
        if allow_async and _is_async_iterable(iterable):
            source = None
        elif allow_async:
            source = _check_iterable(iterable, also=", or an async iterable")
        else:
            source = _check_iterable(iterable)
        bars = progress_setup(progress, iterable)
        options = RunOptions(
            ordered=ordered,
            max_in_flight=window,
            max_memory=budget,
            progress=bars,
            on_error=policy,
            pools=self._pools,
        )
        return options, source

    @overload
    def execute_eager(
        self,
        iterable: Iterable[In],
        *,
        on_error: KeepsNoFailure = ...,
        **options: Unpack[RunKeywords],
    ) -> list[Out | Fail]: ...
    @overload
    def execute_eager(
        self,
        iterable: Iterable[In],
        *,
        on_error: OnError | None,
        **options: Unpack[RunKeywords],
    ) -> list[Out | Fail | Failure[Any]]: ...
    def execute_eager(
        self,
        iterable: Iterable[Any],
        *,
        ordered: bool = True,
        max_in_flight: int | None = None,
        max_memory: int | str | None = "256MiB",
        progress: bool | Callable[..., Any] = False,
        on_error: OnError | None = None,
    ) -> list[Any]:
        """Run *iterable* through the chain and return all results as a list.

        Blocks until every item is done (stages still run concurrently). Same
        arguments, errors and cleanup as :meth:`execute_lazy`; on
        KeyboardInterrupt or an error everything started is stopped before the
        exception propagates. :attr:`stats` then holds the run's statistics,
        whether it succeeded or failed.

        Args:
            iterable: the items to process (finite: the list holds them all).
            ordered: ``True`` (default) keeps input order; ``False`` lists
                results in completion order.
            max_in_flight: the bound on items in the chain at once, as for
                :meth:`execute_lazy`; ``None`` picks one from the stages.
            max_memory: the bound on the bytes of those items (``"64MiB"``,
                an int, ``None`` for none), as for :meth:`execute_lazy`.
            progress: ``True`` (needs the ``progress`` extra) or a bar factory
                shows one live bar per stage, as for :meth:`execute_lazy`.
            on_error: the error policy for this execution (``"raise"``,
                ``"skip"`` or ``"return"``); ``None`` uses the chain's. A
                stage's own policy still wins.

        Returns:
            The results, in input order unless ``ordered=False``.

        Raises:
            OriValidationError: as for :meth:`execute_lazy`.
            OriNoInteractiveProcessPools: as for :meth:`execute_lazy`.
            Exception: under ``"raise"``, the first failure of a stage
                function (see :meth:`execute_lazy`),
                :class:`~ori.errors.OriTimeoutError` or
                :class:`~ori.errors.OriWorkerCrashedError`.
        """
        with self.execute_lazy(
            iterable,
            ordered=ordered,
            max_in_flight=max_in_flight,
            max_memory=max_memory,
            progress=progress,
            on_error=on_error,
        ) as run:
            return list(run)

    @overload
    def execute_lazy_single_threaded(
        self,
        iterable: Iterable[In],
        *,
        on_error: KeepsNoFailure = ...,
    ) -> Iterator[Out | Fail]: ...
    @overload
    def execute_lazy_single_threaded(
        self,
        iterable: Iterable[In],
        *,
        on_error: OnError | None,
    ) -> Iterator[Out | Fail | Failure[Any]]: ...
    def execute_lazy_single_threaded(
        self, iterable: Iterable[Any], *, on_error: OnError | None = None
    ) -> Iterator[Any]:
        """Return a generator that runs each item through every stage in this thread.

        Nothing runs until you iterate; each ``next()`` reads one input item and
        calls every stage function on it in turn. No thread or process is
        started, which makes it the mode for debugging (breakpoints, profilers)
        and the reference the concurrent modes agree with: same results, same
        order, same exception with the same note, and the same error policies
        and retries (a failing call is simply called again). Timeouts are not
        enforced and no statistics are kept.

        Args:
            iterable: the items to process.
            on_error: the error policy, as for :meth:`execute_lazy`.

        Raises:
            OriValidationError: at call time, if the chain has no stages,
                *iterable* is not iterable or *on_error* is not a policy.
            Exception: while iterating, under ``"raise"``, whatever a stage
                function raises, with a note naming the stage, the input index
                and the argument.
        """
        specs = self._checked_specs()
        policy = check_on_error(on_error, allow_none=True) or self._on_error
        return run_sequentially(specs, _check_iterable(iterable), policy)

    @overload
    def execute_eager_single_threaded(
        self,
        iterable: Iterable[In],
        *,
        on_error: KeepsNoFailure = ...,
    ) -> list[Out | Fail]: ...
    @overload
    def execute_eager_single_threaded(
        self,
        iterable: Iterable[In],
        *,
        on_error: OnError | None,
    ) -> list[Out | Fail | Failure[Any]]: ...
    def execute_eager_single_threaded(
        self, iterable: Iterable[Any], *, on_error: OnError | None = None
    ) -> list[Any]:
        """Run every item through every stage in this thread and return a list.

        Blocks until done. See :meth:`execute_lazy_single_threaded`.

        Args:
            iterable: the items to process.
            on_error: the error policy, as for :meth:`execute_lazy`.

        Raises:
            OriValidationError: the chain has no stages, *iterable* is not
                iterable or *on_error* is not a policy.
            Exception: under ``"raise"``, whatever a stage function raises,
                with a note naming the stage, the input index and the argument.
        """
        return list(self.execute_lazy_single_threaded(iterable, on_error=on_error))

    # -- warm pools -------------------------------------------------------------

    def __enter__(self) -> PoolChain[In, Out, Fail]:
        """Keep the chain's worker processes alive across executions until ``__exit__``.

        Inside ``with chain:`` every process stage keeps its worker processes
        (and what its *initializer* set up in them) from one ``execute_*``
        call to the next, so many small executions do not each pay for
        starting processes. A worker is reused only if its previous execution
        left it idle and clean; one that was busy when an execution ended
        early (``break``, an error, Ctrl-C, a timeout) or that died is
        replaced by a fresh one. Thread, asyncio and executor stages start
        per execution as outside a ``with`` (threads start in microseconds).

        One execution at a time uses the warm workers; an execution started
        while another one of the same chain is still open (another thread, or
        a lazy run not yet finished or closed) runs with its own workers,
        started and stopped for it alone, as outside a ``with``.

        Does not block (workers start with the first execution); call it
        from the thread that builds the chain.

        Returns:
            This chain.

        Raises:
            OriInvalidStateError: the chain is already inside a ``with``.
        """
        if self._pools is not None:
            raise OriInvalidStateError(
                "this PoolChain is already inside a 'with' block; nest no second 'with' "
                "on the same chain (build another chain if you need separate pools)"
            )
        self._pools = WarmPools()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close an execution still using the warm workers, then stop every worker.

        Blocks until the worker processes have exited (a few seconds at most:
        idle workers are told to exit, busy ones are terminated). Call it from
        the thread that entered the ``with``. Exceptions of the block
        propagate unchanged.
        """
        pools, self._pools = self._pools, None
        if pools is not None:
            pools.close(STOP_GRACE_SECONDS)

    # -- statistics -------------------------------------------------------------

    @property
    def stats(self) -> ChainStats | None:
        """Per-stage statistics of the chain's most recent ``execute_lazy``/``execute_eager`` run.

        A snapshot (see :class:`ChainStats`): live while that run goes on,
        final once it ended, however it ended (results, error, ``break``,
        Ctrl-C). ``None`` before the first run; the single-threaded modes
        keep no statistics. When several threads execute the chain at once,
        this is the run started last; use :attr:`PoolChainRun.stats` to
        follow one run. Never blocks; any thread may read it.
        """
        latest = self._latest
        return None if latest is None else latest.snapshot()

    def print_stats(self, file: IO[str] | None = None) -> None:
        """Print :meth:`ChainStats.report` of the most recent run.

        Prints a table with one row per stage (workers, items in / out /
        failed, queue depth, busy time, average item time, utilisation) and
        a line naming the bottleneck, or a short note if the chain has not
        run yet. Never blocks on the run; any thread may call it.

        Args:
            file: where to write; ``None`` means ``sys.stdout``.
        """
        stats = self.stats
        text = "PoolChain: no run yet" if stats is None else stats.report()
        print(text, file=sys.stdout if file is None else file)

    def __repr__(self) -> str:
        stages = ", ".join(f"{spec.kind_name}({spec.function_name})" for spec in self._specs)
        return f"<PoolChain [{stages}]>"
