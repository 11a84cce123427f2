"""Open Inference Protocol V2 tensors: datatypes, and the JSON and binary forms of a tensor.

A V2 tensor is ``{"name", "shape", "datatype", "data"}`` with ``data`` in row-major order (flat or
nested), or, with Triton's binary tensor data extension, ``"parameters": {"binary_data_size": N}``
and its N bytes after the JSON header: each element's raw little-endian bytes, or for ``BYTES`` a
4-byte little-endian length before each element. Every size is checked against the request's
bounds (:class:`~tfio_handlers.config.Limits`) before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tfio_handlers.codec import InputSpec, array_from_json, check_string, conform
from tfio_handlers.config import Limits
from tfio_handlers.errors import BadRequest
from tfio_handlers.protos import (
    DT_BFLOAT16,
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_HALF,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT8,
    DT_UINT16,
    DT_UINT32,
    DT_UINT64,
)
from tfio_handlers.tensors import data_type_of, numpy_dtype

__all__ = [
    "DATATYPES",
    "Array",
    "binary_tensor",
    "datatype_of",
    "json_tensor",
    "read_binary",
    "read_json",
    "spec_of",
]

Array = npt.NDArray[Any]

DATATYPES: Mapping[str, int] = {
    "BOOL": DT_BOOL,
    "INT8": DT_INT8,
    "INT16": DT_INT16,
    "INT32": DT_INT32,
    "INT64": DT_INT64,
    "UINT8": DT_UINT8,
    "UINT16": DT_UINT16,
    "UINT32": DT_UINT32,
    "UINT64": DT_UINT64,
    "FP16": DT_HALF,
    "FP32": DT_FLOAT,
    "FP64": DT_DOUBLE,
    "BF16": DT_BFLOAT16,
    "BYTES": DT_STRING,
}
"""V2 datatype → TensorFlow ``DataType``. Each V2 type has exactly one TF type; TF types with no V2
type (complex, quantized, resource, variant) cannot cross this protocol."""

_NAMES: Mapping[int, str] = {dt: name for name, dt in DATATYPES.items()}


def datatype_of(tf_dtype: int, where: str) -> str:
    """The V2 datatype of a TensorFlow ``DataType``; 400 naming ``where`` for one V2 lacks."""
    name = _NAMES.get(tf_dtype)
    if name is None:
        raise BadRequest(f"{where} has a dtype the Open Inference Protocol has no datatype for")
    return name


def spec_of(name: str, datatype: Any, where: str) -> InputSpec:
    """The :class:`InputSpec` a V2 datatype describes (the data as the client sent it)."""
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise BadRequest(
            f"{where}: unknown datatype {datatype!r}; the datatypes are " + ", ".join(DATATYPES)
        )
    tf_dtype = DATATYPES[datatype]
    dtype = None if tf_dtype == DT_STRING else np.dtype(numpy_dtype(tf_dtype))
    return InputSpec(name, tf_dtype, dtype, None)


def check_dims(shape: Any, limits: Limits, where: str) -> tuple[int, ...]:
    """A V2 shape as a tuple, refused (400) unless a list of non-negative integers, and bounded
    (413) by ``limits`` before anything of that shape is made."""
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequest(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    dims = tuple(shape)
    limits.check_shape(dims, where)
    return dims


def read_json(
    data: Any,
    dims: tuple[int, ...],
    spec: InputSpec,
    limits: Limits,
    where: str,
    *,
    at: str | None = None,
) -> Array:
    """``data`` (flat or nested, row-major) as an array of ``spec``'s dtype and shape ``dims``.

    ``where`` starts this module's messages (``input 'x'``); ``at`` (default ``where``) starts the
    library's, which name the input themselves (``inputs[0]: input 'x' (DT_FLOAT) ...``)."""
    if not isinstance(data, list):
        raise BadRequest(f"{where}: data must be a list, got {type(data).__name__}")
    array = array_from_json(data, spec, limits, at or where)
    count = math.prod(dims)
    if array.size != count:
        raise BadRequest(
            f"{where}: data holds {array.size} elements, but shape {list(dims)} takes {count}"
        )
    return array.reshape(dims)


def read_binary(
    chunk: bytes, dims: tuple[int, ...], spec: InputSpec, limits: Limits, where: str
) -> Array:
    """``chunk`` (Triton's binary tensor data) as an array of ``spec``'s dtype and shape ``dims``."""
    count = math.prod(dims)
    if spec.is_string:
        return _read_bytes_elements(chunk, count, limits, where).reshape(dims)
    assert spec.dtype is not None
    if len(chunk) != count * spec.dtype.itemsize:
        raise BadRequest(
            f"{where}: binary_data_size is {len(chunk)} bytes, but shape {list(dims)} of "
            f"{spec.dtype.itemsize}-byte elements takes {count * spec.dtype.itemsize}"
        )
    dtype = spec.dtype.newbyteorder("<") if spec.dtype.kind in "iuf" else spec.dtype
    if spec.tf_dtype == DT_BOOL:
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and int(raw.max()) > 1:
            raise BadRequest(f"{where}: BOOL elements must be bytes 0 or 1")
        return raw.astype(np.bool_).reshape(dims)
    return np.frombuffer(chunk, dtype=dtype).astype(spec.dtype, copy=False).reshape(dims)


def _read_bytes_elements(chunk: bytes, count: int, limits: Limits, where: str) -> Array:
    """``count`` elements of 4-byte little-endian length and bytes, filling ``chunk`` exactly."""
    out = np.empty(count, dtype=object)
    view = memoryview(chunk)
    position = 0
    for index in range(count):
        if position + 4 > len(chunk):
            raise BadRequest(f"{where}: binary BYTES data ends after {index} of {count} elements")
        length = int.from_bytes(view[position : position + 4], "little")
        position += 4
        if length > len(chunk) - position:
            raise BadRequest(
                f"{where}: element {index} claims {length} bytes, beyond the binary data"
            )
        element = bytes(view[position : position + length])
        check_string(element, limits, where)
        out[index] = element
        position += length
    if position != len(chunk):
        raise BadRequest(
            f"{where}: binary BYTES data holds {len(chunk) - position} bytes after its "
            f"{count} elements"
        )
    return out


def to_model(array: Array, spec: InputSpec | None, limits: Limits, where: str) -> Array:
    """The client's array as the model's input wants it, by the library's one cast policy.

    BF16 data (numpy kind ``V``, which the cast policy takes for no number) goes to a bfloat16 input
    as it is, and to any other input as float32 first: exact, since every bfloat16 is a float32
    (bfloat16 is float32's upper 16 bits), so the policy then sees the client's values unchanged.
    """
    if array.dtype.name == "bfloat16":
        if spec is not None and spec.dtype == array.dtype:
            return array
        array = array.astype(np.float32)
    return conform(array, spec, limits, where)


def _v2_dtype(array: Array, where: str) -> str:
    if array.dtype.kind in "OSU":
        return "BYTES"
    return datatype_of(data_type_of(array.dtype), where)


def json_tensor(name: str, array: Array, where: str) -> dict[str, Any]:
    """An output as a V2 JSON tensor (flat data, row-major)."""
    datatype = _v2_dtype(array, where)
    flat = array.reshape(-1)
    data: list[Any]
    if datatype == "BYTES":
        data = []
        for value in flat:
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            try:
                data.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(
                    f"{where} holds bytes that are not UTF-8, which JSON cannot carry; ask for "
                    'it as binary data ("parameters": {"binary_data": true})'
                ) from None
    elif datatype in ("FP16", "BF16"):
        data = flat.astype(np.float32).tolist()
    else:
        data = flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def binary_tensor(name: str, array: Array, where: str) -> tuple[dict[str, Any], bytes]:
    """An output as a V2 tensor with Triton's binary data: its JSON part and its bytes."""
    datatype = _v2_dtype(array, where)
    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in array.reshape(-1):
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(len(raw).to_bytes(4, "little"))
            parts.append(raw)
        payload = b"".join(parts)
    else:
        dtype = array.dtype.newbyteorder("<") if array.dtype.kind in "iuf" else array.dtype
        payload = np.ascontiguousarray(array, dtype=dtype).tobytes()
    tensor = {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "parameters": {"binary_data_size": len(payload)},
    }
    return tensor, payload
