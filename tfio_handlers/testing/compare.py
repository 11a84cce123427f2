"""Array comparison for round trips: bit for bit, or value for value with NaN equal to NaN."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["describe_difference", "same_bits", "same_values"]

Array = NDArray[Any]


def _strings(array: Array) -> list[bytes]:
    return [bytes(x) if not isinstance(x, str) else x.encode() for x in array.ravel().tolist()]


def same_bits(a: Array, b: Array) -> bool:
    """Equal dtype and shape, and every element the same bits: NaN payloads, signalling NaNs and the
    sign of ``-0.0`` included; strings (``object`` arrays) equal as ``bytes``."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return _strings(a) == _strings(b)
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def same_values(a: Array, b: Array) -> bool:
    """Equal dtype and shape, and every element the same value: any NaN equals any NaN (formats
    that carry a NaN but not its payload or sign), ``-0.0`` and ``0.0`` are told apart."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return _strings(a) == _strings(b)
    if a.dtype.kind not in "fc" and a.dtype.name != "bfloat16":
        return bool(np.array_equal(a, b))
    with np.errstate(invalid="ignore"):
        parts_a, parts_b = _float_parts(a), _float_parts(b)
    nan_a, nan_b = np.isnan(parts_a), np.isnan(parts_b)
    if not np.array_equal(nan_a, nan_b):
        return False
    keep = ~nan_a
    with np.errstate(invalid="ignore"):
        return bool(
            np.array_equal(parts_a[keep], parts_b[keep])
            and np.array_equal(np.signbit(parts_a[keep]), np.signbit(parts_b[keep]))
        )


def _float_parts(array: Array) -> NDArray[np.float64]:
    """Real values (complex: real and imaginary parts side by side) as float64."""
    if array.dtype.kind == "c":
        array = np.stack([array.real, array.imag], axis=-1)
    return np.asarray(array, dtype=np.float64)


def describe_difference(expected: Array, actual: Array) -> str:
    """A line saying how two arrays differ, for an assertion message."""
    if expected.dtype != actual.dtype:
        return f"dtype {actual.dtype}, expected {expected.dtype}"
    if expected.shape != actual.shape:
        return f"shape {list(actual.shape)}, expected {list(expected.shape)}"
    flat_e, flat_a = expected.ravel(), actual.ravel()
    for i in range(flat_e.size):
        if not same_bits(flat_e[i : i + 1], flat_a[i : i + 1]):
            where = np.unravel_index(i, expected.shape) if expected.ndim else ()
            return (
                f"element {list(where)} is {_show(flat_a[i : i + 1])}, expected "
                f"{_show(flat_e[i : i + 1])}"
            )
    return "no difference"


def _show(one: Array) -> str:
    if one.dtype == object:
        return repr(one[0])
    return f"{one[0]!r} (bits {np.ascontiguousarray(one).tobytes().hex()})"
