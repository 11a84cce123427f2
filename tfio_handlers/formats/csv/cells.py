"""One CSV cell's text → its value: numbers that are out of range rather than infinite, booleans, bytes.

Shared by the table reader (the JSON fast path without orjson parses numbers with them) and the
decoder, which types each input's cells with them and names the first bad cell.
"""

from __future__ import annotations

import math

__all__ = [
    "OutOfRange",
    "bounded_int",
    "is_integer",
    "is_number",
    "parse_bool",
    "parse_complex",
    "parse_float",
    "utf8",
]

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class OutOfRange(ValueError):
    """A finite number written beyond the range of float64 (``1e999``, 400 digits)."""


_INFINITE_WORDS = frozenset({"inf", "infinity"})


def parse_float(cell: str) -> float:
    """``float(cell)``, except that a finite text beyond float64 (``1e999``, an integer of 5000
    digits) is out of range rather than infinity: only ``inf``/``infinity`` spell infinity."""
    value = float(cell)
    if value in (math.inf, -math.inf) and cell.strip().lstrip("+-").lower() not in _INFINITE_WORDS:
        raise OutOfRange(cell)
    return value


def bounded_int(text: str) -> int | float:
    """An integer literal for the fast path without orjson: an exact ``int``, except that one
    of over 400 digits (beyond float64) is out of range, and the exact path then names it."""
    return int(text) if len(text) <= 400 else parse_float(text)


def parse_complex(cell: str) -> complex:
    """``complex(cell)``; a part written finite but beyond float64 (``1e999+1j``) is out of range
    (a text that spells ``inf`` anywhere keeps its infinite parts)."""
    value = complex(cell.strip())
    if (math.isinf(value.real) or math.isinf(value.imag)) and "inf" not in cell.lower():
        raise OutOfRange(cell)
    return value


def parse_bool(cell: str) -> bool:
    """``true``/``1`` or ``false``/``0`` (any case, blanks around); else ``ValueError``."""
    word = cell.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(cell)


def utf8(cell: str) -> bytes:
    """A cell as the bytes of a string value (lone surrogates kept, as the body had them)."""
    return cell.encode("utf-8", "surrogatepass")


def is_integer(cell: str) -> bool:
    """Whether the cell is an integer literal (an int64 feature in a classify/regress column)."""
    try:
        int(cell)
    except ValueError:
        return False
    return True


def is_number(cell: str) -> bool:
    """Whether the cell is a number ``float`` reads."""
    try:
        float(cell)
    except ValueError:
        return False
    return True
