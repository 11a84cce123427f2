"""Decoder-side helpers shared by the CSV, JSON lines, npy and pickle codecs.

A codec decodes into *plain values* typed by the model's signature: one ``numpy.ndarray`` per input,
already batched, or a list of feature dicts for a classify/regress signature. This module reads the
signature into :class:`InputSpec` records and converts arrays and JSON-like values to the dtype an
input wants by the one cast policy (:mod:`tfio_handlers.tensors.casting`: a value may change its type,
never its value; ``1.0`` into an integer input is ``1``, ``1.5`` is a 400), with a message that
names *where* the value came from (``line 3``, ``input 'x'``) so a client can find it.

Strings always come out as ``object`` arrays of bytes: a fixed-width ``S`` array would cost
``N * longest`` bytes and lose trailing NUL bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..config import Limits
from ..context import Context
from ..errors import BadRequest, PayloadTooLarge
from ..protocol.tfs_json.tensor import TfsStatus, b64_decode, dense_shape, walk_leaves
from ..protos import DT_STRING
from ..tensors import numpy_dtype
from ..tensors.casting import cast_array, dtype_label, typed_numbers

__all__ = [
    "DT_STRING",
    "InputSpec",
    "array_from_json",
    "check_code_points",
    "check_string",
    "conform",
    "dtype_label",
    "input_specs",
    "object_strings",
    "shape_text",
    "stack_instances",
    "unwrap_b64",
]

Array = NDArray[Any]


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What a signature says about one input: its numpy dtype and its shape.

    ``dtype`` is ``None`` for a ``DT_STRING`` input (strings are ``object`` arrays of bytes) and for
    an input whose dtype the signature leaves unset. ``shape`` is ``None`` when the rank is unknown;
    an unknown dimension is ``-1``.
    """

    name: str
    tf_dtype: int
    dtype: np.dtype[Any] | None
    shape: tuple[int, ...] | None

    @property
    def is_string(self) -> bool:
        """Whether the input is ``DT_STRING`` (its values are ``object`` arrays of ``bytes``)."""
        return self.tf_dtype == DT_STRING

    @property
    def label(self) -> str:
        """``input 'x' (DT_FLOAT)``, for error messages."""
        return f"input {self.name!r} ({dtype_label(self.tf_dtype)})"


def input_specs(context: Context) -> dict[str, InputSpec]:
    """The signature's inputs by name, in name order; empty when no signature is known."""
    signature = context.signature
    if signature is None:
        return {}
    specs: dict[str, InputSpec] = {}
    for name in sorted(signature.inputs):
        info = signature.inputs[name]
        tf_dtype = int(info.dtype)
        dtype: np.dtype[Any] | None = None
        if tf_dtype not in (0, DT_STRING):
            dtype = np.dtype(numpy_dtype(tf_dtype))
        shape: tuple[int, ...] | None = None
        if info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank:
            shape = tuple(int(d.size) for d in info.tensor_shape.dim)
        specs[name] = InputSpec(name, tf_dtype, dtype, shape)
    return specs


def shape_text(shape: Sequence[int]) -> str:
    """``[2,3]`` as TF Serving prints shapes (``[]`` for a scalar)."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def check_string(data: bytes | str, limits: Limits, where: str) -> None:
    """Refuse a string longer than ``limits.max_string_bytes`` (UTF-8 bytes for ``str``)."""
    size = len(data)
    if isinstance(data, str) and size * 4 > limits.max_string_bytes:
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > limits.max_string_bytes:
        raise PayloadTooLarge(
            f"{where}: a string of {size} bytes is over the limit of {limits.max_string_bytes} bytes"
        )


_MAX_CODE_POINT = 0x10FFFF


def check_code_points(array: Array, where: str) -> None:
    """Refuse a ``U`` array holding a code point beyond U+10FFFF (400).

    numpy stores ``U`` strings as raw UCS-4 words and checks nothing when it reads them from a
    buffer; turning such a word into a ``str`` raises ``SystemError`` (npy and pickle bodies
    carry the words as they like). One vectorised pass over the words, for string arrays only.
    """
    if array.dtype.kind != "U" or array.dtype.itemsize == 0 or array.size == 0:
        return
    words = np.ascontiguousarray(array).view(np.uint32)
    if int(words.max()) > _MAX_CODE_POINT:
        raise BadRequest(f"{where}: a string holds a character beyond U+10FFFF")


def unwrap_b64(value: Mapping[str, Any], limits: Limits, where: str) -> bytes:
    """Decode TF Serving's ``{"b64": "..."}`` object as TF Serving does
    (:func:`~tfio_handlers.protocol.tfs_json.tensor.b64_decode`, ``absl::Base64Unescape``: the
    standard alphabet, whitespace skipped, no padding or exactly the right padding)."""
    encoded = value.get("b64")
    if len(value) != 1 or not isinstance(encoded, str):
        raise BadRequest(
            f"{where}: JSON object not formatted correctly for base64 data: {value!r:.80}"
        )
    if len(encoded) * 3 // 4 > limits.max_string_bytes:
        raise PayloadTooLarge(
            f"{where}: a base64 string of {len(encoded)} characters is over the limit of "
            f"{limits.max_string_bytes} bytes"
        )
    decoded = b64_decode(encoded)
    if decoded is None:
        raise BadRequest(f"{where}: Unable to base64 decode")
    return decoded


def _is_b64(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and "b64" in value


def object_strings(array: Array, limits: Limits, where: str) -> Array:
    """An ``object`` array of ``bytes`` from a ``U``, ``S`` or ``O`` array of strings.

    ``str`` becomes UTF-8; anything in an object array that is not ``str`` or ``bytes`` is refused.
    """
    kind = array.dtype.kind
    if kind == "S":
        if array.dtype.itemsize > limits.max_string_bytes:
            raise PayloadTooLarge(
                f"{where}: strings of {array.dtype.itemsize} bytes are over the limit of "
                f"{limits.max_string_bytes} bytes"
            )
        out = np.empty(array.shape, dtype=object)
        out.ravel()[:] = array.ravel().tolist()
        return out
    if kind == "U":
        if array.dtype.itemsize // 4 > limits.max_string_bytes:
            raise PayloadTooLarge(
                f"{where}: strings of up to {array.dtype.itemsize // 4} characters are over the "
                f"limit of {limits.max_string_bytes} bytes"
            )
        encoded = [s.encode("utf-8", "surrogatepass") for s in array.ravel().tolist()]
        if array.dtype.itemsize > limits.max_string_bytes:  # UTF-8 may take 4 bytes a character
            for item in encoded:
                check_string(item, limits, where)
        out = np.empty(array.shape, dtype=object)
        out.ravel()[:] = encoded
        return out
    if kind == "O":
        out = np.empty(array.shape, dtype=object)
        flat = out.reshape(-1)
        for i, item in enumerate(array.reshape(-1).tolist()):
            if isinstance(item, str):
                item = item.encode("utf-8", "surrogatepass")
            elif isinstance(item, (bytes, bytearray, memoryview, np.bytes_)):
                item = bytes(item)
            else:
                raise BadRequest(
                    f"{where}: expected strings, got a {type(item).__name__} at flat index {i}"
                )
            check_string(item, limits, where)
            flat[i] = item
        return out
    raise BadRequest(f"{where}: expected strings, got {array.dtype} values")


def conform(array: Array, spec: InputSpec | None, limits: Limits, where: str) -> Array:
    """``array`` converted to what ``spec`` wants, or an exact 400 when the cast would change a value.

    Without a spec (no signature, or a dtype the signature leaves unset) the array keeps its dtype,
    except that strings become ``object`` arrays of bytes.

    Numbers and booleans follow :func:`tfio_handlers.tensors.casting.cast_array` (the one cast
    policy: a float that is a whole number fits an integer input; a fraction, a non-finite value or
    one out of range is a 400); a string input takes strings only.
    """
    kind = array.dtype.kind
    if array.size == 0 and spec is not None and (spec.is_string or spec.dtype is not None):
        # No values, so no value can change: only the dtype matters.
        return np.empty(array.shape, dtype=object if spec.is_string else spec.dtype)
    if kind in "OUS" or (spec is not None and spec.is_string):
        if spec is not None and not spec.is_string and spec.dtype is not None:
            raise BadRequest(f"{where}: {spec.label} expects numbers, got strings")
        if kind not in "OUS":
            label = spec.label if spec is not None else "input"
            raise BadRequest(f"{where}: {label} expects strings, got {array.dtype} values")
        return object_strings(array, limits, where)
    if spec is None or spec.dtype is None:
        return array
    return cast_array(array, spec.dtype, f"{where}: {spec.label}")


def _first_depth(value: Any, limit: int, where: str) -> None:
    """Refuse nesting deeper than ``limit`` along the first elements (the walk numpy will do)."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        if depth > limit:
            raise BadRequest(f"{where}: nesting is deeper than the limit of {limit} levels")
        if not value:
            return
        value = value[0]


def _walk_rectangular(
    value: Any, where: str, leaf: Callable[[Any], None], max_depth: int | None = None
) -> tuple[int, ...]:
    """Walk a nested list as TF Serving does (:func:`~tfio_handlers.protocol.tfs_json.tensor.
    walk_leaves`: the shape from the first element at each level, every list matching it, every
    leaf at the innermost level, TF Serving's messages after ``where``); ``leaf`` sees each leaf
    in row-major order. Returns the shape."""
    dims = dense_shape(value)
    if max_depth is not None and len(dims) > max_depth:
        raise BadRequest(f"{where}: nesting is deeper than the limit of {max_depth} levels")
    try:
        walk_leaves(value, dims, leaf)
    except TfsStatus as status:
        raise BadRequest(f"{where}: {status.message}") from None
    return tuple(dims)


def _walk_strings(
    value: Any, limits: Limits, where: str, spec: InputSpec | None
) -> tuple[list[bytes], tuple[int, ...]]:
    """Flatten a nested list of strings (or b64 objects) checking it is rectangular, like TF Serving."""
    flat: list[bytes] = []

    def leaf(item: Any) -> None:
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogatepass")
        elif isinstance(item, bytes):
            data = item
        elif _is_b64(item):
            data = unwrap_b64(item, limits, where)
        else:
            label = spec.label if spec is not None else "input"
            raise BadRequest(
                f"{where}: {label} expects strings, got {_json_type(item)} {item!r:.80}"
            )
        check_string(data, limits, where)
        flat.append(data)

    shape = _walk_rectangular(value, where, leaf, limits.max_depth)
    return flat, shape


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _has_string_leaf(value: Any) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, (str, bytes)) or _is_b64(value)


def array_from_json(value: Any, spec: InputSpec | None, limits: Limits, where: str) -> Array:
    """A JSON-like value (nested lists of numbers, bools, strings or b64 objects) as a typed array.

    Lists must be rectangular (TF Serving's rule: no ragged tensors). Without a signature, numbers
    become float32 (bools stay bool, strings become bytes). With one, numbers follow the one cast
    policy (:func:`tfio_handlers.tensors.casting.typed_numbers`): ``1.0`` into an integer input is
    ``1``, ``1.5`` a 400.
    """
    _first_depth(value, limits.max_depth, where)
    if (spec is not None and spec.is_string) or _has_string_leaf(value):
        if spec is not None and not spec.is_string and spec.dtype is not None:
            found = value
            while isinstance(found, list) and found:
                found = found[0]
            raise BadRequest(f"{where}: {spec.label} expects numbers, got {_json_type(found)}")
        flat, shape = _walk_strings(value, limits, where, spec)
        limits.check_elements(len(flat), where)
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    try:
        array = np.array(value)
    except (ValueError, TypeError, OverflowError):
        array = np.array(None)
        _explain_bad_numbers(value, limits, where, spec)
    if spec is None or spec.dtype is None:
        if array.dtype.kind not in "biuf":
            _explain_bad_numbers(value, limits, where, spec)
        limits.check_elements(array.size, where)
        if array.dtype.kind in "iuf":
            with np.errstate(over="ignore"):
                out = array.astype(np.float32)
            if array.dtype.kind == "f" and array.size:
                overflow = np.isinf(out) & np.isfinite(array)
                if overflow.any():
                    value = array[overflow].flat[0]
                    raise BadRequest(f"{where}: value {float(value)!r} is out of range for float32")
            return out
        return array
    typed = None
    if array.dtype.kind in "biufO":
        limits.check_elements(array.size, where)
        typed = typed_numbers(value, array, spec.dtype, f"{where}: {spec.label}")
    if typed is None:
        _explain_bad_numbers(value, limits, where, spec)
        raise AssertionError("unreachable: _explain_bad_numbers raises")  # pragma: no cover
    return typed


def _explain_bad_numbers(value: Any, limits: Limits, where: str, spec: InputSpec | None) -> None:
    """Find why numpy could not make a numeric array of ``value`` and raise that as a 400."""
    label = spec.label if spec is not None else "input"

    def leaf(item: Any) -> None:
        if isinstance(item, (bool, float)):
            return
        if isinstance(item, int):
            if not -(2**63) <= item < 2**64:
                raise BadRequest(f"{where}: {label}: integer {item} is out of the 64-bit range")
            return
        raise BadRequest(f"{where}: {label} expects numbers, got {_json_type(item)} {item!r:.80}")

    _walk_rectangular(value, where, leaf)
    raise BadRequest(f"{where}: {label}: the values do not form a tensor of numbers")


def stack_instances(arrays: Sequence[Array], wheres: Sequence[str], name: str) -> Array:
    """Stack per-instance arrays along a new batch dimension; a shape mismatch names the instance."""
    if not arrays:
        raise BadRequest(f"No instances for input {name!r}")
    first = arrays[0]
    for array, where in zip(arrays, wheres, strict=True):
        if array.shape != first.shape:
            raise BadRequest(
                f"{where}: input {name!r}: Expecting shape {shape_text(first.shape)} but got: "
                f"{shape_text(array.shape)} ({wheres[0]} sets the instance shape)"
            )
    kinds = {a.dtype.kind for a in arrays}
    if len(kinds) > 1 and "O" in kinds:
        raise BadRequest(f"input {name!r}: instances mix strings and numbers")
    if "O" in kinds:
        out = np.empty((len(arrays), *first.shape), dtype=object)
        for i, array in enumerate(arrays):
            out[i, ...] = array  # a 0-d instance gives its element, not itself
        return out
    return np.stack(arrays)
