"""The proto3 JSON (legacy) form of responses equals json_format.MessageToDict's document."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from tfio_handlers.protocol.responses import response_to_legacy_json
from tfio_handlers.protos import POOL, ClassificationResponse, PredictResponse, RegressionResponse
from tfio_handlers.tensors import to_tensor_proto

floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


def same(ours: bytes, message: object) -> None:
    expected = json.loads(json_format.MessageToJson(message, descriptor_pool=POOL))
    got = json.loads(ours)

    def normal(value: object) -> object:
        if isinstance(value, float) and not math.isnan(value):
            return float(np.float32(value))
        if isinstance(value, float):
            return "NaN"
        if isinstance(value, dict):
            return {k: normal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normal(v) for v in value]
        return value

    assert normal(got) == normal(expected)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.tuples(st.text(max_size=3), floats32), max_size=4), max_size=3),
    version=st.none() | st.integers(0, 2**40),
    signature=st.text(max_size=5),
)
def test_classification_matches_message_to_json(
    rows: list[list[tuple[str, float]]], version: int | None, signature: str
) -> None:
    response = ClassificationResponse()
    response.model_spec.name = "iris"
    response.model_spec.signature_name = signature
    if version is not None:
        response.model_spec.version.value = version
    for row in rows:
        item = response.result.classifications.add()
        for label, score in row:
            item.classes.add(label=label, score=score)
    same(response_to_legacy_json(response), response)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(floats32, max_size=5))
def test_regression_matches_message_to_json(values: list[float]) -> None:
    response = RegressionResponse()
    for value in values:
        response.result.regressions.add(value=value)
    same(response_to_legacy_json(response), response)


def test_predict_matches_message_to_json() -> None:
    response = PredictResponse()
    response.outputs["y"].CopyFrom(
        to_tensor_proto(np.array([[1.5, -0.0, 3e38]], np.float32), typed_fields=True)
    )
    response.outputs["n"].CopyFrom(to_tensor_proto(np.array([2**40], np.int64), typed_fields=True))
    response.outputs["s"].CopyFrom(to_tensor_proto(np.array([b"a\xff"], object), typed_fields=True))
    response.model_spec.name = "m"
    same(response_to_legacy_json(response), response)


# -- the same bytes with and without orjson -------------------------------------------------------

F32_MAX = float(np.finfo(np.float32).max)
EDGE_SCORES = [0.1, F32_MAX, 1e-45, -0.0, math.nan, math.inf, 0.0]


def classification(scores: list[float]) -> ClassificationResponse:
    response = ClassificationResponse()
    response.model_spec.name = "iris"
    item = response.result.classifications.add()
    for i, score in enumerate(scores):
        item.classes.add(label="abcdefg"[i % 7], score=score)
    return response


def float_predict(values: list[float]) -> PredictResponse:
    response = PredictResponse()
    response.outputs["y"].CopyFrom(to_tensor_proto(np.array(values, np.float32), typed_fields=True))
    return response


def without_orjson(response: object) -> bytes:
    """The legacy JSON as a core-only install writes it (orjson hidden)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "orjson", None)
        return response_to_legacy_json(response)  # type: ignore[arg-type]


def test_without_orjson_scores_are_shortest_float32_texts() -> None:
    assert without_orjson(classification(EDGE_SCORES)) == (
        b'{"result":{"classifications":[{"classes":[{"label":"a","score":0.1},'
        b'{"label":"b","score":3.4028235e+38},{"label":"c","score":1e-45},'
        b'{"label":"d","score":-0.0},{"label":"e","score":"NaN"},'
        b'{"label":"f","score":"Infinity"},{"label":"g"}]}]},"modelSpec":{"name":"iris"}}'
    )
    regression = RegressionResponse()
    for value in (0.1, F32_MAX, -math.inf):
        regression.result.regressions.add(value=value)
    assert without_orjson(regression) == (
        b'{"result":{"regressions":[{"value":0.1},{"value":3.4028235e+38},{"value":"-Infinity"}]}}'
    )


def test_float_tensors_with_non_finite_values_keep_float32_texts() -> None:
    expected = (
        b'{"outputs":{"y":{"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"3"}]},'
        b'"floatVal":[0.1,"NaN",3.4028235e+38]}}}'
    )
    response = float_predict([0.1, math.nan, F32_MAX])
    assert without_orjson(response) == expected
    assert response_to_legacy_json(response) == expected


@pytest.mark.skipif(importlib.util.find_spec("orjson") is None, reason="compares with orjson")
@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(floats32 | st.sampled_from(EDGE_SCORES), max_size=6),
    values=st.lists(floats32 | st.sampled_from(EDGE_SCORES), min_size=1, max_size=6),
)
def test_the_same_bytes_with_and_without_orjson(scores: list[float], values: list[float]) -> None:
    for response in (classification(scores), float_predict(values)):
        assert without_orjson(response) == response_to_legacy_json(response)
