"""Decoder-side helpers shared by the CSV, JSON lines, npy and pickle codecs.

A codec decodes into *plain values* typed by the model's signature: one ``numpy.ndarray`` per input,
already batched, or a list of feature dicts for a classify/regress signature. This module reads the
signature into :class:`InputSpec` records and converts arrays and JSON-like values to the dtype an
input wants, refusing every cast that would change a value (a float with a fraction into an integer
input, a number into a string input, a value out of range), with a message that names *where* the
value came from (``line 3``, ``input 'x'``) so a client can find it.

Strings always come out as ``object`` arrays of ``bytes``: a fixed-width ``S`` array would cost
``N * longest`` bytes and lose trailing NUL bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..config import Limits
from ..context import Context
from ..errors import BadRequest, PayloadTooLarge
from ..protos import DT_STRING, DataType
from ..tensors import numpy_dtype

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
        return self.tf_dtype == DT_STRING

    @property
    def label(self) -> str:
        """``input 'x' (DT_FLOAT)``, for error messages."""
        return f"input {self.name!r} ({dtype_label(self.tf_dtype)})"


def dtype_label(tf_dtype: int) -> str:
    """TensorFlow's name of a ``DataType`` number (``DT_FLOAT``)."""
    try:
        return DataType.Name(tf_dtype)  # type: ignore[arg-type]
    except ValueError:
        return f"DataType {tf_dtype}"


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
    """Decode TF Serving's ``{"b64": "..."}`` object (standard alphabet, padding optional)."""
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
    padded = encoded.replace(".", "=").rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: Unable to base64 decode") from None


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

    Rules: any integer or float fits a float input (a finite float64 that overflows float32 is
    refused); an integer input takes integers in its range only (no floats, as TF Serving); a bool
    input takes bools only; complex inputs take any number; a string input takes strings only.
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
    target = spec.dtype
    if kind in "mMV":
        raise BadRequest(f"{where}: {array.dtype} values are not supported")
    if target.kind == "b":
        if kind != "b":
            raise BadRequest(f"{where}: {spec.label} expects booleans, got {array.dtype} values")
        return array.astype(target, copy=False)
    if kind == "b":
        raise BadRequest(f"{where}: {spec.label} expects numbers, got booleans")
    if target.kind in "iu":
        if kind not in "iu":
            raise BadRequest(f"{where}: {spec.label} expects integers, got {array.dtype} values")
        if array.size and array.dtype != target:
            info = np.iinfo(target)
            low, high = array.min(), array.max()
            if int(low) < info.min or int(high) > info.max:
                bad = low if int(low) < info.min else high
                raise BadRequest(
                    f"{where}: {spec.label}: value {int(bad)} is out of range "
                    f"[{info.min}, {info.max}]"
                )
        return array.astype(target, copy=False)
    if target.kind == "c":
        return array.astype(target, copy=False)
    if kind == "c":
        raise BadRequest(f"{where}: {spec.label} expects real numbers, got complex values")
    if kind == "f" and array.dtype.itemsize > target.itemsize and array.size:
        out = array.astype(target)
        if not np.isfinite(out).all():
            overflow = np.isinf(out) & np.isfinite(array)
            if overflow.any():
                value = array[overflow].flat[0]
                raise BadRequest(
                    f"{where}: {spec.label}: value {value!r} is out of range for {target.name}"
                )
        return out
    return array.astype(target, copy=False)


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
    """Walk a nested list as TF Serving does: the shape comes from the first element at each level,
    every list must match it and every leaf sit at the innermost level (TF Serving's messages);
    ``leaf`` sees each leaf in row-major order. Returns the shape."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
        if max_depth is not None and len(shape) > max_depth:
            raise BadRequest(f"{where}: nesting is deeper than the limit of {max_depth} levels")
    rank = len(shape)

    def visit(item: Any, level: int) -> None:
        if level < rank:
            if not isinstance(item, list):
                raise BadRequest(
                    f"{where}: JSON Value: {item!r:.80} found at incorrect level: {level + 1} in "
                    f"the JSON DOM. Expected at level: {rank}"
                )
            if len(item) != shape[level]:
                raise BadRequest(
                    f"{where}: Encountered list at unexpected size: {len(item)} at level: "
                    f"{level} expected size: {shape[level]}"
                )
            for sub in item:
                visit(sub, level + 1)
            return
        if isinstance(item, list):
            raise BadRequest(
                f"{where}: Encountered list at unexpected level: {level} expected < {rank}"
            )
        leaf(item)

    visit(value, 0)
    return tuple(shape)


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
    become float32 (bools stay bool, strings become bytes). Integer inputs take integer literals only:
    ``1.0`` is refused, as TF Serving refuses it.
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
    integer = spec is not None and spec.dtype is not None and spec.dtype.kind in "iu"
    if integer and array.dtype.kind in "fO":
        # numpy makes float64 of int64 and uint64 values together (2**63 next to 0), and objects
        # of integers beyond 64 bits: read exact Python integers instead.
        assert spec is not None and spec.dtype is not None
        exact = _exact_integers(value, spec, spec.dtype, where)
        if exact is not None:
            limits.check_elements(exact.size, where)
            return exact
    if array.dtype.kind not in "biuf":
        _explain_bad_numbers(value, limits, where, spec)
    limits.check_elements(array.size, where)
    if spec is None or spec.dtype is None:
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
    return conform(array, spec, limits, where)


def _exact_integers(value: Any, spec: InputSpec, target: np.dtype[Any], where: str) -> Array | None:
    """``value`` as ``target`` when every leaf is a Python ``int`` in range; ``None`` when some leaf
    is not an integer (the caller words that error)."""
    try:
        objects = np.array(value, dtype=object)
    except (ValueError, TypeError):
        return None
    flat = objects.ravel().tolist()
    if not all(type(item) is int for item in flat):
        return None
    info = np.iinfo(target)
    for item in flat:
        if not info.min <= item <= info.max:
            raise BadRequest(
                f"{where}: {spec.label}: value {item} is out of range [{info.min}, {info.max}]"
            )
    return np.array(flat, dtype=target).reshape(objects.shape)


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
            out[i] = array
        return out
    return np.stack(arrays)
