"""The proto3 JSON (legacy) form of responses equals json_format.MessageToDict's document."""

from __future__ import annotations

import json
import math

import numpy as np
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
