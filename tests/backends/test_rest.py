"""The REST backend against uvicorn serving our ASGI app over the embedded backend, and the three
backends (embedded, gRPC, REST) answering the same requests alike. Real sockets, no mocks.

The REST server is ``ASGIApp(Pipeline(EmbeddedBackend))`` under uvicorn in a thread on 127.0.0.1; its
``/v1/models/...`` routes are TF Serving's REST API. The client-side codec, and the parsing of TF
Serving's own JSON forms that our server does not produce (metadata without ``@type``, ``_bytes``
outputs, bare NaN tokens), are tested directly in ``tests/protocol/tfs_json/test_client.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from servers import UvicornThread
from test_grpc_cases import CASES, Case, Slow, assert_same_response, call, free_port, spec

from tfio_handlers.adapters.grpc import serve
from tfio_handlers.backends.base import Backend
from tfio_handlers.backends.grpc import GrpcBackend
from tfio_handlers.backends.rest import RestBackend
from tfio_handlers.backends.status import http_error
from tfio_handlers.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    HTTPError,
    NotFound,
    Unimplemented,
)
from tfio_handlers.protos import (
    SIGNATURE_DEF_KEY,
    GetModelMetadataRequest,
    GetModelStatusRequest,
    PredictRequest,
    unpack_signature_def_map,
)
from tfio_handlers.tensors import to_ndarray, to_tensor_proto

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def rest_url(embedded_backend: Backend) -> Iterator[str]:
    server = UvicornThread(embedded_backend).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def backend(rest_url: str) -> Iterator[RestBackend]:
    client = RestBackend(rest_url, timeout=20.0, wait_for_ready_timeout=10.0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc_backend(embedded_backend: Backend) -> Iterator[GrpcBackend]:
    server, port = serve(embedded_backend, max_workers=4)
    client = GrpcBackend(f"127.0.0.1:{port}", timeout=20.0)
    yield client
    client.close()
    server.stop(None)


# -- the three backends agree ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_backends_agree(
    case: Case, embedded_backend: Backend, grpc_backend: GrpcBackend, backend: RestBackend
) -> None:
    request = case.build()
    expected = call(embedded_backend, case.method, request)
    assert_same_response(expected, call(grpc_backend, case.method, request))
    if case.rest:
        assert_same_response(expected, call(backend, case.method, request))
    else:
        with pytest.raises(Unimplemented, match="REST API cannot carry half tensors"):
            call(backend, case.method, request)


def test_async_twins(embedded_backend: Backend, backend: RestBackend) -> None:
    cases = [case for case in CASES if case.rest]

    async def run_all() -> list[Any]:
        answers = await asyncio.gather(
            *(getattr(backend, "a" + case.method)(case.build()) for case in cases)
        )
        await backend.aget_model_status(GetModelStatusRequest(model_spec=spec("iris")))
        return list(answers)

    for case, answer in zip(cases, asyncio.run(run_all()), strict=True):
        assert_same_response(call(embedded_backend, case.method, case.build()), answer)
    # A second event loop gets an AsyncClient of its own.
    assert_same_response(
        call(embedded_backend, "predict", CASES[0].build()),
        asyncio.run(backend.apredict(CASES[0].build())),
    )


def test_big_request_async(embedded_backend: Backend, backend: RestBackend) -> None:
    values = np.linspace(-1000, 1000, 200_000, dtype=np.float32)
    request = PredictRequest(model_spec=spec("half_plus_two"))
    request.inputs["x"].CopyFrom(to_tensor_proto(values))
    answer = asyncio.run(backend.apredict(request))
    np.testing.assert_array_equal(to_ndarray(answer.outputs["y"]), values * 0.5 + 2)


def test_metadata_and_status(embedded_backend: Backend, backend: RestBackend) -> None:
    for name, version in (("half_plus_two", None), ("versioned", None), ("versioned", 1)):
        metadata = GetModelMetadataRequest(
            model_spec=spec(name, version=version), metadata_field=[SIGNATURE_DEF_KEY]
        )
        expected = embedded_backend.get_model_metadata(metadata)
        actual = backend.get_model_metadata(metadata)
        assert actual.model_spec == expected.model_spec
        assert unpack_signature_def_map(actual) == unpack_signature_def_map(expected)
        status = GetModelStatusRequest(model_spec=spec(name, version=version))
        assert backend.get_model_status(status) == embedded_backend.get_model_status(status)
    resolved = backend.signatures("versioned", label="canary")
    assert resolved.version == 2
    assert "serving_default" in resolved.signature_defs


# -- errors ----------------------------------------------------------------------------------------


def _predict(
    name: str, signature: str = "", version: int | None = None, label: str = "", **inputs: Any
) -> PredictRequest:
    request = PredictRequest(model_spec=spec(name, signature, version, label))
    for alias, (values, dtype) in inputs.items():
        request.inputs[alias].CopyFrom(to_tensor_proto(values, dtype))
    return request


_MIXED = {"a": ([[1.0, 2.0]], "float32"), "b": ([1], "int64"), "c": ([b"x"], "string")}


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (_predict("nope", x=([1.0], "float32")), NotFound),
        (_predict("half_plus_two", version=7, x=([1.0], "float32")), NotFound),
        (_predict("versioned", label="nope", x=([1.0], "float32")), BadRequest),
        (_predict("multi_input", **_MIXED, d=([1.0], "float32")), BadRequest),
        (_predict("multi_input", a=([[1.0, 2.0]], "float32"), b=([1], "int64")), BadRequest),
        (
            _predict(
                "multi_input", a=([[1.0, 2.0]], "float32"), b=([1], "int64"), d=([b"x"], "string")
            ),
            BadRequest,
        ),
        (_predict("multi_input", **{**_MIXED, "b": ([1], "int32")}), BadRequest),
        (_predict("multi_input", "with_default", scale=(2.0, "float32")), BadRequest),
        (PredictRequest(model_spec=spec("multi_input"), output_filter=["nope"]), BadRequest),
        (
            PredictRequest(model_spec=spec("multi_input"), output_filter=["total", "total"]),
            BadRequest,
        ),
        (_predict("string_model", text=([[b"a", b"b"]], "string")), BadRequest),
    ],
    ids=[
        "unknown-model",
        "unknown-version",
        "unknown-label",
        "extra-input",
        "missing-input",
        "invalid-name",
        "wrong-dtype",
        "missing-no-default",
        "filter-unknown",
        "filter-duplicate",
        "model-error",
    ],
)
def test_errors_as_embedded(
    request_: PredictRequest,
    error: type[HTTPError],
    embedded_backend: Backend,
    backend: RestBackend,
) -> None:
    if request_.output_filter:
        for alias, value in _MIXED.items():
            request_.inputs[alias].CopyFrom(to_tensor_proto(*value))
    with pytest.raises(error) as expected:
        embedded_backend.predict(request_)
    with pytest.raises(error) as actual:
        backend.predict(request_)
    assert actual.value.status_code == expected.value.status_code
    assert actual.value.message == expected.value.message


def test_rest_only_errors(backend: RestBackend) -> None:
    with pytest.raises(BadRequest) as caught:
        backend.predict(_predict("half_plus_two", "nope", x=([1.0], "float32")))
    assert caught.value.message == 'Serving signature name: "nope" not found in signature def'
    with pytest.raises(BadRequest, match=r"^ModelSpec has no name specified\.$"):
        backend.predict(PredictRequest())
    from test_grpc_cases import classify

    with pytest.raises(BadRequest, match=r"^Input is empty\.$"):
        backend.classify(classify(spec("iris"), []))
    # The server's answer passes through: status and message.
    with pytest.raises(NotFound, match=r"^Servable not found for request: Latest\(nope\)$"):
        backend.classify(classify(spec("nope"), [_example()]))


def _example() -> Any:
    from test_grpc_cases import example

    return example(x=[1.0])


def test_default_model(rest_url: str) -> None:
    request = CASES[0].build()
    assert isinstance(request, PredictRequest)
    request.model_spec.name = ""
    with RestBackend(rest_url, default_model="half_plus_two") as client:
        assert client.predict(request).model_spec.name == "half_plus_two"


def test_http_error_classes() -> None:
    assert type(http_error(400, "m")) is BadRequest
    assert type(http_error(503, "m")) is BackendUnavailable
    teapot = http_error(418, "short and stout")
    assert type(teapot) is HTTPError
    assert (teapot.status_code, teapot.message) == (418, "short and stout")


# -- timeouts, connection failures, start-up --------------------------------------------------------


def test_read_timeout_is_504(embedded_backend: Backend) -> None:
    server = UvicornThread(Slow(embedded_backend, 1.0)).start()
    try:
        with RestBackend(server.url, timeout=0.3) as client:
            client.signatures("half_plus_two")
            started = time.monotonic()
            with pytest.raises(BackendTimeout) as caught:
                client.predict(CASES[0].build())
            assert time.monotonic() - started < 0.9
            assert caught.value.status_code == 504
            assert (
                "did not answer POST /v1/models/half_plus_two:predict within 0.3 s"
                in caught.value.message
            )
            with pytest.raises(BackendTimeout):
                asyncio.run(client.apredict(CASES[0].build()))
    finally:
        server.stop()


def test_connection_refused_is_503_after_retries() -> None:
    pytest.importorskip("httpx", reason="the REST backend needs httpx (the http extra)")
    port = free_port()
    with RestBackend(
        f"http://127.0.0.1:{port}",
        retries=2,
        backoff=0.01,
        max_backoff=0.02,
        wait_for_ready_timeout=None,
    ) as client:
        with pytest.raises(BackendUnavailable) as caught:
            client.get_model_status(GetModelStatusRequest(model_spec=spec("x")))
        assert caught.value.status_code == 503
        assert (
            f"127.0.0.1:{port} is unavailable after 3 attempts: ConnectError"
            in caught.value.message
        )
        with pytest.raises(BackendUnavailable):
            asyncio.run(client.apredict(CASES[0].build()))


def _start_later(backend: Backend, port: int, delay: float) -> tuple[threading.Thread, list[Any]]:
    servers: list[UvicornThread] = []

    def start() -> None:
        time.sleep(delay)
        servers.append(UvicornThread(backend, port).start())

    thread = threading.Thread(target=start)
    thread.start()
    return thread, servers


def test_startup_wait(embedded_backend: Backend) -> None:
    port = free_port()
    client = RestBackend(
        f"http://127.0.0.1:{port}", retries=0, backoff=0.05, wait_for_ready_timeout=20.0
    )
    thread, servers = _start_later(embedded_backend, port, 0.5)
    try:
        assert not client.ready
        assert client.predict(CASES[0].build()).outputs["y"].float_val == [2.5, 3.0, 4.5]
        assert client.ready
    finally:
        thread.join()
        client.close()
        for server in servers:
            server.stop()


def test_retries_find_a_late_server(embedded_backend: Backend) -> None:
    port = free_port()
    client = RestBackend(
        f"http://127.0.0.1:{port}",
        retries=30,
        backoff=0.05,
        max_backoff=0.1,
        wait_for_ready_timeout=None,
    )
    thread, servers = _start_later(embedded_backend, port, 0.4)
    try:
        answer = asyncio.run(client.apredict(CASES[0].build()))
        assert answer.outputs["y"].float_val == [2.5, 3.0, 4.5]
    finally:
        thread.join()
        client.close()
        for server in servers:
            server.stop()


def test_wait_until_ready(backend: RestBackend) -> None:
    backend.wait_until_ready(5.0, "versioned")
    backend.wait_until_ready(5.0)
    with pytest.raises(BackendUnavailable, match=r"Model 'nope' on .* was not ready within"):
        backend.wait_until_ready(0.3, "nope")
    with (
        RestBackend(f"http://127.0.0.1:{free_port()}", backoff=0.05) as nowhere,
        pytest.raises(BackendUnavailable, match=r"was not ready within 0\.2 s: ConnectError"),
    ):
        nowhere.wait_until_ready(0.2)


def test_closed(rest_url: str) -> None:
    client = RestBackend(rest_url)
    client.close()
    client.close()
    with pytest.raises(BackendUnavailable, match="is closed"):
        asyncio.run(client.aget_model_status(GetModelStatusRequest(model_spec=spec("iris"))))


def test_startup_wait_is_bounded_by_the_call_timeout() -> None:
    pytest.importorskip("httpx", reason="the REST backend needs httpx (the http extra)")
    with RestBackend(
        f"http://127.0.0.1:{free_port()}",
        timeout=0.3,
        retries=0,
        backoff=0.05,
        wait_for_ready_timeout=60.0,
    ) as client:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            client.get_model_status(GetModelStatusRequest(model_spec=spec("x")))
        assert time.monotonic() - started < 2.0
