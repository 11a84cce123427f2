"""The gRPC backend against our loopback gRPC server over the embedded backend: real sockets, no mocks.

One server on 127.0.0.1 serves the session's ``EmbeddedBackend``; :class:`GrpcBackend` and TF
Serving's own ``PredictionServiceStub`` talk to it. Deadlines, retries and the start-up wait use
servers of their own (a slow backend; a server started after the client began waiting).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_grpc_cases import CASES, Case, Slow, assert_same_response, call, free_port, spec

from tfio_handlers.adapters.grpc import serve
from tfio_handlers.backends.base import Backend
from tfio_handlers.backends.grpc import HTTP_STATUS_METADATA, GrpcBackend
from tfio_handlers.backends.status import GRPC_TO_HTTP, grpc_code_for_status, http_status_for_code
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
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelStatusRequest,
    InferenceTask,
    MultiInferenceRequest,
    MultiInferenceResponse,
    PredictRequest,
    PredictResponse,
    coerce,
    unpack_signature_def_map,
)

grpc = pytest.importorskip("grpc", reason="the gRPC backend needs grpcio (the grpc extra)")

pytestmark = pytest.mark.tensorflow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server_port(embedded_backend: Backend) -> Iterator[int]:
    server, port = serve(embedded_backend, "127.0.0.1", 0, max_workers=4)
    yield port
    server.stop(None)


@pytest.fixture(scope="module")
def backend(server_port: int) -> Iterator[GrpcBackend]:
    client = GrpcBackend(f"127.0.0.1:{server_port}", timeout=20.0, wait_for_ready_timeout=10.0)
    yield client
    client.close()


# -- answers agree with the embedded backend ---------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_answers_as_embedded(case: Case, embedded_backend: Backend, backend: GrpcBackend) -> None:
    request = case.build()
    expected = call(embedded_backend, case.method, request)
    actual = call(backend, case.method, request)
    # The same backend answers through the wire: the messages are identical, byte for byte.
    assert actual == expected
    assert_same_response(expected, actual)


def test_async_twins(embedded_backend: Backend, backend: GrpcBackend) -> None:
    async def run_all() -> list[Any]:
        calls = [getattr(backend, "a" + case.method)(case.build()) for case in CASES]
        return list(await asyncio.gather(*calls))

    answers = asyncio.run(run_all())
    for case, answer in zip(CASES, answers, strict=True):
        assert answer == call(embedded_backend, case.method, case.build())


def test_metadata_status_and_signatures(embedded_backend: Backend, backend: GrpcBackend) -> None:
    for name in ("half_plus_two", "multi_input", "versioned"):
        metadata = GetModelMetadataRequest(
            model_spec=spec(name), metadata_field=[SIGNATURE_DEF_KEY]
        )
        assert backend.get_model_metadata(metadata) == embedded_backend.get_model_metadata(metadata)
        status = GetModelStatusRequest(model_spec=spec(name))
        assert backend.get_model_status(status) == embedded_backend.get_model_status(status)
    resolved = backend.signatures("multi_input")
    assert {"serving_default", "with_default", "echo"} <= set(resolved.signature_defs)
    assert resolved.version == 1
    versioned = GetModelStatusRequest(model_spec=spec("versioned", version=2))
    assert [s.version for s in backend.get_model_status(versioned).model_version_status] == [2]


def test_async_metadata_and_status(backend: GrpcBackend) -> None:
    async def run() -> tuple[Any, Any]:
        metadata = await backend.aget_model_metadata(
            GetModelMetadataRequest(model_spec=spec("iris"), metadata_field=[SIGNATURE_DEF_KEY])
        )
        status = await backend.aget_model_status(GetModelStatusRequest(model_spec=spec("iris")))
        return metadata, status

    metadata, status = asyncio.run(run())
    assert "predict" in unpack_signature_def_map(metadata).signature_def
    assert status.model_version_status[0].version == 1


def test_default_model_fills_empty_name(server_port: int, embedded_backend: Backend) -> None:
    request = CASES[0].build()
    assert isinstance(request, PredictRequest)
    request.model_spec.name = ""
    with GrpcBackend(f"grpc://127.0.0.1:{server_port}", default_model="half_plus_two") as client:
        answer = client.predict(request)
    assert request.model_spec.name == ""  # the caller's message is not changed
    assert answer.model_spec.name == "half_plus_two"


def test_foreign_request_classes(backend: GrpcBackend, tf_classes: Any) -> None:
    request = tf_classes.PredictRequest.FromString(CASES[0].build().SerializeToString())
    answer = backend.predict(request)
    assert isinstance(answer, PredictResponse)
    assert answer.outputs["y"].float_val == [2.5, 3.0, 4.5]


@pytest.fixture(scope="module")
def tf_classes() -> Any:
    pytest.importorskip("tensorflow_serving")
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
        inference_pb2,
        predict_pb2,
        regression_pb2,
    )

    class Namespace:
        PredictRequest = predict_pb2.PredictRequest
        ClassificationRequest = classification_pb2.ClassificationRequest
        RegressionRequest = regression_pb2.RegressionRequest
        GetModelMetadataRequest = get_model_metadata_pb2.GetModelMetadataRequest
        GetModelStatusRequest = get_model_status_pb2.GetModelStatusRequest
        MultiInferenceRequest = inference_pb2.MultiInferenceRequest

    return Namespace


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "method", "error"),
    [
        (PredictRequest(model_spec=spec("nope")), "predict", NotFound),
        (PredictRequest(model_spec=spec("half_plus_two", "missing")), "predict", BadRequest),
        (PredictRequest(model_spec=spec("half_plus_two", version=7)), "predict", NotFound),
        (PredictRequest(model_spec=spec("versioned", label="nope")), "predict", BadRequest),
        (GetModelStatusRequest(model_spec=spec("nope")), "get_model_status", NotFound),
        (GetModelMetadataRequest(model_spec=spec("iris")), "get_model_metadata", BadRequest),
    ],
    ids=[
        "unknown-model",
        "unknown-signature",
        "unknown-version",
        "unknown-label",
        "status-unknown-model",
        "metadata-no-field",
    ],
)
def test_errors_keep_status_and_message(
    request_: Any,
    method: str,
    error: type[HTTPError],
    embedded_backend: Backend,
    backend: GrpcBackend,
) -> None:
    with pytest.raises(error) as embedded_error:
        getattr(embedded_backend, method)(request_)
    with pytest.raises(error) as grpc_error:
        getattr(backend, method)(request_)
    assert grpc_error.value.message == embedded_error.value.message
    assert grpc_error.value.status_code == embedded_error.value.status_code


def test_bad_signature_errors(embedded_backend: Backend, backend: GrpcBackend) -> None:
    from saved_models import BAD_SIGNATURE_ERRORS
    from test_grpc_cases import classify, example, regress

    for signature, message in list(BAD_SIGNATURE_ERRORS.items())[::3]:
        build = regress if signature.startswith("regress") else classify
        request = build(spec("bad_signatures", signature), [example(x=[1.0]), example(x=[2.0])])
        method = "regress" if signature.startswith("regress") else "classify"
        with pytest.raises(HTTPError) as caught:
            getattr(backend, method)(request)
        assert caught.value.message.startswith(message), (signature, caught.value.message)
        assert caught.value.status_code == 400


class _Raising(Backend):
    """A backend whose every call raises ``HTTPError(message, status)`` named by the model name
    (``"<status>:<message>"``), or a plain exception for ``"boom"``."""

    def _raise(self, request: Any) -> Any:
        name = request.model_spec.name
        if name == "boom":
            raise ZeroDivisionError("hidden detail")
        status, _, message = name.partition(":")
        raise HTTPError(message, status=int(status))

    predict = classify = regress = get_model_metadata = get_model_status = _raise


@pytest.fixture(scope="module")
def raising_port() -> Iterator[int]:
    server, port = serve(_Raising(), max_workers=2)
    yield port
    server.stop(None)


@pytest.mark.parametrize("status", [400, 404, 406, 409, 413, 415, 429, 500, 501, 503, 504, 418])
def test_http_status_round_trips(status: int, raising_port: int) -> None:
    with (
        GrpcBackend(f"127.0.0.1:{raising_port}", retries=0, timeout=5.0) as client,
        pytest.raises(HTTPError) as caught,
    ):
        client.predict(PredictRequest(model_spec=spec(f"{status}:it went wrong: ünï")))
    assert caught.value.status_code == status
    assert caught.value.message == "it went wrong: ünï"


def test_official_client_sees_grpc_codes(raising_port: int) -> None:
    pytest.importorskip("tensorflow_serving")
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{raising_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for status, code in [
            (400, "INVALID_ARGUMENT"),
            (404, "NOT_FOUND"),
            (413, "RESOURCE_EXHAUSTED"),
            (415, "INVALID_ARGUMENT"),
            (501, "UNIMPLEMENTED"),
            (500, "INTERNAL"),
        ]:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = f"{status}:bad"
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(request, timeout=5)
            assert caught.value.code().name == code
            assert caught.value.details() == "bad"
            assert (HTTP_STATUS_METADATA, str(status)) in caught.value.trailing_metadata()
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "boom"
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert caught.value.details() == "Internal error: ZeroDivisionError"


def _abort_with_code(request: bytes, context: grpc.ServicerContext) -> bytes:
    code = PredictRequest.FromString(request).model_spec.name
    context.abort(getattr(grpc.StatusCode, code), f"server says {code}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def aborting_port() -> Iterator[int]:
    """A plain gRPC server (not ours: no status metadata) answering every code on demand."""
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(_abort_with_code)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "tensorflow.serving.PredictionService", {"Predict": handler}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


@pytest.mark.parametrize("code", [c.name for c in grpc.StatusCode if c.name not in ("OK",)])
def test_grpc_codes_map_as_tf_serving(code: str, aborting_port: int) -> None:
    expected = GRPC_TO_HTTP[code]
    with (
        GrpcBackend(f"127.0.0.1:{aborting_port}", retries=0, timeout=5.0) as client,
        pytest.raises(HTTPError) as caught,
    ):
        client.predict(PredictRequest(model_spec=spec(code)))
    assert caught.value.status_code == expected
    if code == "UNAVAILABLE":
        assert isinstance(caught.value, BackendUnavailable)
        assert caught.value.message.endswith("server says UNAVAILABLE")
    else:
        assert caught.value.message == f"server says {code}"
    if code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"):
        assert isinstance(caught.value, BadRequest)
    if code == "UNIMPLEMENTED":
        assert isinstance(caught.value, Unimplemented)


def test_code_tables() -> None:
    assert {code.name for code in grpc.StatusCode} == set(GRPC_TO_HTTP)
    assert http_status_for_code("RESOURCE_EXHAUSTED") == 429
    assert http_status_for_code("SOMETHING_NEW") == 500
    for code in (
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "UNIMPLEMENTED",
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "INTERNAL",
        "CANCELLED",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    ):
        assert grpc_code_for_status(http_status_for_code(code)) == code
    assert grpc_code_for_status(415) == "INVALID_ARGUMENT"
    assert grpc_code_for_status(507) == "INTERNAL"


# -- the official client ---------------------------------------------------------------------------


def test_official_stub_wire_compatible(
    server_port: int, embedded_backend: Backend, tf_classes: Any
) -> None:
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for case in CASES:
            ours = case.build()
            foreign = getattr(tf_classes, type(ours).__name__)
            request = foreign.FromString(ours.SerializeToString())
            answer = getattr(stub, case.method.capitalize())(request, timeout=20)
            expected = call(embedded_backend, case.method, ours)
            assert answer.SerializeToString(deterministic=True) == expected.SerializeToString(
                deterministic=True
            ), case.id
        metadata = tf_classes.GetModelMetadataRequest()
        metadata.model_spec.name = "iris"
        metadata.metadata_field.append("signature_def")
        answer = stub.GetModelMetadata(metadata, timeout=20)
        from tensorflow_serving.apis import get_model_metadata_pb2

        signature_map = get_model_metadata_pb2.SignatureDefMap()
        assert answer.metadata["signature_def"].Unpack(signature_map)
        assert {"serving_default", "predict"} <= set(signature_map.signature_def)

        model_stub = model_service_pb2_grpc.ModelServiceStub(channel)
        status = tf_classes.GetModelStatusRequest()
        status.model_spec.name = "versioned"
        versions = model_stub.GetModelStatus(status, timeout=20).model_version_status
        assert [v.version for v in versions] == [2, 1]
        assert all(v.state == 30 for v in versions)  # AVAILABLE

        with pytest.raises(grpc.RpcError) as caught:
            request = tf_classes.PredictRequest()
            request.model_spec.name = "nope"
            stub.Predict(request, timeout=20)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "Servable not found for request: Latest(nope)"


def test_multi_inference(server_port: int, embedded_backend: Backend, tf_classes: Any) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    from test_grpc_cases import classify, example

    request = MultiInferenceRequest()
    request.input.CopyFrom(classify(spec("x"), [example(x=[1.0]), example(x=[3.0])]).input)
    for signature, method in (("classify_x_to_y", "classify"), ("regress_x_to_y", "regress")):
        request.tasks.append(
            InferenceTask(
                model_spec=spec("half_plus_two", signature),
                method_name=f"tensorflow/serving/{method}",
            )
        )
    with grpc.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        answer = coerce(
            stub.MultiInference(
                tf_classes.MultiInferenceRequest.FromString(request.SerializeToString()), timeout=20
            ),
            MultiInferenceResponse,
        )
        classified = embedded_backend.classify(
            classify(spec("half_plus_two", "classify_x_to_y"), [example(x=[1.0]), example(x=[3.0])])
        )
        assert isinstance(classified, ClassificationResponse)
        assert answer.results[0].classification_result == classified.result
        assert [r.value for r in answer.results[1].regression_result.regressions] == [2.5, 3.5]
        assert answer.results[1].model_spec.signature_name == "regress_x_to_y"

        request.tasks[1].model_spec.name = "iris"
        with pytest.raises(grpc.RpcError) as caught:
            stub.MultiInference(
                tf_classes.MultiInferenceRequest.FromString(request.SerializeToString()), timeout=20
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "same model name" in caught.value.details()

        # A reload request without a model_config_list: TF Serving's ModelServiceImpl refuses it.
        reload = channel.unary_unary("/tensorflow.serving.ModelService/HandleReloadConfigRequest")
        with pytest.raises(grpc.RpcError) as caught:
            reload(b"", timeout=20)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == (
            "ServerModelConfig type not supported by HandleReloadConfigRequest. "
            "Only ModelConfigList is currently supported"
        )


# -- deadlines, retries, start-up ------------------------------------------------------------------


def test_deadline_is_504(embedded_backend: Backend) -> None:
    server, port = serve(Slow(embedded_backend, 1.0), max_workers=4)
    try:
        with GrpcBackend(f"127.0.0.1:{port}", timeout=0.2) as client:
            request = CASES[0].build()
            started = time.monotonic()
            with pytest.raises(BackendTimeout) as caught:
                client.predict(request)
            assert time.monotonic() - started < 0.9
            assert caught.value.status_code == 504
            assert "did not answer Predict within 0.2 s" in caught.value.message
            with pytest.raises(BackendTimeout):
                asyncio.run(client.apredict(request))
            # Other calls are not slow: the channel is still usable.
            assert client.get_model_status(GetModelStatusRequest(model_spec=spec("iris")))
    finally:
        server.stop(None)


def test_unavailable_after_retries() -> None:
    port = free_port()
    with GrpcBackend(
        f"127.0.0.1:{port}",
        retries=2,
        backoff=0.01,
        max_backoff=0.02,
        wait_for_ready_timeout=None,
        timeout=2.0,
    ) as client:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught:
            client.predict(CASES[0].build())
        assert caught.value.status_code == 503
        assert f"127.0.0.1:{port} is unavailable after 3 attempts" in caught.value.message
        with pytest.raises(BackendUnavailable):
            asyncio.run(client.apredict(CASES[0].build()))
        assert time.monotonic() - started < 5


def _start_later(backend: Backend, port: int, delay: float) -> tuple[threading.Thread, list[Any]]:
    servers: list[Any] = []

    def start() -> None:
        time.sleep(delay)
        servers.append(serve(backend, "127.0.0.1", port, max_workers=2)[0])

    thread = threading.Thread(target=start)
    thread.start()
    return thread, servers


def test_startup_wait_for_server(embedded_backend: Backend) -> None:
    port = free_port()
    client = GrpcBackend(f"127.0.0.1:{port}", retries=0, wait_for_ready_timeout=20.0, timeout=10)
    thread, servers = _start_later(embedded_backend, port, 0.5)
    try:
        assert not client.ready
        answer = client.predict(CASES[0].build())  # waits for the server instead of failing
        assert answer.outputs["y"].float_val == [2.5, 3.0, 4.5]
        assert client.ready
    finally:
        thread.join()
        client.close()
        for server in servers:
            server.stop(None)


def test_retries_find_a_late_server(embedded_backend: Backend) -> None:
    port = free_port()
    client = GrpcBackend(
        f"127.0.0.1:{port}",
        retries=20,
        backoff=0.05,
        max_backoff=0.2,
        wait_for_ready_timeout=None,
        timeout=10,
    )
    thread, servers = _start_later(embedded_backend, port, 0.4)
    try:
        answer = asyncio.run(client.apredict(CASES[0].build()))
        assert answer.outputs["y"].float_val == [2.5, 3.0, 4.5]
    finally:
        thread.join()
        client.close()
        for server in servers:
            server.stop(None)


def test_wait_until_ready(embedded_backend: Backend, backend: GrpcBackend) -> None:
    backend.wait_until_ready(5.0, "versioned")
    with pytest.raises(BackendUnavailable, match="'nope' was not available"):
        backend.wait_until_ready(0.3, "nope")
    with (
        GrpcBackend(f"127.0.0.1:{free_port()}") as nowhere,
        pytest.raises(BackendUnavailable, match=r"did not accept connections within 0\.2 s"),
    ):
        nowhere.wait_until_ready(0.2)


def test_closed_backend_is_unavailable(server_port: int) -> None:
    client = GrpcBackend(f"127.0.0.1:{server_port}")
    client.close()
    client.close()  # idempotent
    with pytest.raises(BackendUnavailable, match="is closed"):
        client.predict(CASES[0].build())
    with pytest.raises(BackendUnavailable, match="is closed"):
        asyncio.run(client.apredict(CASES[0].build()))


def test_cancelled_task_cancels_the_call(embedded_backend: Backend) -> None:
    server, port = serve(Slow(embedded_backend, 0.5), max_workers=2)
    try:
        with GrpcBackend(f"127.0.0.1:{port}", timeout=10) as client:

            async def run() -> None:
                task = asyncio.ensure_future(client.apredict(CASES[0].build()))
                await asyncio.sleep(0.1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

            asyncio.run(run())
    finally:
        server.stop(None)


# -- the command (the imports are tested in tests/test_imports.py) ---------------------------------


@pytest.mark.slow
def test_command_serves_and_stops(half_plus_two_model: Path) -> None:
    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfio_handlers",
            "grpc-serve",
            "--model",
            f"hp2={half_plus_two_model.parent}",
            "--port",
            str(port),
            "--grace",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with GrpcBackend(f"127.0.0.1:{port}", timeout=10) as client:
            client.wait_until_ready(60.0, "hp2")
            request = CASES[0].build()
            assert isinstance(request, PredictRequest)
            request.model_spec.name = "hp2"
            assert client.predict(request).outputs["y"].float_val == [2.5, 3.0, 4.5]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        output = process.stdout.read().decode() if process.stdout else ""
    assert "Serving tensorflow.serving.PredictionService" in output


def test_startup_wait_is_bounded_by_the_call_timeout() -> None:
    with GrpcBackend(
        f"127.0.0.1:{free_port()}", timeout=0.3, retries=0, wait_for_ready_timeout=60.0
    ) as client:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            client.predict(CASES[0].build())
        assert time.monotonic() - started < 2.0


def test_port_in_use_is_refused(server_port: int, embedded_backend: Backend) -> None:
    with pytest.raises(OSError, match=f"Cannot listen on 127.0.0.1:{server_port}"):
        serve(embedded_backend, "127.0.0.1", server_port)
