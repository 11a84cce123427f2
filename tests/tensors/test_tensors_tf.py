"""tfio_handlers.tensors against TensorFlow itself: ``tf.make_tensor_proto``, ``tf.make_ndarray``
and the C++ runtime's ``Tensor::FromProto`` (through ``tf.io.parse_tensor``).

Every dtype, shapes of rank 0 to 6 with zero-sized dimensions, every layout. Deliberate
differences from TensorFlow are asserted explicitly at the end.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers import protos as P
from tfio_handlers import tensors as T
from tfio_handlers import testing
from tfio_handlers.errors import BadRequest
from tfio_handlers.protos import TensorProto

tf = pytest.importorskip("tensorflow")
pytestmark = [
    pytest.mark.tensorflow,
    # make_tensor_proto itself warns when float64 values overflow float32
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]

from tensorflow.core.framework import tensor_pb2  # noqa: E402

TFTensorProto = tensor_pb2.TensorProto

# The dtypes TensorFlow's make_tensor_proto writes to tensor_content (tensor_util.py).
TF_CONTENT = {
    P.DT_HALF,
    P.DT_FLOAT,
    P.DT_DOUBLE,
    P.DT_INT32,
    P.DT_UINT8,
    P.DT_INT16,
    P.DT_INT8,
    P.DT_INT64,
    P.DT_UINT32,
    P.DT_UINT64,
    P.DT_BFLOAT16,
}
ALL = sorted(T.SUPPORTED_DTYPES)
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bit patterns (strings: equal bytes)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return [bytes(x) for x in a.ravel()] == [bytes(x) for x in b.ravel()]
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def nan_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and values, any NaN equal to any NaN."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return same_bits(a, b)
    with np.errstate(invalid="ignore"):
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fcV"))


def tf_of(p: TensorProto) -> Any:
    return TFTensorProto.FromString(p.SerializeToString())


def ours_of(p: Any) -> TensorProto:
    return TensorProto.FromString(p.SerializeToString())


def cpp_read(p: TensorProto, dt: int) -> np.ndarray:
    """TensorFlow's C++ reader (Tensor::FromProto) on our message."""
    out = tf.io.parse_tensor(p.SerializeToString(), tf.dtypes.as_dtype(dt)).numpy()
    return np.asarray(out, dtype=object if dt == P.DT_STRING else None)


def arrays(dt: int, shape: tuple[int, ...] | None = None) -> st.SearchStrategy[np.ndarray]:
    """Arrays of every bit pattern of a dtype (NaN payloads, infinities, subnormals, -0.0)."""
    return testing.arrays(dt, shape, max_dims=6)


# ------------------------------------------------------------------------------------------------
# writing arrays: same bytes as make_tensor_proto where it writes tensor_content
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", ALL, ids=T.dtype_name)
@SETTINGS
@given(data=st.data())
def test_write_arrays_like_make_tensor_proto(dt: int, data: st.DataObject) -> None:
    arr = data.draw(arrays(dt))
    ours = T.to_tensor_proto(arr)
    theirs = tf.make_tensor_proto(arr)
    assert ours.dtype == theirs.dtype
    # Every bit pattern we write reads back as written, by us, by make_ndarray and by C++.
    assert same_bits(T.to_ndarray(ours), arr)
    assert same_bits(tf.make_ndarray(tf_of(ours)), arr)
    if arr.size:
        assert same_bits(cpp_read(ours, dt), arr)
    tf_back = tf.make_ndarray(theirs)
    assert nan_equal(tf_back, arr)
    if not same_bits(tf_back, arr):
        # TensorFlow's writer passes float32 values of typed fields through Python floats, which
        # quiets signalling NaNs; ours keeps them in tensor_content.
        assert dt in (P.DT_FLOAT, P.DT_COMPLEX64) and ours.tensor_content
    elif dt in TF_CONTENT or dt == P.DT_STRING or arr.size <= 1:
        assert ours.SerializeToString() == theirs.SerializeToString()
    else:
        # bool, uint16 and complex: TensorFlow uses typed fields, we use tensor_content
        assert ours.tensor_content and not theirs.tensor_content


@pytest.mark.parametrize("dt", ALL, ids=T.dtype_name)
@SETTINGS
@given(data=st.data())
def test_typed_fields_read_by_tensorflow(dt: int, data: st.DataObject) -> None:
    """``typed_fields=True`` writes what TF Serving's AsProtoField writes, bit for bit."""
    arr = data.draw(arrays(dt, data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))))
    ours = T.to_tensor_proto(arr, typed_fields=True)
    assert not ours.tensor_content
    assert same_bits(T.to_ndarray(ours), arr)
    # make_ndarray passes float32 values through Python floats: signalling NaNs come back quiet
    assert nan_equal(tf.make_ndarray(tf_of(ours)), arr)
    if arr.size:  # bit-exact on the wire: the C++ reader sees every NaN payload
        assert same_bits(cpp_read(ours, dt), arr)


# ------------------------------------------------------------------------------------------------
# reading every layout: same arrays as make_ndarray and the C++ runtime
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", ALL, ids=T.dtype_name)
@SETTINGS
@given(data=st.data())
def test_read_every_layout_like_make_ndarray(dt: int, data: st.DataObject) -> None:
    arr = data.draw(arrays(dt))
    n = arr.size
    layouts = [tf.make_tensor_proto(arr)]  # tensor_content or typed fields, as TF writes them
    # fewer values than the shape holds (the broadcast), including none at all
    k = data.draw(st.integers(0, max(n - 1, 0)))
    if k < n:
        layouts.append(tf.make_tensor_proto(arr.ravel()[:k], shape=arr.shape))
    for theirs in layouts:
        ours = ours_of(theirs)
        expected = tf.make_ndarray(theirs)
        if dt == P.DT_STRING and not (len(theirs.string_val) or n == 0):
            expected = np.full(arr.shape, b"", object)  # make_ndarray fills with str ""
        got = T.to_ndarray(ours)
        assert same_bits(got, expected)
        assert same_bits(T.to_ndarray(theirs), expected)  # TensorFlow's class is accepted
        if n:
            assert nan_equal(cpp_read(ours, dt), got)


@SETTINGS
@given(items=st.lists(st.binary(max_size=200), min_size=1, max_size=6))
def test_read_cpp_string_content(items: list[bytes]) -> None:
    """The varint-prefixed string tensor_content only TensorFlow's C++ side reads."""
    prefix = bytearray()
    for item in items:
        size = len(item)
        while True:
            prefix.append((size & 0x7F) | (0x80 if size >> 7 else 0))
            size >>= 7
            if not size:
                break
    p = TensorProto(dtype=P.DT_STRING, tensor_content=bytes(prefix) + b"".join(items))
    p.tensor_shape.dim.add(size=len(items))
    assert T.to_ndarray(p).tolist() == items == cpp_read(p, P.DT_STRING).tolist()


# ------------------------------------------------------------------------------------------------
# Python values: make_tensor_proto's inference, shape and dtype rules
# ------------------------------------------------------------------------------------------------

LEAVES = {
    "float": st.floats(allow_nan=False, width=64),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "bool": st.booleans(),
    "number": st.one_of(st.integers(-5, 5), st.floats(-10, 10), st.booleans()),
    "complex": st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=1e6),
    "str": st.text(max_size=4),
    "bytes": st.binary(max_size=4),
}


def nest(flat: list[Any], shape: tuple[int, ...]) -> Any:
    if not shape:
        return flat[0]
    if shape[0] == 0:
        return []
    step = len(flat) // shape[0] if shape[0] else 0
    return [nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


@st.composite
def python_values(draw: st.DrawFn) -> Any:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3))
    kind = draw(st.sampled_from(sorted(LEAVES)))
    flat = draw(st.lists(LEAVES[kind], min_size=math.prod(shape), max_size=math.prod(shape)))
    return nest(flat, shape)


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except (TypeError, ValueError, BadRequest) as e:
        return "error", e


DTYPES_FOR_VALUES = [None, "float32", "float64", "int32", "int64", "bool", "string", "complex128"]


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(values=python_values(), dtype=st.sampled_from(DTYPES_FOR_VALUES))
def test_python_values_like_make_tensor_proto(values: Any, dtype: str | None) -> None:
    theirs = outcome(lambda: tf.make_tensor_proto(values, dtype=dtype))
    ours = outcome(lambda: T.to_tensor_proto(values, dtype=dtype))
    if theirs[0] == "ok" and ours[0] == "error":
        # the one deliberate difference: TensorFlow wraps integers that do not fit the dtype
        assert "out of range" in str(ours[1])
        wide = np.asarray(values)
        info = np.iinfo(tf.dtypes.as_dtype(dtype).as_numpy_dtype)
        assert wide.min() < info.min or wide.max() > info.max
        return
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "ok":
        assert ours[1].dtype == theirs[1].dtype
        assert same_bits(T.to_ndarray(ours[1]), tf.make_ndarray(theirs[1]))
        if ours[1].dtype in TF_CONTENT | {P.DT_STRING} or not ours[1].tensor_content:
            assert ours[1].SerializeToString() == theirs[1].SerializeToString()


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3),
    kind=st.sampled_from(["float", "int32", "bool", "str"]),
    data=st.data(),
)
def test_shape_argument_like_make_tensor_proto(
    shape: tuple[int, ...], kind: str, data: st.DataObject
) -> None:
    n = math.prod(shape)
    k = data.draw(st.integers(0, n + 1))
    flat = data.draw(st.lists(LEAVES[kind], min_size=k, max_size=k))
    values: Any = flat if k != 1 or data.draw(st.booleans()) else flat[0]
    theirs = outcome(lambda: tf.make_tensor_proto(values, shape=shape))
    ours = outcome(lambda: T.to_tensor_proto(values, shape=shape))
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "ok":
        assert ours[1].dtype == theirs[1].dtype
        if ours[1].dtype in TF_CONTENT | {P.DT_STRING} or not ours[1].tensor_content:
            assert ours[1].SerializeToString() == theirs[1].SerializeToString()
        expected = tf.make_ndarray(theirs[1])
        if ours[1].dtype == P.DT_STRING and not flat and n:
            expected = np.full(shape, b"", object)  # make_ndarray fills with str ""
        assert same_bits(T.to_ndarray(ours[1]), expected)


# ------------------------------------------------------------------------------------------------
# dtype tables
# ------------------------------------------------------------------------------------------------


def test_dtype_tables_match_tensorflow() -> None:
    for dt in ALL:
        tf_dtype = tf.dtypes.as_dtype(dt)
        assert T.numpy_dtype(dt) == np.dtype(tf_dtype.as_numpy_dtype)
        assert T.data_type_of(tf_dtype.as_numpy_dtype) == dt
        assert T.as_data_type(tf_dtype) == dt
        assert T.as_data_type(tf_dtype.name) == dt  # the Python API's names
    for name in ["float", "double", "half", "float32", "float16", "bfloat16", "string", "bool"]:
        assert T.as_data_type(name) == tf.dtypes.as_dtype(name).as_datatype_enum
    assert T.as_data_type(float) == tf.dtypes.as_dtype(float).as_datatype_enum


def test_dtype_names_match_tensorflow_errors() -> None:
    """DataTypeString, as the C++ runtime writes it into its own error messages."""
    for dt in ALL:
        wrong = P.DT_DOUBLE if dt != P.DT_DOUBLE else P.DT_FLOAT
        p = TensorProto(dtype=dt)
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            tf.io.parse_tensor(p.SerializeToString(), tf.dtypes.as_dtype(wrong))
        assert f"parsed tensor ({T.dtype_name(dt)}) and dtype ({T.dtype_name(wrong)})" in str(
            info.value
        )


# ------------------------------------------------------------------------------------------------
# deliberate differences from TensorFlow
# ------------------------------------------------------------------------------------------------


def test_differences_from_tensorflow() -> None:
    # big-endian arrays: TensorFlow copies their bytes as they are, we write little-endian
    be = np.array([1.0, 2.0], ">f4")
    assert tf.make_tensor_proto(be).tensor_content != be.astype("<f4").tobytes()
    assert T.to_tensor_proto(be).tensor_content == be.astype("<f4").tobytes()
    # lists of arrays: TensorFlow refuses them, we stack them
    stack = [np.array([1.0, 2.0]), np.array([3.0, 4.0])]
    with pytest.raises(ValueError):
        tf.make_tensor_proto(stack)
    assert T.shape_of(T.to_tensor_proto(stack)) == (2, 2)
    # integers out of range: TensorFlow wraps them, we refuse
    assert tf.make_ndarray(tf.make_tensor_proto([300], dtype=tf.int8))[0] == 44
    with pytest.raises(BadRequest):
        T.to_tensor_proto([300], dtype="int8")
    # empty string_val: make_ndarray gives str "", the C++ runtime and we give b""
    p = TensorProto(dtype=P.DT_STRING)
    p.tensor_shape.dim.add(size=2)
    assert tf.make_ndarray(tf_of(p)).tolist() == ["", ""]
    assert T.to_ndarray(p).tolist() == [b"", b""] == cpp_read(p, P.DT_STRING).tolist()
    # more values than the shape holds: the C++ runtime ignores the extra, we refuse
    extra = TensorProto(dtype=P.DT_FLOAT, float_val=[1, 2, 3])
    extra.tensor_shape.dim.add(size=2)
    assert cpp_read(extra, P.DT_FLOAT).tolist() == [1, 2]
    with pytest.raises(BadRequest):
        T.to_ndarray(extra)
