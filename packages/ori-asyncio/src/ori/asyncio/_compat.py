"""Every use of an interpreter detail that is not a stable public API.

Each function here names the Python versions it was checked on and what
happens if the detail goes away; its test is in ``tests/test_compat.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import multiprocessing
import signal
import threading
from collections.abc import AsyncGenerator, Callable
from multiprocessing.process import BaseProcess
from typing import Any

# --- process pools: the same in ori-asyncio and ori-concurrency -------------
# Both packages' _process_calls.py use these; tests/test_layout.py fails when
# this section differs between the two _compat.py files.


def pool_processes(executor: concurrent.futures.ProcessPoolExecutor) -> list[BaseProcess]:
    """The worker processes *executor* has started and not yet reaped.

    ``ProcessPoolExecutor`` keeps them in the dict ``_processes`` (pid to
    process; ``shutdown()`` sets it to None) (checked
    on 3.10, 3.11, 3.12, 3.13 and free-threaded 3.13t). Without that
    attribute this returns an empty list, and a crash report says the exit
    code is unknown.
    """
    processes = getattr(executor, "_processes", None) or {}
    return list(processes.values())


def in_pool_manager_thread(executor: concurrent.futures.ProcessPoolExecutor) -> bool:
    """True when called from *executor*'s management thread.

    That thread is kept in ``_executor_manager_thread`` from 3.9 on (checked
    on 3.10, 3.11, 3.12, 3.13 and free-threaded 3.13t); it runs the done
    callbacks of the pool's futures, and it cannot join itself. Without the
    attribute this says False, and shutting down a broken pool from one of
    those callbacks would wait for the thread that is waiting.
    """
    manager = getattr(executor, "_executor_manager_thread", None)
    return manager is threading.current_thread()


def bootstrapping_worker() -> bool:
    """True while this process is a spawn or forkserver child still starting up.

    multiprocessing sets ``current_process()._inheriting`` while such a
    child unpickles its preparation data, imports the main module again and
    unpickles its process object, and deletes it before the target runs; its
    own "bootstrapping phase" check reads the same flag (checked on 3.10,
    3.11, 3.12, 3.13 and free-threaded 3.13t; never set under fork). Without
    the flag this says False, and multiprocessing's own, less helpful error
    is raised a moment later instead.
    """
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


# --- asyncio and signals: ori-asyncio only ------------------------------------


def _running_loop_or_none() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


running_loop: Callable[[], asyncio.AbstractEventLoop | None] = getattr(
    asyncio, "_get_running_loop", _running_loop_or_none
)
"""This thread's running event loop, or None: ``asyncio._get_running_loop``.

Exported by ``asyncio.events`` for event-loop implementations and written in
C, so it costs one call where ``get_running_loop()`` would raise and catch
an exception (checked on 3.10, 3.11, 3.12, 3.13 and free-threaded 3.13t).
Bound directly rather than wrapped, because ``sync()`` asks on every call.
Without it, the same answer comes from ``asyncio.get_running_loop()``.
"""

# The C functions behind signal.getsignal() and signal.signal(). Those
# wrappers convert handlers to enums by trial and error, which costs ten times
# more than the switch itself, and sync() switches on every main-thread call.
getsignal: Callable[[int], Any]
"""``_signal.getsignal``: the SIGINT handler without the enum conversion.

It returns the handler object Python stores (the int 0 or 1 for SIG_DFL or
SIG_IGN, which Ori never installs, instead of the enums); checked on 3.10,
3.11, 3.12, 3.13 and free-threaded 3.13t. Without the ``_signal`` module,
``signal.getsignal``: the same answer, more slowly.
"""
setsignal: Callable[[int, Any], Any]
"""``_signal.signal``: installs a handler and returns the previous one, unconverted.

Checked as :data:`getsignal` is; without ``_signal``, ``signal.signal``.
"""
try:
    _c_signal = importlib.import_module("_signal")
    getsignal, setsignal = _c_signal.getsignal, _c_signal.signal
except (ImportError, AttributeError):  # pragma: no cover - no _signal module here
    getsignal, setsignal = signal.getsignal, signal.signal

_Runner: type | None = getattr(asyncio, "Runner", None)


def is_asyncio_runner_sigint_handler(handler: object) -> bool:
    """True for the SIGINT handler ``asyncio.Runner`` installs while it runs.

    ``asyncio.Runner.run()`` (behind ``asyncio.run()`` from 3.11) installs
    ``functools.partial(runner._on_sigint, main_task=task)``, which cancels
    the main task on a first signal (checked on 3.11, 3.12, 3.13 and
    free-threaded 3.13t; 3.10 has no Runner and installs nothing). If that
    shape changes, this says False and Ori leaves the handler alone: a
    Ctrl-C during ``sync()`` inside ``asyncio.run()`` then reaches asyncio's
    handler only, as if Ori were not there.
    """
    return (
        _Runner is not None
        and isinstance(handler, functools.partial)
        and isinstance(getattr(handler.func, "__self__", None), _Runner)
    )


def nothing_queued(loop: asyncio.AbstractEventLoop) -> bool:
    """True when *loop* says it has no callback waiting to run.

    ``BaseEventLoop`` keeps its ready callbacks in the deque ``_ready``
    (checked on 3.10, 3.11, 3.12, 3.13 and free-threaded 3.13t). Loops
    without it (other implementations) say False, so that their callbacks
    always get a pass of the loop.
    """
    return not getattr(loop, "_ready", True)


def take_open_async_generators(loop: asyncio.AbstractEventLoop) -> list[AsyncGenerator[Any, Any]]:
    """The async generators first iterated on *loop* and still open; *loop* forgets them.

    ``BaseEventLoop`` keeps them in the weak set ``_asyncgens``, which
    ``shutdown_asyncgens()`` empties while also refusing any new ones after
    (checked on 3.10, 3.11, 3.12, 3.13 and free-threaded 3.13t). Emptying
    the set here lets a reused loop close them and keep accepting new ones.
    Loops without the set (other implementations) give an empty list, and
    their open generators are closed by their finalizer instead.
    """
    agens = getattr(loop, "_asyncgens", None)
    if not agens:
        return []
    taken = list(agens)
    agens.clear()
    return taken


async def _an_async_generator() -> AsyncGenerator[None, None]:
    yield


def _aclose_type() -> type:
    # The type of ``agen.aclose()``, an awaitable that is not a coroutine. The
    # sample is closed, since from 3.13 dropping it unawaited warns.
    sample = _an_async_generator().aclose()
    sample.close()
    return type(sample)


_ACLOSE_TYPE = _aclose_type()


def finalizes_an_async_generator(task: asyncio.Task[Any]) -> bool:
    """True for a task that closes an async generator dropped while still open.

    The loop's finalizer hook for such a generator queues
    ``create_task(agen.aclose())``, so the task runs the ``aclose()``
    awaitable itself (checked on 3.10, 3.11, 3.12, 3.13 and free-threaded
    3.13t). If the hook wrapped it, this would say False and Ori would
    cancel the task like any leftover, skipping that generator's cleanup.
    """
    return type(task.get_coro()) is _ACLOSE_TYPE


def is_wrong_loop_error(exc: BaseException) -> bool:
    """True for the RuntimeError asyncio raises when an object meets a second loop.

    Awaiting a future of another loop raises "Task ... got Future ...
    attached to a different loop" (C and Python tasks), and a lock, queue or
    event first used on another loop raises "... is bound to a different
    event loop" (checked on 3.10, 3.11, 3.12, 3.13 and free-threaded 3.13t).
    asyncio has no class for this error, so only the text tells. If the text
    changes, this says False and the error goes without Ori's explanatory
    note.
    """
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc)
    return "different" in text and "loop" in text


def executor_start_method(executor: concurrent.futures.Executor) -> str | None:
    """The start method of a ``ProcessPoolExecutor``'s workers, or None if unknown.

    Kept in ``_mp_context`` (checked on 3.10, 3.11, 3.12, 3.13 and
    free-threaded 3.13t). None makes the process-function check assume the
    current default start method.
    """
    context = getattr(executor, "_mp_context", None)
    method = getattr(context, "get_start_method", None)
    return str(method()) if callable(method) else None
