"""The edge values that broke codecs before, as bit patterns and bytes (numpy only, no Hypothesis).

:func:`tfio_handlers.testing.arrays` mixes these into every array it draws, so a round trip meets
them in a few examples rather than by luck: NaN payloads and signalling NaNs (a Python ``float``
quiets a float32 signalling NaN; complex types carry two), the largest finite values (float32 max
overflows a writer that rounds through float64 wrongly), the smallest subnormals, ``-0.0`` and
the infinities; for strings the empty string, NUL bytes (a fixed-width ``S`` array drops trailing
ones) and bytes that are not UTF-8.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FLOAT_EDGE_BITS", "STRING_EDGES", "TEXT_EDGES"]

FLOAT_EDGE_BITS: Final[dict[int, tuple[int, ...]]] = {
    16: (
        0x0000,  # +0.0
        0x8000,  # -0.0
        0x0001,  # smallest subnormal
        0x03FF,  # largest subnormal
        0x0400,  # smallest normal
        0x7BFF,  # float16 max
        0xFBFF,  # float16 min
        0x7C00,  # +inf
        0xFC00,  # -inf
        0x7E00,  # quiet NaN
        0x7C01,  # signalling NaN
        0xFE01,  # negative quiet NaN with a payload
        0x7FFF,  # NaN, every payload bit set
    ),
    # bfloat16 is float32's top half: the same kinds of edges, its own bits
    -16: (
        0x0000,
        0x8000,
        0x0001,
        0x007F,
        0x0080,
        0x7F7F,  # bfloat16 max
        0xFF7F,
        0x7F80,
        0xFF80,
        0x7FC0,
        0x7F81,  # signalling NaN
        0xFFC1,
        0x7FFF,
    ),
    32: (
        0x00000000,
        0x80000000,
        0x00000001,
        0x007FFFFF,
        0x00800000,
        0x7F7FFFFF,  # float32 max
        0xFF7FFFFF,
        0x7F800000,
        0xFF800000,
        0x7FC00000,
        0x7F800001,  # signalling NaN
        0x7F808080,  # signalling NaN with a payload a Python float changes
        0xFFC00001,
        0x7FFFFFFF,
        0x3F800001,  # 1.0 + one ulp: float32 text must round-trip exactly
    ),
    64: (
        0x0000000000000000,
        0x8000000000000000,
        0x0000000000000001,
        0x000FFFFFFFFFFFFF,
        0x0010000000000000,
        0x7FEFFFFFFFFFFFFF,  # float64 max
        0xFFEFFFFFFFFFFFFF,
        0x7FF0000000000000,
        0xFFF0000000000000,
        0x7FF8000000000000,
        0x7FF0000000000001,  # signalling NaN
        0xFFF8000000000001,
        0x7FFFFFFFFFFFFFFF,
        0x47EFFFFFE0000000,  # float32 max as a float64
        0x3FF0000000000001,
    ),
}
"""Edge bit patterns of the binary floating-point formats by width (``-16`` is bfloat16). The parts
of ``complex64`` and ``complex128`` use the 32- and 64-bit rows."""

STRING_EDGES: Final[tuple[bytes, ...]] = (
    b"",
    b"\x00",
    b"a\x00",  # a trailing NUL
    b"\x00a",
    b"\xff\xfe",  # not UTF-8 (a UTF-16 byte-order mark)
    b"\x80",  # a lone continuation byte
    b"\xc3\x28",  # a truncated two-byte sequence
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate, which UTF-8 forbids
    b"\r\n",
    b'"',
    b",",
    "é".encode(),
    "\U0001f600".encode(),
)
"""Byte strings that broke string handling: empty, NUL bytes, invalid UTF-8, separators, quotes."""

TEXT_EDGES: Final[tuple[str, ...]] = ("", " ", "\r\n", '"', ",", "é", "\U0001f600", "\u2028")
"""Text (valid UTF-8 once encoded) for formats whose strings are text."""
