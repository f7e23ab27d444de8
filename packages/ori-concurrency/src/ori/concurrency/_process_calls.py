"""Calls sent to a process pool that survive what the pool does not, and the pool owner.

Kept identical in ori-concurrency and ori-asyncio: each package depends on
ori-errors only, so each carries this one copy (``tests/test_layout.py`` fails
when the two differ). Messages name the package through ``__name__``.

One call, end to end::

    caller   ProcessCaller.submit(args, kwargs)
               pickles (function, args, kwargs) itself: an argument that does not
               pickle fails here, in the caller, naming the call
             executor.submit(run_call, payload) -> CallFuture, returned at once
    worker   run_call(payload) unpickles and runs the call, then pickles its
             outcome itself: Returned(value), or Raised(exception, traceback
             text) with an exception that survives pickling
             (ori.errors.remote.portable_exception)
    caller   the executor future's done callback (settle) unpickles the outcome and
             settles the CallFuture: the value, or the exception with its
             worker traceback chained as ori.errors.RemoteTraceback

Nothing the function takes, returns or raises can break the pool this way,
since the executor only ever moves bytes. What still breaks it is a worker
that dies. Then the pool is dropped (the next call gets a fresh one, as
loky's reusable executor does) and every call it held fails with
OriWorkerCrashedError naming the function and the exit code or signal; a
worker that died before its initializer ran (spawn or forkserver re-importing
an unguarded ``__main__``, an import error) gets a message saying so instead.

How the function travels (``function_reference``): by reference when pickle can
send it; by its module-level name when that name is the wrapper decorating it
(the worker unwraps ``__wrapped__``); by value through cloudpickle when neither
works and cloudpickle is installed.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.queues
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.reduction import ForkingPickler
from typing import Any, Generic, NamedTuple, TypeVar

from ori.errors import OriInvalidStateError, OriWorkerCrashedError
from ori.errors.remote import (
    add_note,
    attach_remote_traceback,
    portable_exception,
    worker_crash_message,
    worker_startup_message,
)
from ori.errors.validation import cloudpickle_available

from ._compat import bootstrapping_worker, in_pool_manager_thread, pool_processes

R = TypeVar("R")

_PACKAGE = __name__.rpartition(".")[0]  # "ori.concurrency" or "ori.asyncio"


def dumps(obj: object) -> bytes:
    """Pickle as multiprocessing does, into plain bytes (no buffer export outlives the call)."""
    view = ForkingPickler.dumps(obj)
    try:
        return bytes(view)
    finally:
        view.release()


# --- how the function travels ----------------------------------------------


def lookup(module: str, qualname: str) -> Any:
    """Import *module* and return the object its dotted *qualname* names."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class ByName(NamedTuple):
    """A module-level name that refers to the wrapper of the function; resolved in the worker."""

    module: str
    qualname: str

    def resolve(self) -> Callable[..., Any]:
        wrapper = lookup(self.module, self.qualname)
        function: Callable[..., Any] = getattr(wrapper, "__wrapped__", wrapper)
        return function


@functools.lru_cache(maxsize=16)
def _loads_by_value(payload: bytes) -> Callable[..., Any]:
    # Cached: a worker that runs many calls of one function rebuilds it once.
    function: Callable[..., Any] = importlib.import_module("cloudpickle").loads(payload)
    return function


class ByValue(NamedTuple):
    """A function pickled by cloudpickle, for functions pickle cannot send by reference."""

    payload: bytes

    def resolve(self) -> Callable[..., Any]:
        return _loads_by_value(self.payload)


class ByReference(NamedTuple):
    """The function itself, which pickle sends as its module and qualified name."""

    function: Callable[..., Any]

    def resolve(self) -> Callable[..., Any]:
        return self.function


FunctionReference = ByName | ByValue | ByReference


def _is_interactive(function: object) -> bool:
    if getattr(function, "__module__", None) != "__main__":
        return False
    main = sys.modules.get("__main__")
    return main is None or getattr(main, "__file__", None) is None


def single_threaded() -> bool:
    """True when this process runs exactly one thread (the caller's).

    On Linux the kernel's count decides (the count Python 3.12 checks before it
    warns about fork), read again for up to 50 ms while a thread that was just
    joined may still be exiting; elsewhere the threads Python knows.
    """
    if threading.active_count() > 1:
        return False
    deadline = time.monotonic() + 0.05
    while True:
        try:
            with open("/proc/self/stat", "rb") as stat:
                count = int(stat.read().rsplit(b")", 1)[1].split()[17])
        except (OSError, IndexError, ValueError):
            return True  # not Linux: the threads Python knows were all there is
        if count == 1:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


def _beside_threads(
    context: multiprocessing.context.BaseContext, function: Callable[..., Any]
) -> multiprocessing.context.BaseContext:
    """The context for a new pool: never fork beside running threads.

    A forked child can inherit a lock that another thread held at that moment
    and hang before it runs a line. So a pool that would fork while this
    process runs other threads (a previous pool's, the caller's own) gets the
    forkserver instead, unless its function can only reach forked workers (one
    typed into an interactive session, without cloudpickle).
    """
    if context.get_start_method() != "fork" or "forkserver" not in (
        multiprocessing.get_all_start_methods()
    ):
        return context
    if _is_interactive(function) and not cloudpickle_available():
        return context
    return context if single_threaded() else multiprocessing.get_context("forkserver")


def function_reference(
    function: Callable[..., Any], wrapper: object, start_method: str
) -> FunctionReference:
    """How *function*, decorated by (or wrapped in) *wrapper*, is best sent to the workers."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        try:
            decorated = lookup(module, qualname) is wrapper
        except (ImportError, AttributeError):
            decorated = False
        if decorated:
            return ByName(module, qualname)
    needs_value = start_method != "fork" and _is_interactive(function)
    if not needs_value:
        try:
            dumps(function)
        except Exception:
            needs_value = True
    if needs_value and cloudpickle_available():
        return ByValue(importlib.import_module("cloudpickle").dumps(function))
    return ByReference(function)  # the wrap-time check refused what cannot work


# --- what travels back --------------------------------------------------------


class Returned(NamedTuple):
    """The call returned *value*."""

    value: Any

    def settle(self, future: concurrent.futures.Future[Any]) -> None:
        future.set_result(self.value)


class Raised(NamedTuple):
    """The call raised *exception*, made portable.

    *traceback_text* is the worker's traceback, or ``None`` when *exception*
    is a stand-in for one that could not be pickled, which carries the
    traceback in its note already.
    """

    exception: BaseException
    traceback_text: str | None

    def settle(self, future: concurrent.futures.Future[Any]) -> None:
        if self.traceback_text is not None:
            attach_remote_traceback(self.exception, self.traceback_text)
        future.set_exception(self.exception)


def _raised(exc: BaseException, note: str | None = None) -> bytes:
    if note is not None:
        add_note(exc, note)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    portable = portable_exception(exc, traceback_text=text)
    return dumps(Raised(portable, text if portable is exc else None))


def run_call(payload: bytes) -> bytes:
    """Run one call in the worker; never raises, always returns a pickled outcome."""
    try:
        reference, args, kwargs = pickle.loads(payload)
        function = reference.resolve()
    except BaseException as exc:
        return _raised(
            exc,
            f"{_PACKAGE}: the worker process could not rebuild the call's function or "
            "arguments (their module or class must be importable in the worker)",
        )
    try:
        value = function(*args, **kwargs)
    except BaseException as exc:
        return _raised(exc)
    del function, args, kwargs
    try:
        return dumps(Returned(value))
    except Exception as exc:
        return _raised(
            exc,
            f"{_PACKAGE}: the function returned a {type(value).__qualname__} object, which "
            "cannot be pickled, so the worker process could not send it back",
        )


class Call(NamedTuple):
    """One call to send: how the function travels, its name for messages, its arguments."""

    reference: FunctionReference
    label: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def submit_call(
    executor: concurrent.futures.Executor, call: Call
) -> concurrent.futures.Future[bytes]:
    """Pickle *call* and submit it to *executor*; the Future gives the pickled outcome.

    :func:`settle` turns that outcome into the call's result.

    Raises:
        TypeError, pickle.PicklingError, AttributeError: an argument cannot be
            pickled; a note says so, naming the function.
        BrokenProcessPool, RuntimeError: whatever ``executor.submit`` raises.
    """
    try:
        payload = dumps((call.reference, call.args, call.kwargs))
    except Exception as exc:
        add_note(
            exc,
            f"{_PACKAGE}: the arguments of this call of {call.label} cannot be pickled, "
            "so they cannot be sent to a worker process",
        )
        raise
    return executor.submit(run_call, payload)


def call_in(executor: concurrent.futures.Executor, call: Call) -> CallFuture[Any]:
    """*call* in an executor someone else owns: :func:`submit_call`, settled as it ends.

    A broken pool is the owner's to replace: its BrokenProcessPool passes
    through unchanged.
    """
    inner = submit_call(executor, call)
    outer: CallFuture[Any] = CallFuture(inner)
    inner.add_done_callback(functools.partial(settle, future=outer))
    return outer


def settle(inner: concurrent.futures.Future[bytes], future: concurrent.futures.Future[Any]) -> None:
    """Give *future* the outcome of the finished call whose executor Future is *inner*."""
    if inner.cancelled():
        concurrent.futures.Future.cancel(future)
        future.set_running_or_notify_cancel()  # wakes wait() and as_completed()
        return
    failure = inner.exception()
    if failure is not None:  # the executor's own failure, e.g. a broken pool
        future.set_exception(failure)
        return
    try:
        message: Returned | Raised = pickle.loads(inner.result())
    except Exception as exc:
        future.set_exception(
            add_note(
                exc,
                f"{_PACKAGE}: the result sent by the worker process could not be "
                "unpickled in the calling process",
            )
        )
        return
    message.settle(future)


# --- the caller's side --------------------------------------------------------


class CallFuture(concurrent.futures.Future[R], Generic[R]):
    """The Future handed to the caller; it follows the executor's Future of the call.

    Cancelling it cancels the executor's Future (so a call already running
    cannot be cancelled, as with any executor); ``running()`` asks the
    executor's Future too.
    """

    def __init__(self, inner: concurrent.futures.Future[bytes]) -> None:
        super().__init__()
        self._inner = inner

    def cancel(self) -> bool:
        return self._inner.cancel() and super().cancel()

    def running(self) -> bool:
        return not self.done() and self._inner.running()


def _mark_started(started: multiprocessing.queues.SimpleQueue[int]) -> None:
    """The pool's initializer: tells the caller this worker finished starting up."""
    started.put(os.getpid())


class _Pool:
    """One executor, the queue its workers report start-up on, and its crash report."""

    def __init__(
        self,
        executor_class: type[concurrent.futures.ProcessPoolExecutor],
        executor_kwargs: dict[str, Any],
        context: multiprocessing.context.BaseContext,
    ) -> None:
        self.start_method = context.get_start_method()
        self.started: multiprocessing.queues.SimpleQueue[int] = context.SimpleQueue()
        self.executor = executor_class(
            mp_context=context,
            initializer=_mark_started,
            initargs=(self.started,),
            **executor_kwargs,
        )
        self._lock = threading.Lock()
        self._crash: str | None = None
        # The worker processes seen so far: the executor drops them from its own
        # dict once broken, maybe before the crash is described (that may happen
        # in the caller's thread while the executor tears itself down).
        self.seen: dict[int | None, Any] = {}

    def remember_workers(self) -> None:
        """Note the pool's current worker processes (after a submit started them)."""
        self.seen.update((process.pid, process) for process in pool_processes(self.executor))

    def crash_message(self, function: str) -> str:
        """What killed the pool, worded once for every call it held."""
        with self._lock:
            if self._crash is None:
                self._crash = self._describe_crash(function)
            return self._crash

    def _describe_crash(self, function: str) -> str:
        try:
            return self._inspect_workers(function)
        except Exception:  # pragma: no cover - the executor's internals changed
            return worker_crash_message(function, None)

    def _inspect_workers(self, function: str) -> str:
        # Called from the executor's management thread, which fails the pool's
        # futures before it terminates the workers still alive: the dead ones
        # are those whose sentinel is ready.
        self.remember_workers()
        processes = list(self.seen.values())
        # The executor may notice the death (its result pipe closing) a moment
        # before the dead worker's sentinel reads as ready: allow that moment.
        ready = multiprocessing.connection.wait([p.sentinel for p in processes], timeout=5.0)
        dead = [p for p in processes if p.sentinel in ready]
        for process in dead:
            process.join(1.0)  # reaps it, so that exitcode is known
        # The executor's thread may reap a dead worker at the same moment: our
        # waitpid() then fails and join() returns with no exit code until the
        # other thread has stored it (a moment later).
        settled = time.monotonic() + 1.0
        while any(p.exitcode is None for p in dead) and time.monotonic() < settled:
            time.sleep(0.005)
        started: set[int] = set()
        while not self.started.empty():
            started.add(self.started.get())
        self.started.close()
        never_started = [p for p in dead if p.pid not in started]
        if never_started:
            main = sys.modules.get("__main__")
            return worker_startup_message(
                function,
                never_started[0].exitcode,
                self.start_method,
                getattr(main, "__file__", None),
            )
        return worker_crash_message(function, dead[0].exitcode if dead else None)

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)
        self.started.close()

    def in_its_own_thread(self) -> bool:
        """True when called from the executor's management thread."""
        return in_pool_manager_thread(self.executor)


def _refuse_while_bootstrapping(function: str) -> None:
    """Fail at once, and clearly, in a worker that is still importing the main module.

    A ``spawn`` or ``forkserver`` worker runs the main module again before it
    does anything else; a script that starts process work at import time (no
    ``if __name__ == "__main__":`` guard) reaches this point inside that
    import. multiprocessing would refuse to start the pool's workers a moment
    later, after the pool's queues and locks exist (the dying worker then
    leaks their semaphores); refusing before anything exists prints the fix
    on the worker's stderr instead.
    """
    if bootstrapping_worker():
        main = getattr(sys.modules.get("__main__"), "__file__", None) or "the main module"
        raise OriInvalidStateError(
            f"{function} was called while this worker process was starting up and "
            f"importing {main} again, which means that file starts process work when "
            "imported; put that code under 'if __name__ == \"__main__\":'"
        )


class ProcessCaller:
    """Runs calls of one function in a process pool it owns and replaces after a crash.

    Thread-safe. The pool is created on the first call (or the first look at
    :attr:`executor`) and after a crash, never ahead of need.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        wrapper: object,
        executor_class: type[concurrent.futures.ProcessPoolExecutor],
        executor_kwargs: dict[str, Any],
    ) -> None:
        """Run *function*, wrapped by *wrapper*, in pools of *executor_class*.

        *executor_class* is :class:`~concurrent.futures.ProcessPoolExecutor`
        or a subclass; *executor_kwargs* are its arguments (``max_workers``,
        ``mp_context``), to which the caller adds the start-up initializer.
        """
        self._function = function
        self._wrapper = wrapper
        self._executor_class = executor_class
        self._executor_kwargs = dict(executor_kwargs)
        self._mp_context: multiprocessing.context.BaseContext | None = self._executor_kwargs.pop(
            "mp_context", None
        )
        self._label = getattr(function, "__qualname__", None) or repr(function)
        self._lock = threading.Lock()
        self._pool: _Pool | None = None
        self._broken: list[_Pool] = []  # dropped after a crash, not yet shut down
        self._reference: FunctionReference | None = None

    def _current(self) -> tuple[_Pool, FunctionReference]:
        with self._lock:
            if self._pool is not None and self._reference is not None:
                return self._pool, self._reference
            _refuse_while_bootstrapping(self._label)
        # A replacement must not be forked while the broken pool's threads still
        # run (a forked child can inherit a lock one of them holds, and hang),
        # and the broken pool's queues should be released now, not by some
        # later garbage collection: finish its shutdown first, without the lock
        # (the broken pool's management thread takes it to drop the pool).
        self._retire_broken()
        with self._lock:
            if self._pool is None:
                context = self._mp_context or multiprocessing.get_context()
                context = _beside_threads(context, self._function)
                self._pool = _Pool(self._executor_class, self._executor_kwargs, context)
                self._reference = function_reference(
                    self._function, self._wrapper, self._pool.start_method
                )
            assert self._reference is not None
            return self._pool, self._reference

    @property
    def executor(self) -> concurrent.futures.ProcessPoolExecutor:
        """The pool in use now, created if there is none."""
        return self._current()[0].executor

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallFuture[Any]:
        """Send one call to the pool and return its Future at once.

        Raises:
            pickle.PicklingError, TypeError, AttributeError: an argument cannot
                be pickled (the error has a note naming the function).
            RuntimeError: the executor was shut down directly.
        """
        for _ in range(2):  # a pool found broken is replaced once
            pool, reference = self._current()
            try:
                call = Call(reference, self._label, args, kwargs)
                inner = submit_call(pool.executor, call)
                pool.remember_workers()
            except BrokenProcessPool:
                self._drop(pool)
                continue
            break
        else:  # pragma: no cover - a fresh pool is never broken at submit
            raise OriWorkerCrashedError(f"the process pool for {self._label} broke at once")
        outer: CallFuture[Any] = CallFuture(inner)
        inner.add_done_callback(functools.partial(self._finished, pool, outer))
        return outer

    def _finished(
        self, pool: _Pool, outer: CallFuture[Any], inner: concurrent.futures.Future[bytes]
    ) -> None:
        # Runs in the executor's management thread (or the thread that cancelled).
        if not inner.cancelled() and isinstance(inner.exception(), BrokenProcessPool):
            self._drop(pool)
            outer.set_exception(OriWorkerCrashedError(pool.crash_message(self._label)))
        else:
            settle(inner, outer)

    def _drop(self, pool: _Pool) -> None:
        # Never shut the broken executor down from here: this may be its own
        # management thread, which ends by itself once the pool is broken. The
        # next call (or shutdown()) finishes the job from another thread.
        with self._lock:
            if self._pool is pool:
                self._pool = None
                self._broken.append(pool)

    def _retire_broken(self) -> None:
        """Shut down the pools dropped after a crash (their workers are gone already).

        Called without the lock. A call made from a broken pool's own
        management thread (a done-callback that calls again) leaves that pool
        for later, as a thread cannot join itself.
        """
        with self._lock:
            retiring, self._broken = self._broken, []
        for pool in retiring:
            if pool.in_its_own_thread():
                with self._lock:
                    self._broken.append(pool)
            else:
                pool.shutdown(wait=True, cancel_futures=False)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the current pool down, if there is one; the next call starts a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
        self._retire_broken()
        if pool is not None:
            pool.shutdown(wait, cancel_futures)
