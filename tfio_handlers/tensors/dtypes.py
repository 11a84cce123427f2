"""DataType enums ⇄ numpy dtypes, their names, and the typed field that carries each one's values.

TensorFlow names a dtype three ways (``DataTypeString``'s ``"float"`` in TF Serving's error messages,
the Python API's ``"float32"``, the enum's ``DT_FLOAT``); :func:`as_data_type` reads them all (and
numpy and Python types), :func:`dtype_name` writes the first. :func:`numpy_dtype` and
:func:`data_type_of` map to and from numpy; :data:`TYPED_FIELDS` is the one table of ``*_val``
fields that the writer, the reader and the backends share. bfloat16 needs ``ml_dtypes``, imported
the first time a bfloat16 tensor is met.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
import numpy.typing as npt

from tfio_handlers.errors import BadRequest, Unimplemented
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
)

if TYPE_CHECKING:
    from tfio_handlers.protos import DataType

__all__ = [
    "COMPLEX_PARTS",
    "DATA_TYPE_OF_NUMPY",
    "FLOAT_DTYPES",
    "HALF_BITS",
    "INT_DTYPES",
    "NARROW_INTS",
    "NUMPY_DTYPES",
    "SUPPORTED_DTYPES",
    "TYPED_FIELDS",
    "TYPED_FIELD_NUMBERS",
    "as_data_type",
    "data_type_of",
    "dtype_name",
    "numpy_dtype",
    "python_name",
    "typed_field",
]

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

NUMPY_DTYPES: dict[int, np.dtype[Any]] = {
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
"""Every dtype the package converts → its little-endian numpy dtype (``object`` for strings).
bfloat16 is added the first time it is needed (it needs ``ml_dtypes``); read it through
:func:`numpy_dtype`, which adds it."""

TYPED_FIELDS: Final[Mapping[int, str]] = {
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
"""The one table of typed fields: each supported dtype → the ``TensorProto`` field that carries
its values when ``tensor_content`` is not used (:func:`typed_field` raises for the others)."""

TYPED_FIELD_NUMBERS: Final[Mapping[int, int]] = {
    dt: TensorProto.DESCRIPTOR.fields_by_name[name].number for dt, name in TYPED_FIELDS.items()
}
"""Each supported dtype → the field number of its typed field (5 for ``float_val``, ...), for
code that writes ``TensorProto`` bytes itself."""

SUPPORTED_DTYPES: Final[frozenset[int]] = frozenset(TYPED_FIELDS)
"""The DataType enums :func:`to_tensor_proto` and :func:`to_ndarray` convert (bfloat16 needs the
``ml_dtypes`` package at run time)."""


def typed_field(dt: int) -> str:
    """The ``TensorProto`` field that holds a dtype's values: ``float_val`` for ``DT_FLOAT``,
    ``int_val`` for the narrow integers, ``half_val`` (bit patterns) for half and bfloat16, ...

    Raises :class:`~tfio_handlers.errors.Unimplemented` for a dtype numpy cannot hold.
    """
    field = TYPED_FIELDS.get(dt)
    if field is None:
        raise _unsupported(dt)
    return field


NARROW_INTS: Final = frozenset({DT_INT8, DT_INT16, DT_UINT8, DT_UINT16})
"""The integers narrower than ``int_val``'s int32, which carries them: range-checked when read."""

HALF_BITS: Final = frozenset({DT_HALF, DT_BFLOAT16})
"""The dtypes whose typed field (``half_val``) holds 16-bit patterns, not numbers."""

COMPLEX_PARTS: Final[Mapping[int, np.dtype[Any]]] = {
    DT_COMPLEX64: np.dtype("<f4"),
    DT_COMPLEX128: np.dtype("<f8"),
}
"""The complex dtypes → the dtype of their parts: the typed field holds (real, imaginary) pairs."""

DATA_TYPE_OF_NUMPY: dict[np.dtype[Any], DataType.ValueType] = {
    d: cast("DataType.ValueType", dt) for dt, d in NUMPY_DTYPES.items() if dt != DT_STRING
}
"""numpy dtype → DataType for the hot paths: only the little-endian numeric dtypes (a lookup miss
goes to :func:`data_type_of`); bfloat16 is added with ``NUMPY_DTYPES``'s."""

INT_DTYPES: Final = frozenset(
    {DT_INT8, DT_INT16, DT_INT32, DT_INT64, DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64}
)
"""The integer dtypes: values written to them must be integers in range."""

FLOAT_DTYPES: Final = frozenset({DT_HALF, DT_BFLOAT16, DT_FLOAT, DT_DOUBLE})
"""The real floating-point dtypes: values written to them must be real numbers."""

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
    NUMPY_DTYPES[DT_BFLOAT16] = bf16
    DATA_TYPE_OF_NUMPY[bf16] = DT_BFLOAT16
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
    """The error for a DataType enum the package cannot convert (never raised for supported)."""
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
    np_dtype = NUMPY_DTYPES.get(dt)
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
    dt = DATA_TYPE_OF_NUMPY.get(d)
    if dt is not None:
        return dt
    kind = d.kind
    if kind in "OUS":
        return DT_STRING
    if kind in "biufc":
        le = DATA_TYPE_OF_NUMPY.get(d.newbyteorder("<"))
        if le is not None:
            return le
    ml = sys.modules.get("ml_dtypes")
    if ml is not None and d == np.dtype(ml.bfloat16):
        _bfloat16()
        return DT_BFLOAT16
    raise Unimplemented(f"numpy dtype {d} has no TensorFlow counterpart")


def python_name(dt: int) -> str:
    """TensorFlow's Python-API name (float32, not float) for messages mirroring its
    Python ones."""
    return _PY_NAMES.get(dt, dtype_name(dt))


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
    :class:`Unimplemented` for dtypes the package cannot convert.
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
