"""One cast policy: how a client's numbers reach a typed model input.

Plain JSON, JSON lines, CSV, npy/npz and pickle bodies (every body that is not TF Serving's own JSON)
are typed by the signature input's dtype with one rule, the one a serving stack's user expects: **a
value may change its type, never its value.**

* **Integer inputs** (``DT_INT*``, ``DT_UINT*``) take integers in the dtype's range, and floats that
  are whole numbers: ``1.0``, ``2e3`` and a float64 array of whole values are ``1``, ``2000``. A
  fraction (``1.5``), ``NaN``, an infinity or a value out of the dtype's range is a 400 naming the
  input, the value and the dtype. A whole float beyond the range where its float type holds every
  integer (2**53 for JSON numbers, CSV cells and float64; 2**24 for float32; 2**11 for float16) is a
  400 as well: ``9007199254740993.0`` reads as ``...992``, so its value is not known; write such
  values as integer literals (those are exact up to 64 bits).
* **Float inputs** take any integer or float. Integers may round (float32 holds every integer up to
  2**24 only; TF Serving documents the same). A finite value that overflows the input's float type
  (``1e300`` for ``DT_FLOAT``, ``70000`` for ``DT_HALF``) is a 400; ``NaN`` and infinities pass.
* **Bool inputs** take booleans only (JSON ``true``/``false``; CSV's ``true``/``1``/... words are
  CSV's own spelling of booleans); a number is a 400. A boolean into a numeric input is a 400, also
  among numbers (``[true, 2]``), where numpy's promotion would have made it ``1``.
* **Complex inputs** take any number; a complex value into a real input is a 400.
* **String inputs** take strings (and TF Serving's ``{"b64": ...}`` objects where the format is JSON);
  a number into a string input is a 400, and a string into a numeric input too. CSV is text, so its
  cells are the strings a string input takes.

TF Serving's JSON bodies (``{"instances"|"inputs"|"examples": ...}``) are not typed here: they keep
TF Serving's own rule exactly (:mod:`tfio_handlers.protocol.tfs_json`), where ``1.0`` for an int32
input is TF Serving's 400 and a double beyond float32 becomes infinity.

Every function here takes a ``label`` that starts its error messages, naming where the value came
from and the input: ``line 2: input 'x' (DT_INT32)``.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ..errors import BadRequest
from ..protos import DataType

__all__ = [
    "cast_array",
    "dtype_label",
    "exact_integers",
    "integer_from_text",
    "leaves_of",
    "refuse_hidden_bools",
    "safe_integer_limit",
    "typed_numbers",
]

Array = NDArray[Any]

_SAFE_BY_ITEMSIZE: Final = {2: 2**11, 4: 2**24, 8: 2**53}
_JSON_SAFE: Final = 2**53  # JSON numbers and CSV cells are read as float64


def dtype_label(tf_dtype: int) -> str:
    """TensorFlow's name of a ``DataType`` number (``DT_FLOAT``)."""
    try:
        return DataType.Name(tf_dtype)  # type: ignore[arg-type]
    except ValueError:
        return f"DataType {tf_dtype}"


def safe_integer_limit(dtype: np.dtype[Any]) -> int:
    """The largest magnitude up to which the float ``dtype`` holds every integer (2**53 for float64)."""
    try:
        return int(2 ** (np.finfo(dtype).nmant + 1))
    except (TypeError, ValueError):  # a float type finfo does not know (bfloat16 without ml_dtypes)
        return _SAFE_BY_ITEMSIZE.get(dtype.itemsize, 2**8)


def _show(value: Any) -> str:
    """A value as a message shows it: ``1.5``, ``nan``, ``3000000000``."""
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 1e16 else repr(number)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(value)


def _whole(value: float, target: np.dtype[Any], label: str, safe: int) -> int:
    """One float as the integer it is, or the policy's 400."""
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRequest(
            f"{label}: value {_show(value)} is not a whole number; {target.name} takes whole "
            "numbers only"
        )
    if not value.is_integer():
        raise BadRequest(
            f"{label}: value {value!r} has a fraction; {target.name} takes whole numbers only"
        )
    whole = int(value)
    _check_range(whole, target, label, _show(value))
    if abs(whole) > safe:
        raise BadRequest(
            f"{label}: value {value!r} is a float beyond {safe}, where floats skip integers, so the "
            f"{target.name} value it stands for is not known; send it as an integer literal"
        )
    return whole


def _check_range(value: int, target: np.dtype[Any], label: str, shown: str | None = None) -> None:
    info = np.iinfo(target)
    if not info.min <= value <= info.max:
        raise BadRequest(
            f"{label}: value {shown or value} is out of range for {target.name} "
            f"[{info.min}, {info.max}]"
        )


def cast_array(array: Array, target: np.dtype[Any], label: str) -> Array:
    """``array`` (numbers or booleans) as ``target`` (a number or bool dtype), or the policy's 400.

    See the module docstring for the rule. The result may share memory with ``array``.
    """
    kind = array.dtype.kind
    if kind in "mMV":
        raise BadRequest(f"{label}: {array.dtype} values are not supported")
    if not array.size:  # no values, so no value can change: only the dtype matters
        return np.empty(array.shape, dtype=target)
    if target.kind == "b":
        if kind != "b":
            raise BadRequest(f"{label} expects booleans, got {array.dtype} values")
        return array.astype(target, copy=False)
    if kind == "b":
        raise BadRequest(f"{label} expects numbers, got booleans")
    if target.kind in "iu":
        if kind == "c":
            raise BadRequest(f"{label} expects integers, got complex values")
        if kind == "f":
            _check_whole_floats(array, target, label)
        elif array.size and array.dtype != target:
            low, high = int(array.min()), int(array.max())
            _check_range(low, target, label)
            _check_range(high, target, label)
        return array.astype(target, copy=False)
    if target.kind == "c":
        return array.astype(target, copy=False)
    if kind == "c":
        raise BadRequest(f"{label} expects real numbers, got complex values")
    if array.dtype == target or not array.size:
        return array.astype(target, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        out = array.astype(target)
    if np.isfinite(out).all():
        return out
    overflow = np.isinf(out) & np.isfinite(array)
    if overflow.any():
        value = array[overflow].flat[0]
        raise BadRequest(f"{label}: value {_show(value)} is out of range for {target.name}")
    return out


def _check_whole_floats(array: Array, target: np.dtype[Any], label: str) -> None:
    """Every float in ``array`` is a whole number in ``target``'s range and its float type's exact
    integers; else the first offending value's 400."""
    if not array.size:
        return
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(array) & (array == np.trunc(array))
    safe = safe_integer_limit(array.dtype)
    if not ok.all():
        _whole(float(array[~ok].flat[0]), target, label, safe)
    for value in (array.min(), array.max()):
        _whole(float(value), target, label, safe)


def exact_integers(leaves: list[Any], target: np.dtype[Any], label: str) -> Array | None:
    """Leaves of a JSON-like value (Python ``int`` and ``float``) as a flat ``target`` array, exactly.

    numpy would make float64 of integers beyond 2**53 next to a float (or beyond int64 next to a
    negative), losing digits; here each integer stays exact and each float follows the policy.
    ``None`` when a leaf is not a number (the caller words that error); booleans are refused.
    """
    safe = _JSON_SAFE
    out: list[int] = []
    append = out.append
    info = np.iinfo(target)
    for item in leaves:
        kind = type(item)
        if kind is int or (isinstance(item, (int, np.integer)) and not isinstance(item, bool)):
            whole = int(item)
            if not info.min <= whole <= info.max:
                _check_range(whole, target, label)
            append(whole)
        elif kind is float or isinstance(item, np.floating):
            append(_whole(float(item), target, label, safe))
        elif isinstance(item, (bool, np.bool_)):
            raise BadRequest(f"{label} expects numbers, got booleans")
        else:
            return None
    return np.array(out, dtype=target)


def leaves_of(value: Any) -> list[Any]:
    """The leaves of a rectangular nested list, in row-major order (``[value]`` for a scalar)."""
    items: list[Any] = [value]
    while items and type(items[0]) is list:
        items = list(chain.from_iterable(items))
    return items


def refuse_hidden_bools(value: Any, array: Array, label: str) -> None:
    """A 400 when ``array`` (numbers numpy made of the nested list ``value``) came from booleans
    among numbers: ``np.array([True, 2])`` is ``[1, 2]``, and the policy refuses booleans there."""
    if array.dtype.kind not in "iufc" or not isinstance(value, list) or not array.size:
        return
    level: list[Any] = value
    while level and type(level[0]) is list and level[0] and type(level[0][0]) is list:
        level = list(chain.from_iterable(level))  # all but the last level: lists of lists
    types = set(map(type, chain.from_iterable(level) if type(level[0]) is list else level))
    if bool in types or np.bool_ in types:
        raise BadRequest(f"{label} expects numbers, got booleans")


def typed_numbers(value: Any, array: Array, target: np.dtype[Any], label: str) -> Array | None:
    """The numbers of a JSON-like ``value`` as ``target`` by the policy; ``array`` is numpy's array
    of ``value`` (or ``value`` itself when it is an array).

    Integer inputs read the leaves exactly when numpy's array may have rounded them (an ``object``
    array, or floats at or beyond 2**53). ``None`` when the leaves are not all numbers, so that the
    caller can word the error; booleans among numbers are refused.
    """
    kind = array.dtype.kind
    if (
        isinstance(value, list)
        and target.kind in "iu"
        and (kind == "O" or (kind == "f" and not (np.abs(array) < float(_JSON_SAFE)).all()))
    ):
        try:
            objects = np.array(value, dtype=object)
        except (ValueError, TypeError):
            return None
        flat = exact_integers(objects.ravel().tolist(), target, label)
        return None if flat is None else flat.reshape(objects.shape)
    if kind not in "biufc":
        return None
    refuse_hidden_bools(value, array, label)
    return cast_array(array, target, label)


def integer_from_text(text: str) -> int:
    """A CSV cell for an integer input: an integer literal (exact, any size), or a number text that
    reads as a whole float64 within 2**53 (``1.0``, ``2e3``). Raises ``ValueError`` otherwise, with
    the reason (the caller adds the cell and the input; the range check is the caller's)."""
    try:
        return int(text)
    except ValueError:
        pass
    number = float(text)  # ValueError for a text that is not a number
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("is not a whole number")
    if not number.is_integer():
        raise ValueError("has a fraction")
    if abs(number) > _JSON_SAFE:
        raise ValueError(f"is a float beyond {_JSON_SAFE}: send it as an integer literal")
    return int(number)
