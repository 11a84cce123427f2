"""The pipeline on all three backends (embedded, TF Serving gRPC, TF Serving REST) against the same
real models: every answer must be the same, whatever backend is behind the pipeline.

The gRPC and REST backends talk to real servers on 127.0.0.1: the loopback ``PredictionService``
and uvicorn serving TF Serving's REST routes, both over the embedded backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from servers import UvicornThread

from tfio_handlers.adapters.grpc import serve
from tfio_handlers.backends.grpc import GrpcBackend
from tfio_handlers.backends.rest import RestBackend
from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.registry import Registry

pytestmark = pytest.mark.tensorflow


def attributes(**pairs: str) -> dict[str, str]:
    value = ",".join(f"tfs-{key.replace('_', '-')}={v}" for key, v in pairs.items())
    return {"X-Amzn-SageMaker-Custom-Attributes": value}


# (id, body, headers): one per test model and request form.
REQUESTS: list[tuple[str, bytes, dict[str, str]]] = [
    ("half-plus-two-plain", b"[1.0, 2.0, 5.0]", {}),
    ("half-plus-two-row", b'{"instances": [1.0, 2.0, 5.0]}', {}),
    ("half-plus-two-columnar", b'{"inputs": [[1.0], [2.0]]}', {}),
    ("half-plus-two-csv", b"1.0\n2.0\n", {"Content-Type": "text/csv"}),
    (
        "half-plus-two-regress",
        b'{"examples": [{"x": [4.0]}]}',
        attributes(method="regress", signature="regress_x_to_y"),
    ),
    ("iris-seed", b"[6.4, 3.2, 4.5, 1.5]", attributes(model_name="iris")),
    (
        "iris-classify-body",
        b'{"examples": [{"inputs": [6.4, 3.2, 4.5, 1.5]}]}',
        attributes(model_name="iris"),
    ),
    (
        "iris-predict-signature",
        b"[[6.4, 3.2, 4.5, 1.5]]",
        attributes(model_name="iris", signature="predict"),
    ),
    ("regression", b'{"examples": [{"x": [1.5], "k": [2]}]}', attributes(model_name="regression")),
    (
        "multi-input",
        json.dumps({"instances": [{"a": [1.0, 2.0], "b": 3, "c": "xyz"}]}).encode(),
        attributes(model_name="multi_input"),
    ),
    ("string-model", b'{"instances": ["abc", "hello"]}', attributes(model_name="string_model")),
    ("versioned-2", b"[1.0]", attributes(model_name="versioned", model_version="2")),
    ("unknown-model", b"[1.0]", attributes(model_name="nope")),
    (
        "bad-dtype",
        b'{"instances": [{"a": [1.0, 2.0], "b": 1.5, "c": "x"}]}',
        attributes(model_name="multi_input"),
    ),
]


@pytest.fixture(scope="module")
def pipelines(embedded_backend: Any) -> Iterator[dict[str, Pipeline]]:
    grpc_server, port = serve(embedded_backend, max_workers=4)
    rest_server = UvicornThread(embedded_backend).start()
    grpc_backend = GrpcBackend(f"127.0.0.1:{port}", timeout=20.0, default_model="half_plus_two")
    rest_backend = RestBackend(rest_server.url, timeout=20.0, default_model="half_plus_two")
    settings = Settings(load_plugins=False)
    yield {
        name: Pipeline(backend, settings=settings, registry=Registry())
        for name, backend in (
            ("embedded", embedded_backend),
            ("grpc", grpc_backend),
            ("rest", rest_backend),
        )
    }
    grpc_backend.close()
    rest_backend.close()
    rest_server.stop()
    grpc_server.stop(None)


@pytest.mark.parametrize(
    ("body", "headers"), [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS]
)
def test_three_backends_answer_alike(
    pipelines: dict[str, Pipeline], body: bytes, headers: dict[str, str]
) -> None:
    answers = {name: pipeline.invoke(body, headers) for name, pipeline in pipelines.items()}
    embedded = answers["embedded"]
    for name in ("grpc", "rest"):
        answer = answers[name]
        assert answer.status == embedded.status, (name, answer.body, embedded.body)
        if embedded.status == 200:
            assert json.loads(answer.body) == json.loads(embedded.body), name
        else:
            assert json.loads(answer.body)["error"], name
