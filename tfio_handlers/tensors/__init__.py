"""NumPy arrays ⇄ TensorFlow ``TensorProto``, exactly, for every dtype numpy can hold.

Writing (:func:`to_tensor_proto`) follows ``tf.make_tensor_proto``: the same dtype inference from
Python and numpy values, the same ``shape`` rules (equal element count → reshape; fewer values →
the shape is kept and readers repeat the last value; more → error). Numeric tensors of more than
one element go to ``tensor_content`` as little-endian bytes; strings go to ``string_val``; a
single element goes to its typed field as TensorFlow does (unless a Python float would change its
bits: a signalling NaN goes to ``tensor_content``), so every bit pattern written reads back.
Reading (:func:`to_ndarray`) accepts
every layout TensorFlow reads: ``tensor_content`` (zero-copy), each typed ``*_val`` field, the
broadcast of fewer values than the shape holds (the last value repeated, zeros when there are
none) and the varint-prefixed ``tensor_content`` TensorFlow's C++ runtime writes for strings.

Messages from the network are untrusted, so reading checks before it allocates: negative or
overflowing dimensions, unknown dtypes and content of the wrong length raise
:class:`~tfio_handlers.errors.BadRequest`; a dtype numpy cannot hold (quantized, resource,
variant, float8, int4, references, or bfloat16 without ``ml_dtypes``) raises
:class:`~tfio_handlers.errors.Unimplemented`; a shape of more elements than ``max_elements``
(default :data:`DEFAULT_MAX_ELEMENTS`) raises :class:`~tfio_handlers.errors.PayloadTooLarge`.

The dtype tables other layers need live here too: :func:`numpy_dtype`, :func:`data_type_of`,
:func:`as_data_type`, :func:`dtype_name` (TensorFlow's ``DataTypeString`` names used in TF
Serving's error messages), :func:`make_shape` and :func:`shape_of`.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterable
from itertools import chain
from typing import TYPE_CHECKING, Any, Final, SupportsIndex, cast

import numpy as np
import numpy.typing as npt
from google.protobuf.message import Message

from tfio_handlers.config import shape_extent
from tfio_handlers.errors import BadRequest, PayloadTooLarge, Unimplemented
from tfio_handlers.protos import (
    DT_BFLOAT16,
    DT_BOOL,
    DT_COMPLEX64,
    DT_COMPLEX128,
    DT_DOUBLE,
    DT_FLOAT,
    DT_HALF,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_INVALID,
    DT_STRING,
    DT_UINT8,
    DT_UINT16,
    DT_UINT32,
    DT_UINT64,
    TensorProto,
    TensorShapeProto,
    coerce,
)

if TYPE_CHECKING:
    from tfio_handlers.protos import DataType

__all__ = [
    "DEFAULT_MAX_ELEMENTS",
    "MAX_RANK",
    "SUPPORTED_DTYPES",
    "as_data_type",
    "data_type_of",
    "dtype_name",
    "encode_varint",
    "make_shape",
    "numpy_dtype",
    "shape_of",
    "to_ndarray",
    "to_tensor_proto",
]

DEFAULT_MAX_ELEMENTS: int = 2**28
"""The most elements :func:`to_ndarray` materializes unless told otherwise (268,435,456: 1 GiB
of float32). Reassign it to change the default for the whole process; pass ``max_elements`` to
change it for one call. It bounds every read, so a hostile shape with one value cannot make the
broadcast allocate more, and downstream code never meets a bigger array from the network."""

MAX_RANK: Final = 64
"""The largest rank accepted: numpy's limit (TensorFlow's own is 254)."""

_MAX_CONTENT_BYTES: Final = 2**31 - 1
"""A serialized protobuf message must stay under 2 GiB; TensorFlow refuses bigger content too."""

_MAX_NONZERO_PRODUCT: Final = (2**63 - 1) // 16
"""Bound on the product of a shape's non-zero dimensions (times the widest item, 16 bytes, it
still fits the int64 arithmetic of TensorFlow and numpy), so a shape with a zero dimension cannot
smuggle absurd sizes either."""

# --------------------------------------------------------------------------------------------
# dtype tables
# --------------------------------------------------------------------------------------------

# TensorFlow's DataTypeString (tensorflow/core/framework/types.cc), which TF Serving's error
# messages use: "float", "double", "half", not the Python API's "float32", "float64", "float16".
_DT_NAMES: Final[dict[int, str]] = {
    0: "INVALID",
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
    11: "qint8",
    12: "quint8",
    13: "qint32",
    14: "bfloat16",
    15: "qint16",
    16: "quint16",
    17: "uint16",
    18: "complex128",
    19: "half",
    20: "resource",
    21: "variant",
    22: "uint32",
    23: "uint64",
    24: "float8_e5m2",
    25: "float8_e4m3fn",
    26: "float8_e4m3fnuz",
    27: "float8_e4m3b11fnuz",
    28: "float8_e5m2fnuz",
    29: "int4",
    30: "uint4",
    31: "int2",
    32: "uint2",
    33: "float4_e2m1fn",
}
_REF_OFFSET: Final = 100  # DT_FLOAT_REF = 101, ...

# The Python API's names (tf.float32.name, ...) where they differ from DataTypeString.
_PY_NAMES: Final[dict[int, str]] = {1: "float32", 2: "float64", 19: "float16"}

# The enum's own names, DT_FLOAT and so on (types.proto).
_ENUM_NAMES: Final[dict[int, str]] = {
    dt: "DT_" + name.upper() for dt, name in _DT_NAMES.items() if dt != DT_INVALID
}

# Every dtype this module converts, with its little-endian numpy dtype (bfloat16 is added the
# first time it is needed, see _bfloat16) and the typed field that carries it.
_NUMPY: dict[int, np.dtype[Any]] = {
    DT_FLOAT: np.dtype("<f4"),
    DT_DOUBLE: np.dtype("<f8"),
    DT_INT32: np.dtype("<i4"),
    DT_UINT8: np.dtype("u1"),
    DT_INT16: np.dtype("<i2"),
    DT_INT8: np.dtype("i1"),
    DT_STRING: np.dtype(object),
    DT_COMPLEX64: np.dtype("<c8"),
    DT_INT64: np.dtype("<i8"),
    DT_BOOL: np.dtype("?"),
    DT_UINT16: np.dtype("<u2"),
    DT_COMPLEX128: np.dtype("<c16"),
    DT_HALF: np.dtype("<f2"),
    DT_UINT32: np.dtype("<u4"),
    DT_UINT64: np.dtype("<u8"),
}
_FIELD: Final[dict[int, str]] = {
    DT_FLOAT: "float_val",
    DT_DOUBLE: "double_val",
    DT_INT32: "int_val",
    DT_UINT8: "int_val",
    DT_INT16: "int_val",
    DT_INT8: "int_val",
    DT_STRING: "string_val",
    DT_COMPLEX64: "scomplex_val",
    DT_INT64: "int64_val",
    DT_BOOL: "bool_val",
    DT_BFLOAT16: "half_val",
    DT_UINT16: "int_val",
    DT_COMPLEX128: "dcomplex_val",
    DT_HALF: "half_val",
    DT_UINT32: "uint32_val",
    DT_UINT64: "uint64_val",
}

SUPPORTED_DTYPES: Final[frozenset[int]] = frozenset(_FIELD)
"""The DataType enums :func:`to_tensor_proto` and :func:`to_ndarray` convert (bfloat16 needs the
``ml_dtypes`` package at run time)."""


def typed_field(dt: int) -> str:
    """The ``TensorProto`` field that holds a dtype's values: ``float_val`` for ``DT_FLOAT``,
    ``int_val`` for the narrow integers, ``half_val`` (bit patterns) for half and bfloat16, ...

    Raises :class:`~tfio_handlers.errors.Unimplemented` for a dtype numpy cannot hold.
    """
    field = _FIELD.get(dt)
    if field is None:
        raise _unsupported(dt)
    return field


# int_val carries int32 and the narrower integers; they must be range-checked when read.
_NARROW_INT: Final = frozenset({DT_INT8, DT_INT16, DT_UINT8, DT_UINT16})
_HALF_BITS: Final = frozenset({DT_HALF, DT_BFLOAT16})
_COMPLEX_PART: Final[dict[int, np.dtype[Any]]] = {
    DT_COMPLEX64: np.dtype("<f4"),
    DT_COMPLEX128: np.dtype("<f8"),
}

# numpy dtype → DataType for the write fast path: only little-endian numeric dtypes (a lookup
# miss sends anything else through the general path).
_DT_OF_NUMPY: dict[np.dtype[Any], DataType.ValueType] = {
    d: cast("DataType.ValueType", dt) for dt, d in _NUMPY.items() if dt != DT_STRING
}

_INT_DTS: Final = frozenset(
    {DT_INT8, DT_INT16, DT_INT32, DT_INT64, DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64}
)
_FLOAT_DTS: Final = frozenset({DT_HALF, DT_BFLOAT16, DT_FLOAT, DT_DOUBLE})
_COMPLEX_DTS: Final = frozenset({DT_COMPLEX64, DT_COMPLEX128})

_BFLOAT16: list[np.dtype[Any]] = []  # filled once by _bfloat16()


def _bfloat16() -> np.dtype[Any]:
    """bfloat16's numpy dtype, importing ``ml_dtypes`` the first time a bfloat16 tensor is met.

    ``ml_dtypes`` is not a core dependency: without it bfloat16 is :class:`Unimplemented`.
    """
    if _BFLOAT16:
        return _BFLOAT16[0]
    try:
        import ml_dtypes
    except ImportError:
        raise Unimplemented(
            "bfloat16 tensors need the ml_dtypes package, which is not installed "
            "(pip install ml_dtypes)"
        ) from None
    bf16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
    _NUMPY[DT_BFLOAT16] = bf16
    _DT_OF_NUMPY[bf16] = DT_BFLOAT16
    _BFLOAT16.append(bf16)
    return bf16


def dtype_name(dt: int) -> str:
    """TensorFlow's name for a DataType enum, as ``DataTypeString`` writes it in error messages.

    ``dtype_name(1) == "float"``, ``dtype_name(19) == "half"``, ``dtype_name(101) ==
    "float_ref"``, and ``"unknown dtype enum (77)"`` for a number TensorFlow does not define.
    """
    name = _DT_NAMES.get(dt)
    if name is not None:
        return name
    base = _DT_NAMES.get(dt - _REF_OFFSET)
    if base is not None and dt > _REF_OFFSET:
        return base + "_ref"
    return f"unknown dtype enum ({dt})"


def _unsupported(dt: int) -> Exception:
    """The error for a DataType enum this module cannot convert (never raised for supported)."""
    if dt == DT_INVALID:
        return BadRequest("tensor dtype is DT_INVALID (the dtype field is unset)")
    name = _DT_NAMES.get(dt)
    if name is None and not (dt > _REF_OFFSET and (dt - _REF_OFFSET) in _DT_NAMES):
        return BadRequest(f"unknown tensor dtype enum ({dt})")
    return Unimplemented(f"tensors of dtype {dtype_name(dt)} cannot be converted to numpy arrays")


def numpy_dtype(dt: int) -> np.dtype[Any]:
    """The numpy dtype that holds a DataType: little-endian, ``object`` for ``DT_STRING``.

    Raises :class:`BadRequest` for ``DT_INVALID`` and numbers TensorFlow does not define, and
    :class:`Unimplemented` for dtypes numpy cannot hold (or bfloat16 without ``ml_dtypes``).
    """
    np_dtype = _NUMPY.get(dt)
    if np_dtype is not None:
        return np_dtype
    if dt == DT_BFLOAT16:
        return _bfloat16()
    raise _unsupported(dt)


def data_type_of(np_dtype: npt.DTypeLike) -> int:
    """The DataType enum for a numpy dtype (any byte order).

    ``str``, ``bytes`` and ``object`` dtypes map to ``DT_STRING``; bfloat16 is recognized when
    ``ml_dtypes`` is loaded. Raises :class:`Unimplemented` for dtypes TensorFlow has no
    counterpart for (datetime, void, longdouble, float8, ...).
    """
    d = np.dtype(np_dtype)
    dt = _DT_OF_NUMPY.get(d)
    if dt is not None:
        return dt
    kind = d.kind
    if kind in "OUS":
        return DT_STRING
    if kind in "biufc":
        le = _DT_OF_NUMPY.get(d.newbyteorder("<"))
        if le is not None:
            return le
    ml = sys.modules.get("ml_dtypes")
    if ml is not None and d == np.dtype(ml.bfloat16):
        _bfloat16()
        return DT_BFLOAT16
    raise Unimplemented(f"numpy dtype {d} has no TensorFlow counterpart")


def _name_table() -> dict[str, int]:
    """Every spelling :func:`as_data_type` accepts for a dtype name."""
    table: dict[str, int] = {}
    for dt, name in _DT_NAMES.items():
        if dt == DT_INVALID:
            continue
        table[name] = dt
        table[_ENUM_NAMES[dt]] = dt
        table[_ENUM_NAMES[dt].lower()] = dt
    for dt, name in _PY_NAMES.items():
        table[name] = dt
    return table


_BY_NAME: Final[dict[str, int]] = _name_table()
_BY_PYTHON_TYPE: Final[dict[type, int]] = {
    # tf.as_dtype(float) is float32 and tf.as_dtype(bool) is bool; TensorFlow rejects the other
    # builtins, so those follow numpy.
    float: DT_FLOAT,
    bool: DT_BOOL,
    object: DT_STRING,
    str: DT_STRING,
    bytes: DT_STRING,
    int: DT_INT64,
    complex: DT_COMPLEX128,
}


def as_data_type(dtype: object) -> int:
    """Resolve any dtype spelling to a DataType enum.

    Accepts a DataType enum number; a TensorFlow name (``"float"``, ``"float32"``, ``"half"``,
    ``"DT_FLOAT"``; TensorFlow's names win where numpy reads the same word differently, so
    ``"float"`` is float32); a numpy dtype, type or dtype string (``np.float32``, ``"<f4"``); a
    ``tf.DType`` (anything with ``as_datatype_enum``); or a Python type (``float`` is float32
    as in ``tf.as_dtype``). Raises :class:`BadRequest` for what names no dtype and
    :class:`Unimplemented` for dtypes this module cannot convert.
    """
    if isinstance(dtype, (int, np.integer)) and not isinstance(dtype, (bool, np.bool_)):
        dt = int(dtype)
    elif isinstance(dtype, str):
        found = _BY_NAME.get(dtype)
        if found is None:
            try:
                return data_type_of(np.dtype(dtype))
            except TypeError:
                raise BadRequest(f"unknown dtype name {dtype!r}") from None
        dt = found
    elif isinstance(dtype, type) and dtype in _BY_PYTHON_TYPE:
        dt = _BY_PYTHON_TYPE[dtype]
    elif isinstance(getattr(dtype, "as_datatype_enum", None), int):
        dt = dtype.as_datatype_enum  # type: ignore[attr-defined]
    else:
        try:
            np_dtype = np.dtype(dtype)  # type: ignore[call-overload]
        except TypeError:
            raise BadRequest(f"cannot interpret {dtype!r} as a tensor dtype") from None
        return data_type_of(np_dtype)
    if dt not in SUPPORTED_DTYPES:
        raise _unsupported(dt)
    return dt


# --------------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------------

# Byte-order marks of dtypes that are not little-endian on this machine.
_FOREIGN_ORDER: Final = frozenset({">"} if sys.byteorder == "little" else {">", "="})

_SHAPE_CACHE: dict[tuple[int, ...], TensorShapeProto] = {}
_SHAPE_CACHE_SIZE: Final = 1024


def _shape_proto(dims: tuple[int, ...]) -> TensorShapeProto:
    """A shared, never-mutated TensorShapeProto for concrete dims (callers CopyFrom it)."""
    sp = _SHAPE_CACHE.get(dims)
    if sp is None:
        sp = TensorShapeProto(dim=[TensorShapeProto.Dim(size=d) for d in dims])
        if len(_SHAPE_CACHE) >= _SHAPE_CACHE_SIZE:
            _SHAPE_CACHE.clear()
        _SHAPE_CACHE[dims] = sp
    return sp


def make_shape(dims: Iterable[SupportsIndex] | None) -> TensorShapeProto:
    """A TensorShapeProto for ``dims``; ``-1`` marks an unknown dimension, ``None`` an unknown rank.

    The partial forms are for signatures and metadata; a tensor's shape must be concrete.
    Raises :class:`BadRequest` for dims below -1, non-integers or more than :data:`MAX_RANK`.
    """
    if dims is None:
        return TensorShapeProto(unknown_rank=True)
    sizes = _index_dims(dims, allow_unknown=True)
    return TensorShapeProto(dim=[TensorShapeProto.Dim(size=d) for d in sizes])


def _index_dims(
    dims: Iterable[SupportsIndex] | TensorShapeProto, *, allow_unknown: bool
) -> tuple[int, ...]:
    """Validate a caller's dims: integers (``operator.index``), >= 0 (or -1 when allowed)."""
    if isinstance(dims, (str, bytes)):
        raise BadRequest(f"shape must be a sequence of integers, got {dims!r}")
    if isinstance(dims, TensorShapeProto):
        return shape_of(dims)
    try:
        sizes = tuple(map(operator.index, dims))
    except TypeError:
        raise BadRequest(f"shape must be a sequence of integers, got {dims!r}") from None
    low = -1 if allow_unknown else 0
    for d in sizes:
        if d < low:
            raise BadRequest(f"shape {list(sizes)} has a negative dimension {d}")
    if len(sizes) > MAX_RANK:
        raise BadRequest(f"shape has rank {len(sizes)}, more than the {MAX_RANK} supported")
    return sizes


def shape_of(proto: TensorShapeProto | TensorProto | Message) -> tuple[int, ...]:
    """The concrete dims of a TensorShapeProto (or of a TensorProto's shape), validated.

    Raises :class:`BadRequest` for an unknown rank, a negative (unknown) dimension, a rank above
    :data:`MAX_RANK` or dims whose product overflows; no element limit applies here.
    """
    if isinstance(proto, TensorProto):
        sp: Any = proto.tensor_shape
    elif isinstance(proto, TensorShapeProto):
        sp = proto
    elif isinstance(proto, Message) and proto.DESCRIPTOR.full_name == "tensorflow.TensorProto":
        sp = _coerce_tensor(proto).tensor_shape
    else:
        try:
            sp = coerce(proto, TensorShapeProto)
        except TypeError as e:
            raise BadRequest(str(e)) from None
    dims, _ = _concrete(sp, None)
    return dims


def _coerce_tensor(message: object) -> TensorProto:
    """TensorFlow's TensorProto → ours; anything else is a :class:`BadRequest`."""
    try:
        return coerce(message, TensorProto)
    except TypeError as e:
        raise BadRequest(str(e)) from None


_CONCRETE_CACHE: dict[bytes, tuple[tuple[int, ...], int]] = {}


def _concrete(sp: Any, limit: int | None) -> tuple[tuple[int, ...], int]:
    """Validate a tensor's shape proto and count its elements, before anything is allocated.

    Iterating ``dim`` builds a Python object per dimension (about 1 µs for two), so validated
    shapes are remembered by their serialized bytes (0.3 µs), in a bounded cache.
    """
    key = sp.SerializeToString()
    found = _CONCRETE_CACHE.get(key)
    if found is None:
        found = _check_shape(sp)
        if len(_CONCRETE_CACHE) >= _SHAPE_CACHE_SIZE:
            _CONCRETE_CACHE.clear()
        _CONCRETE_CACHE[key] = found
    if limit is not None and found[1] > limit:
        raise PayloadTooLarge(
            f"tensor shape {list(found[0])} has {found[1]} elements, more than the limit of {limit}"
        )
    if limit is not None and not found[1] and shape_extent(found[0]) > limit:
        raise PayloadTooLarge(
            f"tensor shape {list(found[0])} has {shape_extent(found[0])} rows of no elements, "
            f"more than the limit of {limit}"
        )
    return found


def _check_shape(sp: Any) -> tuple[tuple[int, ...], int]:
    """The dims and element count of a tensor's shape proto, or :class:`BadRequest`."""
    if sp.unknown_rank:
        raise BadRequest("tensor shape has unknown rank; a tensor's shape must be fully known")
    dims = tuple([d.size for d in sp.dim])
    if len(dims) > MAX_RANK:
        raise BadRequest(f"tensor shape has rank {len(dims)}, more than the {MAX_RANK} supported")
    for d in dims:
        if d < 0:
            raise BadRequest(f"tensor shape {list(dims)} has a negative dimension {d}")
    return dims, _product(dims)


# --------------------------------------------------------------------------------------------
# numpy → TensorProto
# --------------------------------------------------------------------------------------------


def to_tensor_proto(
    values: Any,
    dtype: object = None,
    shape: Iterable[SupportsIndex] | TensorShapeProto | None = None,
    *,
    typed_fields: bool = False,
) -> TensorProto:
    """A TensorProto of an array, a Python scalar or nested lists, like ``tf.make_tensor_proto``.

    ``dtype`` is anything :func:`as_data_type` accepts; without it the dtype is inferred as
    TensorFlow does: numpy arrays keep theirs, Python floats become float32, Python ints int32
    (int64 when a value needs it), bools bool, complex complex128, str/bytes string. With it,
    arrays are cast as numpy's ``astype`` casts; Python values must be of a compatible kind
    (ints for integer dtypes, real numbers for floats, bools for bool, str/bytes for string)
    and integers must fit, else :class:`BadRequest`. ``shape`` (dims or a TensorShapeProto)
    reshapes values of the same element count; fewer values keep ``shape`` and are written as
    they are, readers repeating the last one (``to_tensor_proto(0.0, shape=[2, 3])`` is a 2x3
    tensor of zeros); more values are an error. As in TensorFlow, a ``shape`` of zero elements
    ignores Python values.

    Numeric tensors of more than one element go to ``tensor_content`` (little-endian), a single
    element to its typed field as TensorFlow writes it (a float32 or complex64 signalling NaN,
    which any Python reader of a typed field would quiet, to ``tensor_content``), strings to
    ``string_val`` (str as UTF-8): every bit pattern reads back as written. ``typed_fields=True``
    puts every value in its typed field instead, the layout TF Serving answers with by default,
    written as packed bytes as TF Serving's C++ writes them (bit-exact: :func:`to_ndarray` and
    C++ read every NaN payload back; ``tf.make_ndarray`` quiets float32 signalling NaNs). A TensorProto
    given as ``values`` is returned as is (a TensorFlow one converted to ours), ``dtype`` and
    ``shape`` ignored as TensorFlow does.
    """
    if type(values) is np.ndarray and shape is None and not typed_fields and values.size > 1:
        # The hot path: an array that needs no cast, written in one assignment.
        dt = _DT_OF_NUMPY.get(values.dtype)
        if (
            dt is not None
            and (
                dtype is None or (dtype == dt if type(dtype) is int else as_data_type(dtype) == dt)
            )
            and values.nbytes <= _MAX_CONTENT_BYTES
        ):
            proto = TensorProto(dtype=dt, tensor_content=values.tobytes())
            proto.tensor_shape.CopyFrom(_shape_proto(values.shape))
            return proto
    return _to_tensor_proto(values, dtype, shape, typed_fields)


def _to_tensor_proto(
    values: Any,
    dtype: object,
    shape: Iterable[SupportsIndex] | TensorShapeProto | None,
    typed_fields: bool,
) -> TensorProto:
    """The general path of :func:`to_tensor_proto`."""
    if isinstance(values, Message):
        return _coerce_tensor(values)
    target = None if dtype is None else as_data_type(dtype)
    dims = None if shape is None else _index_dims(shape, allow_unknown=False)
    if dims is not None and 0 in dims and not _is_array_like(values):
        # TensorFlow ignores Python values when the shape has no elements.
        if values is None:
            raise BadRequest("None values not supported.")
        dt = DT_FLOAT if target is None else target
        return _layout(dt, dims, _empty(dt), typed_fields)
    dt, data = _prepare(values, target)
    if dims is None:
        dims = data.shape if isinstance(data, np.ndarray) else data[1]
    else:
        size = data.size if isinstance(data, np.ndarray) else len(data[0])
        n = _product(dims)
        if size > n:
            raise BadRequest(f"Too many elements provided. Takes at most {n}, but got {size}.")
    return _layout(dt, dims, data, typed_fields)


def _empty(dt: int) -> npt.NDArray[Any] | tuple[list[bytes], tuple[int, ...]]:
    """No values of a dtype."""
    if dt == DT_STRING:
        return [], (0,)
    return np.empty(0, numpy_dtype(dt))


def _product(dims: tuple[int, ...]) -> int:
    """The element count of valid dims; :class:`BadRequest` when absurdly large."""
    n = 1
    nonzero = 1
    for d in dims:
        n *= d
        if d:
            nonzero *= d
    if nonzero > _MAX_NONZERO_PRODUCT:
        raise BadRequest(f"tensor shape {list(dims)} overflows: too many elements")
    return n


def _is_array_like(obj: object) -> bool:
    """What TensorFlow hands to ``np.asarray``: arrays, numpy scalars, ``__array__`` objects and
    buffers other than ``bytes``."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return True
    if isinstance(obj, (bytes, str, list, tuple)) or obj is None:
        return False
    if callable(getattr(obj, "__array__", None)) or isinstance(
        getattr(obj, "__array_interface__", None), dict
    ):
        return True
    try:
        memoryview(obj)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def _prepare(values: Any, target: int | None) -> tuple[int, Any]:
    """Values → (DataType, little-endian ndarray) or (DT_STRING, (bytes list, dims))."""
    if _is_array_like(values):
        arr = np.asarray(values)
        return _from_array(arr, target)
    if values is None:
        raise BadRequest("None values not supported.")
    return _from_python(values, target)


def _from_array(arr: npt.NDArray[Any], target: int | None) -> tuple[int, Any]:
    """An ndarray, cast to ``target`` as numpy's ``astype`` does (TensorFlow's rule for arrays)."""
    kind = arr.dtype.kind
    dt = data_type_of(arr.dtype) if target is None else target
    if dt == DT_STRING:
        if kind not in "OUS":
            raise BadRequest(f"Expected string, but got an array of {arr.dtype}")
        return DT_STRING, (_strings(arr.ravel().tolist(), arr), arr.shape)
    np_dtype = numpy_dtype(dt)
    if arr.dtype != np_dtype:
        try:
            with np.errstate(all="ignore"):
                arr = arr.astype(np_dtype)
        except (ValueError, TypeError, OverflowError) as e:
            raise BadRequest(
                f"cannot convert {arr.dtype} values to {dtype_name(dt)}: {e}"
            ) from None
    return dt, arr


def _strings(items: list[Any], original: object) -> list[bytes]:
    """str/bytes values → bytes (str as UTF-8); anything else is an error, as in TensorFlow."""
    out: list[bytes] = []
    for x in items:
        if isinstance(x, bytes):
            out.append(bytes(x))
        elif isinstance(x, str):
            try:
                out.append(x.encode("utf-8"))
            except UnicodeEncodeError as e:
                raise BadRequest(f"string value is not valid Unicode: {e}") from None
        else:
            raise BadRequest(
                f"Failed to convert elements of {_short(original)} to Tensor: {x!r} is "
                f"{type(x).__name__}, not str or bytes."
            )
    return out


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SEQUENCES: Final = (list, tuple)
_SEQUENCE_TYPES: Final = frozenset({list, tuple})
_STRING_TYPES: Final = frozenset({str, bytes})
_NUMBER_TYPES: Final = frozenset({float, int, bool, complex})
_BOOLS: Final = (bool, np.bool_)
_INTS: Final = (int, np.integer)
_REALS: Final = (int, float, np.integer, np.floating)
_COMPLEXES: Final = (int, float, complex, np.number)
_SCALARS: Final = (bool, int, float, complex, np.bool_, np.number, np.ndarray)


def _from_python(values: Any, target: int | None) -> tuple[int, Any]:
    """Python scalars and nested lists/tuples → (DataType, array or strings).

    The nesting is flattened level by level (C-speed ``chain``), checking it is rectangular, and
    the leaves' types are collected before numpy sees them: numpy's own inference would make a
    fixed-width str array of a list that mixes numbers with one long string, an allocation of
    count x longest x 4 bytes that a small hostile body could make huge (TensorFlow's
    ``make_tensor_proto`` has that flaw). Lists of numpy arrays are stacked (TensorFlow refuses
    them).
    """
    dims: list[int] = []
    level: list[Any] = [values]
    while True:
        types = set(map(type, level))
        if not types <= _SEQUENCE_TYPES:
            seq = [t for t in types if issubclass(t, _SEQUENCES)]
            if not seq:
                break
            if len(seq) != len(types):
                raise BadRequest(
                    f"Expected values {_short(values)} to be a dense tensor: lists are mixed "
                    "with scalars at the same depth"
                )
        lengths = set(map(len, level))
        if len(lengths) != 1:
            raise BadRequest(
                f"Expected values {_short(values)} to be a dense tensor: lists of lengths "
                f"{sorted(lengths)[:4]} at depth {len(dims)}"
            )
        dims.append(lengths.pop())
        if len(dims) > MAX_RANK:
            raise BadRequest(f"values are nested more than {MAX_RANK} deep")
        level = list(chain.from_iterable(level))
        if not level:
            types = set()
            break
    shape = tuple(dims)
    if not types <= _NUMBER_TYPES:
        if types and (types <= _STRING_TYPES or all(issubclass(t, (str, bytes)) for t in types)):
            if target is not None and target != DT_STRING:
                raise BadRequest(
                    f"Expected {_tf_name(target)}, but got {_short(level[0])} of type "
                    f"'{type(level[0]).__name__}'."
                )
            return DT_STRING, (_strings(level, values), shape)
        if target is not None and target != DT_STRING:
            _check_kinds(level, types, target)
        for t in types:
            if not issubclass(t, _SCALARS):
                if any(issubclass(u, (str, bytes)) for u in types):
                    raise BadRequest(
                        f"Failed to convert elements of {_short(values)} to Tensor: strings "
                        "are mixed with other values."
                    )
                bad = next(x for x in level if type(x) is t)
                raise BadRequest(
                    f"Failed to convert elements of {_short(values)} to Tensor: {_short(bad)} "
                    f"of type '{t.__name__}' is not a number, bool or string."
                )
    if target == DT_STRING:
        if not level:
            return DT_STRING, ([], shape)
        if np.ndarray not in types:
            bad = level[0]
            raise BadRequest(
                f"Expected string, but got {_short(bad)} of type '{type(bad).__name__}'."
            )
    elif target is not None:
        _check_kinds(level, types, target)
    try:
        arr = np.asarray(level) if level else np.empty(0)
    except (ValueError, TypeError, OverflowError) as e:
        raise BadRequest(f"Failed to convert {_short(values)} to Tensor: {e}") from None
    arr = arr.reshape(shape + arr.shape[1:])
    kind = arr.dtype.kind
    if kind == "O" and np.ndarray not in types and (target is None or target in _INT_DTS):
        # numpy keeps Python ints beyond the uint64 range as objects.
        raise BadRequest(
            f"Failed to convert elements of {_short(values)} to Tensor: integers out of "
            "range for any integer dtype."
        )
    if target is None:
        if arr.dtype == np.float64:
            with np.errstate(over="ignore"):  # beyond float32: inf, as in TensorFlow
                arr = arr.astype(np.float32)
        elif arr.dtype == np.int64 and (
            arr.size == 0 or (arr.min() >= -(2**31) and arr.max() < 2**31)
        ):
            arr = arr.astype(np.int32)
    elif target in _INT_DTS and arr.size and kind in "iu":
        info = np.iinfo(numpy_dtype(target))
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise BadRequest(f"Value {bad} is out of range for {_tf_name(target)}.")
    return _from_array(arr, target)


def _tf_name(dt: int) -> str:
    """TensorFlow's Python-API name (float32, not float) for messages mirroring its Python ones."""
    return _PY_NAMES.get(dt, dtype_name(dt))


def _check_kinds(leaves: list[Any], types: set[type], target: int) -> None:
    """TensorFlow's ``_AssertCompatible``: each Python leaf must suit the requested dtype."""
    if target == DT_BOOL:
        allowed: tuple[type, ...] = _BOOLS
    elif target in _INT_DTS:
        allowed = _INTS
    elif target in _FLOAT_DTS:
        allowed = _REALS
    else:
        allowed = _COMPLEXES
    for t in types:
        if issubclass(t, np.ndarray):
            for x in leaves:
                if isinstance(x, np.ndarray) and not issubclass(x.dtype.type, allowed):
                    raise BadRequest(f"Expected {_tf_name(target)}, but got an array of {x.dtype}.")
        elif not issubclass(t, allowed):
            bad = next(x for x in leaves if type(x) is t)
            raise BadRequest(
                f"Expected {_tf_name(target)}, but got {_short(bad)} of type '{t.__name__}'."
            )


def _layout(dt: int, dims: tuple[int, ...], data: Any, typed_fields: bool) -> TensorProto:
    """Write prepared values into a new TensorProto of ``dims``."""
    proto = TensorProto(dtype=cast("DataType.ValueType", dt))
    proto.tensor_shape.CopyFrom(_shape_proto(dims))
    if dt == DT_STRING:
        proto.string_val.extend(data[0])
        return proto
    arr: npt.NDArray[Any] = data
    if arr.dtype.byteorder in _FOREIGN_ORDER:
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    n = arr.size
    if n == 0:
        return proto
    complete = n == _product(dims)
    if not typed_fields and complete and (n > 1 or _python_float_changes(dt, arr)):
        if arr.nbytes > _MAX_CONTENT_BYTES:
            raise PayloadTooLarge(
                f"tensor of {arr.nbytes} bytes is larger than the 2 GiB a message can hold"
            )
        proto.tensor_content = arr.tobytes()
        return proto
    flat = np.ascontiguousarray(arr).reshape(-1)
    if dt in _RAW_PACKED:
        # The array's own bytes, NaN payloads included, as TF Serving's C++ AsProtoField writes.
        proto.MergeFromString(_packed_field(dt, flat))
        return proto
    # Integers: appending is faster than encoding varints in numpy (and exact).
    if dt in _HALF_BITS:
        items: list[Any] = flat.view("<u2").tolist()
    elif dt in _COMPLEX_PART:
        items = flat.view(_COMPLEX_PART[dt]).tolist()
    else:
        items = flat.tolist()
    getattr(proto, _FIELD[dt]).extend(items)
    return proto


_FIELD_NUMBER: Final[dict[str, int]] = {
    name: field.number for name, field in TensorProto.DESCRIPTOR.fields_by_name.items()
}


def _python_float_changes(dt: int, arr: npt.NDArray[Any]) -> bool:
    """Whether a float32 value would lose bits through a Python float (a signalling NaN is quieted).

    One-element tensors go to their typed field as TensorFlow writes them, but TensorFlow's own
    Python reader (``tf.make_ndarray``) passes ``float_val``/``scomplex_val`` through Python floats;
    such a value goes to ``tensor_content`` instead, so that every reader reads the bits written.
    """
    if dt not in _SINGLE_PRECISION:
        return False
    parts = arr.reshape(-1).view(np.float32)
    with np.errstate(invalid="ignore"):
        round_trip = parts.astype(np.float64).astype(np.float32)
    return bool((round_trip.view(np.uint32) != parts.view(np.uint32)).any())


_SINGLE_PRECISION: Final = frozenset({DT_FLOAT, DT_COMPLEX64})

_RAW_PACKED: Final = frozenset({DT_FLOAT, DT_DOUBLE, DT_COMPLEX64, DT_COMPLEX128, DT_BOOL})
"""Dtypes whose packed typed field is the array's own little-endian bytes (bools: one byte each)."""


def _packed_field(dt: int, flat: npt.NDArray[Any]) -> bytes:
    """The typed field of a :data:`_RAW_PACKED` dtype, serialized as one packed field.

    Parsing these bytes into the message is a copy; appending the values from Python costs one
    Python number each (about 7 times slower for a [1000, 784] float tensor).
    """
    payload = flat.astype(np.uint8).tobytes() if dt == DT_BOOL else flat.tobytes()
    tag = (_FIELD_NUMBER[_FIELD[dt]] << 3) | 2
    return encode_varint(tag) + encode_varint(len(payload)) + payload


def encode_varint(value: int) -> bytes:
    """One protobuf varint (a negative value as 64-bit two's complement, as protobuf writes it)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# --------------------------------------------------------------------------------------------
# TensorProto → numpy
# --------------------------------------------------------------------------------------------


def to_ndarray(
    proto: TensorProto | Message,
    *,
    max_elements: int | None = None,
    writable: bool = False,
) -> npt.NDArray[Any]:
    """The numpy array a TensorProto holds, as ``tf.make_ndarray`` reads it, checked first.

    Accepts our TensorProto or TensorFlow's. Every layout TensorFlow reads is accepted:
    ``tensor_content``; the typed field of the dtype (``half_val`` bit patterns for
    half/bfloat16, ``int_val`` for int8/16/32 and uint8/16, ``scomplex_val``/``dcomplex_val``
    as (real, imaginary) pairs, ...); fewer values than the shape holds, the last repeated (no
    values: zeros, or ``b""`` for strings); and for strings the varint-length-prefixed
    ``tensor_content`` TensorFlow's C++ runtime writes. Strings come back as ``bytes`` in an
    ``object`` array.

    From ``tensor_content`` the result is a zero-copy, **read-only** view of the message's
    bytes (``np.frombuffer``): no copy for large tensors, and nothing can write into a buffer
    other readers share. Pass ``writable=True`` for an array of your own (one copy). Arrays
    built from typed fields are always new and writable.

    Raises :class:`BadRequest` for malformed messages (negative or overflowing dims, unknown
    dtype, content whose length disagrees with the shape, more values than the shape holds, an
    odd count of complex parts, integers out of range for the dtype, bool bytes other than
    0/1, ...), :class:`Unimplemented` for dtypes numpy cannot hold and
    :class:`PayloadTooLarge` when the shape has more elements than ``max_elements`` (default
    :data:`DEFAULT_MAX_ELEMENTS`).
    """
    if not isinstance(proto, TensorProto):
        proto = _coerce_tensor(proto)
    dt = proto.dtype
    np_dtype = _NUMPY.get(dt)
    if np_dtype is None:
        np_dtype = numpy_dtype(dt)
    dims, n = _concrete(
        proto.tensor_shape, DEFAULT_MAX_ELEMENTS if max_elements is None else max_elements
    )
    content = proto.tensor_content
    if content:
        if n == 0:  # TensorFlow's runtime ignores content for an empty shape
            return np.empty(dims, np_dtype)
        if dt == DT_STRING:
            out = np.empty(n, object)
            out[:] = _decode_string_list(content, n)
            return out.reshape(dims)
        if len(content) != n * np_dtype.itemsize:
            raise BadRequest(
                f"tensor_content holds {len(content)} bytes, but a {dtype_name(dt)} tensor of "
                f"shape {list(dims)} takes {n * np_dtype.itemsize}"
            )
        arr = np.frombuffer(content, np_dtype)
        if dt == DT_BOOL and n and int(arr.view(np.uint8).max()) > 1:
            raise BadRequest("bool tensor_content holds bytes other than 0 and 1")
        if writable or not arr.flags.aligned:
            arr = arr.copy()
        return arr.reshape(dims)
    return _from_fields(proto, dt, np_dtype, dims, n)


def _from_fields(
    proto: TensorProto, dt: int, np_dtype: np.dtype[Any], dims: tuple[int, ...], n: int
) -> npt.NDArray[Any]:
    """Read the dtype's typed field, broadcasting its last value as TensorFlow does."""
    field = getattr(proto, _FIELD[dt])
    k = len(field)
    if dt == DT_STRING:
        if k > n:
            raise _too_many(k, dims, n)
        out = np.empty(n, object)
        if k == n:
            out[:] = list(field)
        elif k:
            out[:k] = list(field)
            out[k:] = field[k - 1]
        else:
            out[:] = b""
        return out.reshape(dims)
    if dt in _COMPLEX_PART:
        if k % 2:
            raise BadRequest(
                f"{_FIELD[dt]} holds {k} numbers: complex values need (real, imaginary) pairs"
            )
        k //= 2
    if k > n:
        raise _too_many(k, dims, n)
    if k == 0:
        return np.zeros(dims, np_dtype)
    if dt in _NARROW_INT or dt in _HALF_BITS:
        wide = np.array(field, np.int64)
        low, high = (0, 65535) if dt in _HALF_BITS else _int_range(np_dtype)
        if int(wide.min()) < low or int(wide.max()) > high:
            what = "bit patterns" if dt in _HALF_BITS else "values"
            raise BadRequest(f"{_FIELD[dt]} holds {what} out of range for {dtype_name(dt)}")
        values = wide.astype("<u2").view(np_dtype) if dt in _HALF_BITS else wide.astype(np_dtype)
    elif dt in _COMPLEX_PART:
        values = np.array(field, _COMPLEX_PART[dt]).view(np_dtype)
    else:
        values = np.array(field, np_dtype)
    if k == n:
        return values.reshape(dims)
    out = np.empty(n, np_dtype)
    out[:k] = values
    out[k:] = values[-1]
    return out.reshape(dims)


def _int_range(np_dtype: np.dtype[Any]) -> tuple[int, int]:
    info = np.iinfo(np_dtype)
    return int(info.min), int(info.max)


def _too_many(k: int, dims: tuple[int, ...], n: int) -> BadRequest:
    return BadRequest(f"tensor holds {k} values, more than the {n} its shape {list(dims)} takes")


def _decode_string_list(content: bytes, n: int) -> list[bytes]:
    """TensorFlow's C++ string ``tensor_content``: ``n`` varint32 lengths, then the bytes."""
    if n > len(content):
        raise BadRequest(f"string tensor_content is too short for {n} strings")
    sizes: list[int] = []
    pos = 0
    end = len(content)
    for _ in range(n):
        value = 0
        shift = 0
        while True:
            if pos >= end or shift > 28:
                raise BadRequest("string tensor_content has a malformed length prefix")
            byte = content[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        sizes.append(value)
    if sum(sizes) != end - pos:
        raise BadRequest("string tensor_content lengths do not add up to its size")
    out: list[bytes] = []
    for size in sizes:
        out.append(content[pos : pos + size])
        pos += size
    return out
