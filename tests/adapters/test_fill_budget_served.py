"""Filled tensors against the process's budget (``TFIO_HANDLERS_MAX_FILL_BYTES``), served.

A PredictRequest of a few bytes may declare a tensor that one value fills (TensorFlow's
broadcast). Each is within the element limit, but the requests in progress together are bounded
by the process's fill budget: a fill that can never fit is 413, one that does not fit while
others hold the budget is 503 with ``Retry-After``, and the budget comes back as each request is
answered. Against the real ``half_plus_two`` model, through the ASGI app and a real
``tfio-handlers serve``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from servers import asgi_call

import tfio_handlers.tensors as tensors
from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.protos import DT_FLOAT, PredictRequest, PredictResponse, TensorProto

pytestmark = pytest.mark.tensorflow

MIB = 1024 * 1024
PROTOBUF = {"content-type": "application/x-protobuf", "accept": "application/x-protobuf"}


def broadcast_request(elements: int) -> bytes:
    """A PredictRequest for ``half_plus_two`` whose one value fills ``elements`` floats."""
    request = PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = DT_FLOAT
    tensor.tensor_shape.dim.add().size = elements
    tensor.float_val.append(2.0)
    return request.SerializeToString()


def filled(elements: int) -> Any:
    """A filled array held as another request in progress would hold it."""
    proto = TensorProto(dtype=DT_FLOAT)
    proto.tensor_shape.dim.add().size = elements
    proto.float_val.append(1.0)
    return tensors.to_ndarray(proto)


@pytest.fixture
def app(model_root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(tensors, "FILL_BUDGET", tensors.FillBudget(8 * MIB))
    backend = EmbeddedBackend(model_root, default_model="half_plus_two")
    yield ASGIApp(Pipeline(backend, settings=Settings.from_env({}, load_plugins=False)))
    backend.close()


def post(app: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
    headers = [(k.encode(), v.encode()) for k, v in PROTOBUF.items()]
    return asyncio.run(asgi_call(app, "POST", "/invocations", body, headers))


def test_a_fill_that_does_not_fit_while_others_hold_the_budget_is_503_then_it_is_answered(
    app: Any,
) -> None:
    held = filled(1536 * 1024)  # 6 MiB of the 8, held by "another request"
    status, headers, body = post(app, broadcast_request(MIB))  # 4 MiB more
    assert status == 503, body
    assert headers.get("retry-after") == "1"
    assert "TFIO_HANDLERS_MAX_FILL_BYTES" in json.loads(body)["error"]
    del held  # that request was answered
    status, _, body = post(app, broadcast_request(MIB))
    assert status == 200, body
    outputs = PredictResponse.FromString(body).outputs
    assert tensors.to_ndarray(next(iter(outputs.values()))).shape == (MIB,)


def test_a_fill_over_the_whole_budget_is_413(app: Any) -> None:
    status, _, body = post(app, broadcast_request(3 * MIB))  # 12 MiB of 8
    assert status == 413, body
    assert "TFIO_HANDLERS_MAX_FILL_BYTES" in json.loads(body)["error"]
    assert tensors.FILL_BUDGET.in_use == 0


@pytest.mark.slow
def test_a_served_process_reads_its_budget_and_gets_it_back_after_each_answer(
    model_root: Path, tmp_path: Path
) -> None:
    from live_server import serve_cli

    server = serve_cli(
        "fill-budget",
        tmp_path,
        ["--model-dir", str(model_root / "half_plus_two")],
        {"TFIO_HANDLERS_MAX_FILL_BYTES": str(8 * MIB)},
    )
    server.start().wait_ready()
    try:
        over = server.post("/invocations", broadcast_request(3 * MIB), headers=PROTOBUF)
        assert over.status == 413, over.body
        assert "TFIO_HANDLERS_MAX_FILL_BYTES" in json.loads(over.body)["error"]
        # 6 MiB each: one at a time they fit, so long as each answer gives its fill back.
        for _ in range(4):
            answer = server.post("/invocations", broadcast_request(1536 * 1024), headers=PROTOBUF)
            assert answer.status == 200, answer.body
    finally:
        server.stop(10)
