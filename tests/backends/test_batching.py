"""Dynamic batching over the real embedded backend: each caller gets exactly its own rows.

The models come from ``tests/conftest.py`` (built once per session). ``multi_input``'s
``serving_default`` maps rows to rows with exact arithmetic (a sum of two floats plus an int, a
doubled int, string lengths, the strings themselves), so a batched answer must equal the unbatched
one byte for byte; iris's matrix products may round differently in a batch of another size, so its
answers are compared to 1e-6.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfio_handlers.tensors as tensors
from tfio_handlers.backends.base import Backend
from tfio_handlers.backends.batching import BatchingBackend, BatchStats, from_env
from tfio_handlers.errors import BackendUnavailable, BadRequest, PayloadTooLarge
from tfio_handlers.protos import (
    ClassificationRequest,
    ClassificationResponse,
    Example,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
)
from tfio_handlers.tensors import to_ndarray, to_tensor_proto

pytestmark = pytest.mark.tensorflow


class Spy(Backend):
    """Delegates to ``inner`` and records the row count of every request it is asked to run."""

    def __init__(self, inner: Backend, delay: float = 0.0) -> None:
        super().__init__()
        self.inner = inner
        self.delay = delay
        self.rows: list[int] = []
        self.lock = threading.Lock()

    def _record(self, rows: int) -> None:
        with self.lock:
            self.rows.append(rows)
        if self.delay:
            time.sleep(self.delay)

    def predict(self, request: PredictRequest) -> PredictResponse:
        first = next(iter(request.inputs.values()))
        self._record(first.tensor_shape.dim[0].size if first.tensor_shape.dim else 0)
        return self.inner.predict(request)

    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        self._record(len(request.input.example_list.examples))
        return self.inner.classify(request)

    def regress(self, request: RegressionRequest) -> RegressionResponse:
        self._record(len(request.input.example_list.examples))
        return self.inner.regress(request)

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        return self.inner.get_model_metadata(request)

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        return self.inner.get_model_status(request)


@pytest.fixture()
def spy(embedded_backend: Any) -> Spy:
    return Spy(embedded_backend)


@pytest.fixture()
def batching(spy: Spy) -> Iterator[BatchingBackend]:
    backend = BatchingBackend(spy, max_batch_size=8, batch_timeout_micros=20_000, close_inner=False)
    yield backend
    backend.close()


def multi_request(seed: int, rows: int, **spec: Any) -> PredictRequest:
    """A ``multi_input`` request whose rows are unique to ``seed``."""
    rng = np.random.default_rng(seed)
    request = PredictRequest()
    request.model_spec.name = "multi_input"
    for key, value in spec.items():
        setattr(request.model_spec, key, value)
    a = rng.standard_normal((rows, 2)).astype(np.float32)
    b = rng.integers(-1000, 1000, rows).astype(np.int64)
    c = np.array([f"caller {seed} row {i}".encode() for i in range(rows)], dtype=object)
    request.inputs["a"].CopyFrom(to_tensor_proto(a))
    request.inputs["b"].CopyFrom(to_tensor_proto(b))
    request.inputs["c"].CopyFrom(to_tensor_proto(c, dtype="string"))
    return request


def iris_request(seed: int, rows: int) -> PredictRequest:
    rng = np.random.default_rng(seed)
    request = PredictRequest()
    request.model_spec.name = "iris"
    request.model_spec.signature_name = "predict"
    features = rng.uniform([4, 2, 1, 0], [8, 4.5, 7, 2.5], (rows, 4)).astype(np.float32)
    request.inputs["inputs"].CopyFrom(to_tensor_proto(features))
    return request


def outputs(response: PredictResponse) -> dict[str, np.ndarray]:
    return {alias: to_ndarray(tensor) for alias, tensor in response.outputs.items()}


def assert_same_response(got: PredictResponse, want: PredictResponse) -> None:
    assert got.model_spec == want.model_spec
    got_out, want_out = outputs(got), outputs(want)
    assert set(got_out) == set(want_out)
    for alias, array in want_out.items():
        assert got_out[alias].dtype == array.dtype, alias
        assert got_out[alias].shape == array.shape, alias
        assert got_out[alias].tolist() == array.tolist(), alias
    # the same layout too: typed fields, as the embedded backend answers
    assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)


def run_threads(n: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def target(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# -- merging -------------------------------------------------------------------------------------


def test_threads_get_exactly_their_own_rows(
    embedded_backend: Any, spy: Spy, batching: BatchingBackend
) -> None:
    requests = [multi_request(i, 1 + i % 3) for i in range(48)]
    expected = [embedded_backend.predict(request) for request in requests]
    results = run_threads(len(requests), lambda i: batching.predict(requests[i]))
    for got, want in zip(results, expected, strict=True):
        assert not isinstance(got, BaseException), got
        assert_same_response(got, want)
    stats = batching.stats()
    assert stats.requests == 48
    assert stats.batches >= 1 and stats.batched_requests >= 2
    assert max(spy.rows) <= 8
    assert sum(spy.rows) == sum(1 + i % 3 for i in range(48))  # each row ran exactly once


def test_asyncio_tasks_get_exactly_their_own_rows(
    embedded_backend: Any, spy: Spy, batching: BatchingBackend
) -> None:
    requests = [multi_request(100 + i, 1 + i % 2) for i in range(64)]
    expected = [embedded_backend.predict(request) for request in requests]
    batching.signatures("multi_input")  # as the pipeline does before it predicts

    async def main() -> list[PredictResponse]:
        return await asyncio.gather(*(batching.apredict(request) for request in requests))

    results = asyncio.run(main())
    for got, want in zip(results, expected, strict=True):
        assert_same_response(got, want)
    stats = batching.stats()
    assert stats.batches >= 4
    assert stats.mean_batch_size > 2
    assert max(spy.rows) <= 8


def test_iris_rows_stay_with_their_callers(
    embedded_backend: Any, batching: BatchingBackend
) -> None:
    requests = [iris_request(i, 1 + i % 4) for i in range(40)]
    expected = [outputs(embedded_backend.predict(request)) for request in requests]
    results = run_threads(len(requests), lambda i: batching.predict(requests[i]))
    for got, want in zip(results, expected, strict=True):
        got_out = outputs(got)
        np.testing.assert_allclose(got_out["probabilities"], want["probabilities"], atol=1e-6)
        assert got_out["class_ids"].tolist() == want["class_ids"].tolist()
        assert got_out["classes"].tolist() == want["classes"].tolist()
    assert batching.stats().batches >= 1


def test_output_filter_and_version_are_part_of_the_key(
    embedded_backend: Any, spy: Spy, batching: BatchingBackend
) -> None:
    requests = []
    for i in range(24):
        request = multi_request(200 + i, 1)
        if i % 2:
            request.output_filter.append("total")
        if i % 3 == 0:
            request.model_spec.version.value = 1
        requests.append(request)
    expected = [embedded_backend.predict(request) for request in requests]
    results = run_threads(len(requests), lambda i: batching.predict(requests[i]))
    for got, want in zip(results, expected, strict=True):
        assert_same_response(got, want)
        assert set(got.outputs) == set(want.outputs)


def test_max_batch_size_counts_rows(spy: Spy) -> None:
    backend = BatchingBackend(spy, max_batch_size=5, batch_timeout_micros=50_000, close_inner=False)
    try:
        requests = [multi_request(300 + i, 2) for i in range(12)]
        results = run_threads(len(requests), lambda i: backend.predict(requests[i]))
        assert all(isinstance(r, PredictResponse) for r in results)
        assert max(spy.rows) <= 4  # two requests of 2 rows; a third would make 6 > 5
        assert sum(spy.rows) == 24
    finally:
        backend.close()


def test_a_full_batch_runs_without_waiting_for_the_timeout(spy: Spy) -> None:
    backend = BatchingBackend(
        spy, max_batch_size=4, batch_timeout_micros=10_000_000, close_inner=False
    )
    try:
        backend.signatures("multi_input")
        requests = [multi_request(400 + i, 1) for i in range(4)]
        start = time.monotonic()
        results = run_threads(4, lambda i: backend.predict(requests[i]))
        assert time.monotonic() - start < 5
        assert all(isinstance(r, PredictResponse) for r in results)
        assert spy.rows == [4]
    finally:
        backend.close()


def test_a_lone_request_runs_after_the_timeout(spy: Spy) -> None:
    backend = BatchingBackend(spy, batch_timeout_micros=30_000, close_inner=False)
    try:
        backend.predict(multi_request(1, 1))  # warm: signatures cached
        start = time.monotonic()
        response = backend.predict(multi_request(2, 1))
        elapsed = time.monotonic() - start
        assert isinstance(response, PredictResponse)
        assert 0.025 <= elapsed < 2
        assert backend.stats().solo == 2
    finally:
        backend.close()


# -- what runs alone --------------------------------------------------------------------------------


def test_unmergeable_requests_run_alone(
    embedded_backend: Any, spy: Spy, batching: BatchingBackend
) -> None:
    big = multi_request(1, 9)  # more rows than max_batch_size
    assert_same_response(batching.predict(big), embedded_backend.predict(big))
    half = PredictRequest()  # half_plus_two's x has unknown rank: not known to take batches
    half.model_spec.name = "half_plus_two"
    half.inputs["x"].CopyFrom(to_tensor_proto(np.array([1.0, 2.0], np.float32)))
    assert_same_response(batching.predict(half), embedded_backend.predict(half))
    scalar = PredictRequest()
    scalar.model_spec.name = "half_plus_two"
    scalar.inputs["x"].CopyFrom(to_tensor_proto(np.float32(3.0)))
    assert_same_response(batching.predict(scalar), embedded_backend.predict(scalar))
    assert spy.rows == [9, 2, 0]
    assert batching.stats().solo == 3


def test_outputs_without_the_batch_rows_are_run_again_alone(
    embedded_backend: Any, spy: Spy, batching: BatchingBackend
) -> None:
    # bad_signatures' classes_batch answers batch + 1 rows: a merged answer cannot be split.
    requests = []
    for i in range(6):
        request = PredictRequest()
        request.model_spec.name = "bad_signatures"
        request.model_spec.signature_name = "classes_batch"
        examples = np.array([Example().SerializeToString()] * (1 + i % 2), dtype=object)
        request.inputs["inputs"].CopyFrom(to_tensor_proto(examples, dtype="string"))
        requests.append(request)
    expected = [embedded_backend.predict(request) for request in requests]
    results = run_threads(len(requests), lambda i: batching.predict(requests[i]))
    for got, want in zip(results, expected, strict=True):
        assert_same_response(got, want)
    stats = batching.stats()
    assert stats.reruns >= 1
    assert stats.batches >= 1


# -- errors ----------------------------------------------------------------------------------------


def test_a_batch_error_goes_to_every_caller(spy: Spy, batching: BatchingBackend) -> None:
    def bad(i: int) -> PredictResponse:
        request = multi_request(500 + i, 1)
        request.inputs["b"].CopyFrom(to_tensor_proto(np.array([1.5], np.float32)))  # b is int64
        return batching.predict(request)

    results = run_threads(8, bad)
    assert all(isinstance(result, BadRequest) for result in results), results
    assert all("Expects arg" in str(result) for result in results)
    assert batching.stats().batches >= 1
    assert len(spy.rows) < 8  # they were merged


def test_a_tensor_that_cannot_be_read_fails_its_own_request_not_its_batch(
    embedded_backend: Any, spy: Spy, batching: BatchingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each caller reads its own tensors before it joins a batch: one request whose fill is over
    the process's budget (or whose tensor is malformed) is refused alone, and the iris requests
    batched beside it are answered."""
    monkeypatch.setattr(tensors, "FILL_BUDGET", tensors.FillBudget(8))  # bytes
    requests = [iris_request(700 + i, 1) for i in range(6)]
    expected = [embedded_backend.predict(request) for request in requests]
    hostile = iris_request(800, 1)
    filled = hostile.inputs["inputs"]
    filled.ClearField("tensor_content")
    filled.float_val.append(1.0)  # 1x4 from one value: a fill of 16 bytes, over the budget
    malformed = iris_request(801, 1)
    malformed.inputs["inputs"].tensor_content = b"\0" * 3  # not 16 bytes
    callers = [*requests, hostile, malformed]
    results = run_threads(len(callers), lambda i: batching.predict(callers[i]))
    assert isinstance(results[-2], PayloadTooLarge), results[-2]
    assert isinstance(results[-1], BadRequest), results[-1]
    assert "tensor parsing error: inputs" in str(results[-1])
    for got, want in zip(results[:-2], expected, strict=True):
        assert isinstance(got, PredictResponse), got
        assert_same_response(got, want)
    assert batching.stats().batches >= 1
    assert tensors.FILL_BUDGET.in_use == 0


def test_the_queue_bound_refuses_with_503(spy: Spy) -> None:
    backend = BatchingBackend(
        spy, batch_timeout_micros=200_000, max_enqueued_batches=1, close_inner=False
    )
    try:
        backend.signatures("multi_input")
        backend.signatures("iris")
        first = threading.Thread(target=backend.predict, args=(multi_request(1, 1),))
        first.start()
        deadline = time.monotonic() + 5
        while not backend._open and time.monotonic() < deadline:
            time.sleep(0.001)
        with pytest.raises(
            BackendUnavailable, match="queue to which this task was submitted is full"
        ):
            backend.predict(iris_request(1, 1))  # another key: a second batch
        first.join(10)
    finally:
        backend.close()


def test_close_fails_waiting_callers_and_later_ones(spy: Spy) -> None:
    backend = BatchingBackend(spy, batch_timeout_micros=5_000_000, close_inner=False)
    backend.signatures("multi_input")
    results: list[Any] = []

    def call() -> None:
        try:
            results.append(backend.predict(multi_request(1, 1)))
        except BaseException as exc:
            results.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while not backend._open and time.monotonic() < deadline:
        time.sleep(0.001)
    backend.close()
    thread.join(10)
    assert len(results) == 1 and isinstance(results[0], BackendUnavailable)
    with pytest.raises(BackendUnavailable):
        backend.predict(multi_request(2, 1))
    assert spy.rows == []


def test_a_cancelled_async_caller_leaves_the_batch(spy: Spy) -> None:
    backend = BatchingBackend(spy, batch_timeout_micros=100_000, close_inner=False)
    backend.signatures("multi_input")

    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(backend.apredict(multi_request(i, 1))) for i in range(3)]
        await asyncio.sleep(0.01)
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(main())
        assert isinstance(results[0], PredictResponse) and isinstance(results[2], PredictResponse)
        assert isinstance(results[1], asyncio.CancelledError)
        assert spy.rows == [2]
    finally:
        backend.close()


# -- classify / regress ---------------------------------------------------------------------------


def _examples(request: Any, values: list[float], feature: str = "x") -> None:
    for value in values:
        example = request.input.example_list.examples.add()
        example.features.feature[feature].float_list.value.append(value)


def test_regress_requests_are_merged(
    embedded_backend: Any, spy: Spy, batching: BatchingBackend
) -> None:
    requests = []
    for i in range(16):
        request = RegressionRequest()
        request.model_spec.name = "half_plus_two"
        request.model_spec.signature_name = "regress_x_to_y"
        _examples(request, [float(i * 10 + k) for k in range(1 + i % 3)])
        requests.append(request)
    expected = [embedded_backend.regress(request) for request in requests]
    results = run_threads(len(requests), lambda i: batching.regress(requests[i]))
    for got, want in zip(results, expected, strict=True):
        assert isinstance(got, RegressionResponse), got
        assert got == want
    assert batching.stats().batches >= 1
    assert max(spy.rows) <= 8


def test_classify_requests_are_merged(embedded_backend: Any, batching: BatchingBackend) -> None:
    requests = []
    for i in range(12):
        request = ClassificationRequest()
        request.model_spec.name = "iris"
        for k in range(1 + i % 2):
            example = request.input.example_list.examples.add()
            example.features.feature["inputs"].float_list.value.extend(
                [4.5 + 0.1 * i, 3.0, 1.0 + 0.3 * k + 0.2 * i, 0.2 + 0.1 * i]
            )
        requests.append(request)
    expected = [embedded_backend.classify(request) for request in requests]

    async def main() -> list[ClassificationResponse]:
        return await asyncio.gather(*(batching.aclassify(request) for request in requests))

    results = asyncio.run(main())
    for got, want in zip(results, expected, strict=True):
        assert got.model_spec == want.model_spec
        got_rows = got.result.classifications
        want_rows = want.result.classifications
        assert len(got_rows) == len(want_rows)
        for g, w in zip(got_rows, want_rows, strict=True):
            assert [c.label for c in g.classes] == [c.label for c in w.classes]
            np.testing.assert_allclose(
                [c.score for c in g.classes], [c.score for c in w.classes], atol=1e-6
            )
    assert batching.stats().batches >= 1


# -- settings -------------------------------------------------------------------------------------


def test_from_env(embedded_backend: Any) -> None:
    assert from_env(embedded_backend, {}) is embedded_backend
    assert (
        from_env(embedded_backend, {"SAGEMAKER_TFS_ENABLE_BATCHING": "false"}) is embedded_backend
    )
    backend = from_env(
        embedded_backend,
        {
            "SAGEMAKER_TFS_ENABLE_BATCHING": "true",
            "SAGEMAKER_TFS_MAX_BATCH_SIZE": "32",
            "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS": "500",
            "SAGEMAKER_TFS_NUM_BATCH_THREADS": "3",
            "SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES": "7",
        },
    )
    assert isinstance(backend, BatchingBackend)
    assert (backend.max_batch_size, backend.batch_timeout_micros) == (32, 500)
    assert (backend.num_batch_threads, backend.max_enqueued_batches) == (3, 7)
    assert backend.default_model == embedded_backend.default_model
    defaults = from_env(embedded_backend, {"SAGEMAKER_TFS_ENABLE_BATCHING": "1"})
    assert isinstance(defaults, BatchingBackend)
    assert (defaults.max_batch_size, defaults.batch_timeout_micros) == (8, 1000)
    assert defaults.max_enqueued_batches is None
    with pytest.raises(BackendUnavailable, match="SAGEMAKER_TFS_MAX_BATCH_SIZE"):
        from_env(
            embedded_backend,
            {"SAGEMAKER_TFS_ENABLE_BATCHING": "true", "SAGEMAKER_TFS_MAX_BATCH_SIZE": "many"},
        )


def test_bad_settings_are_refused(embedded_backend: Any) -> None:
    for kwargs in (
        {"max_batch_size": 0},
        {"batch_timeout_micros": -1},
        {"max_enqueued_batches": 0},
    ):
        with pytest.raises(ValueError):
            BatchingBackend(embedded_backend, **kwargs)


def test_metadata_and_status_go_straight_through(
    embedded_backend: Any, batching: BatchingBackend
) -> None:
    resolved = batching.signatures("multi_input")
    assert "serving_default" in resolved.signature_defs
    status = GetModelStatusRequest()
    status.model_spec.name = "multi_input"
    assert batching.get_model_status(status) == embedded_backend.get_model_status(status)
    assert isinstance(batching.stats(), BatchStats)


def test_batching_over_a_real_model_path(model_root: Path) -> None:
    """A backend of its own, closed with its inner backend."""
    from tfio_handlers.backends.embedded import EmbeddedBackend

    backend = BatchingBackend(EmbeddedBackend(model_root / "multi_input"), batch_timeout_micros=0)
    try:
        request = multi_request(7, 2)
        request.model_spec.name = ""
        response = backend.predict(request)
        assert (
            outputs(response)["b_doubled"].tolist()
            == (to_ndarray(request.inputs["b"]) * 2).tolist()
        )
    finally:
        backend.close()
    with pytest.raises(BackendUnavailable):
        backend.inner.predict(multi_request(1, 1))
