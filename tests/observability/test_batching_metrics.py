"""Dynamic batching's metrics on the embedded backend: the queue depth while requests wait for
their batch, and the size of each batch run."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from tfio_handlers.backends.batching import BatchingBackend
from tfio_handlers.observability import metrics as metrics_module
from tfio_handlers.protos import PredictRequest
from tfio_handlers.tensors import to_tensor_proto

pytest.importorskip("prometheus_client")


def iris_request(seed: int) -> PredictRequest:
    request = PredictRequest()
    request.model_spec.name = "iris"
    request.model_spec.signature_name = "predict"
    features = np.random.default_rng(seed).uniform(1, 5, (1, 4)).astype(np.float32)
    request.inputs["inputs"].CopyFrom(to_tensor_proto(features))
    return request


def sample(name: str) -> float:
    value = metrics_module.enable().registry.get_sample_value(name)
    return value or 0.0


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_queue_depth_and_batch_size(embedded_backend: Any) -> None:
    metrics_module.enable()
    # A batch runs when 4 rows are in: the timeout is long enough never to be what runs it.
    backend = BatchingBackend(
        embedded_backend, max_batch_size=4, batch_timeout_micros=600_000_000, close_inner=False
    )
    backend.signatures("iris")
    batches = sample("tfio_handlers_batch_size_count")
    rows = sample("tfio_handlers_batch_size_sum")
    try:
        threads = []
        for seed in range(3):
            thread = threading.Thread(target=backend.predict, args=(iris_request(seed),))
            thread.start()
            threads.append(thread)
            wait_for(
                lambda n=seed + 1: sample("tfio_handlers_batch_queue_depth") == n,
                f"{seed + 1} requests waiting",
            )
        backend.predict(iris_request(3))  # the fourth fills the batch: all four run
        for thread in threads:
            thread.join(30)
    finally:
        backend.close()
    assert sample("tfio_handlers_batch_queue_depth") == 0
    assert sample("tfio_handlers_batch_size_count") == batches + 1
    assert sample("tfio_handlers_batch_size_sum") == rows + 4
