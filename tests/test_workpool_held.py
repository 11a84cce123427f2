"""A slot held by a request worked on the event loop (:meth:`WorkPool.hold`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from tfio_handlers.errors import ServerBusy
from tfio_handlers.workpool import WorkPool


def test_a_held_slot_outlives_a_cancelled_await_until_its_thread_work_ends() -> None:
    pool = WorkPool(1)
    started = threading.Event()
    gate = threading.Event()

    def blocked() -> str:
        started.set()
        assert gate.wait(30)
        return "done"

    async def request() -> None:
        held = pool.hold()
        try:
            await held.run(blocked)
        finally:
            held.release()

    async def scenario() -> None:
        task = asyncio.ensure_future(request())
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()  # the request's 504
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert pool.busy == 1  # the thread still works under the request's slot
    with pytest.raises(ServerBusy):
        pool.hold()
    gate.set()
    for _ in range(300):
        if pool.busy == 0:
            break
        threading.Event().wait(0.01)
    assert pool.busy == 0
    pool.hold().release()  # free again


def test_a_held_slot_is_given_back_once_and_at_once_without_thread_work() -> None:
    pool = WorkPool(2)
    held = pool.hold()
    assert pool.busy == 1
    assert asyncio.run(held.run(lambda: 42)) == 42
    held.release()
    held.release()
    assert pool.busy == 0


def test_work_not_started_when_cancelled_is_dropped() -> None:
    pool = WorkPool(1)
    ran: list[int] = []
    gate = threading.Event()

    async def scenario() -> None:
        first = pool.hold()
        blocker = asyncio.ensure_future(first.run(gate.wait, 30))
        await asyncio.sleep(0.05)
        # The pool has one thread: this work queues behind the first, then its await is cancelled.
        queued = asyncio.ensure_future(_run_under_slot_of(first, ran))
        await asyncio.sleep(0.05)
        queued.cancel()
        # The cancel reaches the pool's future in a callback of the loop: let it run before the
        # thread is freed (setting the gate at once raced it, and lost on a loaded machine).
        with contextlib.suppress(asyncio.CancelledError):
            await queued
        gate.set()
        await blocker
        first.release()

    asyncio.run(scenario())
    assert ran == []
    assert pool.busy == 0


async def _run_under_slot_of(held: object, ran: list[int]) -> None:
    await held.run(ran.append, 1)  # type: ignore[attr-defined]
