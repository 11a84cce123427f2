"""numpy arrays and Python values → ``TensorProto``, as ``tf.make_tensor_proto`` writes them.

:func:`to_tensor_proto` infers the dtype as TensorFlow does (refusing what TensorFlow refuses, and
checking nested lists before numpy sees them, so a small hostile body cannot make numpy allocate a
huge array), then lays the values out: ``tensor_content`` for numeric tensors of more than one
element, the typed field otherwise (or always, with ``typed_fields=True``), so that every bit
pattern reads back as written. :func:`encode_varint` is the protobuf varint the layouts share with
code that writes ``TensorProto`` bytes itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from itertools import chain
from typing import TYPE_CHECKING, Any, Final, SupportsIndex, cast

import numpy as np
import numpy.typing as npt
from google.protobuf.message import Message

from tfio_handlers.errors import BadRequest, PayloadTooLarge
from tfio_handlers.protos import (
    DT_BOOL,
    DT_COMPLEX64,
    DT_COMPLEX128,
    DT_DOUBLE,
    DT_FLOAT,
    DT_STRING,
    TensorProto,
    TensorShapeProto,
)

from .dtypes import (
    DATA_TYPE_OF_NUMPY,
    FLOAT_DTYPES,
    HALF_BITS,
    INT_DTYPES,
    TYPED_FIELD_NUMBERS,
    TYPED_FIELDS,
    as_data_type,
    data_type_of,
    dtype_name,
    numpy_dtype,
    python_name,
)
from .shapes import MAX_RANK, checked_dims, coerce_tensor, element_count, shape_proto

if TYPE_CHECKING:
    from tfio_handlers.protos import DataType

__all__ = ["RAW_PACKED_DTYPES", "encode_varint", "to_tensor_proto"]

_MAX_CONTENT_BYTES: Final = 2**31 - 1
"""A serialized protobuf message must stay under 2 GiB; TensorFlow refuses bigger content too."""

# Byte-order marks of dtypes that are not little-endian on this machine.
_FOREIGN_ORDER: Final = frozenset({">"} if sys.byteorder == "little" else {">", "="})


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
    the same bytes TF Serving's C++ writes (bit-exact: :func:`to_ndarray` and C++ read every NaN
    payload back; ``tf.make_ndarray`` quiets float32 signalling NaNs). A TensorProto
    given as ``values`` is returned as is (a TensorFlow one converted to ours), ``dtype`` and
    ``shape`` ignored as TensorFlow does.
    """
    if type(values) is np.ndarray and shape is None and not typed_fields and values.size > 1:
        # The hot path: an array that needs no cast, written in one assignment.
        dt = DATA_TYPE_OF_NUMPY.get(values.dtype)
        if (
            dt is not None
            and (
                dtype is None or (dtype == dt if type(dtype) is int else as_data_type(dtype) == dt)
            )
            and values.nbytes <= _MAX_CONTENT_BYTES
        ):
            proto = TensorProto(dtype=dt, tensor_content=values.tobytes())
            proto.tensor_shape.CopyFrom(shape_proto(values.shape))
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
        return coerce_tensor(values)
    target = None if dtype is None else as_data_type(dtype)
    dims = None if shape is None else checked_dims(shape, allow_unknown=False)
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
        n = element_count(dims)
        if size > n:
            raise BadRequest(f"Too many elements provided. Takes at most {n}, but got {size}.")
    return _layout(dt, dims, data, typed_fields)


def _empty(dt: int) -> npt.NDArray[Any] | tuple[list[bytes], tuple[int, ...]]:
    """No values of a dtype."""
    if dt == DT_STRING:
        return [], (0,)
    return np.empty(0, numpy_dtype(dt))


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
                    f"Expected {python_name(target)}, but got {_short(level[0])} of type "
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
    if kind == "O" and np.ndarray not in types and (target is None or target in INT_DTYPES):
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
    elif target in INT_DTYPES and arr.size and kind in "iu":
        info = np.iinfo(numpy_dtype(target))
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise BadRequest(f"Value {bad} is out of range for {python_name(target)}.")
    return _from_array(arr, target)


def _check_kinds(leaves: list[Any], types: set[type], target: int) -> None:
    """TensorFlow's ``_AssertCompatible``: each Python leaf must suit the requested dtype."""
    if target == DT_BOOL:
        allowed: tuple[type, ...] = _BOOLS
    elif target in INT_DTYPES:
        allowed = _INTS
    elif target in FLOAT_DTYPES:
        allowed = _REALS
    else:
        allowed = _COMPLEXES
    for t in types:
        if issubclass(t, np.ndarray):
            for x in leaves:
                if isinstance(x, np.ndarray) and not issubclass(x.dtype.type, allowed):
                    raise BadRequest(
                        f"Expected {python_name(target)}, but got an array of {x.dtype}."
                    )
        elif not issubclass(t, allowed):
            bad = next(x for x in leaves if type(x) is t)
            raise BadRequest(
                f"Expected {python_name(target)}, but got {_short(bad)} of type '{t.__name__}'."
            )


def _layout(dt: int, dims: tuple[int, ...], data: Any, typed_fields: bool) -> TensorProto:
    """Write prepared values into a new TensorProto of ``dims``."""
    proto = TensorProto(dtype=cast("DataType.ValueType", dt))
    proto.tensor_shape.CopyFrom(shape_proto(dims))
    if dt == DT_STRING:
        proto.string_val.extend(data[0])
        return proto
    arr: npt.NDArray[Any] = data
    if arr.dtype.byteorder in _FOREIGN_ORDER:
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    n = arr.size
    if n == 0:
        return proto
    complete = n == element_count(dims)
    if not typed_fields and complete and (n > 1 or _python_float_changes(dt, arr)):
        if arr.nbytes > _MAX_CONTENT_BYTES:
            raise PayloadTooLarge(
                f"tensor of {arr.nbytes} bytes is larger than the 2 GiB a message can hold"
            )
        proto.tensor_content = arr.tobytes()
        return proto
    flat = np.ascontiguousarray(arr).reshape(-1)
    if dt in RAW_PACKED_DTYPES:
        # Fixed-width values (float, double, complex, bool): the packed field is the array's own
        # little-endian bytes, NaN payloads included, as TF Serving's C++ AsProtoField writes them,
        # parsed into the message in one copy (see _packed_field).
        proto.MergeFromString(_packed_field(dt, flat))
        return proto
    # Varint values (the integers, and half/bfloat16 as 16-bit patterns): appended as Python ints,
    # which protobuf encodes as a packed field, exact and faster than encoding varints in numpy.
    items: list[Any] = flat.view("<u2").tolist() if dt in HALF_BITS else flat.tolist()
    getattr(proto, TYPED_FIELDS[dt]).extend(items)
    return proto


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

RAW_PACKED_DTYPES: Final = frozenset({DT_FLOAT, DT_DOUBLE, DT_COMPLEX64, DT_COMPLEX128, DT_BOOL})
"""Dtypes whose packed typed field is the array's own little-endian bytes (bools: one byte each):
:func:`to_tensor_proto` writes them as such bytes; the other typed fields hold varints."""


def _packed_field(dt: int, flat: npt.NDArray[Any]) -> bytes:
    """The typed field of a :data:`RAW_PACKED_DTYPES` dtype, serialized as one packed field.

    Parsing these bytes into the message is a copy; appending the values from Python costs one
    Python number each (about 7 times slower for a [1000, 784] float tensor).
    """
    payload = flat.astype(np.uint8).tobytes() if dt == DT_BOOL else flat.tobytes()
    tag = (TYPED_FIELD_NUMBERS[dt] << 3) | 2
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
