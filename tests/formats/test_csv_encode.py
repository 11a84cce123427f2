"""formats/csv writing: tfio_handlers.formats.csv.encode, one row per batch element."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from codec_support import context, predict_response, signature
from csv_support import (
    CSV_HEADER,
    decode,
    encode,
)

from tfio_handlers.errors import BadRequest, NotAcceptable
from tfio_handlers.protos import (
    DT_FLOAT,
    ClassificationResponse,
    PredictResponse,
    RegressionResponse,
)


def test_encode_one_output_is_one_row_per_instance() -> None:
    response = predict_response(scores=np.array([[0.1, 0.9], [0.25, 0.75]], np.float32))
    assert encode(response) == b"0.1,0.9\n0.25,0.75\n"
    assert encode(response, CSV_HEADER) == b"scores,scores\n0.1,0.9\n0.25,0.75\n"
    vector = predict_response(y=np.array([1.5, 2.5], np.float32))
    assert encode(vector) == b"1.5\n2.5\n"
    images = predict_response(y=np.arange(8, dtype=np.int32).reshape(2, 2, 2))
    assert encode(images) == b"0,1,2,3\n4,5,6,7\n"


def test_encode_several_outputs_side_by_side_in_name_order() -> None:
    response = predict_response(
        b_label=np.array([b"x,y", b'say "hi"'], object),
        a_flag=np.array([True, False]),
        c=np.array([[1, 2], [3, 4]], np.int64),
    )
    assert encode(response, CSV_HEADER) == (
        b'a_flag,b_label,c,c\ntrue,"x,y",1,2\nfalse,"say ""hi""",3,4\n'
    )


def test_encode_non_finite_and_round_trip_floats() -> None:
    values = np.array([np.nan, np.inf, -np.inf, -0.0, 1 / 3, 3.4028235e38], np.float32)
    text = encode(predict_response(y=values))
    assert text == b"nan\ninf\n-inf\n-0.0\n0.33333334\n3.4028235e+38\n"
    back = decode(text, context(signature({"y": (DT_FLOAT, [-1])})))
    np.testing.assert_array_equal(back, values)


def float_outputs() -> list[PredictResponse]:
    """Float outputs whose texts differ between numpy's ``str`` and orjson's layout."""
    f32_max = float(np.finfo(np.float32).max)
    return [
        predict_response(y=np.array([[1e-4, 16777216.0, 0.1, f32_max, 1e-45, 1e13]], np.float32)),
        predict_response(y=np.array([[1e-4, np.nan, 1e-7]], np.float32)),
        predict_response(y=np.array([[1e-5, 1e16, 0.1]], np.float64)),
        predict_response(y=np.array([[0.1, 1e-7]], np.float16)),
    ]


FLOAT_ROWS = [
    b"0.0001,16777216.0,0.1,3.4028235e+38,1e-45,1e+13\n",
    b"0.0001,nan,1e-7\n",
    b"0.00001,1e+16,0.1\n",
    b"0.099975586,1.1920929e-7\n",
]


def test_float_texts_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core-only install writes the shortest texts in orjson's layout, and ``nan``/``inf``."""
    monkeypatch.setitem(sys.modules, "orjson", None)
    assert [encode(response) for response in float_outputs()] == FLOAT_ROWS


@pytest.mark.skipif(importlib.util.find_spec("orjson") is None, reason="compares with orjson")
def test_float_texts_are_the_same_with_and_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = [encode(response) for response in float_outputs()]
    assert fast == FLOAT_ROWS
    monkeypatch.setitem(sys.modules, "orjson", None)
    assert [encode(response) for response in float_outputs()] == fast


def test_encode_errors() -> None:
    with pytest.raises(NotAcceptable, match="not UTF-8"):
        encode(predict_response(y=np.array([b"\xff"], object)))
    with pytest.raises(BadRequest, match="inconsistent batch size"):
        encode(predict_response(a=np.zeros(2, np.float32), b=np.zeros(3, np.float32)))
    with pytest.raises(BadRequest, match="has no shape information"):
        encode(predict_response(a=np.zeros(2, np.float32), b=np.float32(1)))


def test_encode_scalars_and_empty_batches() -> None:
    assert encode(predict_response(a=np.float32(1.5), b=np.int32(2))) == b"1.5,2\n"
    assert encode(predict_response(y=np.zeros((0, 3), np.float32))) == b""
    assert encode(predict_response(y=np.zeros((0, 2), np.float32)), CSV_HEADER) == b"y,y\n"


def test_encode_classify_and_regress() -> None:
    response = ClassificationResponse()
    for labels, scores in ((["a", "b,c"], [0.25, 0.75]), (["a", "b,c"], [0.5, 0.5])):
        classification = response.result.classifications.add()
        for label, score in zip(labels, scores, strict=True):
            classification.classes.add(label=label, score=score)
    assert encode(response, CSV_HEADER) == (
        b'label,score,label,score\na,0.25,"b,c",0.75\na,0.5,"b,c",0.5\n'
    )
    scores_only = ClassificationResponse()
    scores_only.result.classifications.add().classes.add(score=0.5)
    assert encode(scores_only) == b"0.5\n"
    regression = RegressionResponse()
    for value in (1.5, -2.0):
        regression.result.regressions.add(value=value)
    assert encode(regression, CSV_HEADER) == b"value\n1.5\n-2.0\n"
