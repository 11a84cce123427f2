"""The JSON codec's SageMaker conveniences: plain bodies, TensorProto JSON, response forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from codec_support import CLASSIFY, context, signature
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers.errors import BadRequest, UnsupportedMediaType
from tfio_handlers.formats.json import decode_json
from tfio_handlers.media import parse_media_type
from tfio_handlers.protocol.arrays import PredictArrays
from tfio_handlers.protocol.requests import build_request
from tfio_handlers.protos import (
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    ClassificationRequest,
    TensorProto,
    to_json,
)
from tfio_handlers.tensors import to_tensor_proto

JSON = parse_media_type("application/json")
NUMERIC = {DT_FLOAT: np.float32, DT_DOUBLE: np.float64, DT_INT32: np.int32, DT_INT64: np.int64}


def decode(body: bytes, sig: object = None, media: object = JSON) -> tuple[object, object]:
    ctx = context(sig)  # type: ignore[arg-type]
    return decode_json(body, media, ctx), ctx  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(
    dtype=st.sampled_from(list(NUMERIC)),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
    data=st.data(),
)
def test_plain_batch_round_trip(dtype: int, shape: tuple[int, ...], data: st.DataObject) -> None:
    """A list of lists is a batch, typed by the signature's dtype, values unchanged."""
    np_dtype = NUMERIC[dtype]
    elements = (
        hnp.from_dtype(np.dtype(np_dtype), allow_nan=False, allow_infinity=False)
        if np.dtype(np_dtype).kind == "f"
        else hnp.from_dtype(np.dtype(np_dtype))
    )
    array = data.draw(hnp.arrays(np_dtype, (2, *shape), elements=elements))
    sig = signature({"x": (dtype, None)})
    value, ctx = decode(json.dumps(array.tolist()).encode(), sig)
    request = build_request(value, ctx)  # type: ignore[arg-type]
    assert isinstance(request, PredictArrays)
    back = request.inputs["x"]
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_flat_list_is_one_instance_and_dict_is_named_inputs() -> None:
    sig = signature({"x": (DT_FLOAT, [-1, 4])})
    value, ctx = decode(b"[6.4, 3.2, 4.5, 1.5]", sig)
    assert build_request(value, ctx).inputs["x"].shape == (1, 4)  # type: ignore[arg-type,union-attr]
    two = signature({"a": (DT_FLOAT, None), "b": (DT_INT64, None)})
    value, ctx = decode(b'{"a": [1.5], "b": [2]}', two)
    request = build_request(value, ctx)  # type: ignore[arg-type]
    assert request.inputs["b"].dtype == np.int64  # type: ignore[union-attr]


def test_classify_signature_makes_examples() -> None:
    sig = signature({"inputs": (DT_STRING, [-1])}, CLASSIFY, {"scores": DT_FLOAT})
    value, ctx = decode(b"[[6, 3, 4, 1], [5.0, 3.0, 1.0, 0.2]]", sig)
    request = build_request(value, ctx)  # type: ignore[arg-type]
    assert isinstance(request, ClassificationRequest)
    examples = request.input.example_list.examples
    assert [list(e.features.feature["inputs"].float_list.value) for e in examples] == [
        [6.0, 3.0, 4.0, 1.0],
        pytest.approx([5.0, 3.0, 1.0, 0.2]),
    ]


def test_tensor_proto_json_is_accepted() -> None:
    tensor = to_tensor_proto(np.array([[1.0, 2.0]], np.float32), typed_fields=True)
    value, _ = decode(to_json(tensor).encode())
    assert isinstance(value, TensorProto) and value == tensor


def test_lossy_casts_are_refused() -> None:
    sig = signature({"x": (DT_INT32, None)})
    value, ctx = decode(b"[[1.5, 2.0]]", sig)
    with pytest.raises(BadRequest, match="fraction"):
        build_request(value, ctx)  # type: ignore[arg-type]
    value, ctx = decode(b"[[3000000000]]", sig)
    with pytest.raises(BadRequest, match="out of range"):
        build_request(value, ctx)  # type: ignore[arg-type]


def test_charsets() -> None:
    sig = signature({"x": (DT_STRING, None)})
    latin = parse_media_type("application/json; charset=latin-1")
    value, ctx = decode('[["é"]]'.encode("latin-1"), sig, latin)
    assert build_request(value, ctx).inputs["x"][0, 0] == "é".encode()  # type: ignore[arg-type,union-attr]
    with pytest.raises(UnsupportedMediaType):
        decode(b"[1]", None, parse_media_type("application/json; charset=klingon"))


def test_tfs_keys_only_count_at_the_top_level() -> None:
    """A feature named ``inputs`` inside ``examples`` does not make a columnar predict body."""
    sig = signature({"inputs": (DT_STRING, [-1])}, CLASSIFY, {"scores": DT_FLOAT})
    value, _ = decode(b'{"examples": [{"inputs": [1.0]}]}', sig)
    assert isinstance(value, ClassificationRequest)
    floats = signature({"x": (DT_FLOAT, None)})
    value, ctx = decode(b'{"note": "\\"inputs\\": [1]", "instances": [[1.0]]}', floats)
    assert isinstance(value, PredictArrays)
    assert ctx.response_form == "row"  # type: ignore[attr-defined]
