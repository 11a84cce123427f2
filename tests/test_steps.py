"""The two drivers of a request handler written as a generator (:mod:`tfio_handlers.steps`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tfio_handlers.errors import BadRequest
from tfio_handlers.steps import Steps, arun_steps, run_steps


def handler(log: list[str]) -> Steps[str]:
    """Two backend calls; the second one's error is answered, as a request handler does."""
    try:
        first = yield "one"
        log.append(f"got {first} on {threading.current_thread().name}")
        second = yield "two"
        return f"{first}+{second}"
    except BadRequest as exc:
        return f"error: {exc.message}"
    finally:
        log.append("closed")


def call(request: str) -> str:
    if request == "two" and call.fail:  # type: ignore[attr-defined]
        raise BadRequest("no two")
    return request.upper()


call.fail = False  # type: ignore[attr-defined]


async def acall(request: str) -> str:
    await asyncio.sleep(0)
    return call(request)


async def offload_in_thread(resume: Callable[[], tuple[bool, Any]]) -> tuple[bool, Any]:
    return await asyncio.to_thread(resume)


def test_run_steps_answers_each_call_and_throws_its_error_in() -> None:
    log: list[str] = []
    assert run_steps(handler(log), call) == "ONE+TWO"
    call.fail = True  # type: ignore[attr-defined]
    try:
        assert run_steps(handler(log), call) == "error: no two"
    finally:
        call.fail = False  # type: ignore[attr-defined]
    assert log.count("closed") == 2


@pytest.mark.parametrize("on_loop", [True, False])
def test_arun_steps_goes_on_on_the_loop_or_in_a_thread(on_loop: bool) -> None:
    log: list[str] = []
    offloaded: list[int] = []

    async def offload(resume: Callable[[], tuple[bool, Any]]) -> tuple[bool, Any]:
        offloaded.append(1)
        return await offload_in_thread(resume)

    result = asyncio.run(arun_steps(handler(log), acall, offload, lambda answer: on_loop))
    assert result == "ONE+TWO"
    assert len(offloaded) == (0 if on_loop else 2)
    main = threading.current_thread().name
    assert (main in log[0]) is on_loop  # went on where it was told to
    assert log[-1] == "closed"


def test_arun_steps_throws_errors_in_and_closes_a_cancelled_handler() -> None:
    log: list[str] = []
    call.fail = True  # type: ignore[attr-defined]
    try:
        result = asyncio.run(arun_steps(handler(log), acall, offload_in_thread, lambda a: True))
    finally:
        call.fail = False  # type: ignore[attr-defined]
    assert result == "error: no two"

    async def never(request: str) -> Awaitable[str]:
        await asyncio.sleep(3600)
        raise AssertionError

    async def cancelled() -> None:
        task = asyncio.ensure_future(
            arun_steps(handler(log), never, offload_in_thread, lambda a: True)
        )
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    log.clear()
    asyncio.run(cancelled())
    assert log == ["closed"]  # the generator was closed, its finally ran
