"""A tfio-handlers codec for MessagePack (``application/msgpack``, alias ``application/x-msgpack``).

Arrays travel in msgpack-numpy's ndarray format, which numpy users of msgpack (and Ray users who
pass arrays through msgpack) send: a map with bytes keys::

    {b"nd": True, b"type": "<f4", b"kind": b"", b"shape": [2, 3], b"data": <bin: the C-order bytes>}
    {b"nd": False, b"type": "<f4", b"data": <bin>}                     # a numpy scalar

``type`` is a numpy dtype string (byte order, kind, size); the decoder takes the kinds ``b i u f c``
of the sizes TF Serving has, ``S`` and ``U`` strings, and refuses ``O`` (msgpack-numpy pickles
object arrays, which a server never unpickles) and ``V``. The data is read zero-copy.

A request body is one of:

* a map of input names (``str``) to values: named inputs (TF Serving's columnar form);
* an ndarray map, or a plain msgpack array of numbers, booleans or strings: the single input's
  batch, as a plain JSON list is.

Plain values (nested arrays) are typed by the signature as JSON values are (``array_from_json``).

An answer is a map of output names to ndarray maps (classify: ``classes`` and ``scores``; regress:
``outputs``). String tensors, which msgpack-numpy can only pickle, are written as
``{b"nd": True, b"type": "bytes", b"kind": b"", b"shape": [...], b"data": [<bin>, ...]}`` (a list
of the elements in C order); bfloat16 is written as ``<f4`` (every value kept; a signalling NaN
comes back quiet), as npy does.

Bounds: the body against ``max_body_bytes``; msgpack's own lengths against the limits (arrays of at
most ``max_elements`` items, strings and bins of at most ``max_string_bytes``); every shape
against ``max_elements`` before its data is touched; nesting to ``max_depth``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

from tfio_handlers.codec import (
    PredictArrays,
    Register,
    array_from_json,
    binary_bytes,
    check_response,
    conform,
    hookimpl,
    input_specs,
    response_arrays,
)
from tfio_handlers.config import Limits
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest
from tfio_handlers.media import MediaType

if TYPE_CHECKING:
    from tfio_handlers.testing import CodecDeclaration

__all__ = [
    "ALIASES",
    "MEDIA_TYPE",
    "TFIO_HANDLERS_CONFORMANCE",
    "decode_msgpack",
    "encode_msgpack",
    "ndarray_map",
    "read_ndarray",
    "register_codecs",
]

MEDIA_TYPE = "application/msgpack"
ALIASES = ("application/x-msgpack",)

Array = NDArray[Any]

_TYPE = re.compile(r"[<>|=]?([biufcSU])(\d{1,6})")
_NUMERIC_SIZES = {"b": {1}, "i": {1, 2, 4, 8}, "u": {1, 2, 4, 8}, "f": {2, 4, 8}, "c": {8, 16}}
_STRINGS = "bytes"

TFIO_HANDLERS_CONFORMANCE: dict[str, CodecDeclaration] = {
    MEDIA_TYPE: {
        "round_trips": [
            {
                "max_outputs": 3,
                "dtypes": (
                    "float16",
                    "float32",
                    "float64",
                    "int8",
                    "int16",
                    "int32",
                    "int64",
                    "uint8",
                    "uint16",
                    "uint32",
                    "uint64",
                    "bool",
                    "complex64",
                    "complex128",
                    "string",
                ),
            },
            {"max_outputs": 3, "dtypes": ("bfloat16",), "bits": False},
        ],
    },
}
"""What the conformance suite (``tfio_handlers.testing.check_codec``) may expect: every dtype and
shape comes back bit for bit, names kept; bfloat16 by value (it travels as float32)."""


# -- reading -----------------------------------------------------------------------------------------


def _unpack(body: bytes, limits: Limits) -> Any:
    limits.check_body(len(body))
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=False,
            use_list=True,
            max_str_len=min(limits.max_string_bytes, len(body)),
            max_bin_len=min(limits.max_string_bytes, len(body)),
            max_array_len=min(limits.max_elements, len(body)),
            max_map_len=min(limits.max_elements, len(body) // 2),
            max_ext_len=0,
        )
    except ValueError as exc:
        # msgpack raises ValueError subclasses for every malformed body (ExtraData, FormatError,
        # StackError, a length over the limits) and UnicodeDecodeError for a str that is not UTF-8
        raise BadRequest(f"Malformed msgpack body: {exc}") from None
    except Exception as exc:  # msgpack.exceptions.OutOfData and anything its C parser raises
        raise BadRequest(f"Malformed msgpack body: {type(exc).__name__}: {exc}") from None


def _get(value: Mapping[Any, Any], key: str) -> Any:
    return value.get(key.encode(), value.get(key))


def _is_ndarray(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and _get(value, "nd") is not None
        and _get(value, "type") is not None
    )


def read_ndarray(value: Mapping[Any, Any], limits: Limits, where: str) -> Array:
    """An ndarray map (msgpack-numpy's format, or this plugin's string tensors) as a numpy array:
    zero-copy and read-only for numbers, an ``object`` array of ``bytes`` for strings; a 400 for a
    map that is not one, a 413 for a shape over the limits."""
    kind = _get(value, "type")
    if isinstance(kind, bytes):
        kind = kind.decode("latin-1")
    if not isinstance(kind, str):
        raise BadRequest(f"{where}: the ndarray's type must be a dtype string")
    is_array = _get(value, "nd") is True
    shape_value = _get(value, "shape") if is_array else []
    if not isinstance(shape_value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape_value
    ):
        raise BadRequest(f"{where}: the ndarray's shape must be a list of non-negative integers")
    if len(shape_value) > limits.max_depth:
        raise BadRequest(
            f"{where}: rank {len(shape_value)} is over the limit of {limits.max_depth}"
        )
    shape = tuple(shape_value)
    limits.check_shape(shape, where)
    count = math.prod(shape)
    data = _get(value, "data")
    if kind == _STRINGS:
        if not isinstance(data, list) or len(data) != count:
            raise BadRequest(f"{where}: a string tensor's data must list its {count} elements")
        strings = np.empty(count, dtype=object)
        for i, item in enumerate(data):
            if isinstance(item, str):
                item = item.encode()
            if not isinstance(item, bytes):
                raise BadRequest(f"{where}: element {i} is a {type(item).__name__}, not bytes")
            strings[i] = item
        return strings.reshape(shape)
    match = _TYPE.fullmatch(kind)
    if match is None:
        raise BadRequest(
            f"{where}: dtype {kind!r} is not taken (numbers, booleans and S/U strings are; object "
            "arrays would need pickle)"
        )
    letter, size = match.group(1), int(match.group(2))
    if letter in _NUMERIC_SIZES and size not in _NUMERIC_SIZES[letter]:
        raise BadRequest(f"{where}: dtype {kind!r} has no TensorFlow counterpart")
    if letter in "SU" and size == 0:
        raise BadRequest(f"{where}: dtype {kind!r} holds nothing")
    dtype = np.dtype(kind)
    if not isinstance(data, bytes):
        raise BadRequest(f"{where}: the ndarray's data must be bin (bytes)")
    if len(data) != count * dtype.itemsize:
        raise BadRequest(
            f"{where}: {len(data)} bytes of data for shape {list(shape)} of {kind} "
            f"({count * dtype.itemsize} expected)"
        )
    array: Array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if letter in "SU":
        flat = np.empty(count, dtype=object)
        flat[:] = [s.encode() if isinstance(s, str) else bytes(s) for s in array.ravel().tolist()]
        array = flat.reshape(shape)
    return array


def _value(value: Any, spec: Any, limits: Limits, where: str) -> Array:
    if _is_ndarray(value):
        return conform(read_ndarray(value, limits, where), spec, limits, where)
    if isinstance(value, dict):
        raise BadRequest(f"{where}: a map that is not an ndarray (it needs 'nd', 'type', 'data')")
    return array_from_json(_plain(value, limits.max_depth, where), spec, limits, where)


def _plain(value: Any, depth: int, where: str) -> Any:
    """Nested lists as the JSON-like value ``array_from_json`` reads: bin leaves as UTF-8 text."""
    if depth < 0:
        raise BadRequest(f"{where} is nested too deeply")
    if isinstance(value, list):
        return [_plain(item, depth - 1, where) for item in value]
    if isinstance(value, bytes):
        return _as_text(value, where)
    if isinstance(value, dict):
        raise BadRequest(f"{where}: maps are not values")
    return value


def _as_text(value: bytes, where: str) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise BadRequest(
            f"{where}: a bin string in a plain array must be UTF-8; send binary strings as an "
            "ndarray map"
        ) from None


def decode_msgpack(body: bytes, media_type: MediaType, context: Context) -> PredictArrays | Array:
    """A msgpack body as named inputs (a map of names) or the single input's batch."""
    limits = context.limits
    value = _unpack(body, limits)
    specs = input_specs(context)
    if isinstance(value, dict) and not _is_ndarray(value):
        inputs: dict[str, Array] = {}
        for name, item in value.items():
            if isinstance(name, bytes):
                name = _as_text(name, "an input name")
            if not isinstance(name, str):
                raise BadRequest("The msgpack map's keys must be input names (strings)")
            inputs[name] = _value(item, specs.get(name), limits, f"input {name!r}")
        if not inputs:
            raise BadRequest("The msgpack map names no input")
        return PredictArrays(inputs)
    spec = next(iter(specs.values())) if len(specs) == 1 else None
    array = _value(value, spec, limits, "msgpack body")
    if spec is None:
        return array
    return PredictArrays({spec.name: array})


# -- writing -----------------------------------------------------------------------------------------


def ndarray_map(array: Array) -> dict[bytes, Any]:
    """``array`` as msgpack-numpy's ndarray map (strings as this plugin's ``bytes`` type, bfloat16
    as float32)."""
    if array.dtype == object or array.dtype.kind in "SU":
        items = [x if isinstance(x, bytes) else str(x).encode() for x in array.ravel().tolist()]
        return {
            b"nd": True,
            b"type": _STRINGS,
            b"kind": b"",
            b"shape": list(array.shape),
            b"data": items,
        }
    if array.dtype.kind not in "biufc":  # bfloat16 (numpy kind 'V')
        array = array.astype(np.float32)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {
        b"nd": True,
        b"type": little.dtype.str,
        b"kind": b"",
        b"shape": list(array.shape),
        b"data": np.ascontiguousarray(little).tobytes(),
    }


def encode_msgpack(response: Any, media_type: MediaType, context: Context) -> bytes:
    """Every output (classify: ``classes``/``scores``; regress: ``outputs``) as an ndarray map."""
    check_response(response, context.limits, media_type.essence, binary_bytes, overhead=64)
    arrays = response_arrays(response)
    packed: bytes = msgpack.packb({name: ndarray_map(array) for name, array in arrays.items()})
    return packed


@hookimpl
def register_codecs(register: Register) -> None:
    """``application/msgpack`` (alias ``application/x-msgpack``), a binary type."""
    register(MEDIA_TYPE, decode=decode_msgpack, encode=encode_msgpack, aliases=ALIASES, text=False)
