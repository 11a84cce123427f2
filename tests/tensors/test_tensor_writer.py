"""tfio_handlers.tensors.writer: numpy and Python values → TensorProto, TensorFlow's rules and errors."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from tfio_handlers import protos as P
from tfio_handlers import tensors as T
from tfio_handlers.errors import BadRequest, Unimplemented
from tfio_handlers.protos import TensorProto, TensorShapeProto


def test_write_layouts() -> None:
    one = T.to_tensor_proto(np.float32(2.5))
    assert list(one.float_val) == [2.5] and not one.tensor_content
    two = T.to_tensor_proto(np.array([1, 2], np.int16))
    assert two.tensor_content == b"\x01\x00\x02\x00" and not two.int_val
    half = T.to_tensor_proto(np.array([1.5], np.float16))
    assert list(half.half_val) == [np.array(1.5, np.float16).view(np.uint16)]
    cplx = T.to_tensor_proto(np.array([1 + 2j], np.complex64), typed_fields=True)
    assert list(cplx.scomplex_val) == [1.0, 2.0]
    strs = T.to_tensor_proto(np.array(["a", "é"]))
    assert list(strs.string_val) == [b"a", "é".encode()]
    empty = T.to_tensor_proto(np.zeros((0, 3), np.float32))
    assert T.shape_of(empty) == (0, 3) and empty.ByteSize() == len(
        TensorProto(dtype=1, tensor_shape=T.make_shape([0, 3])).SerializeToString()
    )


def test_write_big_endian_and_strided_arrays() -> None:
    be = np.arange(6, dtype=">f4").reshape(2, 3)
    p = T.to_tensor_proto(be)
    assert p.tensor_content == np.arange(6, dtype="<f4").tobytes()
    strided = np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2]
    q = T.to_tensor_proto(strided)
    np.testing.assert_array_equal(T.to_ndarray(q), strided)
    be_half = np.array([1.5], ">f2")
    assert T.to_ndarray(T.to_tensor_proto(be_half))[0] == 1.5


def test_shape_cache_is_not_shared_with_results() -> None:
    a = T.to_tensor_proto(np.zeros((2, 2), np.float32))
    a.tensor_shape.dim[0].size = 7
    b = T.to_tensor_proto(np.zeros((2, 2), np.float32))
    assert T.shape_of(b) == (2, 2)


def test_explicit_dtype_on_arrays() -> None:
    arr = np.arange(4, dtype=np.float32).reshape(2, 2)
    plain = T.to_tensor_proto(arr).SerializeToString()
    for same in (P.DT_FLOAT, "float", "DT_FLOAT", np.float32, np.dtype("<f4")):
        assert T.to_tensor_proto(arr, dtype=same).SerializeToString() == plain
    cast = T.to_tensor_proto(arr, dtype="float64")
    assert cast.dtype == P.DT_DOUBLE and T.to_ndarray(cast).tolist() == arr.tolist()
    assert T.to_tensor_proto(arr, dtype=P.DT_INT8).tensor_content == bytes([0, 1, 2, 3])
    with pytest.raises(BadRequest, match="unknown dtype name"):
        T.to_tensor_proto(arr, dtype="floaty")
    with pytest.raises(BadRequest):
        T.to_tensor_proto(arr, dtype=77)


def test_tensor_proto_values_pass_through() -> None:
    p = T.to_tensor_proto(np.ones(3, np.float32))
    assert T.to_tensor_proto(p, dtype="int32", shape=[9]) is p


def values_of(p: TensorProto) -> list[Any]:
    return list(T.to_ndarray(p).ravel().tolist())


def test_python_value_inference() -> None:
    assert T.to_tensor_proto(1.0).dtype == P.DT_FLOAT
    assert T.to_tensor_proto(1).dtype == P.DT_INT32
    assert T.to_tensor_proto([1, 2**40]).dtype == P.DT_INT64
    assert T.to_tensor_proto([2**63]).dtype == P.DT_UINT64
    assert T.to_tensor_proto([1, 2.5]).dtype == P.DT_FLOAT
    assert T.to_tensor_proto([True, False]).dtype == P.DT_BOOL
    assert T.to_tensor_proto([1 + 2j]).dtype == P.DT_COMPLEX128
    assert T.to_tensor_proto(["a", b"b"]).dtype == P.DT_STRING
    assert T.to_tensor_proto(b"raw").string_val == [b"raw"]
    assert T.to_tensor_proto([]).dtype == P.DT_FLOAT
    assert T.shape_of(T.to_tensor_proto([[], []])) == (2, 0)
    assert T.shape_of(T.to_tensor_proto(((1, 2), (3, 4)))) == (2, 2)
    assert T.to_tensor_proto(np.float64(1.5)).dtype == P.DT_DOUBLE  # numpy keeps its dtype
    assert T.to_tensor_proto(np.array([1, 2])).dtype == P.DT_INT64
    stacked = T.to_tensor_proto([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    assert T.shape_of(stacked) == (2, 2) and stacked.dtype == P.DT_FLOAT


def test_shape_argument() -> None:
    assert values_of(T.to_tensor_proto(5.0, shape=[2, 3])) == [5.0] * 6
    assert values_of(T.to_tensor_proto([1, 2], shape=[2, 2])) == [1, 2, 2, 2]
    reshaped = T.to_tensor_proto([[1, 2, 3], [4, 5, 6]], shape=[6])
    assert T.shape_of(reshaped) == (6,) and values_of(reshaped) == [1, 2, 3, 4, 5, 6]
    assert T.shape_of(T.to_tensor_proto([1, 2, 3], shape=[0])) == (0,)  # TF ignores the values
    assert T.to_tensor_proto(["a"], shape=[0]).dtype == P.DT_FLOAT
    assert values_of(T.to_tensor_proto(["x"], shape=[3])) == [b"x"] * 3
    assert T.shape_of(T.to_tensor_proto(np.zeros(4), shape=np.array([2, 2]))) == (2, 2)
    with pytest.raises(
        BadRequest, match=re.escape("Too many elements provided. Takes at most 2, but got 3.")
    ):
        T.to_tensor_proto([1, 2, 3], shape=[2])
    with pytest.raises(BadRequest, match="Too many elements"):
        T.to_tensor_proto(np.ones(3), shape=[0])
    with pytest.raises(BadRequest, match="negative dimension"):
        T.to_tensor_proto(1.0, shape=[-1])
    with pytest.raises(BadRequest, match="sequence of integers"):
        T.to_tensor_proto(1.0, shape=[2.5])  # type: ignore[list-item]
    with pytest.raises(BadRequest, match="sequence of integers"):
        T.to_tensor_proto(1.0, shape=[None])  # type: ignore[list-item]
    with pytest.raises(BadRequest, match="overflows"):
        T.to_tensor_proto(1.0, shape=[2**62, 2**62])


def test_explicit_dtype_rules() -> None:
    assert T.to_tensor_proto([1, 2], dtype="float").dtype == P.DT_FLOAT
    assert values_of(T.to_tensor_proto([True], dtype="int32")) == [1]
    assert values_of(T.to_tensor_proto(np.array([1.7]), dtype=P.DT_INT32)) == [1]  # astype
    assert values_of(T.to_tensor_proto(np.array(["1.5"]), dtype="float32")) == [1.5]
    assert math.isinf(values_of(T.to_tensor_proto([1e300], dtype="float32"))[0])
    with pytest.raises(BadRequest, match=re.escape("Expected int32, but got 1.0 of type 'float'.")):
        T.to_tensor_proto([1.0], dtype="int32")
    with pytest.raises(BadRequest, match="Expected bool, but got 1 of type 'int'"):
        T.to_tensor_proto([1], dtype="bool")
    with pytest.raises(BadRequest, match="Expected string, but got 1 of type 'int'"):
        T.to_tensor_proto([1], dtype="string")
    with pytest.raises(BadRequest, match="Expected float32, but got '1' of type 'str'"):
        T.to_tensor_proto(["1"], dtype="float32")
    with pytest.raises(BadRequest, match="Expected float32, but got 1j"):
        T.to_tensor_proto([1j], dtype=np.float32)
    with pytest.raises(BadRequest, match="out of range for int8"):
        T.to_tensor_proto([300], dtype="int8")  # TensorFlow silently wraps to 44
    with pytest.raises(BadRequest, match="out of range for uint32"):
        T.to_tensor_proto([-1], dtype="uint32")
    with pytest.raises(BadRequest, match="Expected string, but got an array of float64"):
        T.to_tensor_proto(np.array([1.5]), dtype="string")
    with pytest.raises(BadRequest, match="cannot convert"):
        T.to_tensor_proto(np.array(["x"]), dtype="float32")


def test_python_value_errors() -> None:
    with pytest.raises(BadRequest, match="None values not supported"):
        T.to_tensor_proto(None)
    with pytest.raises(BadRequest, match="dense tensor"):
        T.to_tensor_proto([[1, 2], [3]])
    with pytest.raises(BadRequest, match="dense tensor"):
        T.to_tensor_proto([[1, 2], 3])
    with pytest.raises(BadRequest, match="strings are mixed"):
        T.to_tensor_proto([1, "a"])
    with pytest.raises(BadRequest, match="not a number, bool or string"):
        T.to_tensor_proto([1, None])
    with pytest.raises(BadRequest, match="not a number, bool or string"):
        T.to_tensor_proto([{"a": 1}])
    with pytest.raises(BadRequest, match="out of range for any integer"):
        T.to_tensor_proto([2**70])
    with pytest.raises(BadRequest, match="not str or bytes"):
        T.to_tensor_proto(np.array([1, "a"], dtype=object))
    with pytest.raises(BadRequest, match="not valid Unicode"):
        T.to_tensor_proto(["\udcff"])
    with pytest.raises(BadRequest, match="nested more than 64"):
        nested: Any = 1.0
        for _ in range(70):
            nested = [nested]
        T.to_tensor_proto(nested)
    with pytest.raises(Unimplemented, match="datetime64"):
        T.to_tensor_proto(np.array(["2020-01-01"], dtype="datetime64[D]"))
    with pytest.raises(BadRequest):
        T.to_tensor_proto(TensorShapeProto())


def test_mixed_long_string_does_not_allocate() -> None:
    """numpy (and TensorFlow) would build a count x longest fixed-width array: here 400 GB."""
    values: list[Any] = [1.0, "x" * 1_000_000, *([1.0] * 100_000)]
    with pytest.raises(BadRequest, match="strings are mixed"):
        T.to_tensor_proto(values)
    with pytest.raises(BadRequest, match="Expected float32"):
        T.to_tensor_proto(values, dtype="float32")


def test_float_values_round_to_float32_like_tensorflow() -> None:
    value = 0.1 + 2**-30
    assert values_of(T.to_tensor_proto([value, value]))[0] == float(np.float32(value))
    big = 2**53 + 1
    assert values_of(T.to_tensor_proto([big, big], dtype="float32"))[0] == float(
        np.array(big).astype(np.float32)
    )
