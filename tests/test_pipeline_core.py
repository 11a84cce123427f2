"""The pipeline on a stub backend, with nothing but the core installed: no TensorFlow, and (hidden
for these tests) no orjson. A classify model's JSON answer is the issue's seed case: it was a 500
because the standard-library writer could not write a float32 score."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pytest

from tfio_handlers.backends.base import Backend
from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.protos import (
    DT_STRING,
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    SignatureDef,
    pack_signature_def_map,
)
from tfio_handlers.registry import Registry

F32_MAX = float(np.finfo(np.float32).max)
SCORES = [0.1, 0.7, F32_MAX]


class Classifier(Backend):
    """A model whose default signature classifies: every example gets the classes 0, 1, 2 with
    scores 0.1, 0.7 and float32 max."""

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        signature = SignatureDef(method_name="tensorflow/serving/classify")
        signature.inputs["inputs"].dtype = DT_STRING
        signature.inputs["inputs"].name = "inputs:0"
        response = GetModelMetadataResponse()
        response.model_spec.CopyFrom(request.model_spec)
        return pack_signature_def_map(response, {"serving_default": signature})

    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        response = ClassificationResponse()
        response.model_spec.name = request.model_spec.name
        for _ in request.input.example_list.examples:
            item = response.result.classifications.add()
            for label, score in zip("012", SCORES, strict=True):
                item.classes.add(label=label, score=score)
        return response

    def predict(self, request: PredictRequest) -> PredictResponse:
        raise NotImplementedError

    def regress(self, request: RegressionRequest) -> RegressionResponse:
        raise NotImplementedError

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        raise NotImplementedError


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    monkeypatch.setitem(sys.modules, "orjson", None)
    return Pipeline(Classifier(), settings=Settings.from_env({}), registry=Registry())


def answer(pipeline: Pipeline, body: bytes, **headers: str) -> Any:
    response = pipeline.invoke(body, headers)
    assert response.status == 200, response.body
    return response.body


def test_classify_json_answer_without_orjson(pipeline: Pipeline) -> None:
    body = answer(pipeline, b"[6.4, 3.2, 4.5, 1.5]", **{"Content-Type": "application/json"})
    assert b'"score":0.1}' in body and b'"score":3.4028235e+38}' in body
    classes = json.loads(body)["result"]["classifications"][0]["classes"]
    assert [(c["label"], np.float32(c["score"])) for c in classes] == [
        (label, np.float32(score)) for label, score in zip("012", SCORES, strict=True)
    ]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json; format=tfs", b'[["0", 0.1], ["1", 0.7], ["2", 3.40282347e+38]]'),
        ("application/jsonlines", b'[["0",0.1],["1",0.7],["2",3.4028235e+38]]\n'),
        ("text/csv", b"0,0.1,1,0.7,2,3.4028235e+38\n"),
    ],
)
def test_classify_answers_in_every_text_format_without_orjson(
    pipeline: Pipeline, accept: str, expected: bytes
) -> None:
    body = answer(
        pipeline, b"[6.4, 3.2, 4.5, 1.5]", **{"Content-Type": "application/json", "Accept": accept}
    )
    assert expected in body
