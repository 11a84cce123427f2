"""tfio_handlers.tensors without TensorFlow: round trips, the dtype tables and hostile messages.

The comparisons with TensorFlow itself are in test_tensors_tf.py.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers import protos as P
from tfio_handlers import tensors as T
from tfio_handlers.errors import BadRequest, PayloadTooLarge, Unimplemented
from tfio_handlers.protos import TensorProto, TensorShapeProto

try:  # bfloat16 needs ml_dtypes, which is not a core dependency
    import ml_dtypes
except ImportError:  # pragma: no cover - it comes with the dev extras
    ml_dtypes = None

needs_ml_dtypes = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes is not installed")
AVAILABLE = sorted(T.SUPPORTED_DTYPES - ({P.DT_BFLOAT16} if ml_dtypes is None else set()))
BFLOAT16 = ml_dtypes.bfloat16 if ml_dtypes is not None else None


def proto(dtype: int, dims: list[int], **fields: Any) -> TensorProto:
    """A TensorProto written field by field, the way a hostile client could."""
    p = TensorProto(dtype=dtype, **fields)  # type: ignore[arg-type]
    for d in dims:
        p.tensor_shape.dim.add(size=d)
    return p


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and values; NaNs compared by bit pattern, strings by value."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return a.tolist() == b.tolist()
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


# ------------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------------

SHAPES = hnp.array_shapes(min_dims=0, max_dims=6, min_side=0, max_side=3)


@st.composite
def arrays(draw: st.DrawFn, dt: int) -> np.ndarray:
    """Arrays of every bit pattern of a dtype (NaN payloads, subnormals, -0.0 included)."""
    shape = draw(SHAPES)
    n = math.prod(shape)
    np_dtype = T.numpy_dtype(dt)
    if dt == P.DT_STRING:
        items = draw(
            st.lists(st.one_of(st.binary(max_size=6), st.text(max_size=4)), min_size=n, max_size=n)
        )
        out = np.empty(n, object)
        out[:] = [x.encode() if isinstance(x, str) else x for x in items]
        return out.reshape(shape)
    if dt == P.DT_BOOL:
        return draw(hnp.arrays(np.bool_, shape))
    raw = draw(hnp.arrays(np.uint8, n * np_dtype.itemsize))
    return raw.view(np_dtype).reshape(shape)


@pytest.mark.parametrize("dt", AVAILABLE, ids=T.dtype_name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_every_dtype(dt: int, data: st.DataObject) -> None:
    arr = data.draw(arrays(dt))
    for typed in (False, True):
        p = T.to_tensor_proto(arr, typed_fields=typed)
        assert p.dtype == dt
        assert T.shape_of(p) == arr.shape
        back = T.to_ndarray(TensorProto.FromString(p.SerializeToString()))
        assert same_bits(back, arr)  # every bit pattern, NaN payloads included, in every layout
        if typed or dt == P.DT_STRING:
            assert p.tensor_content == b""
        elif arr.size <= 1:
            # one element: its typed field, unless a Python float would change its bits
            through_python = np.array(arr.tolist(), arr.dtype).reshape(arr.shape)
            assert bool(p.tensor_content) == (not same_bits(through_python, arr))
        else:
            assert p.tensor_content == arr.astype(arr.dtype.newbyteorder("<")).tobytes()


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


def test_read_is_zero_copy_and_read_only_unless_writable() -> None:
    p = T.to_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3))
    view = T.to_ndarray(p)
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1
    own = T.to_ndarray(p, writable=True)
    own[0, 0] = 42
    assert own.flags.writeable and T.to_ndarray(p)[0, 0] == 0
    typed = T.to_ndarray(T.to_tensor_proto(np.arange(3.0), typed_fields=True))
    assert typed.flags.writeable


# ------------------------------------------------------------------------------------------------
# reading every layout
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dt", "fields", "expected"),
    [
        (P.DT_FLOAT, {"float_val": [1.5]}, np.array([1.5, 1.5, 1.5], np.float32)),
        (P.DT_DOUBLE, {"double_val": [1.0, 2.0]}, np.array([1.0, 2.0, 2.0])),
        (P.DT_INT32, {"int_val": [-7]}, np.array([-7, -7, -7], np.int32)),
        (P.DT_INT8, {"int_val": [-128, 127]}, np.array([-128, 127, 127], np.int8)),
        (P.DT_INT16, {"int_val": [-5]}, np.full(3, -5, np.int16)),
        (P.DT_UINT8, {"int_val": [255]}, np.full(3, 255, np.uint8)),
        (P.DT_UINT16, {"int_val": [65535, 1]}, np.array([65535, 1, 1], np.uint16)),
        (P.DT_UINT32, {"uint32_val": [2**32 - 1]}, np.full(3, 2**32 - 1, np.uint32)),
        (P.DT_UINT64, {"uint64_val": [2**64 - 1]}, np.full(3, 2**64 - 1, np.uint64)),
        (P.DT_INT64, {"int64_val": [-(2**63)]}, np.full(3, -(2**63), np.int64)),
        (P.DT_BOOL, {"bool_val": [True, False]}, np.array([True, False, False])),
        (P.DT_HALF, {"half_val": [0x3E00]}, np.full(3, 1.5, np.float16)),
        pytest.param(
            P.DT_BFLOAT16,
            {"half_val": [0x3FC0]},
            np.full(3, 1.5, BFLOAT16) if BFLOAT16 is not None else None,
            marks=needs_ml_dtypes,
        ),
        (P.DT_COMPLEX64, {"scomplex_val": [1, 2]}, np.full(3, 1 + 2j, np.complex64)),
        (P.DT_COMPLEX128, {"dcomplex_val": [1, 2, 3, 4]}, np.array([1 + 2j, 3 + 4j, 3 + 4j])),
        (P.DT_STRING, {"string_val": [b"a", b"b"]}, np.array([b"a", b"b", b"b"], object)),
        (P.DT_FLOAT, {}, np.zeros(3, np.float32)),
        (P.DT_BOOL, {}, np.zeros(3, bool)),
        (P.DT_STRING, {}, np.array([b"", b"", b""], object)),
        (P.DT_FLOAT, {"int_val": [1, 2, 3]}, np.zeros(3, np.float32)),  # other fields: ignored
    ],
)
def test_read_typed_fields_and_broadcast(dt: int, fields: dict[str, Any], expected: Any) -> None:
    got = T.to_ndarray(proto(dt, [3], **fields))
    assert same_bits(got, expected)


def test_read_scalar_and_empty_layouts() -> None:
    assert T.to_ndarray(proto(P.DT_FLOAT, [], float_val=[3.0])).shape == ()
    assert T.to_ndarray(proto(P.DT_FLOAT, [], tensor_content=b"\0\0\x80?")) == 1.0
    # content is ignored for an empty shape, as TensorFlow's runtime does
    assert T.to_ndarray(proto(P.DT_FLOAT, [0, 4], tensor_content=b"\0" * 4)).shape == (0, 4)
    assert T.to_ndarray(proto(P.DT_STRING, [2, 0])).shape == (2, 0)
    huge_but_empty = T.to_ndarray(proto(P.DT_FLOAT, [0, 2**40]))
    assert huge_but_empty.shape == (0, 2**40)


def encode_string_list(items: list[bytes]) -> bytes:
    """TensorFlow's C++ string tensor_content: varint32 lengths, then the bytes."""
    out = bytearray()
    for item in items:
        n = len(item)
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                break
    return bytes(out) + b"".join(items)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_read_string_tensor_content(items: list[bytes]) -> None:
    p = proto(P.DT_STRING, [len(items)], tensor_content=encode_string_list(items))
    assert T.to_ndarray(p).tolist() == items


# ------------------------------------------------------------------------------------------------
# hostile messages
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error", "words"),
    [
        (proto(1, [3], tensor_content=b"\0" * 8), BadRequest, "takes 12"),
        (proto(1, [1], tensor_content=b"\0" * 8), BadRequest, "takes 4"),
        (proto(1, [3], tensor_content=b"\0" * 13), BadRequest, "13 bytes"),
        (proto(1, [-1], float_val=[1.0]), BadRequest, "negative dimension -1"),
        (proto(1, [2, -5]), BadRequest, "negative dimension -5"),
        (proto(1, [2**62, 2**62]), BadRequest, "overflows"),
        (proto(1, [0, 2**62, 2**62]), BadRequest, "overflows"),
        (proto(1, [2**50]), PayloadTooLarge, "more than the limit"),
        (proto(1, [2**62]), BadRequest, "overflows"),
        (proto(1, [2**28 + 1], float_val=[1.0]), PayloadTooLarge, "more than the limit"),
        (proto(1, [1] * 65), BadRequest, "rank 65"),
        (proto(0, [1], float_val=[1.0]), BadRequest, "DT_INVALID"),
        (proto(77, [1]), BadRequest, "unknown tensor dtype enum (77)"),
        (proto(-3, [1]), BadRequest, "unknown tensor dtype enum (-3)"),
        (proto(99, [1]), BadRequest, "unknown"),
        (proto(1000, [1]), BadRequest, "unknown"),
        (proto(20, [1]), Unimplemented, "resource"),
        (proto(21, [1]), Unimplemented, "variant"),
        (proto(11, [1], int_val=[1]), Unimplemented, "qint8"),
        (proto(12, [1]), Unimplemented, "quint8"),
        (proto(13, [1]), Unimplemented, "qint32"),
        (proto(24, [1]), Unimplemented, "float8_e5m2"),
        (proto(29, [1]), Unimplemented, "int4"),
        (proto(33, [1]), Unimplemented, "float4_e2m1fn"),
        (proto(101, [1], float_val=[1.0]), Unimplemented, "float_ref"),
        (proto(1, [2], float_val=[1, 2, 3]), BadRequest, "3 values, more than the 2"),
        (proto(7, [1], string_val=[b"a", b"b"]), BadRequest, "more than the 1"),
        (proto(8, [1], scomplex_val=[1, 2, 3]), BadRequest, "pairs"),
        (proto(18, [2], dcomplex_val=[1]), BadRequest, "pairs"),
        (proto(8, [1], scomplex_val=[1, 2, 3, 4]), BadRequest, "more than the 1"),
        (proto(6, [1], int_val=[128]), BadRequest, "out of range for int8"),
        (proto(5, [1], int_val=[-32769]), BadRequest, "out of range for int16"),
        (proto(4, [1], int_val=[-1]), BadRequest, "out of range for uint8"),
        (proto(17, [1], int_val=[65536]), BadRequest, "out of range for uint16"),
        (proto(19, [1], half_val=[-1]), BadRequest, "bit patterns out of range for half"),
        pytest.param(
            proto(14, [1], half_val=[70000]),
            BadRequest,
            "out of range for bfloat16",
            marks=needs_ml_dtypes,
        ),
        (proto(10, [2], tensor_content=b"\x01\x02"), BadRequest, "other than 0 and 1"),
        (proto(7, [3], tensor_content=b"\x01a"), BadRequest, "too short"),
        (proto(7, [1], tensor_content=b"\x05ab"), BadRequest, "do not add up"),
        (proto(7, [1], tensor_content=b"\x01ab"), BadRequest, "do not add up"),
        (proto(7, [1], tensor_content=b"\xff\xff\xff\xff\xff\xff"), BadRequest, "malformed"),
        (proto(7, [1], tensor_content=b"\x80\x80"), BadRequest, "malformed"),
    ],
)
def test_hostile_messages(message: TensorProto, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        T.to_ndarray(message)
    assert words in str(info.value)


def test_unknown_rank_is_rejected() -> None:
    p = proto(1, [2], float_val=[1.0])
    p.tensor_shape.unknown_rank = True
    with pytest.raises(BadRequest, match="unknown rank"):
        T.to_ndarray(p)


def test_element_limit_is_configurable() -> None:
    p = proto(1, [11], float_val=[1.0])
    with pytest.raises(PayloadTooLarge, match="11 elements, more than the limit of 10"):
        T.to_ndarray(p, max_elements=10)
    assert T.to_ndarray(p, max_elements=11).shape == (11,)
    content = T.to_tensor_proto(np.zeros(11, np.float32))
    with pytest.raises(PayloadTooLarge):
        T.to_ndarray(content, max_elements=10)  # the limit holds for every layout


def test_element_limit_default_can_be_reassigned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(T, "DEFAULT_MAX_ELEMENTS", 4)
    with pytest.raises(PayloadTooLarge):
        T.to_ndarray(proto(1, [5], float_val=[1.0]))
    assert T.to_ndarray(proto(1, [5], float_val=[1.0]), max_elements=5).size == 5


def test_broadcast_within_limit_allocates_only_what_it_returns() -> None:
    out = T.to_ndarray(proto(P.DT_UINT8, [1 << 20], int_val=[7]))
    assert out.nbytes == 1 << 20 and int(out[-1]) == 7


def test_not_a_tensor_proto() -> None:
    with pytest.raises(BadRequest, match=re.escape("tensorflow.TensorProto")):
        T.to_ndarray(TensorShapeProto())  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        T.to_ndarray(b"\x08\x01")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# writing: TensorFlow's rules and errors
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# dtype tables and shapes
# ------------------------------------------------------------------------------------------------


def test_dtype_names() -> None:
    expected = {
        1: "float",
        2: "double",
        3: "int32",
        4: "uint8",
        5: "int16",
        6: "int8",
        7: "string",
        8: "complex64",
        9: "int64",
        10: "bool",
        14: "bfloat16",
        17: "uint16",
        18: "complex128",
        19: "half",
        20: "resource",
        21: "variant",
        22: "uint32",
        23: "uint64",
        101: "float_ref",
        119: "half_ref",
    }
    for dt, name in expected.items():
        assert T.dtype_name(dt) == name
    assert T.dtype_name(0) == "INVALID"
    assert T.dtype_name(77) == "unknown dtype enum (77)"
    assert T.dtype_name(100) == "unknown dtype enum (100)"


@pytest.mark.parametrize(
    ("spelling", "dt"),
    [
        (1, P.DT_FLOAT),
        (np.int64(3), P.DT_INT32),
        ("float", P.DT_FLOAT),
        ("float32", P.DT_FLOAT),
        ("DT_FLOAT", P.DT_FLOAT),
        ("dt_float", P.DT_FLOAT),
        ("double", P.DT_DOUBLE),
        ("float64", P.DT_DOUBLE),
        ("half", P.DT_HALF),
        ("float16", P.DT_HALF),
        ("DT_HALF", P.DT_HALF),
        ("bfloat16", P.DT_BFLOAT16),
        ("string", P.DT_STRING),
        ("DT_STRING", P.DT_STRING),
        ("bool", P.DT_BOOL),
        ("uint64", P.DT_UINT64),
        ("<f4", P.DT_FLOAT),
        ("f8", P.DT_DOUBLE),
        (np.float32, P.DT_FLOAT),
        (np.dtype(">i2"), P.DT_INT16),
        (np.dtype("U5"), P.DT_STRING),
        (object, P.DT_STRING),
        (float, P.DT_FLOAT),
        (bool, P.DT_BOOL),
        (int, P.DT_INT64),
        (str, P.DT_STRING),
        (np.complex64, P.DT_COMPLEX64),
        pytest.param(BFLOAT16, P.DT_BFLOAT16, marks=needs_ml_dtypes),
    ],
)
def test_as_data_type(spelling: object, dt: int) -> None:
    assert T.as_data_type(spelling) == dt


def test_as_data_type_duck_types_tf_dtypes() -> None:
    class FakeDType:
        as_datatype_enum = 9

    assert T.as_data_type(FakeDType()) == P.DT_INT64


@pytest.mark.parametrize(
    ("spelling", "error"),
    [
        ("floaty", BadRequest),
        (77, BadRequest),
        (0, BadRequest),
        (True, BadRequest),
        ([1], BadRequest),
        ("qint8", Unimplemented),
        ("DT_RESOURCE", Unimplemented),
        (20, Unimplemented),
        ("datetime64[s]", Unimplemented),
        (np.float128 if hasattr(np, "float128") else np.dtype("M8[s]"), Unimplemented),
    ],
)
def test_as_data_type_errors(spelling: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        T.as_data_type(spelling)


def test_numpy_dtype_and_data_type_of_agree() -> None:
    for dt in AVAILABLE:
        np_dtype = T.numpy_dtype(dt)
        assert T.data_type_of(np_dtype) == dt
        assert np_dtype.byteorder in "<|="
    assert T.data_type_of(np.dtype(">f8")) == P.DT_DOUBLE
    assert T.data_type_of(np.dtype("S3")) == P.DT_STRING
    with pytest.raises(Unimplemented):
        T.data_type_of(np.dtype([("a", "i4")]))
    if ml_dtypes is not None:
        with pytest.raises(Unimplemented):
            T.data_type_of(ml_dtypes.float8_e5m2)
    with pytest.raises(BadRequest):
        T.numpy_dtype(0)
    with pytest.raises(Unimplemented):
        T.numpy_dtype(P.DT_QINT8)


def test_bfloat16_without_ml_dtypes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(T, "_BFLOAT16", [])
    monkeypatch.setattr(T, "_NUMPY", {k: v for k, v in T._NUMPY.items() if k != P.DT_BFLOAT16})
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # makes `import ml_dtypes` fail
    p = proto(P.DT_BFLOAT16, [1], half_val=[0x3F80])
    with pytest.raises(Unimplemented, match="ml_dtypes") as info:
        T.to_ndarray(p)
    assert info.value.status_code == 501
    with pytest.raises(Unimplemented, match="ml_dtypes"):
        T.to_tensor_proto([1.0], dtype="bfloat16")
    # the other dtypes do not need it
    assert T.to_ndarray(proto(P.DT_FLOAT, [1], float_val=[1.0]))[0] == 1.0


def test_make_shape_and_shape_of() -> None:
    sp = T.make_shape([2, 3])
    assert [d.size for d in sp.dim] == [2, 3] and not sp.unknown_rank
    assert T.shape_of(sp) == (2, 3)
    assert T.shape_of(T.make_shape([])) == ()
    partial = T.make_shape([-1, 4])
    assert [d.size for d in partial.dim] == [-1, 4]
    assert T.make_shape(None).unknown_rank
    assert T.shape_of(T.to_tensor_proto(np.zeros((1, 2, 0)))) == (1, 2, 0)
    with pytest.raises(BadRequest, match="negative dimension"):
        T.shape_of(partial)
    with pytest.raises(BadRequest, match="unknown rank"):
        T.shape_of(T.make_shape(None))
    with pytest.raises(BadRequest, match="negative dimension -2"):
        T.make_shape([-2])
    with pytest.raises(BadRequest, match="sequence of integers"):
        T.make_shape("12")
    with pytest.raises(BadRequest, match="rank 65"):
        T.make_shape([1] * 65)
    with pytest.raises(BadRequest):
        T.shape_of(b"")  # type: ignore[arg-type]


SIGNALLING_NAN_32 = bytes.fromhex("8080807f")  # float32 0x7f808080: quiet bit clear, payload set


@pytest.mark.parametrize("shape", [(), (1,), (3,)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.complex64], ids=lambda d: d.__name__)
def test_signalling_nan_bits_read_back_as_written(dtype: type, shape: tuple[int, ...]) -> None:
    """A Python float quiets a float32 signalling NaN; the writer must not pass one through it."""
    n = math.prod(shape)
    parts = SIGNALLING_NAN_32 * (n * (2 if dtype is np.complex64 else 1))
    arr = np.frombuffer(parts, dtype).reshape(shape)
    back = T.to_ndarray(T.to_tensor_proto(arr))
    assert back.tobytes() == arr.tobytes()
    # Typed fields carry the same bits on the wire (what a C++ reader sees).
    typed = T.to_tensor_proto(arr, typed_fields=True)
    assert not typed.tensor_content
    assert parts in typed.SerializeToString()
    assert T.to_ndarray(typed).tobytes() == arr.tobytes()


def test_rows_of_no_elements_count_against_the_limit() -> None:
    """``[N, 0]`` holds nothing, but writers of nested lists write N rows: N is what is bounded."""
    hollow = proto(P.DT_FLOAT, [10**6, 0])
    with pytest.raises(PayloadTooLarge, match="rows of no elements"):
        T.to_ndarray(hollow, max_elements=1000)
    assert T.to_ndarray(hollow, max_elements=10**6).shape == (10**6, 0)
    assert T.to_ndarray(proto(P.DT_FLOAT, [0, 10**6]), max_elements=1000).shape == (0, 10**6)


def test_shape_extent() -> None:
    from tfio_handlers.config import Limits, shape_extent

    assert [shape_extent(d) for d in ([], [3], [2, 3], [5, 0], [5, 0, 7], [0, 9])] == [
        1,
        3,
        6,
        5,
        5,
        1,
    ]
    with pytest.raises(PayloadTooLarge, match="rows"):
        Limits(max_elements=4).check_shape([5, 0], "output 'y'")
    Limits(max_elements=4).check_shape([0, 5])
