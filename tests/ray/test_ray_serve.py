"""tfio_handlers.ray on a local Ray Serve: the app and the split mode answer as the plain ASGI app.

One Ray session for the module (two CPUs, an 80 MB object store, no dashboard, Serve's HTTP proxy
off): requests go through the ingress deployment's handle (``request``), which runs the same ASGI
app in the replica. Two applications are deployed side by side: ``plain`` (two replicas, each with
its own pipeline and model) and ``split`` (one ingress replica calling one model replica through a
``RayBackend``). The whole module takes about a minute on two cores, most of it ``ray.init`` and four
replicas loading TensorFlow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")
pytest.importorskip("ray.serve")

import ray
from ray import serve

import tfio_handlers.ray as tray
from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.bootstrap import load_config, pipeline_from_config

pytestmark = [pytest.mark.slow, pytest.mark.tensorflow]

IRIS = json.dumps([6.4, 3.2, 4.5, 1.5]).encode()
JSON = {"content-type": "application/json"}

Answer = tuple[int, list[tuple[str, str]], bytes]

FILL_ENV = "TFIO_HANDLERS_MAX_FILL_BYTES"
FILL_BYTES = 1024 * 1024

# (method, path, body, headers): the same bytes from the plain app, the Ray app and the split mode.
REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("GET", "/ping", b"", {}),
    ("POST", "/invocations", IRIS, JSON),
    ("POST", "/invocations", b"6.4,3.2,4.5,1.5\n5.0,3.6,1.4,0.2", {"content-type": "text/csv"}),
    (
        "POST",
        "/invocations",
        b'{"signature_name": "predict", "instances": [[6.4, 3.2, 4.5, 1.5]]}',
        {**JSON, "accept": "text/csv"},
    ),
    (
        "POST",
        "/invocations",
        b"[1.0, 2.0]",
        {**JSON, "x-amzn-sagemaker-custom-attributes": "tfs-model-name=half"},
    ),
    (
        "POST",
        "/v1/models/half:regress",
        b'{"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}, {"x": 4.0}]}',
        JSON,
    ),
    ("POST", "/v1/models/iris:classify", b'{"examples": [{"inputs": [6.4, 3.2, 4.5, 1.5]}]}', JSON),
    ("GET", "/v1/models/iris/metadata", b"", {}),
    ("GET", "/v1/models/half", b"", {}),
]

# (method, path, body, headers, status): errors keep their status and message across the handle.
ERRORS: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("POST", "/invocations", b"[6.4, 3.2", JSON, 400),
    ("POST", "/invocations", b"[[1.0, 2.0]]", JSON, 400),  # wrong shape for iris: the model says so
    (
        "POST",
        "/invocations",
        IRIS,
        {**JSON, "x-amzn-sagemaker-custom-attributes": "tfs-model-name=nope"},
        404,
    ),
    ("POST", "/v1/models/nope:predict", b'{"instances": [1.0]}', JSON, 404),
    ("GET", "/v1/models/iris/versions/9", b"", {}, 404),
    ("POST", "/invocations", IRIS, {"content-type": "application/x-unknown"}, 415),
]


@pytest.fixture(scope="module")
def models(model_root: Path) -> dict[str, str]:
    return {"iris": str(model_root / "iris"), "half": str(model_root / "half_plus_two")}


@pytest.fixture(scope="module")
def ray_serve() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        object_store_memory=80 * 2**20,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        serve.start(proxy_location="Disabled")
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def plain_app(models: dict[str, str]) -> ASGIApp:
    """The plain ASGI app over the same configuration, in this process."""
    env = tray.config_env(models=models)
    return ASGIApp(pipeline_from_config(load_config(env)))


@pytest.fixture(scope="module")
def deployed(ray_serve: None, models: dict[str, str]) -> dict[str, Any]:
    """Both applications, deployed together (their replicas load in parallel)."""
    handles = {}
    for name, application in (
        ("plain", tray.app(models=models, num_replicas=2, ray_actor_options={"num_cpus": 0.25})),
        # The split mode with a small budget of filled tensors (its ingress reads the bodies).
        ("split", tray.app(models=models, split=True, env={FILL_ENV: str(FILL_BYTES)})),
    ):
        handles[name] = serve.run(application, name=name, route_prefix=f"/{name}")
    return handles


def plain(app: ASGIApp, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    return asyncio.run(tray.call_asgi(app, method, path, body, headers))


def same(got: Answer, expected: Answer) -> bool:
    """Equal answers; metadata compared as JSON, since the order in which protobuf writes a map
    (the signature map) differs between processes, whichever adapter serves it."""
    if got[2] != expected[2] and b'"signature_def"' in expected[2]:
        return got[:2] == expected[:2] and json.loads(got[2]) == json.loads(expected[2])
    return got == expected


def through(handle: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    answer: Answer = handle.request.remote(method, path, body, headers).result(timeout_s=60)
    return answer


@pytest.mark.parametrize("mode", ["plain", "split"])
def test_same_bytes_as_the_plain_app(
    deployed: dict[str, Any], plain_app: ASGIApp, mode: str
) -> None:
    for method, path, body, headers in REQUESTS:
        expected = plain(plain_app, method, path, body, headers)
        assert expected[0] == 200, (path, expected)
        assert same(through(deployed[mode], method, path, body, headers), expected), (mode, path)


@pytest.mark.parametrize("mode", ["plain", "split"])
def test_errors_keep_their_status(deployed: dict[str, Any], plain_app: ASGIApp, mode: str) -> None:
    for method, path, body, headers, status in ERRORS:
        expected = plain(plain_app, method, path, body, headers)
        assert expected[0] == status, (path, expected)
        assert same(through(deployed[mode], method, path, body, headers), expected), (mode, path)


def test_ray_backend_raises_the_model_deployments_errors(deployed: dict[str, Any]) -> None:
    """Across the handle, an HTTPError comes back as itself: class, status and message."""
    import numpy as np

    from tfio_handlers.errors import BadRequest, NotFound
    from tfio_handlers.protocol.arrays import PredictArrays
    from tfio_handlers.protos import ModelSpec

    model = serve.get_deployment_handle(tray.MODEL_NAME, app_name="split")
    backend = tray.RayBackend(model, timeout=30)
    assert backend.fetch_default_model() == "iris"
    answer = backend.predict_arrays(
        PredictArrays(
            {"inputs": np.array([[6.4, 3.2, 4.5, 1.5]], np.float32)},
            ModelSpec(name="iris", signature_name="predict"),
        )
    )
    assert answer.outputs["probabilities"].shape == (1, 3)
    with pytest.raises(NotFound) as not_found:
        backend.predict_arrays(PredictArrays({"x": np.ones(1, np.float32)}, ModelSpec(name="nope")))
    assert not_found.value.status_code == 404
    assert "nope" in not_found.value.message
    with pytest.raises(BadRequest):
        backend.predict_arrays(PredictArrays({"x": np.ones(1, np.float32)}, ModelSpec(name="iris")))


def test_the_split_modes_ingress_applies_the_fill_budget(deployed: dict[str, Any]) -> None:
    """A protobuf request whose one value fills 4.8 MB (TensorFlow's broadcast) is refused with
    413 by the ingress, whose process has the budget the environment gives, before any fill."""
    from tfio_handlers.protos import DT_FLOAT, PredictRequest

    request = PredictRequest()
    request.model_spec.name = "iris"
    request.model_spec.signature_name = "predict"
    tensor = request.inputs["inputs"]
    tensor.dtype = DT_FLOAT  # type: ignore[assignment]
    tensor.tensor_shape.dim.add().size = 300_000
    tensor.tensor_shape.dim.add().size = 4
    tensor.float_val.append(1.0)
    body = request.SerializeToString()
    headers = {"content-type": "application/x-protobuf; proto=tensorflow.serving.PredictRequest"}
    status, _, answer = through(deployed["split"], "POST", "/invocations", body, headers)
    assert status == 413, answer
    assert FILL_ENV in json.loads(answer)["error"]
    small = request.inputs["inputs"].tensor_shape.dim[0]
    small.size = 2
    assert (
        through(deployed["split"], "POST", "/invocations", request.SerializeToString(), headers)[0]
        == 200
    )


def test_a_killed_replica_and_the_app_keeps_answering(deployed: dict[str, Any]) -> None:
    handle = deployed["plain"]
    replicas = [
        actor
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith("SERVE_REPLICA::plain#")
    ]
    assert len(replicas) == 2, replicas
    victim = ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"])
    ray.kill(victim, no_restart=True)
    started = time.monotonic()
    answers = [through(handle, "POST", "/invocations", IRIS, JSON)[0] for _ in range(20)]
    assert answers == [200] * 20
    assert time.monotonic() - started < 30
