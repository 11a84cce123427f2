"""One JSON value → the values of one tensor, as TF Serving's ``json_tensor.cc`` converts it.

TF Serving reads a tensor from a JSON value in two steps: ``GetDenseTensorShape`` takes the shape
from the first element at every level, then ``FillTensorProto`` walks the value depth first,
checking every list's length and every leaf's level and type against that shape and the
signature's dtype. :func:`tensor_values` does both, with TF Serving's messages, and returns the
flat values, which :mod:`.requests` shapes into arrays.

Large numeric tensors take a vectorized path (level-by-level flattening, one type census of the
leaves, one numpy conversion); anything it does not accept at once is walked again, slowly and
in TF Serving's order, so that the first error reported is TF Serving's first error. Both paths
are iterative: no depth can exhaust Python's stack.

Errors are :class:`TfsStatus`: an ``absl::Status`` code name and message, because the row format
quotes ``Status::ToString()`` (``INVALID_ARGUMENT: ...``) inside its own message.
"""

from __future__ import annotations

import binascii
import re
import warnings
from collections.abc import Callable
from itertools import chain
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ...errors import BadRequest
from ...protos import (
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT8,
    DT_UINT32,
    DT_UINT64,
)
from ...tensors import dtype_name, numpy_dtype
from .rapidjson_reader import JsonObject
from .rapidjson_writer import debug_string

__all__ = [
    "JSON_DTYPES",
    "TfsStatus",
    "Values",
    "b64_decode",
    "dense_shape",
    "is_b64_object",
    "is_object",
    "json_type",
    "tensor_values",
    "values_array",
    "walk_leaves",
]

INVALID_ARGUMENT: Final = "INVALID_ARGUMENT"
UNIMPLEMENTED: Final = "UNIMPLEMENTED"

_INT32_DTS: Final = frozenset({DT_INT32, DT_INT16, DT_INT8, DT_UINT8})
JSON_DTYPES: Final = frozenset(
    {
        DT_FLOAT,
        DT_DOUBLE,
        DT_INT32,
        DT_INT16,
        DT_INT8,
        DT_UINT8,
        DT_STRING,
        DT_INT64,
        DT_BOOL,
        DT_UINT32,
        DT_UINT64,
    }
)
"""The dtypes TF Serving's JSON carries, both ways (``AddValueToTensor``); others are Unimplemented."""

# The numpy dtype that holds the values of each JSON dtype until they are serialized.
_HOLDER: Final[dict[int, Any]] = {
    DT_FLOAT: np.float32,
    DT_DOUBLE: np.float64,
    DT_INT32: np.int64,
    DT_INT16: np.int64,
    DT_INT8: np.int64,
    DT_UINT8: np.int64,
    DT_INT64: np.int64,
    DT_UINT32: np.uint64,
    DT_UINT64: np.uint64,
    DT_BOOL: np.bool_,
}
# Integer range each integer dtype's JSON leaf must lie in (RapidJSON IsInt / IsInt64 / ...).
_RANGE: Final[dict[int, tuple[int, int]]] = {
    DT_INT32: (-(2**31), 2**31 - 1),
    DT_INT16: (-(2**31), 2**31 - 1),
    DT_INT8: (-(2**31), 2**31 - 1),
    DT_UINT8: (-(2**31), 2**31 - 1),
    DT_INT64: (-(2**63), 2**63 - 1),
    DT_UINT32: (0, 2**32 - 1),
    DT_UINT64: (0, 2**64 - 1),
}

Values = npt.NDArray[Any] | list[bytes]
"""Flat tensor values: a numpy array for numbers and bools, a list of bytes for strings."""


class TfsStatus(Exception):
    """A non-OK ``absl::Status``: its code name (``INVALID_ARGUMENT``, ...) and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_string(self) -> str:
        """``Status::ToString()``: ``"<CODE>: <message>"``."""
        return f"{self.code}: {self.message}"


def invalid(message: str) -> TfsStatus:
    """An ``InvalidArgument`` status."""
    return TfsStatus(INVALID_ARGUMENT, message)


def json_type(value: Any) -> str:
    """RapidJSON's type of a parsed value, as TF Serving names it in messages."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, (str, bytes)):
        return "String"
    if isinstance(value, list):
        return "Array"
    return "Object"


def is_object(value: Any) -> bool:
    """A JSON object (with or without repeated names)."""
    return type(value) is dict or type(value) is JsonObject


def is_b64_object(value: Any) -> bool:
    """TF Serving's ``IsValBase64Object``: exactly one member, ``b64``, holding a string."""
    return type(value) is dict and len(value) == 1 and isinstance(value.get("b64"), (str, bytes))


_B64_DATA: Final = re.compile(rb"[A-Za-z0-9+/]*")
_B64_SPACE: Final = b" \t\n\v\f\r"


def b64_decode(text: str | bytes) -> bytes | None:
    """``absl::Base64Unescape``: None where it fails.

    The standard alphabet; ASCII whitespace anywhere is skipped; the data may end with no padding
    or with exactly the right padding, written with ``=`` or ``.``; leftover bits are ignored.
    """
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if any(c in raw for c in _B64_SPACE):
        raw = raw.translate(None, _B64_SPACE)
    data_end = _B64_DATA.match(raw).end()  # type: ignore[union-attr]
    data = raw[:data_end]
    rest = raw[data_end:]
    if rest.strip(b"=."):
        return None  # a character outside the alphabet, or data after padding
    state = len(data) % 4
    if state == 1:
        return None
    expected = (0, 0, 2, 1)[state]
    if rest and len(rest) != expected:
        return None
    return binascii.a2b_base64(data + b"=" * expected)


def _utf8(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def type_error(value: Any, dtype: int) -> TfsStatus:
    """TF Serving's ``TypeError``."""
    return invalid(
        f"JSON Value: {debug_string(value)} Type: {json_type(value)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def dense_shape(value: Any) -> list[int]:
    """``GetDenseTensorShape``: the shape read from the first element at every level."""
    dims: list[int] = []
    while type(value) is list:
        dims.append(len(value))
        if not value:
            break
        value = value[0]
    return dims


def tensor_values(value: Any, dims: list[int], dtype: int) -> Values:
    """``FillTensorProto``: the values of ``value``, checked against ``dims`` and ``dtype``.

    Raises :class:`TfsStatus` with TF Serving's message for the first error in its order.
    """
    fast = _fast_values(value, dims, dtype)
    if fast is not None:
        return fast
    return _walk(value, dims, dtype)


def _fast_values(value: Any, dims: list[int], dtype: int) -> Values | None:
    """The vectorized path: None when anything is off (the walk then finds TF Serving's error)."""
    if dtype not in JSON_DTYPES:
        return None
    items: list[Any] = [value]
    for d in dims:
        if d == 0 or set(map(type, items)) != {list} or set(map(len, items)) != {d}:
            return None
        items = list(chain.from_iterable(items))
    kinds = set(map(type, items))
    try:
        if dtype == DT_STRING:
            if not kinds <= {str, bytes}:
                return None
            return [v if type(v) is bytes else v.encode("utf-8", "surrogatepass") for v in items]
        if dtype in (DT_FLOAT, DT_DOUBLE):
            if not kinds <= {float, int}:
                return None
            array = np.array(items, dtype=np.float64)
            if dtype == DT_DOUBLE:
                return array
            with np.errstate(over="ignore"):  # beyond float32: infinity, as (float)double gives
                return array.astype(np.float32)
        if dtype == DT_BOOL:
            return np.array(items, dtype=np.bool_) if kinds == {bool} else None
        if kinds != {int}:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            array = np.array(items, dtype=_HOLDER[dtype])
        low, high = _RANGE[dtype]
        if array.size and (int(array.min()) < low or int(array.max()) > high):
            return None
        return array
    except (OverflowError, ValueError, TypeError, DeprecationWarning):
        return None


def walk_leaves(value: Any, dims: list[int], leaf: Callable[[Any], None]) -> None:
    """Visit every leaf of a nested list in row-major order, checking it against ``dims`` as TF
    Serving's ``FillTensorProto`` does: every list of the size the first element at its level
    gave, every leaf at the innermost level. Raises :class:`TfsStatus` with TF Serving's message for
    the first error in its order. Iterative: no recursion, whatever the nesting."""
    rank = len(dims)
    # Each frame: an iterator over a list's elements and the level of those elements.
    frames: list[tuple[Any, int]] = []
    current: Any = value
    level = 0
    end = object()
    while True:
        if type(current) is list:
            if level >= rank:
                raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
            if len(current) != dims[level]:
                raise invalid(
                    f"Encountered list at unexpected size: {len(current)} at level: {level} "
                    f"expected size: {dims[level]}"
                )
            frames.append((iter(current), level + 1))
        else:
            if level != rank:
                raise invalid(
                    f"JSON Value: {debug_string(current)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {rank}"
                )
            leaf(current)
        while frames:
            iterator, child_level = frames[-1]
            item = next(iterator, end)
            if item is end:
                frames.pop()
                continue
            current = item
            level = child_level
            break
        else:
            break


def _walk(value: Any, dims: list[int], dtype: int) -> Values:
    """TF Serving's recursive ``FillTensorProto``, iteratively, in the same order."""
    out: list[Any] = []
    walk_leaves(value, dims, lambda item: out.append(_leaf(item, dtype)))
    if dtype == DT_STRING:
        return out
    if dtype == DT_FLOAT:
        with np.errstate(over="ignore"):
            return np.array(out, dtype=np.float64).astype(np.float32)
    if dtype not in _HOLDER:
        # No leaves were met (an empty list): a tensor of a dtype JSON cannot carry, and no values.
        return np.empty(0, np.float32)
    return np.array(out, dtype=_HOLDER[dtype])


def _leaf(value: Any, dtype: int) -> Any:
    """``AddValueToTensor`` (and the object branch of ``FillTensorProto``) for one leaf."""
    if is_object(value):
        if dtype != DT_STRING:
            raise type_error(value, dtype)
        if not is_b64_object(value):
            raise invalid(
                f"JSON Value: {debug_string(value)} not formatted correctly for base64 data"
            )
        decoded = b64_decode(value["b64"])
        if decoded is None:
            raise invalid("Unable to base64 decode")
        return decoded
    kind = type(value)
    if dtype in (DT_FLOAT, DT_DOUBLE):
        if kind is float or kind is int:
            return float(value)
        raise type_error(value, dtype)
    if dtype == DT_STRING:
        if kind is str or kind is bytes:
            return _utf8(value)
        raise type_error(value, dtype)
    if dtype == DT_BOOL:
        if kind is bool:
            return value
        raise type_error(value, dtype)
    limits = _RANGE.get(dtype)
    if limits is None:
        raise TfsStatus(
            UNIMPLEMENTED,
            f"Conversion of JSON Value: {debug_string(value)} to type: {dtype_name(dtype)}",
        )
    if kind is int and limits[0] <= value <= limits[1]:
        return value
    raise type_error(value, dtype)


def values_array(dtype: int, dims: list[int], values: Values, name: str) -> npt.NDArray[Any]:
    """Flat values (from :func:`tensor_values`) as the array of ``dtype`` and shape ``dims`` that
    TF Serving's tensor holds.

    TF Serving writes int8/int16/uint8 values to ``int_val`` after checking only the int32 range;
    a value outside the narrow dtype is refused as a tensor that cannot be read (what reading
    TF Serving's message gives), never wrapped around.
    """
    if dtype == DT_STRING:
        strings = np.empty(len(values), dtype=object)
        strings[:] = values
        return strings.reshape(dims)
    assert isinstance(values, np.ndarray)
    target = numpy_dtype(dtype)
    if values.dtype != target:
        if target.kind in "iu" and values.size:
            info = np.iinfo(target)
            if int(values.min()) < info.min or int(values.max()) > info.max:
                raise BadRequest(f"tensor parsing error: {name}")
        values = values.astype(target)
    return values.reshape(dims)
