"""Child program for the Ctrl-C tests: ``python asyncio_sigint_child.py MODE CLEANUP``.

It prints ``ready`` once the awaitable is waiting, so that the parent knows
when to send SIGINT, then reports on stdout what ran: ``cleanup started``,
``cleanup ran`` and ``KeyboardInterrupt raised``. CLEANUP is ``quick`` (the
awaitable's finally block awaits briefly) or ``hang`` (it awaits for a minute
and ignores cancellation, so only a second Ctrl-C gets out).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

from ori.asyncio import LoopThread, iterate, sync

MODE, CLEANUP = sys.argv[1], sys.argv[2]


def say(text: str) -> None:
    print(text, flush=True)


async def cleanup() -> None:
    say("cleanup started")
    if CLEANUP == "hang":
        # A cleanup that ignores cancellation: only a second Ctrl-C gets out.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await asyncio.sleep(deadline - time.monotonic())
            except asyncio.CancelledError:
                continue
    else:
        await asyncio.sleep(0.01)
    say("cleanup ran")


async def work() -> None:
    try:
        await asyncio.sleep(0)  # suspend once, as real I/O would
        say("ready")
        await asyncio.sleep(60)
        say("not interrupted")
    finally:
        await cleanup()


async def background() -> None:
    try:
        await asyncio.sleep(60)
    finally:
        await asyncio.sleep(0)
        say("background cleanup ran")


async def work_with_background_task() -> None:
    asyncio.get_running_loop().create_task(background())
    await work()


async def busy() -> None:
    # Never yields to the loop, so a cancellation could never reach it.
    try:
        await asyncio.sleep(0)
        say("ready")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.001)
        say("not interrupted")
    finally:
        await cleanup()


async def numbers() -> AsyncIterator[int]:
    try:
        yield 1
        say("ready")
        await asyncio.sleep(60)
        yield 2
    finally:
        await cleanup()


def main() -> None:
    if MODE == "main":
        sync(work())
    elif MODE == "busy":
        sync(busy())
    elif MODE == "background-task":
        sync(work_with_background_task())
    elif MODE == "after-many-calls":
        for _ in range(100):
            sync(asyncio.sleep(0))
        sync(work())
    elif MODE == "inside-asyncio-run":

        async def outer() -> None:
            sync(work())
            say("outer continued")

        asyncio.run(outer())
    elif MODE == "sync-async-sync":

        async def outer() -> None:
            sync(work())
            say("outer continued")

        sync(outer())
    elif MODE == "loop-thread":
        with LoopThread() as loop:
            try:
                sync(work(), loop)
            except KeyboardInterrupt:
                # Leaving the block closes the LoopThread, which waits for the
                # tasks on it to finish their cleanup.
                say("sync raised KeyboardInterrupt")
                raise
    elif MODE == "idle-loop":
        loop = asyncio.new_event_loop()
        try:
            sync(work(), loop)
        finally:
            loop.close()
    elif MODE == "iterate":
        for _ in iterate(numbers()):
            pass
    else:  # pragma: no cover
        raise SystemExit(f"unknown mode {MODE}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("KeyboardInterrupt raised")
        raise
    say("returned normally")
