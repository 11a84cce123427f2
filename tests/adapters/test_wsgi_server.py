"""The WSGI app under a real gunicorn: ``python -m gunicorn 'tfio_handlers.adapters.wsgi:app_from_env()'``.

One server for the module, configured through the environment only (``TFIO_HANDLERS_MODEL_DIR``,
``TFIO_HANDLERS_ENTRY_POINT``, ``SAGEMAKER_*``): every test model, a user ``input_fn`` that can be slow
or fail and otherwise lets the built-in codecs decode, a 1 MiB body limit and a 2 s request timeout.
The same routes and rules as under uvicorn, through WSGI's ``environ``: raw paths (``RAW_URI``) for TF
Serving's URL rules, chunked bodies, the timeout answered 504 by the app before gunicorn would kill
the worker, and gunicorn's graceful shutdown.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from live_server import Answer, LiveServer, raw_exchange, serve_gunicorn, start_all

from tfio_handlers.protos import PredictRequest, PredictResponse
from tfio_handlers.tensors import to_ndarray, to_tensor_proto

pytestmark = pytest.mark.tensorflow

USER_CODE = """
import time


def input_fn(data, content_type):
    if content_type == "application/x-slow":
        time.sleep(float(data))
        return [[1.0]]
    if content_type == "application/x-boom":
        raise ValueError("the body was not welcome")
    return None  # the built-in codecs decode everything else
"""

TIMEOUT_S = 2
HALF = {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=half_plus_two"}


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("wsgi_server")
    entry_point = tmp / "inference.py"
    entry_point.write_text(USER_CODE)
    live = serve_gunicorn(
        "gunicorn-main",
        tmp,
        {
            "TFIO_HANDLERS_MODEL_DIR": str(model_root),
            "TFIO_HANDLERS_ENTRY_POINT": str(entry_point),
            "TFIO_HANDLERS_MODEL_LABELS": "versioned:stable=1",
            "SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "half_plus_two",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(TIMEOUT_S),
        },
    )
    start_all([live])
    yield live
    live.stop()


def ok(answer: Answer) -> Answer:
    assert answer.status == 200, answer.body
    return answer


def error_of(answer: Answer, status: int) -> str:
    assert answer.status == status, answer.body
    assert answer.content_type == "application/json"
    assert "Traceback" not in answer.body.decode()
    document = answer.json()
    assert list(document) == ["error"]
    message: str = document["error"]
    return message


def test_ping_503_while_loading_then_200(server: LiveServer) -> None:
    assert server.pings[-1] == 200
    assert 503 in server.pings, server.pings
    assert server.request("HEAD", "/ping").status == 200


def test_invocations_media_types(server: LiveServer) -> None:
    doc = ok(server.post("/invocations", "[1.0, 2.0, 5.0]")).json()
    assert doc["outputs"]["y"]["floatVal"] == [2.5, 3.0, 4.5]
    csv = server.post(
        "/invocations", "1.0\n3.0\n", headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert ok(csv).body == b"2.5\n3.5\n"
    lines = server.post(
        "/invocations",
        "[1.0]\n[3.0]\n",
        headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )
    assert [json.loads(line) for line in ok(lines).body.splitlines()] == [[2.5], [3.5]]
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0], [3.0]], dtype=np.float32))
    npy = server.post(
        "/invocations",
        buffer.getvalue(),
        headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
    )
    np.testing.assert_array_equal(np.load(io.BytesIO(ok(npy).body)), [[2.5], [3.5]])
    request = PredictRequest()
    request.inputs["x"].CopyFrom(to_tensor_proto(np.array([1.0], dtype=np.float32)))
    proto = server.post(
        "/invocations",
        request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", "Accept": "application/x-protobuf"},
    )
    response = PredictResponse.FromString(ok(proto).body)
    np.testing.assert_array_equal(to_ndarray(response.outputs["y"]), [2.5])
    pickled = server.post(
        "/invocations", b"\x80\x04.", headers={"Content-Type": "application/x-pickle"}
    )
    assert "TFIO_HANDLERS_ENABLE_PICKLE" in error_of(pickled, 415)
    iris = server.post(
        "/invocations",
        "[6.4, 3.2, 4.5, 1.5]",
        headers={"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=iris"},
    )
    classes = ok(iris).json()["result"]["classifications"][0]["classes"]
    assert max(classes, key=lambda c: c["score"])["label"] == "1"


def test_custom_attributes(server: LiveServer) -> None:
    attributes = "tfs-model-name=versioned,tfs-model-version=1"
    pinned = server.post(
        "/invocations", "[1.0]", headers={"X-Amzn-SageMaker-Custom-Attributes": attributes}
    )
    assert ok(pinned).json()["outputs"]["y"]["floatVal"] == [2.5]
    regress = server.post(
        "/invocations",
        '{"examples": [{"x": [4.0]}]}',
        headers={
            "X-Amzn-SageMaker-Custom-Attributes": "tfs-method=regress,tfs-signature=regress_x_to_y"
        },
    )
    assert ok(regress).json() == {"results": [4.0]}


def test_tfs_rest_routes(server: LiveServer) -> None:
    body = '{"instances": [1.0, 2.0, 5.0]}'
    predict = server.post("/v1/models/half_plus_two:predict", body)
    assert ok(predict).json() == {"predictions": [2.5, 3.0, 4.5]}
    assert predict.content_type == "application/json"
    labelled = server.post("/v1/models/versioned/labels/stable:predict", '{"instances": [1.0]}')
    assert ok(labelled).json() == {"predictions": [2.5]}
    status = ok(server.get("/v1/models/half_plus_two")).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    metadata = ok(server.get("/v1/models/half_plus_two/versions/1/metadata"))
    assert "@type" not in metadata.body.decode()
    assert metadata.json()["model_spec"] == {
        "name": "half_plus_two",
        "signature_name": "",
        "version": "1",
    }
    assert "serving_default" in metadata.json()["metadata"]["signature_def"]["signature_def"]


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("POST", "/v1/models", 400, "Malformed request: POST /v1/models"),
        ("GET", "/v1/models", 400, "Missing model name in request."),
        ("POST", "/v1/models/half:predict", 404, "Servable not found for request: Latest(half)"),
        (
            "POST",
            "/v1/models/half_plus_two:PREDICT",
            400,
            "Malformed request: POST /v1/models/half_plus_two:PREDICT",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/versions/9223372036854775808:predict",
            400,
            "Failed to convert version: 9223372036854775808 to numeric.",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict?x=1",
            400,
            "Malformed request: POST /v1/models/half_plus_two:predict?x=1",
        ),
        (
            "POST",
            "/v1/models/half%2Fplus:predict",
            404,
            "Servable not found for request: Latest(half/plus)",
        ),
    ],
)
def test_tfs_url_rules(
    server: LiveServer, method: str, path: str, status: int, message: str
) -> None:
    body = '{"instances": [1.0]}' if method == "POST" else None
    assert error_of(server.request(method, path, body), status) == message


def test_percent_encoded_names_are_decoded(server: LiveServer) -> None:
    decoded = server.post("/v1/models/half%5Fplus%5Ftwo:predict", '{"instances": [1.0]}')
    assert ok(decoded).json() == {"predictions": [2.5]}


def test_body_limit_413_by_length_and_when_chunked(server: LiveServer) -> None:
    head = (
        "POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {64 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer, seconds = raw_exchange(server.port, head + b"[1.0", timeout=10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"over the limit of 1048576 bytes" in answer
    assert seconds < 5
    head = (
        b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: t\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b" " * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)) + b"0\r\n\r\n"
    answer, _ = raw_exchange(server.port, head + chunks, timeout=10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # A small chunked body is read whole.
    small = b'{"instances": [1.0]}'
    head = (
        b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    answer, _ = raw_exchange(
        server.port, head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small), timeout=10
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"predictions": [2.5]}


def test_user_code_error_logged_with_traceback_not_sent(server: LiveServer) -> None:
    answer = server.post("/invocations", b"x", headers={"Content-Type": "application/x-boom"})
    assert error_of(answer, 500) == "input_fn failed: ValueError: the body was not welcome"
    log = server.wait_log("ValueError: the body was not welcome")
    assert "Traceback (most recent call last)" in log


def test_access_log(server: LiveServer) -> None:
    answer = ok(server.post("/invocations", "[1.0]", headers={"Accept": "text/csv"}))
    line = f'"POST /invocations" 200 {len(answer.body)} '
    log = server.wait_log(line)
    assert re.search(re.escape(line) + r"[\d.]+ms codec=text/csv pid=\d+", log), log[-2000:]


def test_slow_request_is_504(server: LiveServer) -> None:
    started = time.monotonic()
    answer = server.post(
        "/invocations", str(TIMEOUT_S + 2), headers={"Content-Type": "application/x-slow"}
    )
    elapsed = time.monotonic() - started
    assert f"timeout of {TIMEOUT_S} s" in error_of(answer, 504)
    assert TIMEOUT_S - 0.5 < elapsed < TIMEOUT_S + 2
    ok(server.post("/invocations", "[1.0]"))  # the worker was not killed


def test_sigterm_lets_the_request_in_flight_finish(server: LiveServer) -> None:
    """Last in the module: stops the server."""
    results: list[Answer] = []
    slow = threading.Thread(
        target=lambda: results.append(
            server.post("/invocations", "1.0", headers={"Content-Type": "application/x-slow"})
        )
    )
    slow.start()
    time.sleep(0.4)
    server.signal(signal.SIGTERM)
    time.sleep(0.3)
    # A new request while the server drains is turned away: refused, reset, or 503, never served.
    try:
        late = server.get("/ping", timeout=10)
    except (OSError, http.client.HTTPException):
        pass
    else:
        assert late.status == 503, late
    slow.join(30)
    (answer,) = results
    assert ok(answer).json()["outputs"]["y"]["floatVal"] == [2.5]
    assert server.process is not None
    assert server.process.wait(30) == 0
    with pytest.raises(OSError):
        server.get("/ping", timeout=2)
