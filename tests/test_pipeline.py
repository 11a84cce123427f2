"""The pipeline end to end on the embedded backend with real SavedModels: the seed's iris example,
every built-in media type, SageMaker custom attributes, errors, and user-code contracts."""

from __future__ import annotations

import asyncio
import io
import json
import pickle
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline, Response
from tfio_handlers.protocol.requests import to_examples
from tfio_handlers.protos import (
    ClassificationRequest,
    ClassificationResponse,
    PredictResponse,
)
from tfio_handlers.registry import Registry
from tfio_handlers.tensors import to_ndarray
from tfio_handlers.usercode import load_user_code

pytestmark = pytest.mark.tensorflow

IRIS = {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=iris"}
SEED = b"[6.4, 3.2, 4.5, 1.5]"


def make(backend: Any, user_code: Any = None, **settings: Any) -> Pipeline:
    return Pipeline(
        backend,
        settings=Settings.from_env({}, **settings),
        registry=Registry(),
        user_code=user_code,
    )


@pytest.fixture(scope="module")
def pipeline(embedded_backend: Any) -> Pipeline:
    return make(embedded_backend)


def ok(response: Response) -> Any:
    assert response.status == 200, response.body
    return response


def classes_of(body: bytes) -> list[tuple[str, float]]:
    doc = json.loads(body)
    return [(c["label"], c["score"]) for c in doc["result"]["classifications"][0]["classes"]]


def test_seed_iris_example_gives_the_seed_shape(pipeline: Pipeline) -> None:
    response = ok(pipeline.invoke(SEED, IRIS))
    doc = json.loads(response.body)
    assert set(doc) >= {"result"}
    classes = classes_of(response.body)
    assert [label for label, _ in classes] == ["0", "1", "2"]
    assert max(classes, key=lambda c: c[1])[0] == "1"
    assert dict(response.headers)["content-type"] == "application/json"
    assert dict(response.headers)["vary"] == "Accept"


def test_csv_and_protobuf_give_the_same_classes(pipeline: Pipeline) -> None:
    from_json = classes_of(ok(pipeline.invoke(SEED, IRIS)).body)
    csv = ok(pipeline.invoke(b"6.4,3.2,4.5,1.5\n", {**IRIS, "Content-Type": "text/csv"}))
    assert classes_of(csv.body) == from_json
    request = ClassificationRequest()
    request.input.example_list.examples.extend(to_examples([6.4, 3.2, 4.5, 1.5]))
    answer = ok(
        pipeline.invoke(
            request.SerializeToString(),
            {
                **IRIS,
                "Content-Type": "application/octet-stream",
                "Accept": "application/x-protobuf",
            },
        )
    )
    parsed = ClassificationResponse.FromString(answer.body)
    labels = [(c.label, c.score) for c in parsed.result.classifications[0].classes]
    assert [lab for lab, _ in labels] == ["0", "1", "2"]
    np.testing.assert_allclose([s for _, s in labels], [s for _, s in from_json], rtol=1e-6)


def test_csv_every_row_is_an_instance(pipeline: Pipeline) -> None:
    body = b"6.4,3.2,4.5,1.5\r\n5.1,3.5,1.4,0.2\r\n6.9,3.1,5.4,2.1\r\n"
    doc = json.loads(ok(pipeline.invoke(body, {**IRIS, "Content-Type": "text/csv"})).body)
    winners = [
        max(c["classes"], key=lambda x: x["score"])["label"]
        for c in doc["result"]["classifications"]
    ]
    assert winners == ["1", "0", "2"]


def test_integer_lists_become_float_features(pipeline: Pipeline) -> None:
    """The legacy container typed the unnamed feature by its first value: [6, 3, 4, 1] became an
    int64 feature that the model's float parser rejected. Here it is a float feature."""
    as_ints = classes_of(ok(pipeline.invoke(b"[6, 3, 4, 1]", IRIS)).body)
    as_floats = classes_of(ok(pipeline.invoke(b"[6.0, 3.0, 4.0, 1.0]", IRIS)).body)
    assert as_ints == as_floats


def test_model_errors_carry_the_op_message_only(pipeline: Pipeline) -> None:
    response = pipeline.invoke(b'{"examples": [{"inputs": [1.0, 2.0]}]}', IRIS)
    assert response.status == 400
    message = json.loads(response.body)["error"]
    # the op message, explained: the record rule instead of ParseExample's text
    assert "holds 2 float value(s)" in message and "4 value(s)" in message
    assert "ParseExample" not in message and "{{node" not in message
    assert "Graph execution error" not in message and "most recent call last" not in message


def test_tfs_rest_bodies_on_invocations(pipeline: Pipeline) -> None:
    classify = ok(pipeline.invoke(b'{"examples": [{"inputs": [6.4, 3.2, 4.5, 1.5]}]}', IRIS))
    results = json.loads(classify.body)["results"]
    assert [label for label, _ in results[0]] == ["0", "1", "2"]
    predict = ok(
        pipeline.invoke(b'{"signature_name": "predict", "instances": [[6.4, 3.2, 4.5, 1.5]]}', IRIS)
    )
    prediction = json.loads(predict.body)["predictions"][0]
    assert prediction["classes"] == "1" and prediction["class_ids"] == 1


def test_tfs_signature_attribute_and_legacy_predict_form(pipeline: Pipeline) -> None:
    headers = {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=iris,tfs-signature=predict"}
    doc = json.loads(ok(pipeline.invoke(SEED, headers)).body)
    probabilities = doc["outputs"]["probabilities"]
    assert probabilities["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in probabilities["tensorShape"]["dim"]] == ["1", "3"]
    assert len(probabilities["floatVal"]) == 3
    assert doc["modelSpec"]["signatureName"] == "predict"


def test_plain_list_on_half_plus_two_in_both_response_styles(embedded_backend: Any) -> None:
    legacy = make(embedded_backend)
    doc = json.loads(ok(legacy.invoke(b"[1.0, 2.0, 5.0]", {})).body)
    assert doc["outputs"]["y"]["floatVal"] == [2.5, 3.0, 4.5]
    tfs = make(embedded_backend, json_response_style="tfs")
    assert json.loads(ok(tfs.invoke(b"[1.0, 2.0, 5.0]", {})).body) == {
        "predictions": [[2.5, 3.0, 4.5]]
    }
    override = ok(legacy.invoke(b"[1.0, 2.0, 5.0]", {"Accept": "application/json; format=tfs"}))
    assert json.loads(override.body) == {"predictions": [[2.5, 3.0, 4.5]]}


def test_tfs_method_attribute_regress(pipeline: Pipeline) -> None:
    headers = {
        "X-Amzn-SageMaker-Custom-Attributes": "tfs-method=regress,tfs-signature=regress_x_to_y",
    }
    doc = json.loads(
        ok(pipeline.invoke(b'{"examples": [{"x": [4.0]}, {"x": [6.0]}]}', headers)).body
    )
    assert doc == {"results": [4.0, 5.0]}


def test_dict_of_named_inputs_typed_per_input(embedded_backend: Any) -> None:
    """Mixed dtypes: each input typed by its own signature dtype (training-toolkit#188)."""
    pipeline = make(embedded_backend, json_response_style="tfs")
    body = json.dumps({"a": [[1.0, 2.0]], "b": [3], "c": ["xyz"]}).encode()
    doc = json.loads(
        ok(
            pipeline.invoke(
                body, {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=multi_input"}
            )
        ).body
    )
    prediction = doc["predictions"][0]
    assert prediction["total"] == 6.0 and prediction["b_doubled"] == 6
    assert prediction["c_length"] == 3 and prediction["c_bytes"] == {"b64": "eHl6"}


def test_npy_and_jsonlines_round_trip(pipeline: Pipeline) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0], [3.0]], dtype=np.float32))
    answer = ok(
        pipeline.invoke(
            buffer.getvalue(), {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
        )
    )
    np.testing.assert_array_equal(np.load(io.BytesIO(answer.body)), [[2.5], [3.5]])
    lines = ok(
        pipeline.invoke(
            b"[1.0]\n[3.0]\n",
            {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
        )
    )
    assert [json.loads(line) for line in lines.body.splitlines()] == [[2.5], [3.5]]


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        (SEED, {"Content-Type": "image/gif"}, 415, "text/csv"),
        (SEED, {"Accept": "image/gif"}, 406, "application/json"),
        (b"[6.4, 3.2", {}, 400, "JSON Parse error"),
        (b"", {}, 400, "The document is empty"),
        (SEED, {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=nope"}, 404, "nope"),
        (SEED, {"X-Amzn-SageMaker-Custom-Attributes": "tfs-method=explain"}, 400, "tfs-method"),
        (SEED, {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-version=x"}, 400, "version"),
        (
            SEED,
            {"X-Amzn-SageMaker-Custom-Attributes": "tfs-signature=nope"},
            404,
            "serving_default",
        ),
        (SEED, {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-version=7"}, 404, "Specific"),
        (b"1,2\n3\n", {"Content-Type": "text/csv"}, 400, "row"),
        (
            b"\x80\x04junk",
            {"Content-Type": "application/python-pickle"},
            415,
            "TFIO_HANDLERS_ENABLE_PICKLE",
        ),
    ],
)
def test_errors_have_status_and_json_body(
    pipeline: Pipeline, body: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    response = pipeline.invoke(body, headers)
    assert response.status == status, response.body
    message = json.loads(response.body)["error"]
    assert fragment in message
    assert "Traceback" not in message


def test_body_limit_is_413(embedded_backend: Any) -> None:
    from tfio_handlers.config import Limits

    pipeline = make(embedded_backend, limits=Limits(max_body_bytes=8))
    assert pipeline.invoke(SEED, {}).status == 413


def test_charset_parameter_is_accepted(pipeline: Pipeline) -> None:
    ok(pipeline.invoke(SEED, {**IRIS, "Content-Type": "application/json; charset=utf-8"}))
    ok(pipeline.invoke(SEED, {**IRIS, "Content-Type": "Application/JSON; Charset=ISO-8859-1"}))


def test_async_invoke_matches_sync(pipeline: Pipeline) -> None:
    sync = pipeline.invoke(SEED, IRIS)
    answer = asyncio.run(pipeline.ainvoke(SEED, IRIS))
    assert answer.status == 200 and answer.body == sync.body


def test_ping(pipeline: Pipeline) -> None:
    assert pipeline.ping().status == 200


def test_ping_waits_for_every_configured_model(half_plus_two_model: Path, tmp_path: Path) -> None:
    """A configured model whose base path has no version yet makes ``ping`` (``/ping``, Ray Serve's
    health check) 503, naming it, while the default model answers; its first version makes it 200."""
    import shutil

    from tfio_handlers.backends.embedded import EmbeddedBackend

    later = tmp_path / "later"
    later.mkdir()
    config = tmp_path / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "half" base_path: "{half_plus_two_model.parent}" '
        'model_platform: "tensorflow" }\n'
        f'  config {{ name: "later" base_path: "{later}" model_platform: "tensorflow" }}\n'
        "}\n"
    )
    backend = EmbeddedBackend(model_config_file=config, default_model="half")
    try:
        pipeline = make(backend)
        waiting = pipeline.ping()
        assert waiting.status == 503
        assert "later" in json.loads(waiting.body)["error"]
        shutil.copytree(half_plus_two_model, later / "1")
        backend._manager.poll()
        assert pipeline.ping().status == 200
    finally:
        backend.close()


# -- user code -------------------------------------------------------------------------------------


def user(tmp_path: Path, source: str) -> Any:
    path = tmp_path / "inference.py"
    path.write_text(textwrap.dedent(source))
    return load_user_code(path)


def test_seed_pickle_input_and_output_fn(embedded_backend: Any, tmp_path: Path) -> None:
    code = user(
        tmp_path,
        """
        import pickle
        def input_fn(serialized_input, content_type):
            if content_type == "application/python-pickle":
                return pickle.loads(serialized_input)
            else:
                pass
        def output_fn(prediction_result, accepts):
            if accepts == "application/python-pickle":
                return pickle.dumps(prediction_result)
            else:
                pass
    """,
    )
    pipeline = make(embedded_backend, code)
    answer = ok(
        pipeline.invoke(
            pickle.dumps(np.array([[1.0], [5.0]], dtype=np.float32)),
            {"Content-Type": "application/python-pickle", "Accept": "application/python-pickle"},
        )
    )
    response = pickle.loads(answer.body)
    assert isinstance(response, PredictResponse)
    np.testing.assert_array_equal(to_ndarray(response.outputs["y"]), [[2.5], [4.5]])
    # Other types still reach the built-ins.
    assert json.loads(ok(pipeline.invoke(b"[1.0]", {})).body)["outputs"]["y"]["floatVal"] == [2.5]


def test_context_style_and_tfs_handlers(embedded_backend: Any, tmp_path: Path) -> None:
    code = user(
        tmp_path,
        """
        import json
        def input_handler(data, context):
            values = [float(v) for v in data.read().decode().split(";")]
            return json.dumps({"instances": values})
        def output_handler(response, context):
            doubled = [2 * v for v in response.json()["predictions"]]
            return json.dumps({"doubled": doubled}), "application/vnd.doubled+json"
    """,
    )
    answer = ok(make(embedded_backend, code).invoke(b"1;3", {"Content-Type": "text/plain"}))
    assert json.loads(answer.body) == {"doubled": [5.0, 7.0]}
    assert dict(answer.headers)["content-type"] == "application/vnd.doubled+json"


def test_transform_fn_and_handler_take_the_whole_request(
    embedded_backend: Any, tmp_path: Path
) -> None:
    code = user(
        tmp_path,
        """
        def transform_fn(data, content_type, accept, context):
            return f"{content_type}|{accept}|{data}", "text/plain"
    """,
    )
    answer = ok(make(embedded_backend, code).invoke(b"[1]", {"Accept": "text/plain"}))
    assert answer.body == b"application/json|text/plain|[1]"
    handler = user(
        tmp_path,
        """
        def handler(data, context):
            response = context.extras["predict"]([[float(data.read())]])
            return str(response.outputs["y"].float_val[0]), "text/plain"
    """,
    )
    pipeline = make(embedded_backend, handler)
    assert ok(pipeline.invoke(b"4", {"Content-Type": "text/plain"})).body == b"4.0"


def test_user_error_is_500_without_traceback(embedded_backend: Any, tmp_path: Path) -> None:
    code = user(tmp_path, "def input_fn(data, ct):\n    raise RuntimeError('boom')\n")
    response = make(embedded_backend, code).invoke(b"[1.0]", {})
    assert response.status == 500
    assert json.loads(response.body) == {"error": "input_fn failed: RuntimeError: boom"}


# -- output_handler answers the model server's errors (SageMaker's TF Serving container) -----------

SHAPING_HANDLERS = """
import json

def input_handler(data, context):
    body = data.read()
    if body == b"refuse":
        raise ValueError("input_handler refused the body")
    return body

def output_handler(response, context):
    if response.status_code != 200:
        if context.accept_header == "application/x-raise":
            raise ValueError(response.content.decode())
        if context.accept_header == "application/x-pass":
            return None
        shaped = {"failed": response.status_code, "why": response.json()["error"]}
        assert not response.ok and response.headers["Content-Type"] == "application/json"
        return json.dumps(shaped), "application/vnd.failure+json"
    return response.content, "application/json"
"""


def test_output_handler_shapes_the_model_servers_errors(
    embedded_backend: Any, tmp_path: Path
) -> None:
    pipeline = make(embedded_backend, user(tmp_path, SHAPING_HANDLERS))
    # A body TF Serving refuses (400), an unknown model (404): the handler sees and shapes both.
    bad = pipeline.invoke(b'{"instances": "nope"}', {})
    assert bad.status == 400
    assert dict(bad.headers)["content-type"] == "application/vnd.failure+json"
    shaped = json.loads(bad.body)
    assert shaped["failed"] == 400 and shaped["why"]
    missing = pipeline.invoke(
        b'{"instances": [1.0]}', {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=nope"}
    )
    assert missing.status == 404
    assert json.loads(missing.body)["failed"] == 404
    assert "nope" in json.loads(missing.body)["why"]
    # Success still goes through it.
    assert json.loads(ok(pipeline.invoke(b'{"instances": [1.0]}', {})).body) == {
        "predictions": [2.5]
    }


def test_output_handler_raising_or_passing_on_an_error_keeps_the_error(
    embedded_backend: Any, tmp_path: Path
) -> None:
    pipeline = make(embedded_backend, user(tmp_path, SHAPING_HANDLERS))
    plain = pipeline.invoke(b'{"instances": "nope"}', {"Accept": "application/x-pass"})
    for accept in ("application/x-raise", "application/x-pass"):
        answer = pipeline.invoke(b'{"instances": "nope"}', {"Accept": accept})
        assert answer.status == 400, answer.body
        assert dict(answer.headers)["content-type"] == "application/json"
        assert answer.body == plain.body and json.loads(answer.body)["error"]


def test_output_handler_does_not_see_decode_errors(embedded_backend: Any, tmp_path: Path) -> None:
    pipeline = make(embedded_backend, user(tmp_path, SHAPING_HANDLERS))
    refused = pipeline.invoke(b"refuse", {})
    assert refused.status == 500
    assert json.loads(refused.body) == {
        "error": "input_handler failed: ValueError: input_handler refused the body"
    }


# -- a wildcard content type from user code becomes the negotiated type ----------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("text/csv;q=0.9, */*;q=0.1", "text/csv"),
    ],
)
def test_user_answers_typed_with_the_accept_header_get_a_concrete_type(
    embedded_backend: Any, tmp_path: Path, accept: str, expected: str
) -> None:
    sources = {
        "output_fn": """
            def output_fn(prediction, accept, context):
                return b"body", context.accept_header
        """,
        "output_handler": """
            def output_handler(response, context):
                return b"body", context.accept_header
        """,
        "transform_fn": """
            def transform_fn(data, content_type, accept, context):
                return b"body", context.accept_header
        """,
        "handler": """
            def handler(data, context):
                return b"body", context.accept_header
        """,
    }
    for name, source in sources.items():
        pipeline = make(embedded_backend, user(tmp_path, source))
        answer = ok(pipeline.invoke(b"[1.0]", {"Accept": accept}))
        assert dict(answer.headers)["content-type"] == expected, name
        assert answer.body == b"body"


def test_seed_transform_fn_returning_accept_under_a_wildcard(
    embedded_backend: Any, tmp_path: Path
) -> None:
    code = user(
        tmp_path,
        """
        def transform_fn(data, content_type, accept):
            return data, accept
        """,
    )
    pipeline = make(embedded_backend, code, default_accept="text/csv")
    answer = ok(pipeline.invoke(b"[1.0]", {"Accept": "*/*"}))
    assert dict(answer.headers)["content-type"] == "text/csv"
    listed = ok(pipeline.invoke(b"[1.0]", {"Accept": "text/csv;q=0.5, application/json"}))
    assert dict(answer.headers)["content-type"] == "text/csv"
    assert dict(listed.headers)["content-type"] == "application/json"
    odd = ok(pipeline.invoke(b"[1.0]", {"Accept": "image/*"}))
    assert dict(odd.headers)["content-type"] == "application/octet-stream"


# -- error texts name the user's function ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "def output_fn(prediction, accept):\n    return {'y': 1}\n",
            "output_fn returned dict; expected bytes, str or (body, content_type)",
        ),
        (
            "def output_fn(prediction, accept):\n    return b'x', None\n",
            "output_fn returned (body, NoneType); the content type must be a str",
        ),
        (
            "def output_handler(response, context):\n    return response.json()\n",
            "output_handler returned dict; expected bytes, str or (body, content_type)",
        ),
        (
            "def output_handler(response, context):\n    return [1], 'application/json'\n",
            "output_handler returned (list, content_type); expected bytes, str or (body, "
            "content_type)",
        ),
        (
            "def transform_fn(data, content_type, accept):\n    return 1, 2, 3\n",
            "transform_fn returned a tuple of 3 items; expected (body, content_type)",
        ),
        (
            "def transform_fn(data, content_type, accept):\n    return None\n",
            "transform_fn returned None; expected bytes, str or (body, content_type)",
        ),
        (
            "def handler(data, context):\n    return {'y': 1}, 'application/json'\n",
            "handler returned (dict, content_type); expected bytes, str or (body, content_type)",
        ),
        (
            "def input_fn(data, content_type):\n    return {1.0, 2.0}\n",
            "input_fn returned set; expected a TF Serving request message",
        ),
        (
            "def input_handler(data, context):\n    return object()\n",
            "input_handler returned object; expected a TF Serving request message",
        ),
    ],
)
def test_wrong_return_types_name_the_users_function(
    embedded_backend: Any, tmp_path: Path, source: str, message: str
) -> None:
    answer = make(embedded_backend, user(tmp_path, source)).invoke(b"[1.0]", {})
    assert answer.status == 500
    assert json.loads(answer.body)["error"].startswith(message), answer.body
