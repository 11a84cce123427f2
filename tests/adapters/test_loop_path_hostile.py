"""Hostile and unlucky requests on the ASGI loop path (small built-in requests worked on the loop).

What a client can do to the event loop with a body of at most ``LOOP_BODY_BYTES``: a tiny message
that declares a huge tensor, bodies whose decoding leaves the codecs' fast paths, and whether the
loop path answers exactly as the threads do. The model is the real ``half_plus_two`` (and the other
test models) on the embedded backend. Time bounds are generous no-hang limits, never speed checks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.protocol import arrays
from tfio_handlers.protos import PredictRequest

pytestmark = pytest.mark.tensorflow

PROTOBUF = [(b"content-type", b"application/x-protobuf")]


def on_event_loop() -> bool:
    """Whether the calling thread is running an event loop now."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI app, as a server sends it."""
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
    }
    await app(scope, receive, send)
    start, body_message = sent
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], answer_headers, body_message["body"]


@pytest.fixture(scope="module")
def backend(model_root: Path) -> Any:
    embedded = EmbeddedBackend(model_root, default_model="half_plus_two")
    yield embedded
    embedded.close()


def pipeline_for(backend: Any, **settings: Any) -> Pipeline:
    return Pipeline(backend, settings=Settings.from_env({}, load_plugins=False, **settings))


def broadcast_request(elements: int) -> bytes:
    """A PredictRequest of a few bytes whose one value fills ``elements`` floats (TensorFlow's
    broadcast of fewer values than the shape holds)."""
    request = PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add().size = elements
    tensor.float_val.append(1.0)
    return request.SerializeToString()


def test_a_tiny_protobuf_body_is_never_broadcast_on_the_loop(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 20-byte PredictRequest may declare 2**27 floats filled from one value (512 MiB): reading
    it into arrays must not happen on the event loop, or /ping waits for the fill."""
    body = broadcast_request(1000)
    assert len(body) < 64
    read_on_loop: list[bool] = []
    original = arrays.PredictArrays.from_message.__func__  # type: ignore[attr-defined]

    def recording(cls: Any, request: Any) -> Any:
        read_on_loop.append(on_event_loop())
        return original(cls, request)

    monkeypatch.setattr(arrays.PredictArrays, "from_message", classmethod(recording))
    pipeline = pipeline_for(backend)
    assert pipeline.answers_on_loop(body, {"content-type": "application/x-protobuf"})
    status, _, answer = asyncio.run(call(ASGIApp(pipeline), "POST", "/invocations", body, PROTOBUF))
    assert status == 200, answer
    assert read_on_loop == [False]
