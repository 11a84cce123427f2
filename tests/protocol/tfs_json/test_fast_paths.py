"""The fast path of predict_response_to_json: the same document, values equal to the last bit."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers.errors import BadRequest
from tfio_handlers.protocol.tfs_json import (
    JsonFormat,
    predict_response_to_json,
)
from tfio_handlers.protocol.tfs_json.responses import FAST_TEXT_THRESHOLD
from tfio_handlers.protos import PredictResponse
from tfio_handlers.tensors import to_tensor_proto

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_]


def response(**arrays: np.ndarray) -> PredictResponse:
    message = PredictResponse()
    for name, array in arrays.items():
        message.outputs[name].CopyFrom(to_tensor_proto(array, typed_fields=True))
    return message


def values(document: object, dtype: type) -> np.ndarray:
    return np.array(document, dtype=dtype)


@settings(max_examples=25, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    rows=st.integers(1, 3),
    format=st.sampled_from([JsonFormat.ROW, JsonFormat.COLUMNAR]),
    data=st.data(),
)
def test_fast_equals_exact(dtype: type, rows: int, format: JsonFormat, data: st.DataObject) -> None:
    columns = FAST_TEXT_THRESHOLD // rows + 1
    elements = (
        hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False)
        if np.dtype(dtype).kind == "f"
        else hnp.from_dtype(np.dtype(dtype))
    )
    array = data.draw(hnp.arrays(dtype, (rows, columns), elements=elements, fill=elements))
    message = response(y=array, z=np.arange(rows, dtype=np.int64))
    fast = json.loads(predict_response_to_json(message, format, fast=True))
    exact = json.loads(predict_response_to_json(message, format))
    if format is JsonFormat.ROW:
        for got, want in zip(fast["predictions"], exact["predictions"], strict=True):
            np.testing.assert_array_equal(values(got["y"], dtype), values(want["y"], dtype))
            assert got["z"] == want["z"]
        np.testing.assert_array_equal(values([p["y"] for p in fast["predictions"]], dtype), array)
    else:
        np.testing.assert_array_equal(values(fast["outputs"]["y"], dtype), array)
        assert fast["outputs"]["z"] == exact["outputs"]["z"]


def test_small_outputs_keep_tf_serving_text() -> None:
    message = response(y=np.array([[9000000.0, 0.1]], dtype=np.float32))
    assert predict_response_to_json(message, JsonFormat.ROW, fast=True) == (
        predict_response_to_json(message, JsonFormat.ROW)
    )


def test_non_finite_and_errors_take_the_exact_path() -> None:
    big = np.ones((2, FAST_TEXT_THRESHOLD), dtype=np.float32)
    big[1, 3] = np.nan
    text = predict_response_to_json(response(y=big), JsonFormat.ROW, fast=True)
    assert b"NaN" in text
    ragged = response(y=np.ones((2, FAST_TEXT_THRESHOLD), np.float32), z=np.ones(3, np.int64))
    with pytest.raises(BadRequest, match="inconsistent batch size"):
        predict_response_to_json(ragged, JsonFormat.ROW, fast=True)


# -- the request side: the simdjson fast path gives the exact path's very message ------------------


REQUEST_DTYPES = {
    np.float32: 1,
    np.float64: 2,
    np.int32: 3,
    np.int64: 9,
    np.uint8: 4,
}


def signatures_for(dtype_enum: int) -> dict[str, Any]:
    from tfio_handlers.protos import SignatureDef, TensorInfo

    signature = SignatureDef()
    signature.inputs["x"].CopyFrom(TensorInfo(name="x:0", dtype=dtype_enum))  # type: ignore[arg-type]
    return {"serving_default": signature}


@pytest.mark.skipif(
    importlib.util.find_spec("simdjson") is None, reason="compares with pysimdjson (the fast extra)"
)
@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(list(REQUEST_DTYPES)),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5),
    key=st.sampled_from(["instances", "inputs"]),
    data=st.data(),
)
def test_request_fast_path_builds_the_exact_message(
    dtype: type, shape: tuple[int, ...], key: str, data: st.DataObject
) -> None:
    from tfio_handlers.protocol.tfs_json import predict_request_from_json

    elements = (
        hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False)
        if np.dtype(dtype).kind == "f"
        else hnp.from_dtype(np.dtype(dtype))
    )
    array = data.draw(hnp.arrays(dtype, shape, elements=elements))
    body = json.dumps({key: array.tolist()}).encode()
    signatures = signatures_for(REQUEST_DTYPES[dtype])
    fast = predict_request_from_json(body, signatures)
    exact = predict_request_from_json(body, signatures, fast=False)
    assert fast == exact
