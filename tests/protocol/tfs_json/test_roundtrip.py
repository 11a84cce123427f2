"""Round trips: arrays → request JSON → tensors, and tensors → response JSON → tensors.

A response body read back as a request body (``outputs`` → ``inputs``, ``predictions`` →
``instances``) must give the same tensors, for every dtype TF Serving's JSON carries; TensorFlow's
``tf.make_ndarray`` must read our request tensors as the arrays they came from.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers.protocol.tfs_json import (
    JsonFormat,
    predict_request_from_json,
    predict_response_to_json,
)
from tfio_handlers.protocol.tfs_json.text import SMALL, decimal_texts
from tfio_handlers.protos import SignatureDef
from tfio_handlers.tensors import data_type_of, to_ndarray, to_tensor_proto

NUMERIC = [
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.uint8,
    np.int64,
    np.uint32,
    np.uint64,
    np.bool_,
]

_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)


@st.composite
def arrays(draw: st.DrawFn, min_dims: int = 0) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=3))
    kind = draw(st.sampled_from([*NUMERIC, bytes]))
    if kind is bytes:
        values = draw(
            st.lists(st.binary(max_size=6), min_size=math.prod(shape), max_size=math.prod(shape))
        )
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    return draw(hnp.arrays(np.dtype(kind), shape))


def signature(**dtypes: int) -> dict[str, SignatureDef]:
    sig = SignatureDef()
    for name, dtype in dtypes.items():
        sig.inputs[name].dtype = dtype
    return {"serving_default": sig}


def to_json_value(array: np.ndarray) -> Any:
    """The array as a JSON value a client would send: b64 objects for bytes."""
    if array.dtype == object:
        flat = [{"b64": base64.b64encode(v).decode()} for v in array.ravel()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(array.shape).tolist()
    return array.tolist()


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":  # -0.0 keeps its sign; NaN's sign is not carried by JSON
        numbers = ~np.isnan(a)
        return bool(np.array_equal(a, b, equal_nan=True)) and bool(
            (np.signbit(a[numbers]) == np.signbit(b[numbers])).all()
        )
    return bool(np.array_equal(a, b))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays())
def test_request_json_gives_the_same_tensor(array: np.ndarray) -> None:
    dtype = data_type_of(array.dtype)
    sigs = signature(x=dtype)
    body = json.dumps({"inputs": to_json_value(array)})
    message, form = predict_request_from_json(body, sigs)
    assert form is JsonFormat.COLUMNAR
    assert same(to_ndarray(message.inputs["x"]), array)
    if array.ndim:
        body = json.dumps({"instances": to_json_value(array)})
        message, form = predict_request_from_json(body, sigs)
        assert form is JsonFormat.ROW
        assert same(to_ndarray(message.inputs["x"]), array)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(), st.booleans(), st.booleans())
def test_response_json_reads_back_as_the_same_tensor(
    array: np.ndarray, bytes_name: bool, typed_fields: bool
) -> None:
    name = "y_bytes" if bytes_name else "y"
    proto = to_tensor_proto(array, typed_fields=typed_fields)
    text = predict_response_to_json({name: proto}, JsonFormat.COLUMNAR)
    assert text.startswith(b'{\n    "outputs": ')
    body = b'{"inputs"' + text[len(b'{\n    "outputs"') :]
    # Raw strings (no _bytes suffix) go out as raw bytes and are read back as such.
    message, _ = predict_request_from_json(body, signature(**{name: data_type_of(array.dtype)}))
    assert same(to_ndarray(message.inputs[name]), array)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(arrays(min_dims=1), min_size=1, max_size=3), st.integers(1, 3))
def test_row_responses_read_back_as_instances(parts: list[np.ndarray], batch: int) -> None:
    outputs = {}
    arrays_by_name = {}
    for i, part in enumerate(parts):
        array = np.stack([part] * batch) if part.size else part
        name = f"out{i}_bytes" if array.dtype == object else f"out{i}"
        arrays_by_name[name] = array
        outputs[name] = to_tensor_proto(array)
    text = predict_response_to_json(outputs, JsonFormat.ROW)
    if len({a.shape[0] for a in arrays_by_name.values()}) > 1:
        return
    body = b'{"instances"' + text[len(b'{\n    "predictions"') :]
    sigs = signature(**{n: data_type_of(a.dtype) for n, a in arrays_by_name.items()})
    message, _ = predict_request_from_json(body, sigs)
    for name, array in arrays_by_name.items():
        assert same(to_ndarray(message.inputs[name]), array)


def _reference_decimal(value: float, single: bool) -> str:
    """TF Serving's ``WriteDecimal``, one value at a time, as its code reads."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    back = np.float32(float(text)) if single else float(text)
    if back != (np.float32(value) if single else value):
        text = f"{value:.9g}" if single else f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(0, 40), elements=st.floats(width=32)))
def test_float32_texts_match_the_reference(values: np.ndarray) -> None:
    expected = [_reference_decimal(float(v), True) for v in values]
    assert decimal_texts(values, single=True, strict=False) == expected


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 40)))
def test_float64_texts_match_the_reference(values: np.ndarray) -> None:
    expected = [_reference_decimal(float(v), False) for v in values]
    assert decimal_texts(values, single=False, strict=False) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)]).flatmap(
        lambda dtype: hnp.arrays(dtype, st.integers(1, SMALL), elements=hnp.from_dtype(dtype))
    ),
    st.booleans(),
)
def test_small_arrays_are_written_as_the_bulk_path_writes_them(
    values: np.ndarray, strict: bool
) -> None:
    """Arrays of up to ``SMALL`` values take a value-by-value path: the same texts as the bulk
    path gives the same values inside a bigger array."""
    single = values.dtype == np.float32
    padded = np.concatenate([values, np.zeros(SMALL + 1, values.dtype)])
    bulk = decimal_texts(padded, single=single, strict=strict)[: values.size]
    assert decimal_texts(values, single=single, strict=strict) == bulk


def test_float32_texts_over_many_magnitudes() -> None:
    rng = np.random.default_rng(7)
    values = (rng.random(20000) * 10.0 ** rng.integers(-45, 39, 20000)).astype(np.float32)
    with np.errstate(over="ignore"):
        rounded = np.round(values, 3)
    values = np.concatenate([values, rounded, np.float32([1e6, 999999.5, 2**24])])
    expected = [_reference_decimal(float(v), True) for v in values]
    assert decimal_texts(values, single=True, strict=False) == expected


@pytest.mark.tensorflow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays())
def test_tensorflow_reads_our_request_tensors(array: np.ndarray) -> None:
    tf = pytest.importorskip("tensorflow")
    from tensorflow.core.framework import tensor_pb2

    body = json.dumps({"inputs": to_json_value(array)})
    message, _ = predict_request_from_json(body, signature(x=data_type_of(array.dtype)))
    theirs = tensor_pb2.TensorProto.FromString(message.inputs["x"].SerializeToString())
    got = tf.make_ndarray(theirs)
    if array.dtype == object:
        assert got.tolist() == array.tolist()
    else:
        assert same(got, array)
