"""JSON text as TF Serving's RapidJSON writes it: the values quoted in error messages.

TF Serving quotes request values in its errors (``JSON Value: <v> Type: String is not of expected
type: int32``) with ``JsonValueToDebugString``: RapidJSON 1.1.0's ``PrettyWriter`` (4-space
indent, ``kFormatSingleLineArray``) behind a handler that refuses every event once 256 bytes are
written. :func:`debug_string` reproduces that text byte for byte:

* objects open a line per member (``{\\n    "a": 1\\n}``), arrays stay on one line (``[1, 2]``);
* the output stops before the first event that starts at or after byte 256, so the last token may
  run past it and nothing is closed;
* a NaN or infinite double stops the output after its separator (RapidJSON's writer refuses
  non-finite numbers without ``kWriteNanAndInfFlag``): ``[1, NaN]`` prints as ``[1, ``;
* doubles are printed by RapidJSON's Grisu2 ``dtoa`` (:func:`dtoa`): ``1.0``, ``1e30``,
  ``1.5e-7``, ``0.001``, ``-0.0``; integers as integers;
* strings escape ``"``, ``\\`` and control bytes (``\\n``, ``\\u001F``) and keep every other byte
  as it is, invalid UTF-8 included.

:func:`escape_string` is the string writer, shared with the response encoder.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any, Final

from .rapidjson_reader import JsonObject

__all__ = ["DEBUG_STRING_LIMIT", "debug_string", "dtoa", "escape_string"]

DEBUG_STRING_LIMIT: Final = 256
"""TF Serving's ``kMaxJsonDebugStringBytes``."""

_MASK64: Final = (1 << 64) - 1
_HIDDEN: Final = 1 << 52


def _cached_powers() -> list[tuple[int, int]]:
    """10^k for k = -348, -340, ..., 340 as 64-bit normalized (significand, binary exponent).

    Grisu2's table, computed: the significand is 10^k * 2^-e rounded to nearest, with e chosen so
    that it has exactly 64 bits.
    """
    table = []
    for k in range(-348, 341, 8):
        if k >= 0:
            num, den = 10**k, 1
        else:
            num, den = 1, 10**-k
        # Find e with 2^63 <= num / den / 2^e < 2^64.
        e = num.bit_length() - den.bit_length() - 64
        while True:
            if e >= 0:
                q_num, q_den = num, den << e
            else:
                q_num, q_den = num << -e, den
            f, r = divmod(q_num, q_den)
            if f >= 1 << 64:
                e += 1
            elif f < 1 << 63:
                e -= 1
            else:
                break
        if 2 * r >= q_den:
            f += 1
        table.append((f, e))
    return table


_POWERS: Final = _cached_powers()


def _multiply(f1: int, e1: int, f2: int, e2: int) -> tuple[int, int]:
    """DiyFp multiplication: the high 64 bits of the product, rounded on bit 63."""
    p = f1 * f2
    h = p >> 64
    if p & (1 << 63):
        h += 1
    return h, e1 + e2 + 64


def _grisu2(value: float) -> tuple[list[int], int]:
    """RapidJSON's Grisu2 for a positive finite double: its digits and decimal exponent K."""
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    biased = (bits >> 52) & 0x7FF
    significand = bits & (_HIDDEN - 1)
    if biased:
        f, e = significand + _HIDDEN, biased - 1075
    else:
        f, e = significand, -1074
    # Boundaries m+ and m-, normalized to the same exponent.
    pf, pe = (f << 1) + 1, e - 1
    while not pf & (_HIDDEN << 1):
        pf <<= 1
        pe -= 1
    pf <<= 10
    pe -= 10
    if f == _HIDDEN:
        mf, me = (f << 2) - 1, e - 2
    else:
        mf, me = (f << 1) - 1, e - 1
    mf <<= me - pe
    # v normalized.
    shift = 64 - f.bit_length()
    vf, ve = f << shift, e - shift
    # The cached power that brings the exponent into [-60, -32].
    dk = (-61 - pe) * 0.30102999566398114 + 347
    k = int(dk)
    if dk - k > 0.0:
        k += 1
    index = (k >> 3) + 1
    big_k = -(-348 + index * 8)
    cf, ce = _POWERS[index]
    wf, _ = _multiply(vf, ve, cf, ce)
    wpf, wpe = _multiply(pf, pe, cf, ce)
    wmf, _ = _multiply(mf, pe, cf, ce)
    wmf += 1
    wpf -= 1
    return _digit_gen(wf, wpf, wpe, (wpf - wmf) & _MASK64, big_k)


def _digit_gen(wf: int, mpf: int, mpe: int, delta: int, big_k: int) -> tuple[list[int], int]:
    """Grisu2's DigitGen, with RapidJSON's unsigned 64-bit arithmetic."""
    one_shift = -mpe
    one_f = 1 << one_shift
    wp_w = (mpf - wf) & _MASK64
    p1 = mpf >> one_shift
    p2 = mpf & (one_f - 1)
    kappa = len(str(p1)) if p1 else 1
    kappa = min(kappa, 9)
    digits: list[int] = []
    while kappa > 0:
        power = 10 ** (kappa - 1)
        d, p1 = divmod(p1, power)
        if d or digits:
            digits.append(d)
        kappa -= 1
        tmp = (p1 << one_shift) + p2
        if tmp <= delta:
            big_k += kappa
            _grisu_round(digits, delta, tmp, ((10**kappa) << one_shift) & _MASK64, wp_w)
            return digits, big_k
    while True:
        p2 = (p2 * 10) & _MASK64
        delta = (delta * 10) & _MASK64
        d = p2 >> one_shift
        if d or digits:
            digits.append(d)
        p2 &= one_f - 1
        kappa -= 1
        if p2 < delta:
            big_k += kappa
            index = -kappa
            scale = 10**index if index < 9 else 0
            _grisu_round(digits, delta, p2, one_f, (wp_w * scale) & _MASK64)
            return digits, big_k


def _grisu_round(digits: list[int], delta: int, rest: int, ten_kappa: int, wp_w: int) -> None:
    while (
        rest < wp_w
        and (delta - rest) & _MASK64 >= ten_kappa
        and (
            (rest + ten_kappa) & _MASK64 < wp_w
            or (wp_w - rest) & _MASK64 > (rest + ten_kappa - wp_w) & _MASK64
        )
    ):
        digits[-1] -= 1
        rest = (rest + ten_kappa) & _MASK64


def dtoa(value: float) -> str:
    """A finite double as RapidJSON's ``Writer::Double`` writes it (Grisu2, then ``Prettify``)."""
    if value == 0.0:
        return "-0.0" if struct.pack("<d", value)[7] & 0x80 else "0.0"
    sign = ""
    if value < 0:
        sign = "-"
        value = -value
    digits, k = _grisu2(value)
    text = "".join(map(str, digits))
    length = len(text)
    kk = length + k  # 10^(kk-1) <= v < 10^kk
    if k >= 0 and kk <= 21:
        return f"{sign}{text}{'0' * k}.0"
    if 0 < kk <= 21:
        return f"{sign}{text[:kk]}.{text[kk:]}"
    if -6 < kk <= 0:
        return f"{sign}0.{'0' * -kk}{text}"
    if kk < -324:
        return f"{sign}0.0"
    if length == 1:
        return f"{sign}{text}e{kk - 1}"
    return f"{sign}{text[0]}.{text[1:]}e{kk - 1}"


_ESCAPED: Final = re.compile(rb'[\x00-\x1f"\\]')
_ESCAPE_TABLE: Final = {
    **{c: b"\\u%04X" % c for c in range(0x20)},
    0x08: b"\\b",
    0x09: b"\\t",
    0x0A: b"\\n",
    0x0C: b"\\f",
    0x0D: b"\\r",
    0x22: b'\\"',
    0x5C: b"\\\\",
}


def _escape_match(m: re.Match[bytes]) -> bytes:
    return _ESCAPE_TABLE[m.group()[0]]


def escape_string(raw: bytes) -> bytes:
    """A quoted JSON string as RapidJSON's ``Writer::String`` writes it: other bytes kept raw."""
    if _ESCAPED.search(raw) is None:
        return b'"' + raw + b'"'
    return b'"' + _ESCAPED.sub(_escape_match, raw) + b'"'


_LONGEST_QUOTED: Final = 1 << 20
"""Characters (or bytes) of one string a debug string quotes at most."""


def _string_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


class _Stop(Exception):
    """The limit (or a non-finite double) ends the output."""


class _DebugWriter:
    """RapidJSON's PrettyWriter (kFormatSingleLineArray) behind TF Serving's byte limit."""

    def __init__(self, limit: int) -> None:
        self.out = bytearray()
        self.limit = limit
        self.levels: list[list[Any]] = []  # [in_array, value_count] per open container

    def _check(self) -> None:
        if len(self.out) >= self.limit:
            raise _Stop

    def _prefix(self) -> None:
        if not self.levels:
            return
        level = self.levels[-1]
        out = self.out
        count = level[1]
        if level[0]:
            if count > 0:
                out += b", "
        else:
            if count > 0:
                out += b",\n" if count % 2 == 0 else b": "
            else:
                out += b"\n"
            if count % 2 == 0:
                out += b" " * (4 * len(self.levels))
        level[1] = count + 1

    def scalar(self, value: Any) -> None:
        self._check()
        self._prefix()
        if value is None:
            self.out += b"null"
        elif value is True:
            self.out += b"true"
        elif value is False:
            self.out += b"false"
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise _Stop  # WriteDouble refuses: the separator stays, the value does not
            self.out += dtoa(value).encode()
        elif isinstance(value, int):
            self.out += str(value).encode()
        else:
            # RapidJSON writes a string whole, past the limit; a 50 MB one is not copied twice to
            # be quoted in an error message that the answer cuts at 4,096 characters anyway.
            self.out += escape_string(_string_bytes(value[:_LONGEST_QUOTED]))

    def key(self, name: str | bytes) -> None:
        self._check()
        self._prefix()
        self.out += escape_string(_string_bytes(name))

    def start(self, is_array: bool) -> None:
        self._check()
        self._prefix()
        self.levels.append([is_array, 0])
        self.out += b"[" if is_array else b"{"

    def end(self) -> None:
        self._check()
        is_array, count = self.levels.pop()
        if is_array:
            self.out += b"]"
        else:
            if count:
                self.out += b"\n" + b" " * (4 * len(self.levels))
            self.out += b"}"


def _children(value: Any) -> Iterator[Any]:
    return iter(value) if isinstance(value, list) else iter(value.items())


def debug_string(value: Any, limit: int = DEBUG_STRING_LIMIT) -> str:
    """``JsonValueToDebugString``: ``value`` (a parsed JSON value) as TF Serving quotes it.

    Walks iteratively, so any depth is safe; stops at ``limit`` bytes as TF Serving does. Bytes
    that are not UTF-8 (from strings TF Serving copies raw) are shown as U+FFFD.
    """
    writer = _DebugWriter(limit)
    frames: list[tuple[Iterator[Any], bool]] = []
    end: Any = object()
    try:
        current: Any = value
        while True:
            if isinstance(current, list):
                writer.start(True)
                frames.append((iter(current), True))
            elif isinstance(current, (dict, JsonObject)):
                writer.start(False)
                frames.append((_children(current), False))
            else:
                writer.scalar(current)
            # Find the next value to write, closing finished containers.
            while frames:
                iterator, is_array = frames[-1]
                item = next(iterator, end)
                if item is end:
                    writer.end()
                    frames.pop()
                    continue
                if is_array:
                    current = item
                else:
                    writer.key(item[0])
                    current = item[1]
                break
            else:
                break
    except _Stop:
        pass
    return writer.out.decode("utf-8", "replace")
