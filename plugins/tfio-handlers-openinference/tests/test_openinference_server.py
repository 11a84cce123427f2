"""The Open Inference Protocol plugin against real servers: ``tfio-handlers serve`` (uvicorn) and
gunicorn, each loading the plugin from its entry point, driven by Triton's own HTTP client
(``tritonclient.http``) and by raw HTTP for hostile bodies; answers compared with TF Serving's
``/v1/models/...:predict`` on the same server."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from live_server import (  # noqa: E402
    PYTHON,
    LiveServer,
    clean_env,
    free_port,
    serve_cli,
    serve_gunicorn,
    start_all,
)

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.tensorflow

PLUGIN_ENV = {
    "TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD": "0",
    "TFIO_HANDLERS_PLUGINS": "openinference",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    import saved_models

    root = tmp_path_factory.mktemp("oip_models") / "models"
    saved_models.build_half_plus_two(root / "half_plus_two" / "1")
    saved_models.build_multi_input(root / "multi_input" / "1")
    build_bf16(root / "bf16" / "1")
    return root


def build_bf16(export_dir: Path) -> Path:
    """``x`` DT_BFLOAT16 [-1] -> ``y`` DT_BFLOAT16 (``2x``, exact) and ``y32`` DT_FLOAT (``x``)."""
    import tensorflow as tf

    class Bf16(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.bfloat16, name="x")])
        def double(self, x: Any) -> Any:
            return {"y": x * tf.constant(2, tf.bfloat16), "y32": tf.cast(x, tf.float32)}

    module = Bf16()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.double})
    return export_dir


def model_server(kind: str, models: Path, tmp: Path) -> tuple[LiveServer, str]:
    """The TF Serving stand-in a remote backend talks to, over the embedded model, and the
    ``--backend`` address of it: ``tfio-handlers grpc-serve`` (TF Serving's gRPC API) or
    ``tfio-handlers serve`` without the plugin (TF Serving's REST API)."""
    if kind == "grpc":
        port = free_port()
        argv = [PYTHON, "-m", "tfio_handlers", "grpc-serve", "--model-dir", str(models)]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        live = LiveServer("oip-grpc-serve", argv, clean_env(), port, tmp / "oip-grpc-serve.log")
        return live, f"grpc://127.0.0.1:{port}"
    live = serve_cli("oip-tfs-rest", tmp, env={"TFIO_HANDLERS_MODEL_DIR": str(models)})
    return live, live.url


SERVERS = ["serve-uvicorn", "gunicorn", "grpc-backend", "rest-backend"]
"""The plugin in ``tfio-handlers serve`` and gunicorn on the embedded backend, and in ``serve
--backend grpc://...`` and ``--backend http://...`` in front of a TF Serving stand-in."""


@pytest.fixture(scope="module", params=SERVERS)
def server(
    request: pytest.FixtureRequest, models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("oip_server")
    env = {**PLUGIN_ENV, "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}
    behind: LiveServer | None = None
    if request.param == "serve-uvicorn":
        live = serve_cli("oip-serve", tmp, env={**env, "TFIO_HANDLERS_MODEL_DIR": str(models)})
    elif request.param == "gunicorn":
        live = serve_gunicorn("oip-gunicorn", tmp, {**env, "TFIO_HANDLERS_MODEL_DIR": str(models)})
    else:
        behind, address = model_server(request.param.split("-")[0], models, tmp)
        # a remote backend's /ping asks for the default model (REST has no nameless request)
        env["SAGEMAKER_TFS_DEFAULT_MODEL_NAME"] = "half_plus_two"
        live = serve_cli(f"oip-front-{request.param}", tmp, ["--backend", address], env=env)
        if behind.argv[3] == "grpc-serve":
            behind.start()  # not HTTP: the front's /ping is ready once the backend answers
        else:
            start_all([behind])
    try:
        start_all([live])
        yield live
    finally:
        live.stop()
        if behind is not None:
            behind.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[Any]:
    triton = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    yield triton
    triton.close()


def tfs_predict(server: LiveServer, model: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = server.post(f"/v1/models/{model}:predict", json.dumps(body))
    assert answer.status == 200, answer.body
    outputs: dict[str, Any] = answer.json()["outputs"]
    return outputs


def triton_input(name: str, array: np.ndarray, datatype: str, binary: bool) -> Any:
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


# -- the done-when: JSON and binary infer answer what /v1 predict answers ----------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_answers_what_tf_serving_predict_answers(
    server: LiveServer, client: Any, binary: bool
) -> None:
    x = np.array([1.0, 2.0, 5.0, -3.5], dtype=np.float32)
    result = client.infer(
        "half_plus_two",
        [triton_input("x", x, "FP32", binary)],
        outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)],
    )
    expected = tfs_predict(server, "half_plus_two", {"inputs": {"x": x.tolist()}})
    got = result.as_numpy("y")
    assert got.dtype == np.float32 and got.shape == (4,)
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.float32))
    response = result.get_response()
    assert response["model_name"] == "half_plus_two" and response["model_version"] == "1"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_mixed_dtypes_and_bytes_in_and_out(server: LiveServer, client: Any, binary: bool) -> None:
    a = np.array([[1.5, 2.0], [3.0, 4.25]], dtype=np.float32)
    b = np.array([7, -2], dtype=np.int64)
    c = np.array([b"abc", b"\xffraw" if binary else b"de"], dtype=object)
    result = client.infer(
        "multi_input",
        [
            triton_input("a", a, "FP32", binary),
            triton_input("b", b, "INT64", binary),
            triton_input("c", c, "BYTES", binary),
        ],
    )  # no outputs named: tritonclient asks for every output as binary data
    expected = tfs_predict(
        server,
        "multi_input",
        {"inputs": {"a": a.tolist(), "b": b.tolist(), "c": [{"b64": "YWJj"}, {"b64": "AA=="}]}},
    )
    np.testing.assert_array_equal(result.as_numpy("total"), np.float32(expected["total"]))
    np.testing.assert_array_equal(result.as_numpy("b_doubled"), np.int64(expected["b_doubled"]))
    assert result.as_numpy("b_doubled").dtype == np.int64
    assert list(result.as_numpy("c_bytes")) == list(c)
    assert list(result.as_numpy("c_length")) == [3, len(c[1])]


def test_every_datatype_through_the_echo_signature(client: Any, server: LiveServer) -> None:
    arrays = {
        "f32": (np.array([1.5, -0.0, 3.25], np.float32), "FP32"),
        "f64": (np.array([1e300, 2.5, -1.0], np.float64), "FP64"),
        "f16": (np.array([0.5, 65504, -2], np.float16), "FP16"),
        "i32": (np.array([2**31 - 1, -(2**31), 0], np.int32), "INT32"),
        "i64": (np.array([2**62, -5, 9], np.int64), "INT64"),
        "u8": (np.array([0, 255, 7], np.uint8), "UINT8"),
        "flag": (np.array([True, False, True]), "BOOL"),
        "text": (np.array([b"x", b"", b"yz"], dtype=object), "BYTES"),
    }
    if server.name.endswith("rest-backend"):
        # TF Serving's REST API has no JSON form for half: the REST backend refuses the echo
        # signature's f16 input (501) before sending anything; the other datatypes cross REST
        # in the mixed test and the BF16 test
        with pytest.raises(InferenceServerException, match="cannot carry half") as refused:
            client.infer(
                "multi_input",
                [triton_input(n, a, t, False) for n, (a, t) in arrays.items()],
                parameters={"signature_name": "echo"},
            )
        assert refused.value.status() == "501"
        return
    for binary in (False, True):
        result = client.infer(
            "multi_input",
            [triton_input(n, a, t, binary) for n, (a, t) in arrays.items()],
            parameters={"signature_name": "echo"},
        )
        for name, (array, datatype) in arrays.items():
            out = "text_bytes" if name == "text" else f"{name}_out"
            got = result.as_numpy(out)
            assert result.get_output(out)["datatype"] == datatype
            assert list(got) == list(array), (name, binary)


def test_health_metadata_and_readiness(client: Any, server: LiveServer) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("half_plus_two") and client.is_model_ready("half_plus_two", "1")
    assert not client.is_model_ready("no_such_model")
    metadata = client.get_model_metadata("multi_input")
    assert metadata["name"] == "multi_input" and metadata["versions"] == ["1"]
    assert metadata["platform"] == "tensorflow_savedmodel"
    assert {"name": "a", "datatype": "FP32", "shape": [-1, 2]} in metadata["inputs"]
    assert {"name": "c", "datatype": "BYTES", "shape": [-1]} in metadata["inputs"]
    assert client.get_model_metadata("half_plus_two", "1")["name"] == "half_plus_two"
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    with pytest.raises(InferenceServerException, match="no_such_model"):
        client.get_model_metadata("no_such_model")


# -- hostile bodies: a 4xx with the protocol's error body, never a 500 ---------------------------------

X = {"name": "x", "shape": [2], "datatype": "FP32"}


def header_and(
    body: dict[str, Any], binary: bytes = b"", length: int | None = None
) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(body).encode()
    declared = len(text) if length is None else length
    return text + binary, {"Inference-Header-Content-Length": str(declared)}


HOSTILE: dict[str, tuple[bytes, dict[str, str], int]] = {
    "not json": (b"{nope", {}, 400),
    "not an object": (b"[1, 2]", {}, 400),
    "no inputs": (b"{}", {}, 400),
    "unknown datatype": (
        json.dumps({"inputs": [{**X, "datatype": "FP8", "data": [1, 2]}]}).encode(),
        {},
        400,
    ),
    "shape and data disagree": (
        json.dumps({"inputs": [{**X, "data": [1, 2, 3]}]}).encode(),
        {},
        400,
    ),
    "negative shape": (
        json.dumps({"inputs": [{**X, "shape": [-2], "data": []}]}).encode(),
        {},
        400,
    ),
    "huge shape": (
        json.dumps({"inputs": [{**X, "shape": [2**40, 2**40], "data": [1]}]}).encode(),
        {},
        413,
    ),
    "unknown input": (
        json.dumps({"inputs": [{**X, "name": "q", "data": [1, 2]}]}).encode(),
        {},
        400,
    ),
    "fraction into int": (
        json.dumps({"inputs": [{**X, "datatype": "INT32", "data": [1.5, 2]}]}).encode(),
        {},
        400,
    ),
    "binary size too small": (
        *header_and({"inputs": [{**X, "parameters": {"binary_data_size": 4}}]}, b"\0" * 4),
        400,
    ),
    "binary size beyond body": (
        *header_and({"inputs": [{**X, "parameters": {"binary_data_size": 99}}]}, b"\0" * 8),
        400,
    ),
    "binary left over": (
        *header_and({"inputs": [{**X, "parameters": {"binary_data_size": 8}}]}, b"\0" * 12),
        400,
    ),
    "header length beyond body": (*header_and({"inputs": [X]}, b"", length=10**6), 400),
    "header length not a number": (b"{}", {"Inference-Header-Content-Length": "-1"}, 400),
    "header length of 5000 digits": (b"{}", {"Inference-Header-Content-Length": "9" * 5000}, 400),
    "binary without header length": (
        json.dumps({"inputs": [{**X, "parameters": {"binary_data_size": 8}}]}).encode(),
        {},
        400,
    ),
    "bytes element beyond data": (
        *header_and(
            {
                "inputs": [
                    {
                        "name": "c",
                        "shape": [2],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            },
            (2**31).to_bytes(4, "little") + b"abcd",
        ),
        400,
    ),
    "deep nesting": (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, 413),
    "data and binary both": (
        *header_and(
            {"inputs": [{**X, "data": [1, 2], "parameters": {"binary_data_size": 8}}]}, b"\0" * 8
        ),
        400,
    ),
    "classification asked": (
        json.dumps(
            {
                "inputs": [{**X, "data": [1, 2]}],
                "outputs": [{"name": "y", "parameters": {"classification": 2}}],
            }
        ).encode(),
        {},
        400,
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bodies_are_4xx_with_the_error_body(server: LiveServer, case: str) -> None:
    body, headers, status = HOSTILE[case]
    model = "multi_input" if "bytes element" in case else "half_plus_two"
    answer = server.post(f"/v2/models/{model}/infer", body, headers=headers)
    assert answer.status == status, (case, answer.body)
    assert answer.content_type == "application/json"
    document = answer.json()
    assert set(document) == {"error"} and isinstance(document["error"], str)


def test_bad_versions_and_unknown_routes(server: LiveServer) -> None:
    assert server.get("/v2/models/half_plus_two/versions/x").status == 400
    for version in ("%C2%B2", "9" * 30):  # "²" is str.isdigit() but no int
        for suffix in ("", "/ready", "/infer"):
            method = "POST" if suffix == "/infer" else "GET"
            path = f"/v2/models/half_plus_two/versions/{version}{suffix}"
            answer = server.request(method, path, b"{}" if suffix == "/infer" else None)
            assert answer.status == 400 and set(answer.json()) == {"error"}, (path, answer.body)
    assert server.get("/v2/models/half_plus_two/versions/7").status == 404
    answer = server.get("/v2/nothing/here")
    assert answer.status == 404 and set(answer.json()) == {"error"}


def test_requested_outputs_are_answered_in_the_order_asked(client: Any) -> None:
    inputs = [
        triton_input("a", np.array([[1.0, 2.0]], np.float32), "FP32", False),
        triton_input("b", np.array([3], np.int64), "INT64", False),
        triton_input("c", np.array([b"four"], dtype=object), "BYTES", False),
    ]
    wanted = [
        httpclient.InferRequestedOutput("c_length", binary_data=False),
        httpclient.InferRequestedOutput("total", binary_data=True),
    ]
    result = client.infer("multi_input", inputs, outputs=wanted)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["c_length", "total"]
    assert result.as_numpy("c_length").tolist() == [4]
    assert result.as_numpy("total").tolist() == [6.0]
    assert result.as_numpy("b_doubled") is None


def test_unknown_signature_and_version_are_404(server: LiveServer) -> None:
    body = json.dumps({"inputs": [{**X, "data": [1, 2]}], "parameters": {"signature_name": "nope"}})
    answer = server.post("/v2/models/half_plus_two/infer", body)
    assert answer.status == 404 and "nope" in answer.json()["error"]
    answer = server.post("/v2/models/half_plus_two/versions/9/infer", json.dumps({"inputs": [X]}))
    assert answer.status == 404 and set(answer.json()) == {"error"}


# -- BF16 end to end: a bfloat16 SavedModel ------------------------------------------------------------


def test_bf16_model_end_to_end(server: LiveServer, client: Any) -> None:
    """BF16 in and out of a model whose signature is bfloat16: Triton's binary BF16 (the only form
    tritonclient sends), JSON numbers (rounded to nearest even, as TensorFlow casts), FP32 data
    into the bfloat16 input (the same rounding); outputs as binary BF16 and as JSON numbers."""
    bfloat16 = pytest.importorskip("ml_dtypes").bfloat16
    x = np.array([1.1015625, 2.5, -3.0, 1.5e38, 0.0], dtype=bfloat16)
    if server.name.endswith("rest-backend"):
        # TF Serving's REST API has no JSON form for bfloat16: refused before anything is sent
        with pytest.raises(InferenceServerException, match="bfloat16") as refused:
            client.infer("bf16", [triton_input("x", x, "BF16", True)])
        assert refused.value.status() == "501"
        return
    for binary_out in (True, False):
        result = client.infer(
            "bf16",
            [triton_input("x", x, "BF16", True)],
            outputs=[
                httpclient.InferRequestedOutput("y", binary_data=binary_out),
                httpclient.InferRequestedOutput("y32", binary_data=binary_out),
            ],
        )
        assert result.get_output("y")["datatype"] == "BF16"
        y = result.as_numpy("y")
        assert y.dtype == bfloat16
        np.testing.assert_array_equal(y.astype(np.float32), x.astype(np.float32) * 2)
        np.testing.assert_array_equal(result.as_numpy("y32"), x.astype(np.float32))
    rounded = [1.1015625, 2.5, -3.0, 1.0]  # 1.1 and 1.00390625 (a tie: to even) as bfloat16
    for datatype in ("BF16", "FP32"):
        body = {
            "inputs": [
                {
                    "name": "x",
                    "shape": [4],
                    "datatype": datatype,
                    "data": [1.1, 2.5, -3, 1.00390625],
                }
            ]
        }
        answer = server.post("/v2/models/bf16/infer", json.dumps(body))
        assert answer.status == 200, answer.body
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        assert outputs["y"]["datatype"] == "BF16" and outputs["y32"]["datatype"] == "FP32"
        assert outputs["y32"]["data"] == rounded
        assert outputs["y"]["data"] == [2 * v for v in rounded]
    metadata = client.get_model_metadata("bf16")
    assert metadata["inputs"] == [{"name": "x", "datatype": "BF16", "shape": [-1]}]
    too_big = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1e39]}]}
    answer = server.post("/v2/models/bf16/infer", json.dumps(too_big))
    assert answer.status == 400 and "out of range" in answer.json()["error"]


def test_cast_errors_name_the_input_once(server: LiveServer) -> None:
    c = {"name": "c", "shape": [1], "datatype": "BYTES", "data": [5]}
    fraction = {"name": "x", "shape": [1], "datatype": "INT32", "data": [1.5]}
    for model, tensor in (("multi_input", c), ("half_plus_two", fraction)):
        answer = server.post(f"/v2/models/{model}/infer", json.dumps({"inputs": [tensor]}))
        assert answer.status == 400
        error = answer.json()["error"]
        assert error.startswith("inputs[0]: input ") and error.count(repr(tensor["name"])) == 1, (
            error
        )
