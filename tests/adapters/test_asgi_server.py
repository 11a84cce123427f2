"""The ASGI app under a real uvicorn, started by ``tfio-handlers serve`` (the default server).

One server process for the module: ``python -m tfio_handlers serve --model-dir <every test model>``,
its port from ``SAGEMAKER_BIND_TO_PORT``, a 1 MiB body limit (``SAGEMAKER_MAX_PAYLOAD_IN_MB=1``),
version labels on ``versioned`` and ``iris`` as the default model, so the seed document's example
runs word for word. Every route over real HTTP: ``/ping``, ``/invocations`` with each built-in media
type in and out and SageMaker's custom attributes, and TF Serving's REST API compared, as parsed JSON,
with what ``tensorflow_model_server`` answers (its documentation's examples and its error texts).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from live_server import Answer, LiveServer, raw_exchange, serve_cli, start_all

from tfio_handlers.protos import (
    ClassificationRequest,
    ClassificationResponse,
    PredictRequest,
    PredictResponse,
    RegressionResponse,
)
from tfio_handlers.tensors import to_ndarray, to_tensor_proto

pytestmark = pytest.mark.tensorflow

HALF = {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=half_plus_two"}
SEED = [6.4, 3.2, 4.5, 1.5]


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("asgi_server")
    live = serve_cli(
        "uvicorn-main",
        tmp,
        ["--model-dir", str(model_root)],
        {
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
            "SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "iris",
            "TFIO_HANDLERS_MODEL_LABELS": "versioned:stable=1,versioned:canary=2",
        },
        port_from_env=True,
    )
    start_all([live])
    yield live
    live.stop()


def error_of(answer: Answer, status: int) -> str:
    """The message of a ``{"error": ...}`` answer; checks status, type and that nothing leaked."""
    assert answer.status == status, answer.body
    assert answer.content_type == "application/json"
    document = answer.json()
    assert list(document) == ["error"], document
    assert "Traceback" not in answer.body.decode()
    message: str = document["error"]
    return message


def ok(answer: Answer) -> Answer:
    assert answer.status == 200, answer.body
    return answer


# -- /ping and the port ------------------------------------------------------------------------------


def test_ping_is_503_while_the_model_loads_then_200(server: LiveServer) -> None:
    # Bound to SAGEMAKER_BIND_TO_PORT (no --port given); the model loads after the socket opens.
    assert server.pings[-1] == 200
    assert 503 in server.pings, server.pings
    assert server.pings.index(503) < len(server.pings) - 1
    answer = server.get("/ping")
    assert answer.status == 200 and answer.body == b""
    assert server.request("HEAD", "/ping").status == 200


def test_unknown_routes_are_404_json(server: LiveServer) -> None:
    assert "No route for GET /nope" in error_of(server.get("/nope"), 404)
    error_of(server.post("/ping", b""), 404)
    error_of(server.get("/invocations"), 404)


# -- the seed document's example, word for word ------------------------------------------------------


def test_seed_example_word_for_word_with_the_predictor(server: LiveServer) -> None:
    from tfio_handlers.client import Predictor

    predictor = Predictor(server.url)
    result = predictor.predict([6.4, 3.2, 4.5, 1.5])

    assert list(result) == ["result"] or set(result) == {"result", "modelSpec"}
    (classification,) = result["result"]["classifications"]
    classes = classification["classes"]
    assert [c["label"] for c in classes] == ["0", "1", "2"]
    assert max(classes, key=lambda c: c["score"])["label"] == "1"
    assert sum(c["score"] for c in classes) == pytest.approx(1.0, abs=1e-5)


def test_predictor_codecs_methods_and_attributes(server: LiveServer) -> None:
    from tfio_handlers.client import Predictor

    url = server.url
    for content_type in ("application/json", "text/csv", "application/x-npy"):
        predictor = Predictor(url, content_type=content_type, model_name="half_plus_two")
        doc = predictor.predict(np.array([1.0, 3.0], dtype=np.float32))
        assert doc["outputs"]["y"]["floatVal"] == [2.5, 3.5], content_type
    as_npy = Predictor(url, accept="application/x-npy", model_name="half_plus_two")
    np.testing.assert_array_equal(as_npy.predict([[1.0], [3.0]]), [[2.5], [3.5]])
    as_proto = Predictor(url, accept="application/x-protobuf", model_name="half_plus_two")
    answer = as_proto.predict([1.0])
    assert isinstance(answer, PredictResponse)
    np.testing.assert_array_equal(to_ndarray(answer.outputs["y"]), [[2.5]])
    regress = Predictor(url, model_name="half_plus_two", signature="regress_x_to_y")
    assert regress.regress({"x": [4.0]})["result"] == {"regressions": [{"value": 4.0}]}
    iris = Predictor(url, model_name="iris")
    labels = [c["label"] for c in iris.classify(SEED)["result"]["classifications"][0]["classes"]]
    assert labels == ["0", "1", "2"]
    versioned = Predictor(url, model_name="versioned", model_version=2)
    assert versioned.predict([1.0])["outputs"]["y"]["floatVal"] == [3.5]
    from tfio_handlers.errors import HTTPError

    with pytest.raises(HTTPError) as caught:
        Predictor(url, model_name="nope").predict([1.0])
    assert caught.value.status_code == 404


def test_predictor_protobuf_request_of_plain_values(server: LiveServer) -> None:
    from tfio_handlers.client import Predictor

    predictor = Predictor(
        server.url, content_type="application/x-protobuf", model_name="half_plus_two"
    )
    assert predictor.predict([1.0, 3.0])["outputs"]["y"]["floatVal"] == [2.5, 3.5]


# -- /invocations: every built-in media type in and out ----------------------------------------------


def test_json_in_json_out_both_styles(server: LiveServer) -> None:
    legacy = ok(server.post("/invocations", "[1.0, 2.0, 5.0]", headers=HALF)).json()
    assert legacy["outputs"]["y"]["floatVal"] == [2.5, 3.0, 4.5]
    assert legacy["modelSpec"] == {
        "name": "half_plus_two",
        "version": "1",
        "signatureName": "serving_default",
    }
    tfs = server.post(
        "/invocations",
        "[1.0, 2.0, 5.0]",
        headers={**HALF, "Accept": "application/json; format=tfs"},
    )
    assert ok(tfs).json() == {"predictions": [[2.5, 3.0, 4.5]]}
    assert tfs.headers["vary"] == "Accept"
    rest_body = '{"instances": [1.0, 2.0, 5.0]}'
    assert ok(server.post("/invocations", rest_body, headers=HALF)).json() == {
        "predictions": [2.5, 3.0, 4.5]
    }


def test_csv_in_and_out(server: LiveServer) -> None:
    answer = ok(
        server.post(
            "/invocations",
            "1.0\n2.0\n5.0\n",
            headers={**HALF, "Content-Type": "text/csv", "Accept": "text/csv"},
        )
    )
    assert answer.content_type.startswith("text/csv")
    assert answer.body == b"2.5\n3.0\n4.5\n"
    # Every CSV row is an instance (the legacy container read only the first).
    iris = ok(
        server.post(
            "/invocations",
            "6.4,3.2,4.5,1.5\r\n5.1,3.5,1.4,0.2\r\n",
            headers={"Content-Type": "text/csv"},
        )
    ).json()
    winners = [
        max(c["classes"], key=lambda x: x["score"])["label"]
        for c in iris["result"]["classifications"]
    ]
    assert winners == ["1", "0"]


def test_json_lines_in_and_out(server: LiveServer) -> None:
    answer = ok(
        server.post(
            "/invocations",
            "[1.0]\n[3.0]\n",
            headers={
                **HALF,
                "Content-Type": "application/jsonlines",
                "Accept": "application/jsonlines",
            },
        )
    )
    assert answer.content_type == "application/jsonlines"
    assert [json.loads(line) for line in answer.body.splitlines()] == [[2.5], [3.5]]


@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_npy_and_npz_in_and_out(server: LiveServer, kind: str) -> None:
    buffer = io.BytesIO()
    array = np.array([[1.0], [3.0]], dtype=np.float32)
    if kind == "npy":
        np.save(buffer, array)
    else:
        np.savez(buffer, x=array)
    media = f"application/x-{kind}"
    answer = ok(
        server.post(
            "/invocations",
            buffer.getvalue(),
            headers={**HALF, "Content-Type": media, "Accept": media},
        )
    )
    assert answer.content_type == media
    loaded = np.load(io.BytesIO(answer.body), allow_pickle=False)
    result = loaded if kind == "npy" else loaded["y"]
    np.testing.assert_array_equal(result, [[2.5], [3.5]])


def test_protobuf_in_and_out(server: LiveServer) -> None:
    request = PredictRequest()
    request.inputs["x"].CopyFrom(to_tensor_proto(np.array([1.0, 3.0], dtype=np.float32)))
    answer = ok(
        server.post(
            "/invocations",
            request.SerializeToString(),
            headers={
                **HALF,
                "Content-Type": "application/x-protobuf",
                "Accept": "application/x-protobuf",
            },
        )
    )
    assert answer.content_type == "application/x-protobuf"
    np.testing.assert_array_equal(
        to_ndarray(PredictResponse.FromString(answer.body).outputs["y"]), [2.5, 3.5]
    )
    # The legacy client's form: a bare TensorProto, named by the media type's parameter.
    tensor = ok(
        server.post(
            "/invocations",
            to_tensor_proto(np.array([5.0], dtype=np.float32)).SerializeToString(),
            headers={
                **HALF,
                "Content-Type": "application/octet-stream; proto=tensorflow.TensorProto",
                "Accept": "application/octet-stream",
            },
        )
    )
    np.testing.assert_array_equal(
        to_ndarray(PredictResponse.FromString(tensor.body).outputs["y"]), [4.5]
    )
    # The seed's classifier over protobuf: a ClassificationRequest in, a ClassificationResponse out.
    from tfio_handlers.protocol.requests import to_examples

    classify = ClassificationRequest()
    classify.input.example_list.examples.extend(to_examples(SEED))
    answer = ok(
        server.post(
            "/invocations",
            classify.SerializeToString(),
            headers={
                "Content-Type": "application/octet-stream",
                "Accept": "application/x-protobuf",
            },
        )
    )
    classes = ClassificationResponse.FromString(answer.body).result.classifications[0].classes
    assert [c.label for c in classes] == ["0", "1", "2"]


def test_regress_over_protobuf_with_the_method_attribute(server: LiveServer) -> None:
    from tfio_handlers.protocol.requests import to_examples
    from tfio_handlers.protos import RegressionRequest

    request = RegressionRequest()
    request.input.example_list.examples.extend(to_examples([{"x": [4.0]}, {"x": [6.0]}]))
    answer = ok(
        server.post(
            "/invocations",
            request.SerializeToString(),
            headers={
                "Content-Type": "application/x-protobuf",
                "Accept": "application/x-protobuf",
                "X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=half_plus_two,"
                "tfs-method=regress,tfs-signature=regress_x_to_y",
            },
        )
    )
    values = [r.value for r in RegressionResponse.FromString(answer.body).result.regressions]
    assert values == [4.0, 5.0]


def test_pickle_is_refused_unless_enabled(server: LiveServer) -> None:
    import pickle

    body = pickle.dumps(np.array([1.0], dtype=np.float32))
    message = error_of(
        server.post(
            "/invocations", body, headers={**HALF, "Content-Type": "application/python-pickle"}
        ),
        415,
    )
    assert "TFIO_HANDLERS_ENABLE_PICKLE" in message
    refused = server.post(
        "/invocations", "[1.0]", headers={**HALF, "Accept": "application/x-pickle"}
    )
    assert "TFIO_HANDLERS_ENABLE_PICKLE" in error_of(refused, 406)


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        ("[1.0]", {"Content-Type": "image/gif"}, 415, "Unsupported Media Type: image/gif"),
        ("[1.0]", {"Accept": "image/gif"}, 406, "image/gif"),
        ("[1.0", {}, 400, "JSON Parse error"),
        ("", {}, 400, "The document is empty"),
        ("1,2\n3\n", {"Content-Type": "text/csv"}, 400, "row"),
    ],
)
def test_codec_errors(
    server: LiveServer, body: str, headers: dict[str, str], status: int, fragment: str
) -> None:
    assert fragment in error_of(
        server.post("/invocations", body, headers={**HALF, **headers}), status
    )


def test_form_encoded_default_of_curl_is_415(server: LiveServer) -> None:
    # ``curl -d`` sends application/x-www-form-urlencoded: name the type to use.
    answer = server.post(
        "/invocations", "[1.0]", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert "application/json" in error_of(answer, 415)


# -- SageMaker custom attributes ---------------------------------------------------------------------


def attrs(value: str) -> dict[str, str]:
    return {"X-Amzn-SageMaker-Custom-Attributes": value}


def test_custom_attributes_choose_model_version_method_and_signature(server: LiveServer) -> None:
    v1 = ok(server.post("/invocations", "[1.0]", headers=attrs("tfs-model-name=versioned")))
    assert v1.json()["outputs"]["y"]["floatVal"] == [3.5]  # the newest version answers
    pinned = server.post(
        "/invocations", "[1.0]", headers=attrs("tfs-model-name=versioned,tfs-model-version=1")
    )
    assert ok(pinned).json()["outputs"]["y"]["floatVal"] == [2.5]
    assert ok(pinned).json()["modelSpec"]["version"] == "1"
    regress = server.post(
        "/invocations",
        '{"examples": [{"x": [4.0]}, {"x": [6.0]}]}',
        headers=attrs(
            "tfs-model-name=half_plus_two,tfs-method=regress,tfs-signature=regress_x_to_y"
        ),
    )
    assert ok(regress).json() == {"results": [4.0, 5.0]}
    classify = server.post(
        "/invocations",
        '{"x": [4.0]}',
        headers=attrs(
            "tfs-model-name=half_plus_two,tfs-method=classify,tfs-signature=classify_x_to_y"
        ),
    )
    classes = ok(classify).json()["result"]["classifications"][0]["classes"]
    assert classes == [{"score": 4.0}]  # proto3 JSON leaves out the empty label
    predict = ok(
        server.post("/invocations", json.dumps(SEED), headers=attrs("tfs-signature=predict"))
    )
    outputs = predict.json()["outputs"]
    assert outputs["classes"]["stringVal"] == ["MQ=="]  # b"1", proto3 JSON bytes
    assert predict.json()["modelSpec"]["signatureName"] == "predict"


@pytest.mark.parametrize(
    ("value", "status", "fragment"),
    [
        ("tfs-model-name=nope", 404, "nope"),
        ("tfs-model-name=versioned,tfs-model-version=7", 404, "Specific(versioned, 7)"),
        ("tfs-model-version=x", 400, "tfs-model-version"),
        ("tfs-method=explain", 400, "tfs-method"),
        ("tfs-model-name=half_plus_two,tfs-signature=nope", 404, "serving_default"),
    ],
)
def test_custom_attribute_errors(
    server: LiveServer, value: str, status: int, fragment: str
) -> None:
    assert fragment in error_of(server.post("/invocations", "[1.0]", headers=attrs(value)), status)


# -- TF Serving's REST API ----------------------------------------------------------------------------


def test_tfs_predict_row_and_columnar_as_in_the_rest_docs(server: LiveServer) -> None:
    # api_rest.md: half_plus_two, {"instances": [1.0, 2.0, 5.0]} -> {"predictions": [2.5, 3.0, 4.5]}
    row = server.post("/v1/models/half_plus_two:predict", '{"instances": [1.0, 2.0, 5.0]}')
    assert ok(row).json() == {"predictions": [2.5, 3.0, 4.5]}
    assert row.content_type == "application/json"
    columnar = server.post("/v1/models/half_plus_two:predict", '{"inputs": [1.0, 2.0, 5.0]}')
    assert ok(columnar).json() == {"outputs": [2.5, 3.0, 4.5]}
    named = server.post(
        "/v1/models/half_plus_two:predict",
        '{"signature_name": "serving_default", "instances": [{"x": 1.0}, {"x": 2.0}]}',
    )
    assert ok(named).json() == {"predictions": [2.5, 3.0]}
    iris = server.post(
        "/v1/models/iris:predict", json.dumps({"signature_name": "predict", "instances": [SEED]})
    )
    prediction = ok(iris).json()["predictions"][0]
    assert prediction["classes"] == "1" and prediction["class_ids"] == 1


def test_tfs_versions_and_labels(server: LiveServer) -> None:
    body = '{"instances": [1.0]}'
    assert ok(server.post("/v1/models/versioned:predict", body)).json() == {"predictions": [3.5]}
    for path, expected in [
        ("/v1/models/versioned/versions/1:predict", 2.5),
        ("/v1/models/versioned/versions/2:predict", 3.5),
        ("/v1/models/versioned/labels/stable:predict", 2.5),
        ("/v1/models/versioned/labels/canary:predict", 3.5),
    ]:
        assert ok(server.post(path, body)).json() == {"predictions": [expected]}, path


def test_tfs_classify_and_regress(server: LiveServer) -> None:
    regress = server.post(
        "/v1/models/half_plus_two:regress",
        '{"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}, {"x": 2.0}]}',
    )
    assert ok(regress).json() == {"results": [2.5, 3.0]}
    classify = server.post(
        "/v1/models/half_plus_two:classify",
        '{"signature_name": "classify_x_to_y", "examples": [{"x": 4.0}]}',
    )
    assert ok(classify).json() == {"results": [[["", 4.0]]]}
    iris = server.post("/v1/models/iris:classify", json.dumps({"examples": [{"inputs": SEED}]}))
    results = ok(iris).json()["results"]
    assert [label for label, _ in results[0]] == ["0", "1", "2"]
    with_context = server.post(
        "/v1/models/regression:regress",
        '{"context": {"k": 10}, "examples": [{"x": 1.0}, {"x": 2.0, "k": 1}]}',
    )
    assert ok(with_context).json() == {"results": [12.0, 5.0]}


def test_tfs_model_status_is_tf_servings_json(server: LiveServer) -> None:
    status = ok(server.get("/v1/models/half_plus_two"))
    assert status.content_type == "application/json"
    assert status.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    every = ok(server.get("/v1/models/versioned")).json()["model_version_status"]
    assert [v["version"] for v in every] == ["2", "1"]
    one = ok(server.get("/v1/models/versioned/versions/1")).json()["model_version_status"]
    assert [v["version"] for v in one] == ["1"]


def test_tfs_metadata_is_tf_servings_json(server: LiveServer, half_plus_two_model: Path) -> None:
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    answer = ok(server.get("/v1/models/half_plus_two/metadata"))
    document = answer.json()
    assert "@type" not in answer.body.decode()
    assert list(document) == ["model_spec", "metadata"]
    assert document["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    assert list(document["metadata"]) == ["signature_def"]
    # What TF Serving prints: the model's own SignatureDefMap, as protobuf JSON with its options.
    saved_model = saved_model_pb2.SavedModel.FromString(
        (half_plus_two_model / "saved_model.pb").read_bytes()
    )
    expected_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in saved_model.meta_graphs[0].signature_def.items():
        expected_map.signature_def[name].CopyFrom(signature)
    expected = json.loads(
        json_format.MessageToJson(
            expected_map,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
    )
    assert document["metadata"]["signature_def"] == expected
    versioned = ok(server.get("/v1/models/versioned/versions/1/metadata")).json()
    assert versioned["model_spec"]["version"] == "1"
    labelled = ok(server.get("/v1/models/versioned/labels/canary/metadata")).json()
    assert labelled["model_spec"]["version"] == "2"


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("POST", "/v1/models", 400, "Malformed request: POST /v1/models"),
        ("GET", "/v1/models", 400, "Missing model name in request."),
        ("GET", "/v1/models/", 400, "Malformed request: GET /v1/models/"),
        ("POST", "/v1/models/half:predict", 404, "Servable not found for request: Latest(half)"),
        ("GET", "/v1/models/half", 404, "Could not find any versions of model half"),
        (
            "POST",
            "/v1/models/half_plus_two:PREDICT",
            400,
            "Malformed request: POST /v1/models/half_plus_two:PREDICT",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/versions/HELLO:predict",
            400,
            "Malformed request: POST /v1/models/half_plus_two/versions/HELLO:predict",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/version/50:predict",
            400,
            "Malformed request: POST /v1/models/half_plus_two/version/50:predict",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/versions/50/labels/x:predict",
            400,
            "Malformed request: POST /v1/models/half_plus_two/versions/50/labels/x:predict",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/metadata",
            400,
            "Malformed request: POST /v1/models/half_plus_two/metadata",
        ),
        (
            "PUT",
            "/v1/models/half_plus_two:predict",
            400,
            "Malformed request: PUT /v1/models/half_plus_two:predict",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/versions/9223372036854775808:predict",
            400,
            "Failed to convert version: 9223372036854775808 to numeric.",
        ),
        (
            "GET",
            "/v1/models/half_plus_two/versions/99999999999999999999999",
            400,
            "Failed to convert version: 99999999999999999999999 to numeric.",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/versions/7:predict",
            404,
            "Servable not found for request: Specific(half_plus_two, 7)",
        ),
        (
            "POST",
            "/v1/models/versioned/labels/nope:predict",
            400,
            "Unrecognized servable version label: nope",
        ),
        # The path is matched as received: a query string makes a predict URL malformed ...
        (
            "POST",
            "/v1/models/half_plus_two:predict?debug=1",
            400,
            "Malformed request: POST /v1/models/half_plus_two:predict?debug=1",
        ),
        # ... and names are percent-decoded after the match, so %2F may be part of one.
        (
            "POST",
            "/v1/models/half%2Fplus:predict",
            404,
            "Servable not found for request: Latest(half/plus)",
        ),
    ],
)
def test_tfs_url_rules_and_error_texts(
    server: LiveServer, method: str, path: str, status: int, message: str
) -> None:
    body = '{"instances": [1.0]}' if method != "GET" else None
    assert error_of(server.request(method, path, body), status) == message


def test_tfs_names_are_percent_decoded_and_the_prefix_ignores_case(server: LiveServer) -> None:
    body = '{"instances": [1.0]}'
    decoded = server.post("/v1/models/half%5Fplus%5Ftwo:predict", body)
    assert ok(decoded).json() == {"predictions": [2.5]}
    upper = server.post("/V1/MODELS/half_plus_two/VERSIONS/1:predict", body)
    assert ok(upper).json() == {"predictions": [2.5]}


def test_tfs_body_errors_use_tf_servings_texts(server: LiveServer) -> None:
    path = "/v1/models/half_plus_two:predict"
    assert "JSON Parse error" in error_of(server.post(path, '{"instances": [1.0'), 400)
    assert error_of(server.post(path, '{"instances": [1.0], "inputs": [1.0]}'), 400)
    missing = server.post(
        "/v1/models/half_plus_two:regress",
        '{"signature_name": "regress_x_to_y", "nothing": []}',
    )
    assert "key 'examples' is expected and was not found" in error_of(missing, 400)


def test_tfs_routes_ignore_content_type_and_custom_attributes(server: LiveServer) -> None:
    answer = server.post(
        "/v1/models/half_plus_two:predict",
        '{"instances": [1.0]}',
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=iris",
        },
    )
    assert ok(answer).json() == {"predictions": [2.5]}


# -- limits, logs --------------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_before_it_is_read(server: LiveServer) -> None:
    for path in ("/invocations", "/v1/models/half_plus_two:predict"):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {64 * 1024 * 1024}\r\n\r\n"
        ).encode()
        # 64 MiB announced, 1 KiB sent: the answer comes at once, not after the rest.
        answer, seconds = raw_exchange(server.port, head + b"[" * 1024, timeout=10)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"over the limit of 1048576 bytes" in answer
        assert seconds < 5
    # No Content-Length (chunked): refused as soon as the limit is passed.
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"1" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))
    answer, _ = raw_exchange(server.port, head + chunks, timeout=10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Just under the limit is fine.
    near = "[" + ",".join(["1.0"] * 200_000) + "]"
    assert len(near) < 1024 * 1024
    ok(server.post("/invocations", near, headers=HALF))


def test_access_log_line_per_request(server: LiveServer) -> None:
    answer = ok(server.post("/invocations", "[1.0, 2.0]", headers=HALF))
    line = server.wait_log_match(
        r'tfio_handlers\.access 127\.0\.0\.1 "POST /invocations" 200 '
        + str(len(answer.body))
        + r" (\d+\.\d+)ms codec=application/json pid=(\d+)"
    )
    assert line is not None, server.log()[-2000:]
    assert server.process is not None and int(line.group(2)) == server.process.pid
    ok(server.post("/v1/models/half_plus_two:predict", '{"instances": [1.0]}'))
    rest = r'"POST /v1/models/half_plus_two:predict" 200 \d+ [\d.]+ms codec=tfs:predict'
    assert server.wait_log_match(rest), server.log()[-2000:]
    server.post(
        "/invocations/",  # not a route: 404
        "[1.0]",
    )
    assert server.wait_log_match(r'"POST /invocations/" 404 \d+ [\d.]+ms codec=- pid'), (
        server.log()[-2000:]
    )
    failing = server.post(
        "/invocations",
        "[1.0]",
        headers={"Content-Type": "text/csv", **attrs("tfs-model-name=gone")},
    )
    assert failing.status == 404
    assert server.wait_log_match(r'"POST /invocations" 404 \d+ [\d.]+ms codec=text/csv'), (
        server.log()[-2000:]
    )


def test_no_traceback_reaches_a_client_or_is_lost(server: LiveServer) -> None:
    # Hostile inputs: every answer is a JSON error, none carries a traceback.
    cases: list[tuple[str, bytes, dict[str, str]]] = [
        ("/invocations", b"\xff\xfe\x00garbage", {"Content-Type": "application/x-npy"}),
        ("/invocations", b"\x08\x96\x01garbage", {"Content-Type": "application/x-protobuf"}),
        ("/invocations", b"[[[[[[[[[[[[", {}),
        ("/v1/models/half_plus_two:predict", b'{"instances": "x"}', {}),
        ("/v1/models/half_plus_two:classify", b'{"examples": [{"x": null}]}', {}),
    ]
    for path, body, headers in cases:
        answer = server.post(path, body, headers={**HALF, **headers})
        assert 400 <= answer.status < 600
        assert answer.content_type == "application/json"
        assert "Traceback" not in answer.body.decode("utf-8", "replace")
        assert list(answer.json()) == ["error"]
