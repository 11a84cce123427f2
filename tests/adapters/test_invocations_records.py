"""No silent truncation on ``/invocations``: N records in, N predictions out, or a 4xx.

Issue 14: ``{"x": [1.0, 2.0, 5.0]}\\n{"x": [1.0, 2.0, 9.0]}`` sent as ``application/json`` answered
one prediction; the second record was dropped without a word. SageMaker's TF Serving container reads
such a body as JSON lines (its ``test_predict_jsons_2``: two predictions), and SageMaker Batch
Transform sends exactly such bodies (``BatchStrategy=MultiRecord``, ``SplitType=Line``).

The property: for any number of records (0 to 6) in any body format ``/invocations`` reads (a JSON
list of rows, a JSON object of batched inputs, several JSON values one a line, JSON lines, CSV, npy,
npz, TF Serving JSON ``instances``/``inputs``, a protobuf ``PredictRequest`` or ``TensorProto``),
through the real pipeline on real SavedModels (half_plus_two's predict, the iris classifier), the
answer (JSON in TF Serving's row form, JSON lines, or npy) holds exactly that many predictions, or
the request is refused with a 4xx and ``{"error": ...}``. Never fewer without an error.

TF Serving's own routes keep TF Serving's rule (the body's first value is read, the rest ignored).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfio_handlers.adapters.tfs_rest import handle_tfs_rest
from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.protos import PredictRequest
from tfio_handlers.registry import Registry
from tfio_handlers.tensors import to_tensor_proto

pytestmark = pytest.mark.tensorflow

Rows = list[list[float]]

HALF = "tfs-model-name=half_plus_two"
"""``x`` (float, unknown rank) -> ``y = x / 2 + 2``: a record is a row, its prediction a row."""
IRIS = "tfs-model-name=iris"
"""The iris classifier (``serving_default``): a record is 4 floats, its answer one classification."""


@pytest.fixture(scope="module")
def pipeline(embedded_backend: Any) -> Pipeline:
    return Pipeline(embedded_backend, settings=Settings.from_env({}), registry=Registry())


# -- the records in every body format ---------------------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.savez(stream, **arrays)  # type: ignore[arg-type]
    return stream.getvalue()


def _lines(values: list[Any], end: str) -> bytes:
    return "".join(json.dumps(v) + end for v in values).encode()


def _predict_request(rows: Rows, width: int, end: str) -> bytes:
    request = PredictRequest()
    request.inputs["x"].CopyFrom(to_tensor_proto(np.array(rows, np.float32).reshape(-1, width)))
    return bytes(request.SerializeToString())


FORMATS: dict[str, tuple[str, Callable[[Rows, int, str], bytes]]] = {
    # A JSON list of rows is a batch (a flat list would be one record: see below).
    "json rows": ("application/json", lambda rows, k, end: json.dumps(rows).encode()),
    # An object names inputs that are batched already (the legacy container's form).
    "json object": ("application/json", lambda rows, k, end: json.dumps({"x": rows}).encode()),
    # Several JSON values, one a line (Batch Transform's MultiRecord body): rows, or objects. One
    # value alone is not 'several': one row is a flat list (one record), one object the form above.
    "json values": (
        "application/json",
        lambda rows, k, end: (
            _lines(rows, end) if len(rows) != 1 else json.dumps(rows[0]).encode() + end.encode()
        ),
    ),
    "json object values": (
        "application/json",
        lambda rows, k, end: (
            _lines([{"x": r} for r in rows], end)
            if len(rows) != 1
            else json.dumps({"x": rows}).encode()
        ),
    ),
    "jsonlines": ("application/jsonlines", lambda rows, k, end: _lines(rows, end)),
    "jsonlines objects": (
        "application/jsonlines",
        lambda rows, k, end: _lines([{"x": r} for r in rows], end),
    ),
    "csv": (
        "text/csv",
        lambda rows, k, end: "".join(",".join(map(repr, r)) + end for r in rows).encode(),
    ),
    "npy": (
        "application/x-npy",
        lambda rows, k, end: _npy(np.array(rows, np.float32).reshape(-1, k)),
    ),
    "npz": (
        "application/x-npz",
        lambda rows, k, end: _npz(x=np.array(rows, np.float64).reshape(-1, k)),
    ),
    "tfs instances": (
        "application/json",
        lambda rows, k, end: json.dumps({"instances": rows}).encode(),
    ),
    "tfs inputs": ("application/json", lambda rows, k, end: json.dumps({"inputs": rows}).encode()),
    # TF Serving requests one a line: two or more are a 400 (TF Serving would read the first).
    "tfs instances values": (
        "application/json",
        lambda rows, k, end: _lines([{"instances": [r]} for r in rows], end),
    ),
    "tfs named inputs": (
        "application/json",
        lambda rows, k, end: json.dumps({"inputs": {"x": rows}}).encode(),
    ),
    "protobuf PredictRequest": ("application/x-protobuf", _predict_request),
    "protobuf TensorProto": (
        "application/x-protobuf",
        lambda rows, k, end: bytes(
            to_tensor_proto(np.array(rows, np.float32).reshape(-1, k)).SerializeToString()
        ),
    ),
}
"""name -> (content type, the body of ``rows`` of width ``k``, lines ending ``end`` where it has lines)."""

CLASSIFY_FORMATS = ("json rows", "json values", "jsonlines", "csv", "npy")
"""The plain formats, whose records are the iris classifier's examples."""

ANSWERS = ("application/json; format=row", "application/jsonlines", "application/x-npy")


def predictions(accept: str, body: bytes) -> int:
    """How many predictions (classifications) an answer holds."""
    if accept == "application/jsonlines":
        return body.count(b"\n")
    if accept == "application/x-npy":
        array = np.load(io.BytesIO(body), allow_pickle=False)
        return int(array.shape[0])
    document = json.loads(body)
    return len(document["predictions"] if "predictions" in document else document["results"])


def ask(pipeline: Pipeline, attributes: str, content_type: str, body: bytes, accept: str) -> Any:
    return pipeline.invoke(
        body,
        {
            "Content-Type": content_type,
            "Accept": accept,
            "X-Amzn-SageMaker-Custom-Attributes": attributes,
        },
    )


def check(response: Any, accept: str, records: int) -> None:
    if response.status == 200:
        assert predictions(accept, response.body) == records, response.body[:400]
    else:
        assert 400 <= response.status < 500, response.body
        assert set(json.loads(response.body)) == {"error"}


floats = st.floats(-1000, 1000, width=32)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(FORMATS)),
    width=st.integers(1, 4),
    count=st.integers(0, 6),
    end=st.sampled_from(["\n", "\r\n"]),
    accept=st.sampled_from(ANSWERS),
    data=st.data(),
)
def test_n_records_answer_n_predictions_or_a_4xx(
    pipeline: Pipeline, name: str, width: int, count: int, end: str, accept: str, data: Any
) -> None:
    rows = data.draw(
        st.lists(st.lists(floats, min_size=width, max_size=width), min_size=count, max_size=count)
    )
    content_type, build = FORMATS[name]
    body = build(rows, width, end)
    check(ask(pipeline, HALF, content_type, body, accept), accept, count)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(CLASSIFY_FORMATS),
    count=st.integers(0, 6),
    end=st.sampled_from(["\n", "\r\n"]),
    accept=st.sampled_from(ANSWERS[:2]),
    data=st.data(),
)
def test_n_examples_answer_n_classifications_or_a_4xx(
    pipeline: Pipeline, name: str, count: int, end: str, accept: str, data: Any
) -> None:
    rows = data.draw(
        st.lists(st.lists(floats, min_size=4, max_size=4), min_size=count, max_size=count)
    )
    content_type, build = FORMATS[name]
    body = build(rows, 4, end)
    check(ask(pipeline, IRIS, content_type, body, accept), accept, count)


# -- the cases, written out --------------------------------------------------------------------------

ISSUE_BODY = b'{"x": [1.0, 2.0, 5.0]}\n{"x": [1.0, 2.0, 9.0]}'


def test_the_issue_body_answers_two_predictions(pipeline: Pipeline) -> None:
    """As the SageMaker TF Serving container answers its ``test_predict_jsons_2`` (TF Serving's
    row form), and in the default (legacy) plain-body style."""
    row = ask(pipeline, HALF, "application/json", ISSUE_BODY, "application/json; format=row")
    assert row.status == 200
    assert json.loads(row.body) == {"predictions": [[2.5, 3.0, 4.5], [2.5, 3.0, 6.5]]}
    legacy = ask(pipeline, HALF, "application/json", ISSUE_BODY, "application/json")
    assert legacy.status == 200
    y = json.loads(legacy.body)["outputs"]["y"]
    assert y["tensorShape"] == {"dim": [{"size": "2"}, {"size": "3"}]}
    assert y["floatVal"] == [2.5, 3.0, 4.5, 2.5, 3.0, 6.5]


def test_several_json_values_answer_as_the_same_body_sent_as_json_lines(pipeline: Pipeline) -> None:
    for body in (ISSUE_BODY, b"[1.0, 2.0]\r\n\r\n[3.0, 4.0]\n", b"1.0\n2.0\n3.0"):
        for accept in ANSWERS:
            as_json = ask(pipeline, HALF, "application/json", body, accept)
            as_lines = ask(pipeline, HALF, "application/jsonlines", body, accept)
            assert (as_json.status, as_json.body) == (as_lines.status, as_lines.body)
            assert as_json.status == 200


def test_several_tf_serving_requests_in_one_body_are_a_400(pipeline: Pipeline) -> None:
    body = b'{"instances": [1.0]}\n{"instances": [2.0]}'
    answer = ask(pipeline, HALF, "application/json", body, "application/json")
    assert answer.status == 400
    assert json.loads(answer.body) == {
        "error": "The body holds more than a TF Serving request: the 'instances' request object "
        "ends at offset 20 and more follows at offset 21. /invocations takes one TF Serving "
        "request a body; send several records as the request's instances, or as plain JSON "
        "values, one a line"
    }


def test_tf_serving_routes_keep_tf_servings_first_value_rule(pipeline: Pipeline) -> None:
    """TF Serving >= 2.18 (RapidJSON's kParseStopWhenDoneFlag) reads the first value only."""
    body = b'{"instances": [1.0]}\n{"instances": [2.0]}'
    answer = handle_tfs_rest(pipeline, "POST", "/v1/models/half_plus_two:predict", body)
    assert answer.status == 200
    assert json.loads(answer.body) == {"predictions": [2.5]}
