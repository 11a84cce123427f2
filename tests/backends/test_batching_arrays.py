"""Dynamic batching on arrays (``predict_arrays``, ``apredict_arrays``) and the no-wait mode
(``batch_timeout_micros=0``), over the real embedded backend.

``multi_input``'s ``serving_default`` maps rows to rows with exact arithmetic, so a batched answer
must equal the unbatched one exactly: the arrays, their dtypes and shapes, the model spec that
answered and the layout its message would be written in. The inner backend here is a spy that
runs ``predict_arrays`` on the embedded backend and refuses ``predict``: the arrays path never
converts to messages. Who is merged with whom is made certain without timing: the spy's first
call waits on a gate until the test has seen the other requests arrive.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfio_handlers.backends.base import Backend
from tfio_handlers.backends.batching import BatchingBackend, from_env
from tfio_handlers.errors import BadRequest
from tfio_handlers.protocol.arrays import PredictArrays, Prediction
from tfio_handlers.protos import (
    ClassificationRequest,
    ClassificationResponse,
    Example,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    ModelSpec,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
)

pytestmark = pytest.mark.tensorflow

WAIT = 30.0
"""Seconds a test waits for something that must happen (a bound on a hang, not a timing)."""


class ArraysSpy(Backend):
    """``inner.predict_arrays``, recording each call's rows and thread; ``predict`` is refused.

    With ``gate``, the first call waits for it (after setting ``started``), so that the test can
    gather other requests while a batch thread's place is held.
    """

    def __init__(self, inner: Backend, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.gate = gate
        self.started = threading.Event()
        self.rows: list[int] = []
        self.threads: list[int] = []
        self.lock = threading.Lock()

    def predict_arrays(self, request: PredictArrays) -> Prediction:
        first = next(iter(request.inputs.values()))
        with self.lock:
            self.rows.append(first.shape[0] if first.ndim else 0)
            self.threads.append(threading.get_ident())
            gated = self.gate is not None and not self.started.is_set()
            self.started.set()
        if gated:
            assert self.gate is not None
            assert self.gate.wait(WAIT)
        return self.inner.predict_arrays(request)

    def predict(self, request: PredictRequest) -> PredictResponse:
        raise AssertionError("the arrays path converted to a PredictRequest")

    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        return self.inner.classify(request)

    def regress(self, request: RegressionRequest) -> RegressionResponse:
        return self.inner.regress(request)

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        return self.inner.get_model_metadata(request)

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        return self.inner.get_model_status(request)


def batching(inner: Backend, **kwargs: Any) -> BatchingBackend:
    backend = BatchingBackend(inner, close_inner=False, **kwargs)
    backend.signatures("multi_input")  # as the pipeline does before it predicts
    backend.signatures("bad_signatures")
    return backend


@pytest.fixture()
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # never leave a batch thread waiting


def multi_arrays(seed: int, rows: int, **spec: Any) -> PredictArrays:
    """A ``multi_input`` request on arrays whose rows are unique to ``seed``."""
    rng = np.random.default_rng(seed)
    c = np.empty(rows, dtype=object)
    c[:] = [f"caller {seed} row {i}".encode() for i in range(rows)]
    inputs = {
        "a": rng.standard_normal((rows, 2)).astype(np.float32),
        "b": rng.integers(-1000, 1000, rows).astype(np.int64),
        "c": c,
    }
    output_filter = spec.pop("output_filter", ())
    model_spec = ModelSpec(name="multi_input", **spec)
    return PredictArrays(inputs, model_spec, output_filter)


def assert_same_prediction(got: Any, want: Prediction) -> None:
    assert isinstance(got, Prediction), got
    assert got.model_spec == want.model_spec
    assert got.typed_fields == want.typed_fields
    assert list(got.outputs) == list(want.outputs)
    for alias, array in want.outputs.items():
        assert got.outputs[alias].dtype == array.dtype, alias
        assert got.outputs[alias].shape == array.shape, alias
        assert got.outputs[alias].tolist() == array.tolist(), alias
    assert got.to_message().SerializeToString(
        deterministic=True
    ) == want.to_message().SerializeToString(deterministic=True)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def start_threads(calls: list[Callable[[], Any]]) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = [None] * len(calls)

    def target(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    return threads, results


def join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()


# -- answers equal to unbatched ones ----------------------------------------------------------------


def mixed_callers(
    backend: BatchingBackend, requests: list[PredictArrays], asynchronous: list[bool]
) -> list[Any]:
    """Every request at once: the sync ones each from a thread of its own, the async ones as tasks
    of one event loop in another thread."""
    results: list[Any] = [None] * len(requests)
    barrier = threading.Barrier(1 + sum(not a for a in asynchronous))
    sync = [i for i, a in enumerate(asynchronous) if not a]
    aio = [i for i, a in enumerate(asynchronous) if a]

    def thread_call(i: int) -> None:
        barrier.wait(WAIT)
        try:
            results[i] = backend.predict_arrays(requests[i])
        except BaseException as exc:
            results[i] = exc

    async def loop_calls() -> None:
        answers = await asyncio.gather(
            *(backend.apredict_arrays(requests[i]) for i in aio), return_exceptions=True
        )
        for i, answer in zip(aio, answers, strict=True):
            results[i] = answer

    def loop_thread() -> None:
        barrier.wait(WAIT)
        asyncio.run(loop_calls())

    threads = [threading.Thread(target=thread_call, args=(i,)) for i in sync]
    threads.append(threading.Thread(target=loop_thread))
    for thread in threads:
        thread.start()
    join(threads)
    return results


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(st.integers(1, 5), min_size=1, max_size=24),
    asynchronous=st.lists(st.booleans(), min_size=24, max_size=24),
    variants=st.lists(st.integers(0, 3), min_size=24, max_size=24),
    max_batch_size=st.integers(2, 9),
    timeout=st.sampled_from([0, 0, 2000]),
    threads=st.integers(1, 3),
)
def test_arrays_answers_equal_unbatched_ones(
    embedded_backend: Any,
    rows: list[int],
    asynchronous: list[bool],
    variants: list[int],
    max_batch_size: int,
    timeout: int,
    threads: int,
) -> None:
    """Any mix of row counts, sync and async callers, output filters and version choices, in any
    mode: each caller's answer is exactly its unbatched one."""
    requests = []
    for i, count in enumerate(rows):
        spec: dict[str, Any] = {}
        if variants[i] & 1:
            spec["output_filter"] = ("c_bytes", "total")
        if variants[i] & 2:
            spec["version"] = {"value": 1}
        requests.append(multi_arrays(1000 * len(rows) + i, count, **spec))
    expected = [embedded_backend.predict_arrays(request) for request in requests]
    spy = ArraysSpy(embedded_backend)
    backend = batching(
        spy,
        max_batch_size=max_batch_size,
        batch_timeout_micros=timeout,
        num_batch_threads=threads,
    )
    try:
        results = mixed_callers(backend, requests, asynchronous[: len(requests)])
    finally:
        backend.close()
    for got, want in zip(results, expected, strict=True):
        assert_same_prediction(got, want)
    assert sorted(spy.rows) != [] and sum(spy.rows) == sum(rows)  # each row ran exactly once
    assert max(spy.rows) <= max(max_batch_size, *rows)
    stats = backend.stats()
    assert stats.requests == len(rows)
    assert stats.solo + stats.batched_requests == len(rows)


def test_each_caller_gets_views_of_the_merged_outputs(
    embedded_backend: Any, gate: threading.Event
) -> None:
    spy = ArraysSpy(embedded_backend, gate)
    backend = batching(spy, batch_timeout_micros=0, num_batch_threads=1)
    try:
        requests = [multi_arrays(i, 1 + i % 2) for i in range(4)]
        first, first_results = start_threads([lambda: backend.predict_arrays(requests[0])])
        assert spy.started.wait(WAIT)
        rest, results = start_threads(
            [lambda i=i: backend.predict_arrays(requests[i]) for i in (1, 2, 3)]  # type: ignore[misc]
        )
        wait_until(lambda: backend.stats().requests == 4)
        gate.set()
        join(first + rest)
    finally:
        backend.close()
    assert spy.rows == [1, 2 + 1 + 2]
    merged = [result.outputs["total"] for result in results]
    assert all(piece.base is not None for piece in merged)  # views, not copies
    assert np.shares_memory(merged[0].base, merged[1].base)
    for got, request in zip(first_results + results, requests, strict=True):
        assert_same_prediction(got, embedded_backend.predict_arrays(request))


# -- the no-wait mode ------------------------------------------------------------------------------


def test_no_wait_runs_a_lone_request_at_once_in_the_callers_thread(embedded_backend: Any) -> None:
    """A lone request waits for no timer and no batch thread: it runs in the caller's thread."""
    spy = ArraysSpy(embedded_backend)
    backend = batching(spy, batch_timeout_micros=0)
    try:
        request = multi_arrays(1, 2)
        got = backend.predict_arrays(request)
    finally:
        backend.close()
    assert_same_prediction(got, embedded_backend.predict_arrays(request))
    assert spy.threads == [threading.get_ident()]
    stats = backend.stats()
    assert (stats.requests, stats.solo, stats.batches) == (1, 1, 0)


def test_no_wait_lone_async_request_completes(embedded_backend: Any) -> None:
    spy = ArraysSpy(embedded_backend)
    backend = batching(spy, batch_timeout_micros=0, num_batch_threads=1)
    request = multi_arrays(2, 3)

    async def main() -> Prediction:
        return await asyncio.wait_for(backend.apredict_arrays(request), WAIT)

    try:
        got = asyncio.run(main())
    finally:
        backend.close()
    assert_same_prediction(got, embedded_backend.predict_arrays(request))
    assert spy.rows == [3]
    assert backend.stats().solo == 1


def test_no_wait_gathers_requests_while_every_thread_is_busy(
    embedded_backend: Any, gate: threading.Event
) -> None:
    """While the one batch thread's place is held, arrivals gather (up to max_batch_size rows) and
    run together when it frees: batches form without any timer."""
    spy = ArraysSpy(embedded_backend, gate)
    backend = batching(spy, batch_timeout_micros=0, num_batch_threads=1, max_batch_size=4)
    assert backend.no_wait
    try:
        requests = [multi_arrays(10 + i, 1) for i in range(9)]
        first, _ = start_threads([lambda: backend.predict_arrays(requests[0])])
        assert spy.started.wait(WAIT)
        rest, results = start_threads(
            [lambda i=i: backend.predict_arrays(requests[i]) for i in range(1, 9)]  # type: ignore[misc]
        )
        wait_until(lambda: backend.stats().requests == 9)
        assert spy.rows == [1]  # nothing else ran meanwhile
        gate.set()
        join(first + rest)
    finally:
        backend.close()
    assert spy.rows == [1, 4, 4]
    stats = backend.stats()
    assert (stats.batches, stats.batched_requests, stats.solo) == (2, 8, 1)
    for got, request in zip(results, requests[1:], strict=True):
        assert_same_prediction(got, embedded_backend.predict_arrays(request))


def test_no_wait_gathers_async_callers_too(embedded_backend: Any, gate: threading.Event) -> None:
    spy = ArraysSpy(embedded_backend, gate)
    backend = batching(spy, batch_timeout_micros=0, num_batch_threads=1)
    requests = [multi_arrays(20 + i, 1 + i % 3) for i in range(6)]

    async def main() -> list[Prediction]:
        first = asyncio.ensure_future(backend.apredict_arrays(requests[0]))
        while not spy.started.is_set():
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(backend.apredict_arrays(r)) for r in requests[1:]]
        while backend.stats().requests < len(requests):
            await asyncio.sleep(0.001)
        gate.set()
        return list(await asyncio.wait_for(asyncio.gather(first, *rest), WAIT))

    try:
        results = asyncio.run(main())
    finally:
        backend.close()
    assert spy.rows == [1, 2 + 3 + 1 + 2, 3]  # max_batch_size 8: the last one starts a batch
    assert backend.stats().batches == 1
    for got, request in zip(results, requests, strict=True):
        assert_same_prediction(got, embedded_backend.predict_arrays(request))


def test_timeout_zero_from_the_environment_is_the_no_wait_mode(embedded_backend: Any) -> None:
    backend = from_env(
        embedded_backend,
        {"SAGEMAKER_TFS_ENABLE_BATCHING": "true", "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS": "0"},
    )
    assert isinstance(backend, BatchingBackend)
    assert backend.no_wait and backend.batch_timeout_micros == 0
    assert backend.num_batch_threads == 1  # the no-wait mode's default
    threads = from_env(
        embedded_backend,
        {
            "SAGEMAKER_TFS_ENABLE_BATCHING": "true",
            "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS": "0",
            "SAGEMAKER_TFS_NUM_BATCH_THREADS": "3",
        },
    )
    assert isinstance(threads, BatchingBackend) and threads.num_batch_threads == 3
    defaults = from_env(embedded_backend, {"SAGEMAKER_TFS_ENABLE_BATCHING": "true"})
    assert isinstance(defaults, BatchingBackend) and not defaults.no_wait
    assert defaults.num_batch_threads == len(os.sched_getaffinity(0))


def test_the_default_batch_threads_are_the_cpus_the_process_may_run_on() -> None:
    """TF Serving's default (its schedulable CPUs): a child process pinned to one CPU of the
    machine's gets one batch thread, whatever the machine's count."""
    child = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from tfio_handlers.backends.batching import BatchingBackend; "
        "print(BatchingBackend(None, close_inner=False).num_batch_threads)"
    )
    ran = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=True
    )
    assert ran.stdout.strip() == "1", ran.stderr


# -- cancellation, errors, reruns -------------------------------------------------------------------


def test_a_cancelled_async_caller_leaves_the_arrays_batch(
    embedded_backend: Any, gate: threading.Event
) -> None:
    spy = ArraysSpy(embedded_backend, gate)
    backend = batching(spy, batch_timeout_micros=0, num_batch_threads=1)
    requests = [multi_arrays(30 + i, 1) for i in range(4)]

    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(backend.apredict_arrays(requests[0]))]
        while not spy.started.is_set():
            await asyncio.sleep(0.001)
        tasks += [asyncio.ensure_future(backend.apredict_arrays(r)) for r in requests[1:]]
        while backend.stats().requests < len(requests):
            await asyncio.sleep(0.001)
        tasks[2].cancel()
        await asyncio.gather(tasks[2], return_exceptions=True)  # its batch has not started
        gate.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    try:
        results = asyncio.run(main())
    finally:
        backend.close()
    assert isinstance(results[2], asyncio.CancelledError)
    assert spy.rows == [1, 2]  # the cancelled caller's row did not run
    for i in (0, 1, 3):
        assert_same_prediction(results[i], embedded_backend.predict_arrays(requests[i]))


def test_an_arrays_batch_error_goes_to_every_caller(
    embedded_backend: Any, gate: threading.Event
) -> None:
    spy = ArraysSpy(embedded_backend, gate)
    backend = batching(spy, batch_timeout_micros=0, num_batch_threads=1)
    bad = []
    for i in range(5):
        request = multi_arrays(40 + i, 1)
        request.inputs["b"] = np.array([1.5], np.float32)  # b is int64
        bad.append(request)
    try:
        first, _ = start_threads([lambda: backend.predict_arrays(multi_arrays(39, 1))])
        assert spy.started.wait(WAIT)
        rest, results = start_threads(
            [lambda i=i: backend.predict_arrays(bad[i]) for i in range(5)]  # type: ignore[misc]
        )
        wait_until(lambda: backend.stats().requests == 6)
        gate.set()
        join(first + rest)
    finally:
        backend.close()
    assert spy.rows == [1, 5]  # merged, run once
    with pytest.raises(BadRequest) as alone:
        embedded_backend.predict_arrays(bad[0])
    for result in results:
        assert isinstance(result, BadRequest), result
        assert str(result) == str(alone.value)


def test_arrays_outputs_without_the_batch_rows_are_run_again_alone(
    embedded_backend: Any, gate: threading.Event
) -> None:
    """bad_signatures' ``classes_batch`` answers batch + 1 rows: the merged answer cannot be split,
    so each request runs again alone and gets its unbatched answer."""

    def request(count: int) -> PredictArrays:
        examples = np.empty(count, dtype=object)
        examples[:] = [Example().SerializeToString()] * count
        spec = ModelSpec(name="bad_signatures", signature_name="classes_batch")
        return PredictArrays({"inputs": examples}, spec)

    spy = ArraysSpy(embedded_backend, gate)
    backend = batching(spy, batch_timeout_micros=0, num_batch_threads=1)
    requests = [request(1 + i % 2) for i in range(4)]
    try:
        first, _ = start_threads([lambda: backend.predict_arrays(request(1))])
        assert spy.started.wait(WAIT)
        rest, results = start_threads(
            [lambda r=r: backend.predict_arrays(r) for r in requests]  # type: ignore[misc]
        )
        wait_until(lambda: backend.stats().requests == 5)
        gate.set()
        join(first + rest)
    finally:
        backend.close()
    assert spy.rows[:2] == [1, 6]  # the merged call, then each alone (in arrival order)
    assert sorted(spy.rows[2:]) == [1, 1, 2, 2]
    assert backend.stats().reruns == 1
    for got, one in zip(results, requests, strict=True):
        assert_same_prediction(got, embedded_backend.predict_arrays(one))


def test_arrays_that_cannot_be_merged_run_alone(embedded_backend: Any) -> None:
    spy = ArraysSpy(embedded_backend)
    backend = batching(spy, batch_timeout_micros=1000, max_batch_size=4)
    try:
        big = multi_arrays(50, 4)  # max_batch_size rows: nothing to merge it with
        assert_same_prediction(backend.predict_arrays(big), embedded_backend.predict_arrays(big))
        half = PredictArrays(
            {"x": np.array([1.0, 2.0], np.float32)}, ModelSpec(name="half_plus_two")
        )  # x has unknown rank: not known to take batches
        assert_same_prediction(backend.predict_arrays(half), embedded_backend.predict_arrays(half))
        scalar = PredictArrays({"x": np.float32(3.0)}, ModelSpec(name="half_plus_two"))
        assert_same_prediction(
            backend.predict_arrays(scalar), embedded_backend.predict_arrays(scalar)
        )
    finally:
        backend.close()
    assert spy.rows == [4, 2, 0]
    assert backend.stats().solo == 3
