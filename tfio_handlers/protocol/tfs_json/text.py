"""TF Serving's response JSON text: ``MakeJsonFromTensors`` and the classify/regress writers.

TF Serving writes responses with RapidJSON's ``PrettyWriter`` (4-space indent), switching to
``kFormatSingleLineArray`` for each row of ``predictions`` and each classify/regress result. This
module writes the same bytes, laid out the same way, from numpy arrays in bulk:

* floats by ``WriteDecimal`` (:func:`decimal_texts`): ``absl::StrCat`` (``%g``, six significant
  digits) when that reads back as the same value, else ``%.9g`` (float) / ``%.17g`` (double), with
  ``.0`` added when the text has neither ``.`` nor ``e``; NaN and infinities as the bare tokens
  ``NaN``, ``Infinity``, ``-Infinity`` (or ``null`` in strict mode);
* integers exactly, bools as ``true``/``false``;
* strings escaped as RapidJSON escapes them (``"``, ``\\`` and control bytes) with every other
  byte written as it is (invalid UTF-8 too, unless strict), or as ``{"b64": "..."}`` objects when
  the output's name ends in ``_bytes``.

The document is built as ``str`` with undecodable bytes carried by ``surrogateescape`` and encoded
once at the end, so string tensors go out byte for byte.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .rapidjson_writer import escape_string

__all__ = ["decimal_texts", "indent", "nested_text", "value_texts"]

_POW10: Final = [10.0**k for k in range(23)]  # exact doubles


def indent(levels: int) -> str:
    """RapidJSON's ``WriteIndent`` for ``levels`` open containers."""
    return " " * (4 * levels)


def _non_finite(value: float, strict: bool) -> str:
    if strict:
        return "null"
    if value != value:
        return "NaN"
    return "-Infinity" if value < 0 else "Infinity"


def _six_digits_round_trip(values: npt.NDArray[Any], single: bool) -> npt.NDArray[np.bool_]:
    """For finite values: does the ``%g`` (six significant digits) text read back exactly?

    Computed with numpy where it can be exact (the power of ten is exact: ``|p| <= 22``), and by
    formatting and reading back for the rest (and for float32 values that land on a rounding tie).
    """
    wide = values.astype(np.float64)
    a = np.abs(wide)
    result = a == 0.0  # "0" and "-0" read back exactly
    nonzero = np.flatnonzero(~result)
    if nonzero.size:
        x = a[nonzero]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            e = np.floor(np.log10(x)).astype(np.int64)
            p = 5 - e
            inside = np.abs(p) <= 22
            pi = np.where(inside, p, 0)
            scale = np.array(_POW10)[np.abs(pi)]
            y = np.where(pi >= 0, x * scale, x / scale)
            m = np.rint(y)
            # log10 may be one off near powers of ten: the rounded significand must have 6 digits.
            bad = (m >= 1e6) | (m < 1e5)
            inside &= ~bad
            back = np.where(pi >= 0, m / scale, m * scale)
        if single:
            narrow = back.astype(np.float32)
            ok = narrow == x.astype(np.float32)
            # A double that is exactly halfway between two floats rounds to even: ambiguous, check
            # it by text.
            gap = np.abs(back - narrow.astype(np.float64))
            with np.errstate(over="ignore"):
                ulp = np.spacing(np.abs(narrow)).astype(np.float64)
            inside &= ~((gap == ulp / 2) | (gap == ulp / 4))
        else:
            ok = back == x
        sure = nonzero[inside]
        result[sure] = ok[inside]
        unsure = nonzero[~inside]
        if unsure.size:
            texts = [f"{v:g}" for v in wide[unsure].tolist()]
            if single:
                result[unsure] = np.array([float(t) for t in texts], np.float64).astype(
                    np.float32
                ) == values[unsure].astype(np.float32)
            else:
                result[unsure] = np.array([float(t) for t in texts]) == wide[unsure]
    return result  # type: ignore[no-any-return]


SMALL: Final = 16
"""Arrays of at most this many values are written value by value: numpy's per-call overhead
(tens of microseconds for the bulk path's dozen array operations) dwarfs a few ``%g`` calls."""


_FLOAT32: Final = struct.Struct("<f")
"""Packing a Python float as ``f`` rounds it to float32, as ``np.float32`` does, at a fraction of the
cost of making a numpy scalar."""


def _small_decimal_texts(values: list[float], single: bool, strict: bool) -> list[str]:
    """:func:`decimal_texts` one value at a time, by the same rule and the same read-back."""
    out = []
    as_float32 = _FLOAT32.pack
    for value in values:
        if value != value or value in (math.inf, -math.inf):
            out.append(_non_finite(value, strict))
            continue
        text = f"{value:g}"
        back = float(text)
        if single:
            try:
                round_trips = as_float32(back) == as_float32(value)
            except OverflowError:  # the six digits rounded past float32's largest value
                round_trips = False
        else:
            round_trips = back == value
        if not round_trips:
            text = f"{value:.9g}" if single else f"{value:.17g}"
        out.append(text if ("." in text or "e" in text) else text + ".0")
    return out


def decimal_texts(values: npt.NDArray[Any], *, single: bool, strict: bool) -> list[str]:
    """``WriteDecimal`` for every value of a float32 (``single``) or float64 array, flat."""
    flat = values.ravel()
    n = flat.size
    if n == 0:
        return []
    if n <= SMALL:
        return _small_decimal_texts(flat.astype(np.float64).tolist(), single, strict)
    finite = np.isfinite(flat)
    all_finite = bool(finite.all())
    idx = np.arange(n) if all_finite else np.flatnonzero(finite)
    vals = flat[idx]
    six = _six_digits_round_trip(vals, single)
    wide = vals.astype(np.float64)
    texts = np.empty(vals.size, dtype=object)
    short = wide[six].tolist()
    if short:
        texts[six] = ("%g\x00" * len(short) % tuple(short)).split("\x00")[:-1]
    long_values = wide[~six].tolist()
    if long_values:
        fmt = "%.9g\x00" if single else "%.17g\x00"
        texts[~six] = (fmt * len(long_values) % tuple(long_values)).split("\x00")[:-1]
    finite_texts = [t if ("." in t or "e" in t) else t + ".0" for t in texts.tolist()]
    if all_finite:
        return finite_texts
    out: list[str] = [""] * n
    for i, t in zip(idx.tolist(), finite_texts, strict=True):
        out[i] = t
    for i in np.flatnonzero(~finite).tolist():
        out[i] = _non_finite(float(flat[i]), strict)
    return out


def _string_text(raw: bytes, strict: bool) -> str:
    return escape_string(raw).decode("utf-8", "replace" if strict else "surrogateescape")


def value_texts(
    values: npt.NDArray[Any], dtype_kind: str, *, strict: bool, b64_depth: int | None = None
) -> list[str]:
    """The JSON text of every value of a tensor, flat, in row-major order.

    ``dtype_kind`` is ``float``, ``double``, ``int``, ``bool`` or ``string``. For ``_bytes``
    string outputs pass ``b64_depth``: the number of open containers around each value, which
    sets the indentation of the ``{"b64": ...}`` objects RapidJSON writes on several lines.
    """
    if dtype_kind == "float":
        return decimal_texts(values, single=True, strict=strict)
    if dtype_kind == "double":
        return decimal_texts(values, single=False, strict=strict)
    flat = values.ravel()
    if dtype_kind == "int":
        return list(map(str, flat.tolist()))
    if dtype_kind == "bool":
        return ["true" if v else "false" for v in flat.tolist()]
    items: Sequence[bytes] = flat.tolist()
    if b64_depth is None:
        return [_string_text(v, strict) for v in items]
    head = "{\n" + indent(b64_depth + 1) + '"b64": "'
    tail = '"\n' + indent(b64_depth) + "}"
    return [head + base64.b64encode(v).decode("ascii") + tail for v in items]


def nested_text(texts: list[str], dims: Sequence[int], depth: int, single_line: bool) -> str:
    """Values (flat, row-major) as nested arrays of shape ``dims`` (rank >= 1).

    ``depth`` is the number of containers open around the outermost array; ``single_line``
    selects ``kFormatSingleLineArray`` (``[1, 2]``) over the default layout (one value a line).
    """
    level = texts
    rank = len(dims)
    for axis in range(rank - 1, -1, -1):
        d = dims[axis]
        count = math.prod(dims[:axis])
        if d == 0:
            level = ["[]"] * count
            continue
        if single_line:
            sep, opening, closing = ", ", "[", "]"
        else:
            inner = indent(depth + axis + 1)
            sep = ",\n" + inner
            opening = "[\n" + inner
            closing = "\n" + indent(depth + axis) + "]"
        if d == 1:
            level = [opening + t + closing for t in level]
        else:
            level = [opening + sep.join(level[i * d : (i + 1) * d]) + closing for i in range(count)]
    return level[0]


def row_item_texts(texts: list[str], dims: Sequence[int], depth: int) -> list[str]:
    """The ``predictions`` items of one tensor: each ``t[i]`` in single-line layout."""
    batch = dims[0]
    if batch == 0:
        return []
    inner = list(dims[1:])
    if not inner:
        return texts
    per = math.prod(inner)
    if per == 0:
        empty = nested_text([], inner, depth, True)
        return [empty] * batch
    return [nested_text(texts[i * per : (i + 1) * per], inner, depth, True) for i in range(batch)]
