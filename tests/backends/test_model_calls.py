"""Where async model calls run (:class:`tfio_handlers.backends.model_calls.ModelCalls`): inline on
the event loop when the caller's request is the only one in progress, no other call is in flight
and calls of the kind are short, else on the model threads; real threads and a real event loop.
Each scenario says it is the sole request (``sole_request``), as the pipeline does."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tfio_handlers.backends.model_calls import (
    INLINE_BELOW_SECONDS,
    ModelCalls,
    sole_request,
    usable_cpus,
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def where(_: object) -> tuple[str, str]:
    """The thread a call ran on, and the request id it saw."""
    return threading.current_thread().name, request_id.get()


def slow_where(seconds: float) -> tuple[str, str]:
    time.sleep(seconds)
    return where(None)


def fail(_: object) -> None:
    raise RuntimeError("the model refused")


def loop_thread() -> str:
    return threading.current_thread().name


SHORT = 0.05
"""The tests' ``inline_below``: far above a trivial call's time however loaded the machine is, far
below the slow calls' sleeps."""


@pytest.fixture
def calls() -> ModelCalls:
    calls = ModelCalls(threads=2, inline_below=SHORT)
    yield calls
    calls.close()


def test_a_new_kind_goes_to_a_thread_twice_then_runs_inline_once_known_short(
    calls: ModelCalls,
) -> None:
    async def scenario() -> list[tuple[str, str]]:
        request_id.set("r-1")
        sole_request.set(True)
        return [await calls.run("iris", where, None) for _ in range(4)]

    first, second, third, fourth = asyncio.run(scenario())
    for name, seen_id in (first, second):
        assert name.startswith("tfio-model") and seen_id == "r-1"
    assert third == fourth == (loop_thread(), "r-1")  # this thread ran the loop


def test_a_slow_first_call_does_not_count(calls: ModelCalls) -> None:
    """The first call of a kind may trace its graph for seconds: not timed."""

    async def scenario() -> list[tuple[str, str]]:
        sole_request.set(True)
        traced = await calls.run("iris", slow_where, SHORT * 4)
        return [traced, *[await calls.run("iris", where, None) for _ in range(2)]]

    _, second, third = asyncio.run(scenario())
    assert second[0].startswith("tfio-model")
    assert third[0] == loop_thread()


def test_a_slow_kind_stays_on_the_threads(calls: ModelCalls) -> None:
    seconds = SHORT * 3

    async def scenario() -> list[tuple[str, str]]:
        sole_request.set(True)
        return [await calls.run("big", slow_where, seconds) for _ in range(3)]

    assert all(name.startswith("tfio-model") for name, _ in asyncio.run(scenario()))


def test_while_a_call_is_in_flight_the_next_goes_to_a_thread(calls: ModelCalls) -> None:
    async def scenario() -> tuple[tuple[str, str], tuple[str, str]]:
        sole_request.set(True)
        await calls.run("iris", where, None)  # now known short
        slow = asyncio.ensure_future(calls.run("big", slow_where, SHORT * 6))
        await asyncio.sleep(0.05)
        short = await calls.run("iris", where, None)
        return short, await slow

    short, slow = asyncio.run(scenario())
    assert short[0].startswith("tfio-model"), short
    assert slow[0].startswith("tfio-model"), slow


def test_inline_below_0_sends_every_call_to_a_thread() -> None:
    calls = ModelCalls(threads=1, inline_below=0)
    try:

        async def scenario() -> list[tuple[str, str]]:
            sole_request.set(True)
            return [await calls.run("iris", where, None) for _ in range(4)]

        assert all(name.startswith("tfio-model") for name, _ in asyncio.run(scenario()))
    finally:
        calls.close()
    with pytest.raises(ValueError, match="model_threads"):
        ModelCalls(threads=0)
    assert ModelCalls(threads=1).inline_below == INLINE_BELOW_SECONDS


def test_a_caller_that_is_not_the_sole_request_always_gets_a_thread(calls: ModelCalls) -> None:
    async def scenario() -> list[tuple[str, str]]:
        return [await calls.run("iris", where, None) for _ in range(4)]  # sole_request unset

    assert all(name.startswith("tfio-model") for name, _ in asyncio.run(scenario()))


def test_the_usable_cpus_are_the_process_affinity() -> None:
    """``taskset`` (``sched_setaffinity``) on a real child process: one CPU of the machine's."""
    assert usable_cpus() == len(os.sched_getaffinity(0))
    child = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from tfio_handlers.backends.model_calls import usable_cpus; print(usable_cpus())"
    )
    ran = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=True
    )
    assert ran.stdout.strip() == "1", ran.stderr


def test_errors_reach_the_caller_on_both_paths_and_nothing_stays_in_flight(
    calls: ModelCalls,
) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        sole_request.set(True)
        errors = []
        for _ in range(3):  # threads first, then inline: the kind is short
            with pytest.raises(RuntimeError, match="refused") as raised:
                await calls.run("failing", fail, None)
            errors.append(str(raised.value))
        # Nothing counted as in flight after the failures: a short kind soon runs inline.
        return errors, [(await calls.run("iris", where, None))[0] for _ in range(3)]

    errors, threads = asyncio.run(scenario())
    assert errors == ["the model refused"] * 3
    assert threads[2] == loop_thread()


def test_the_embedded_backend_answers_the_same_inline_and_on_threads(
    half_plus_two_model: Path,
) -> None:
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.protocol.arrays import PredictArrays

    backend = EmbeddedBackend({"half_plus_two": half_plus_two_model.parent})
    try:
        request = PredictArrays({"x": np.array([1.0, 2.0], np.float32)})

        async def scenario() -> list[list[float]]:
            sequential = [await backend.apredict_arrays(request) for _ in range(5)]
            concurrent = await asyncio.gather(*(backend.apredict_arrays(request) for _ in range(5)))
            return [p.outputs["y"].tolist() for p in (*sequential, *concurrent)]

        assert asyncio.run(scenario()) == [[2.5, 3.0]] * 10
        assert backend.predict_arrays(request).outputs["y"].tolist() == [2.5, 3.0]
    finally:
        backend.close()
