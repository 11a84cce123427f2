"""Compact JSON with numpy values, byte for byte as orjson writes it, with or without orjson.

orjson (the ``fast`` extra) writes numpy arrays and scalars itself, each float as the shortest text
that reads back as the same float32 or float64 (``0.1`` for ``np.float32(0.1)``). The standard
library cannot: it refuses numpy scalars, and a float32 widened to a Python float comes out as
``0.10000000149011612``. :func:`write` is the core-only twin of ``orjson.dumps(value,
option=OPT_SERIALIZE_NUMPY)``: the same bytes for every value orjson can write, so an answer does
not change when the ``fast`` extra is installed or removed. :func:`dumps` uses orjson when it is
installed and :func:`write` otherwise.

Layout (orjson's, checked against it by the tests on millions of values):

* compact (no spaces), UTF-8, strings escaped as ``json.dumps(..., ensure_ascii=False)`` does;
* a float is its shortest round-trip digits (Python's ``repr`` for float64, numpy's Dragon4 for
  float32; float16 is widened to float32 first, as orjson does), written positionally (``0.00001``,
  ``16777216.0``) when its decimal exponent is in -5..15 (float64) or -6..12 (float32), else as
  ``1.5e-7`` / ``3.4028235e+38``;
* non-finite floats as ``null`` (orjson's way), or as the tokens of ``non_finite``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .. import accelerators

__all__ = ["NULLS", "TOKENS", "dumps", "float_texts", "write"]

NULLS: Final = ("null", "null", "null")
"""Texts for NaN, +Infinity and -Infinity: ``null``, as orjson writes them (strict JSON)."""

TOKENS: Final = ("NaN", "Infinity", "-Infinity")
"""Texts for NaN, +Infinity and -Infinity: the bare tokens TF Serving writes."""

_F64_RANGE: Final = (-5, 15)
_F32_RANGE: Final = (-6, 12)
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def _layout(text: str, low: int, high: int) -> str:
    """A finite float's scientific text (``1.5e-07``, as ``repr`` or numpy writes it) laid out the
    way orjson lays it out for a decimal exponent between ``low`` and ``high``."""
    mantissa, _, exponent_text = text.partition("e")
    exponent = int(exponent_text)
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    if low <= exponent <= high:
        if exponent < 0:
            return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
        whole = exponent + 1
        if len(digits) <= whole:
            return f"{sign}{digits}{'0' * (whole - len(digits))}.0"
        return f"{sign}{digits[:whole]}.{digits[whole:]}"
    fraction = f".{digits[1:]}" if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{fraction}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def _non_finite(text: str, non_finite: tuple[str, str, str]) -> str:
    if text.endswith("nan"):
        return non_finite[0]
    return non_finite[2] if text.startswith("-") else non_finite[1]


def float_texts(
    values: npt.NDArray[np.floating[Any]], non_finite: tuple[str, str, str] = NULLS
) -> list[str]:
    """The JSON text of every value of a float array, flat in row-major order, as orjson writes it.

    ``non_finite`` gives the texts of NaN, +Infinity and -Infinity (:data:`NULLS` or
    :data:`TOKENS`, or any other triple, such as CSV's ``nan``/``inf``/``-inf``).
    """
    flat = np.ravel(values)
    if flat.dtype == np.float64:
        texts = list(map(repr, flat.tolist()))
        low, high = _F64_RANGE
    else:
        # float16 (and any narrower float) is widened to float32, as orjson does.
        texts = flat.astype(np.float32).astype(str).tolist()
        low, high = _F32_RANGE
    for i, text in enumerate(texts):
        # Positional texts (``0.25``, ``1e-04`` aside) are already orjson's: both write them for
        # exponents inside orjson's positional range. Only exponent forms and non-finite values change.
        if "e" in text:
            texts[i] = _layout(text, low, high)
        elif text[-1] in "nf":
            texts[i] = _non_finite(text, non_finite)
    return texts


def _nest(texts: list[str], shape: tuple[int, ...]) -> str:
    """Flat row-major texts as nested JSON arrays of ``shape`` (``[[],[]]`` for ``(2, 0, 3)``)."""
    if not shape:
        return texts[0]
    level = texts
    for axis in range(len(shape) - 1, -1, -1):
        size = shape[axis]
        count = math.prod(shape[:axis])
        if size == 0:
            level = ["[]"] * count
        else:
            level = ["[" + ",".join(level[i * size : (i + 1) * size]) + "]" for i in range(count)]
    return level[0]


def _array_text(array: npt.NDArray[Any], non_finite: tuple[str, str, str]) -> str | None:
    """An array of a dtype orjson writes (bool, integers, floats), or ``None`` for other dtypes."""
    kind = array.dtype.kind
    if kind == "f" and array.dtype.itemsize <= 8:
        texts = float_texts(array, non_finite)
    elif kind in "iu" and array.dtype.itemsize <= 8:
        texts = list(map(str, array.ravel().tolist()))
    elif kind == "b":
        texts = ["true" if v else "false" for v in array.ravel().tolist()]
    else:
        return None
    return _nest(texts, array.shape)


def write(
    value: Any,
    *,
    default: Callable[[Any], Any] | None = None,
    non_finite: tuple[str, str, str] = NULLS,
) -> bytes:
    """``value`` as compact UTF-8 JSON, the bytes ``orjson.dumps(value, default=default,
    option=OPT_SERIALIZE_NUMPY)`` gives, using the standard library only.

    Takes what orjson takes: ``None``, ``bool``, ``int``, ``float``, ``str``, ``list``, ``tuple``,
    ``dict`` with ``str`` keys, numpy scalars and numeric arrays, and whatever ``default`` turns into
    one of those. Unlike orjson it also writes integers beyond 64 bits, and non-finite floats as
    ``non_finite`` says. Anything else is a :class:`TypeError`, as in orjson.
    """
    parts: list[str] = []
    _write(value, parts, default, non_finite, 0)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError("str is not valid UTF-8: surrogates not allowed") from None


_MAX_DEFAULT_DEPTH: Final = 254  # orjson's limit on chained ``default`` calls


def _write(
    value: Any,
    parts: list[str],
    default: Callable[[Any], Any] | None,
    non_finite: tuple[str, str, str],
    defaults: int,
) -> None:
    if value is None:
        parts.append("null")
    elif value is True or value is False:
        parts.append("true" if value else "false")
    elif isinstance(value, str):
        parts.append(_encode_string(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        text = float.__repr__(value)
        if "e" in text:
            text = _layout(text, *_F64_RANGE)
        elif text[-1] in "nf":
            text = _non_finite(text, non_finite)
        parts.append(text)
    elif isinstance(value, dict):
        parts.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError("Dict key must be str")
            parts.append(("," if i else "") + _encode_string(key) + ":")
            _write(item, parts, default, non_finite, defaults)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            _write(item, parts, default, non_finite, defaults)
        parts.append("]")
    elif isinstance(value, np.generic) and (scalar := _array_text(np.array([value]), non_finite)):
        parts.append(scalar[1:-1])
    elif isinstance(value, np.ndarray) and value.ndim and (array := _array_text(value, non_finite)):
        parts.append(array)
    elif default is not None and defaults < _MAX_DEFAULT_DEPTH:
        _write(default(value), parts, default, non_finite, defaults + 1)
    else:
        raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON of ``value`` (numpy values included, non-finite floats as ``null``): by orjson
    when it is installed, else by :func:`write`, which gives the same bytes."""
    orjson = accelerators.orjson()
    if orjson is None:
        return write(value, default=default)
    data: bytes = orjson.dumps(value, default=default, option=orjson.OPT_SERIALIZE_NUMPY)
    return data
