"""The REST backend against uvicorn serving our ASGI app over the embedded backend, and the three
backends (embedded, gRPC, REST) answering the same requests alike. Real sockets, no mocks.

The REST server is ``ASGIApp(Pipeline(EmbeddedBackend))`` under uvicorn in a thread on 127.0.0.1; its
``/v1/models/...`` routes are TF Serving's REST API. Parsing of TF Serving's own JSON forms that
our server does not produce (metadata without ``@type``, ``_bytes`` outputs, bare NaN tokens) is
tested on the parser directly at the end.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import UvicornThread
from test_grpc_cases import CASES, Case, Slow, assert_same_response, call, free_port, spec

from tfio_handlers.adapters.grpc import serve
from tfio_handlers.backends import rest
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
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT8,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT8,
    DT_UINT64,
    SIGNATURE_DEF_KEY,
    GetModelMetadataRequest,
    GetModelStatusRequest,
    PredictRequest,
    SignatureDef,
    TensorInfo,
    unpack_signature_def_map,
)
from tfio_handlers.tensors import make_shape, to_ndarray, to_tensor_proto

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


# -- TF Serving's JSON forms, parsed directly ------------------------------------------------------


def _signature(outputs: dict[str, tuple[int, list[int] | None]]) -> SignatureDef:
    signature = SignatureDef()
    for alias, (dtype, dims) in outputs.items():
        info = signature.outputs[alias]
        info.dtype = dtype  # type: ignore[assignment]
        if dims is None:
            info.tensor_shape.unknown_rank = True
        else:
            info.tensor_shape.CopyFrom(make_shape(dims))
    return signature


def _parse_predict(text: bytes, signature: SignatureDef, wanted: list[str]) -> Any:
    return rest._predict_response(rest._loads(text), signature, wanted, spec("m"))


def test_tf_serving_predict_forms() -> None:
    one = _signature({"y": (DT_FLOAT, [-1])})
    answer = _parse_predict(b'{"outputs": [1.5, NaN, -Infinity, Infinity]}', one, ["y"])
    values = to_ndarray(answer.outputs["y"])
    assert values.dtype == np.float32 and values.shape == (4,)
    assert values[0] == 1.5 and np.isnan(values[1]) and values[2] == -np.inf
    assert answer.outputs["y"].float_val  # typed fields, as TF Serving's gRPC answers

    several = _signature(
        {
            "raw_bytes": (DT_STRING, [-1]),
            "text": (DT_STRING, [-1]),
            "big": (DT_UINT64, [-1]),
            "flag": (DT_BOOL, []),
            "empty": (DT_INT32, [-1, 3]),
        }
    )
    body = (
        b'{"outputs": {"raw_bytes": [{"b64": "/wA="}], "text": ["\xff\xfe ok \\u00e9"], '
        b'"big": [18446744073709551615], "flag": true, "empty": []}}'
    )
    answer = _parse_predict(body, several, ["raw_bytes", "text", "big", "flag", "empty"])
    assert list(answer.outputs["raw_bytes"].string_val) == [b"\xff\x00"]
    assert list(answer.outputs["text"].string_val) == [b"\xff\xfe ok \xc3\xa9"]
    assert list(answer.outputs["big"].uint64_val) == [2**64 - 1]
    assert to_ndarray(answer.outputs["flag"]).shape == ()
    assert to_ndarray(answer.outputs["empty"]).shape == (0, 3)

    with pytest.raises(HTTPError, match="not a rectangular array"):
        _parse_predict(b'{"outputs": [[1, 2], [3]]}', _signature({"y": (DT_INT64, None)}), ["y"])
    with pytest.raises(HTTPError, match="output 'big' is missing"):
        _parse_predict(b'{"outputs": {"text": ["a"], "x": 1}}', several, ["big"])


def test_tf_serving_metadata_without_type() -> None:
    body = {
        "model_spec": {"name": "m", "signature_name": "", "version": "3"},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {
                            "x": {
                                "dtype": "DT_FLOAT",
                                "tensor_shape": {"dim": [{"size": "-1"}], "unknown_rank": False},
                                "name": "serving_default_x:0",
                            }
                        },
                        "outputs": {},
                        "method_name": "tensorflow/serving/predict",
                        "defaults": {},
                    }
                }
            }
        },
    }
    for entry in (
        body,
        json.loads(
            json.dumps(body).replace(
                '"signature_def": {"signature_def"',
                '"signature_def": {"@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap", '
                '"signature_def"',
            )
        ),
    ):
        response = rest._parse_metadata(entry)
        assert response.model_spec.version.value == 3
        signature = unpack_signature_def_map(response).signature_def["serving_default"]
        assert signature.inputs["x"].name == "serving_default_x:0"


def test_error_bodies() -> None:
    assert rest._error_message(400, b'{ "error": "bad \\"x\\"" }') == 'bad "x"'
    assert rest._error_message(502, b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert rest._error_message(500, b"") == "HTTP 500"


_DTYPES = {
    DT_FLOAT: st.floats(width=32),
    DT_DOUBLE: st.floats(),
    DT_INT32: st.integers(-(2**31), 2**31 - 1),
    DT_INT8: st.integers(-128, 127),
    DT_UINT8: st.integers(0, 255),
    DT_INT64: st.integers(-(2**63), 2**63 - 1),
    DT_UINT64: st.integers(0, 2**64 - 1),
    DT_BOOL: st.booleans(),
    DT_STRING: st.binary(max_size=8),
}


@st.composite
def _tensors(draw: st.DrawFn) -> tuple[int, list[int], list[Any]]:
    dtype = draw(st.sampled_from(sorted(_DTYPES)))
    dims = draw(st.lists(st.integers(0, 3), max_size=3))
    count = int(np.prod(dims)) if dims else 1
    values = draw(st.lists(_DTYPES[dtype], min_size=count, max_size=count))
    return dtype, dims, values


@settings(max_examples=60, deadline=None)
@given(_tensors())
def test_tensor_json_round_trip(tensor: tuple[int, list[int], list[Any]]) -> None:
    """Request tensor → TF Serving JSON → response tensor gives the same dtype, shape and values."""
    dtype, dims, values = tensor
    from tfio_handlers.tensors import numpy_dtype

    array = np.array(values, dtype=object if dtype == DT_STRING else numpy_dtype(dtype))
    proto = to_tensor_proto(array.reshape(dims), dtype)
    # JSON writes an empty tensor as nested [] and so loses its inner dimensions; they come back
    # from the signature, which declares all but the batch dimension here.
    declared = [-1, *dims[1:]] if dims else []
    info = TensorInfo(dtype=dtype, tensor_shape=make_shape(declared))  # type: ignore[arg-type]
    wire = rest._loads(rest._dumps({"t": rest._tensor_to_json("t", proto, info, 0)}))
    back = rest._tensor_from_json(wire["t"], info, "t")
    original, restored = to_ndarray(proto), to_ndarray(back)
    assert restored.shape == original.shape and restored.dtype == original.dtype
    if dtype == DT_STRING:
        assert restored.tolist() == original.tolist()
    else:
        np.testing.assert_array_equal(restored, original)


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
