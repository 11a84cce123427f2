"""TF Serving's REST dispatch (``http_rest_api_util.cc``) and answers, without HTTP.

The URL table follows TF Serving's own tests (``http_rest_api_util_test.cc``,
``http_rest_api_handler_test.cc``); the live-server tests in ``tests/adapters/`` repeat the main
cases over real HTTP.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tfio_handlers.adapters.serving import Route, route_of
from tfio_handlers.adapters.tfs_rest import TFSRoute, handle_tfs_rest, match_tfs_route
from tfio_handlers.config import Limits, Settings
from tfio_handlers.errors import BadRequest
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.registry import Registry


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/v1/models/m:predict", TFSRoute("predict", "m", None, None)),
        ("POST", "/v1/models/m:classify", TFSRoute("classify", "m", None, None)),
        ("POST", "/v1/models/m:regress", TFSRoute("regress", "m", None, None)),
        ("POST", "/v1/models/m/versions/17:predict", TFSRoute("predict", "m", 17, None)),
        ("POST", "/v1/models/m/labels/beta:predict", TFSRoute("predict", "m", None, "beta")),
        ("POST", "/V1/Models/m/VERSIONS/3:predict", TFSRoute("predict", "m", 3, None)),
        ("GET", "/v1/models/m", TFSRoute("status", "m", None, None)),
        ("GET", "/v1/models/m/versions/9", TFSRoute("status", "m", 9, None)),
        ("GET", "/v1/models/m/labels/l", TFSRoute("status", "m", None, "l")),
        ("GET", "/v1/models/m/metadata", TFSRoute("metadata", "m", None, None)),
        ("GET", "/v1/models/m/versions/9/metadata", TFSRoute("metadata", "m", 9, None)),
        # The regex ignores case, the dispatch does not: METADATA asks for the status (TF Serving).
        ("GET", "/v1/models/m/labels/l/METADATA", TFSRoute("status", "m", None, "l")),
        ("GET", "/v1/models/m/labels/l/metadata", TFSRoute("metadata", "m", None, "l")),
        # Percent-decoded after the match (curl_easy_unescape): %2F, %3A; '+' stays '+'.
        ("POST", "/v1/models/a%2Fb:predict", TFSRoute("predict", "a/b", None, None)),
        ("POST", "/v1/models/a%3Ab/labels/x%2Fy:predict", TFSRoute("predict", "a:b", None, "x/y")),
        ("POST", "/v1/models/a+b:predict", TFSRoute("predict", "a+b", None, None)),
        ("GET", "/v1/models/m?x=1", TFSRoute("status", "m?x=1", None, None)),
        (
            "POST",
            "/v1/models/m/versions/9223372036854775807:predict",
            TFSRoute("predict", "m", 2**63 - 1, None),
        ),
    ],
)
def test_dispatch(method: str, path: str, route: TFSRoute) -> None:
    assert match_tfs_route(method, path) == route


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/v1/models", "Malformed request: POST /v1/models"),
        ("GET", "/v1/models", "Missing model name in request."),
        ("GET", "/v1/models/", "Malformed request: GET /v1/models/"),
        ("POST", "/v1/models/m:PREDICT", "Malformed request: POST /v1/models/m:PREDICT"),
        ("POST", "/v1/models/m:explain", "Malformed request: POST /v1/models/m:explain"),
        (
            "POST",
            "/v1/models/m/versions/HELLO:predict",
            "Malformed request: POST /v1/models/m/versions/HELLO:predict",
        ),
        (
            "POST",
            "/v1/models/m/version/50:predict",
            "Malformed request: POST /v1/models/m/version/50:predict",
        ),
        (
            "POST",
            "/v1/models/m/label/x:predict",
            "Malformed request: POST /v1/models/m/label/x:predict",
        ),
        (
            "POST",
            "/v1/models/m/versions/50/labels/x:predict",
            "Malformed request: POST /v1/models/m/versions/50/labels/x:predict",
        ),
        ("POST", "/v1/models/m/metadata", "Malformed request: POST /v1/models/m/metadata"),
        ("GET", "/v1/models/m:predict", "Malformed request: GET /v1/models/m:predict"),
        ("GET", "/v1/models/m/stats", "Malformed request: GET /v1/models/m/stats"),
        ("DELETE", "/v1/models/m", "Malformed request: DELETE /v1/models/m"),
        ("POST", "/v1/models/m:predict?x=1", "Malformed request: POST /v1/models/m:predict?x=1"),
        (
            "POST",
            "/v1/models/m/versions/9223372036854775808:predict",
            "Failed to convert version: 9223372036854775808 to numeric.",
        ),
        (
            "GET",
            "/v1/models/m/versions/18446744073709551616",
            "Failed to convert version: 18446744073709551616 to numeric.",
        ),
    ],
)
def test_dispatch_errors(method: str, path: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        match_tfs_route(method, path)
    assert caught.value.message == message


def test_every_v1_path_goes_to_tf_servings_api() -> None:
    for path in ("/v1/models", "/V1/anything", "/v1/"):
        assert route_of("POST", path) == route_of("GET", path) == Route.TFS
    for path in ("/v1", "/invocations", "/v2/x"):
        assert route_of("GET", path) != Route.TFS


@pytest.fixture(scope="module")
def pipeline(embedded_backend: Any) -> Pipeline:
    return Pipeline(embedded_backend, settings=Settings.from_env({}), registry=Registry())


@pytest.mark.tensorflow
def test_metadata_is_written_as_tf_serving_writes_it(pipeline: Pipeline) -> None:
    answer = handle_tfs_rest(pipeline, "GET", "/v1/models/half_plus_two/metadata", b"")
    assert answer.status == 200 and answer.codec == "tfs:metadata"
    text = answer.body.decode()
    # model_spec and the SignatureDefMap are written apart and joined (http_rest_api_util.cc).
    assert text.startswith('{\n"model_spec":') and '"metadata": {"signature_def": ' in text
    assert "@type" not in text
    document = json.loads(text)
    assert document["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    signatures = document["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "regress_x_to_y", "classify_x_to_y"} <= set(signatures)
    serving = signatures["serving_default"]
    assert serving["method_name"] == "tensorflow/serving/predict"
    assert serving["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert serving["inputs"]["x"]["tensor_shape"] == {"dim": [], "unknown_rank": True}


@pytest.mark.tensorflow
def test_status_and_predict(pipeline: Pipeline) -> None:
    status = handle_tfs_rest(pipeline, "GET", "/v1/models/versioned", b"")
    assert json.loads(status.body) == {
        "model_version_status": [
            {
                "version": v,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for v in ("2", "1")
        ]
    }
    predict = handle_tfs_rest(
        pipeline, "POST", "/v1/models/versioned/labels/stable:predict", b'{"instances": [1.0]}'
    )
    assert json.loads(predict.body) == {"predictions": [2.5]}
    assert predict.headers == [("content-type", "application/json")]


@pytest.mark.tensorflow
def test_errors_are_json_with_tf_serving_statuses(pipeline: Pipeline) -> None:
    unknown = handle_tfs_rest(pipeline, "POST", "/v1/models/half:predict", b"{}")
    assert unknown.status == 404
    assert json.loads(unknown.body) == {"error": "Servable not found for request: Latest(half)"}
    label = handle_tfs_rest(pipeline, "GET", "/v1/models/versioned/labels/x/metadata", b"")
    assert label.status == 400
    assert json.loads(label.body) == {"error": "Unrecognized servable version label: x"}


@pytest.mark.tensorflow
def test_body_limit(embedded_backend: Any) -> None:
    small = Pipeline(
        embedded_backend,
        settings=Settings.from_env({}, limits=Limits(max_body_bytes=8)),
        registry=Registry(),
    )
    answer = handle_tfs_rest(
        small, "POST", "/v1/models/half_plus_two:predict", b'{"instances": [1]}'
    )
    assert answer.status == 413


@pytest.mark.tensorflow
def test_the_routes_apply_the_pipelines_limits(embedded_backend: Any) -> None:
    """The /v1 routes read with the settings' limits and bound their answers before writing."""
    answer_limit = Pipeline(
        embedded_backend,
        settings=Settings.from_env({}, limits=Limits(max_response_bytes=64)),
        registry=Registry(),
    )
    big = b'{"instances": [' + b",".join([b"1.0"] * 40) + b"]}"
    answer = handle_tfs_rest(answer_limit, "POST", "/v1/models/half_plus_two:predict", big)
    assert answer.status == 413
    assert "output 'y' of shape [40]" in json.loads(answer.body)["error"]
    few_examples = Pipeline(
        embedded_backend,
        settings=Settings.from_env({}, limits=Limits(max_examples=2)),
        registry=Registry(),
    )
    body = b'{"examples": [{"x": 1.0}, {"x": 2.0}, {"x": 3.0}]}'
    answer = handle_tfs_rest(few_examples, "POST", "/v1/models/regression:regress", body)
    assert answer.status == 413
    assert "3 records, over the limit of 2" in json.loads(answer.body)["error"]


def test_unexpected_errors_are_logged_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def get_model_status(self, request: Any) -> Any:
            raise RuntimeError("secret internals")

    class FakePipeline:
        settings = Settings.from_env({})
        backend = Broken()

        @staticmethod
        def call_backend(request: object) -> object:
            raise AssertionError("no model call for a status request")

    with caplog.at_level(logging.ERROR):
        answer = handle_tfs_rest(FakePipeline(), "GET", "/v1/models/m", b"")  # type: ignore[arg-type]
    assert answer.status == 500
    assert json.loads(answer.body) == {"error": "Internal error: RuntimeError"}
    assert "secret internals" in caplog.text and "Traceback" in caplog.text
