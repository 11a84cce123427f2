"""Each user-code contract in its own ``inference.py``, served by a real server over HTTP.

Four servers, started side by side on ``half_plus_two`` (``y = x / 2 + 2``):

* inference-toolkit style (``input_fn``/``output_fn`` with a trailing ``context``), under
  ``python -m uvicorn ... --factory`` with ``TFIO_HANDLERS_ENTRY_POINT``;
* TF Serving container style (``input_handler``/``output_handler``), ``tfio-handlers serve --entry-point``;
* ``transform_fn`` (with ``context``), ``tfio-handlers serve --server gunicorn --entry-point``;
* ``handler``, ``tfio-handlers serve --server gunicorn`` with ``SAGEMAKER_PROGRAM``.

The legacy ``input_fn``/``output_fn`` (the seed document's pickle example) is served in
``tests/test_cli.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import Answer, LiveServer, serve_cli, serve_uvicorn, start_all

pytestmark = pytest.mark.tensorflow

TOOLKIT = """
import json


def input_fn(data, content_type, context):
    if content_type == "text/plain":
        context.extras["seen"] = {
            "data_type": type(data).__name__,
            "content_type": context.request_content_type,
            "accept": context.accept_header,
            "attributes": context.attributes,
            "model": context.model_name,
        }
        return [[float(v)] for v in data.split(";")]
    return None


def output_fn(prediction, accept, context):
    if accept == "application/vnd.summary+json":
        summary = {
            "y": list(prediction.outputs["y"].float_val),
            "seen": context.extras.get("seen"),
            "signature": prediction.model_spec.signature_name,
        }
        return json.dumps(summary), accept
    return None
"""

TFS_HANDLERS = """
import json


def input_handler(data, context):
    if context.request_content_type == "text/plain":
        values = [float(v) for v in data.read().decode().split(";")]
        return json.dumps({"instances": values})
    return data.read()  # a TF Serving REST body already


def output_handler(response, context):
    if response.status_code != 200:
        if context.accept_header == "application/vnd.failure+json":
            failure = {"failed": response.status_code, "why": response.json()["error"]}
            return json.dumps(failure), context.accept_header
        raise ValueError(response.content.decode())
    if "*" in context.accept_header:
        return response.content, context.accept_header  # a range: the server picks the type
    prediction = response.json()
    answer = {
        "doubled": [2 * v for v in prediction["predictions"]],
        "model": context.model_name,
        "method": context.method or "predict",
    }
    return json.dumps(answer), "application/vnd.doubled+json"
"""

TRANSFORM = """
import json


def transform_fn(data, content_type, accept, context):
    if content_type == "application/x-echo":
        return data, accept  # the seed document's shape: answer with the accept given
    if content_type == "text/csv":
        rows = [[float(v)] for v in data.split(",")]
    else:
        rows = json.loads(data)
    response = context.extras["predict"](rows)
    values = list(response.outputs["y"].float_val)
    if accept == "text/csv":
        return ",".join(str(v) for v in values), "text/csv"
    return json.dumps({"y": values, "content_type": content_type}), "application/json"
"""

HANDLER = """
import json
import os


def handler(data, context):
    body = data.read()
    if body == b"fail":
        raise KeyError("no such thing")
    response = context.extras["predict"]([[float(v)] for v in json.loads(body)])
    answer = {
        "y": list(response.outputs["y"].float_val),
        "custom_attributes": context.custom_attributes,
        "pid": os.getpid(),
    }
    return json.dumps(answer), "application/json"
"""


@pytest.fixture(scope="module")
def servers(
    half_plus_two_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, LiveServer]]:
    tmp = tmp_path_factory.mktemp("usercode_servers")
    files = {}
    for name, source in [
        ("toolkit", TOOLKIT),
        ("tfs", TFS_HANDLERS),
        ("transform", TRANSFORM),
        ("handler", HANDLER),
    ]:
        folder = tmp / name
        folder.mkdir()
        files[name] = folder / "inference.py"
        files[name].write_text(source)
    model = str(half_plus_two_model)
    live = {
        "toolkit": serve_uvicorn(
            "toolkit",
            tmp,
            {
                "TFIO_HANDLERS_MODEL_DIR": model,
                "TFIO_HANDLERS_ENTRY_POINT": str(files["toolkit"]),
            },
        ),
        "tfs": serve_cli("tfs", tmp, ["--model-dir", model, "--entry-point", str(files["tfs"])]),
        "transform": serve_cli(
            "transform",
            tmp,
            [
                "--server",
                "gunicorn",
                "--model-dir",
                model,
                "--entry-point",
                str(files["transform"]),
            ],
        ),
        "handler": serve_cli(
            "handler",
            tmp,
            ["--server", "gunicorn", "--model-dir", model],
            {"SAGEMAKER_PROGRAM": str(files["handler"])},
        ),
    }
    start_all(live.values())
    yield live
    for server in live.values():
        server.stop()


def ok(answer: Answer) -> Answer:
    assert answer.status == 200, answer.body
    return answer


def test_toolkit_style_with_context(servers: dict[str, LiveServer]) -> None:
    server = servers["toolkit"]
    answer = server.post(
        "/invocations",
        "1;3",
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Accept": "application/vnd.summary+json",
            "X-Amzn-SageMaker-Custom-Attributes": "tfs-signature=serving_default",
        },
    )
    assert ok(answer).content_type == "application/vnd.summary+json"
    assert answer.json() == {
        "y": [2.5, 3.5],
        "seen": {
            "data_type": "str",
            "content_type": "text/plain; charset=utf-8",
            "accept": "application/vnd.summary+json",
            "attributes": {"tfs-signature": "serving_default"},
            "model": "half_plus_two",
        },
        "signature": "serving_default",
    }
    # None falls through to the built-in codecs.
    builtin = ok(server.post("/invocations", "[1.0]", headers={"Accept": "text/csv"}))
    assert builtin.body == b"2.5\n"


def test_tfs_container_style_handlers(servers: dict[str, LiveServer]) -> None:
    server = servers["tfs"]
    answer = server.post("/invocations", "1;3", headers={"Content-Type": "text/plain"})
    assert ok(answer).content_type == "application/vnd.doubled+json"
    assert answer.json() == {"doubled": [5.0, 7.0], "model": "half_plus_two", "method": "predict"}
    rest = server.post("/invocations", '{"instances": [2.0]}')
    assert ok(rest).json()["doubled"] == [6.0]
    # The REST API itself is TF Serving's: user code does not touch it.
    direct = server.post("/v1/models/half_plus_two:predict", '{"instances": [2.0]}')
    assert ok(direct).json() == {"predictions": [3.0]}


def test_transform_fn_takes_the_whole_request(servers: dict[str, LiveServer]) -> None:
    server = servers["transform"]
    csv = server.post(
        "/invocations", "1.0,3.0", headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert ok(csv).content_type == "text/csv" and csv.body == b"2.5,3.5"
    js = server.post("/invocations", "[[5.0]]", headers={"Accept": "application/json"})
    assert ok(js).json() == {"y": [4.5], "content_type": "application/json"}


def test_handler_takes_the_whole_request(servers: dict[str, LiveServer]) -> None:
    server = servers["handler"]
    answer = server.post(
        "/invocations",
        "[1.0, 7.0]",
        headers={"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=half_plus_two"},
    )
    document = ok(answer).json()
    assert document["y"] == [2.5, 5.5]
    assert document["custom_attributes"] == "tfs-model-name=half_plus_two"
    failed = server.post("/invocations", "fail")
    assert failed.status == 500
    assert failed.json() == {"error": "handler failed: KeyError: 'no such thing'"}
    assert "Traceback (most recent call last)" in server.wait_log("KeyError: 'no such thing'")


def test_user_errors_never_send_a_traceback(servers: dict[str, LiveServer]) -> None:
    # output_handler raising on a TF Serving error: 500 with the message only.
    tfs = servers["tfs"].post("/invocations", '{"instances": "nope"}')
    assert tfs.status in (400, 500)
    assert "Traceback" not in tfs.body.decode()
    transform = servers["transform"].post("/invocations", "not json")
    assert transform.status == 500
    assert transform.json()["error"].startswith("transform_fn failed: JSONDecodeError")
    assert "Traceback" in servers["transform"].wait_log("JSONDecodeError")


def test_every_contract_server_logs_access_lines(servers: dict[str, LiveServer]) -> None:
    for name, server in servers.items():
        ok(server.get("/ping"))
        log = server.wait_log('"GET /ping" 200 0 ')
        assert '"GET /ping" 200 0 ' in log, (name, log[-1500:])


def test_output_handler_shapes_error_bodies_over_http(servers: dict[str, LiveServer]) -> None:
    server = servers["tfs"]
    shaped = server.post(
        "/invocations",
        '{"instances": "nope"}',
        headers={"Accept": "application/vnd.failure+json"},
    )
    assert shaped.status == 400, shaped.body
    assert shaped.content_type == "application/vnd.failure+json"
    assert shaped.json()["failed"] == 400 and shaped.json()["why"]
    # Raising on the error keeps the model server's status and body.
    raised = server.post("/invocations", '{"instances": "nope"}')
    assert raised.status == 400 and raised.json()["error"] == shaped.json()["why"]


def test_wildcard_accept_answers_with_a_concrete_content_type(
    servers: dict[str, LiveServer],
) -> None:
    for accept in ("*/*", "application/*"):
        tfs = ok(
            servers["tfs"].post("/invocations", '{"instances": [1.0]}', headers={"Accept": accept})
        )
        assert tfs.content_type == "application/json" and tfs.json() == {"predictions": [2.5]}
    echo = ok(
        servers["transform"].post(
            "/invocations", "[1]", headers={"Content-Type": "application/x-echo", "Accept": "*/*"}
        )
    )
    assert echo.content_type == "application/json" and echo.body == b"[1]"
