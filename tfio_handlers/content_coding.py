"""Request bodies with a ``Content-Encoding``: undone by a bounded decompressor before any codec runs.

SageMaker's and TF Serving's clients may gzip their bodies; a compressed body is inflated under the
same body limit as a plain one, so a decompression bomb costs at most that limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = ["decode_content_encoding"]


_ENCODINGS = ("gzip", "deflate", "identity")
"""Content-Encoding values a request body may carry (``x-gzip`` is ``gzip``)."""


def decode_content_encoding(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` with its ``Content-Encoding`` undone, never producing more than ``limit`` bytes.

    ``gzip`` (several members too) and ``deflate`` (zlib-wrapped as RFC 9110 says, or raw as some
    clients send it) are inflated by a bounded decompressor: a gzip bomb stops at the body limit
    with 413, having allocated at most that much. ``identity`` passes; any other coding is 415
    naming those supported. Several codings (``gzip, identity``) are undone last first.
    """
    if not encoding:
        return body
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, 16 + zlib.MAX_WBITS, "gzip", limit)
        elif coding == "deflate":
            try:
                body = _inflate(body, zlib.MAX_WBITS, "deflate", limit)
            except BadRequest:
                body = _inflate(body, -zlib.MAX_WBITS, "deflate", limit)
        else:
            raise UnsupportedMediaType(
                f"Content-Encoding {coding!r} is not supported; use one of: "
                + ", ".join(_ENCODINGS)
            )
    return body


_INFLATE_STEP = 1 << 20


def _inflate(data: bytes, wbits: int, name: str, limit: int) -> bytes:
    """Inflate ``data`` (all its gzip members) once it is known to fit in ``limit`` bytes.

    A first pass only counts (a step of output at a time, then dropped), so a bomb is refused
    before anything of its size is allocated; a body that fits is then inflated for real.
    """
    _inflated_size(data, wbits, name, limit)
    chunks: list[bytes] = []
    _each_chunk(data, wbits, name, limit, chunks.append)
    return b"".join(chunks)


def _inflated_size(data: bytes, wbits: int, name: str, limit: int) -> int:
    """How many bytes ``data`` inflates to; 413 past ``limit``, 400 for a broken stream."""
    total = 0

    def count(chunk: bytes) -> None:
        nonlocal total
        total += len(chunk)

    _each_chunk(data, wbits, name, limit, count)
    return total


def _each_chunk(
    data: bytes, wbits: int, name: str, limit: int, take: Callable[[bytes], None]
) -> None:
    """Hand the inflated bytes to ``take`` a step at a time; at most ``limit`` of them in all."""
    produced = 0
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits)
        pending = rest
        try:
            while True:
                chunk = inflater.decompress(pending, min(limit + 1 - produced, _INFLATE_STEP))
                produced += len(chunk)
                if produced > limit:
                    raise _too_large(name, limit)
                take(chunk)
                pending = inflater.unconsumed_tail
                if inflater.eof or not pending:
                    break
            if not inflater.eof:
                chunk = inflater.flush()
                produced += len(chunk)
                if produced > limit:
                    raise _too_large(name, limit)
                take(chunk)
                if not inflater.eof:
                    raise BadRequest(f"Request body is not complete {name} data (it ends early)")
        except zlib.error as exc:
            raise BadRequest(f"Request body is not valid {name} data: {exc}") from None
        rest = inflater.unused_data
        if name != "gzip" or not rest.strip(b"\0"):
            return


def _too_large(name: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is over the limit of {limit} bytes once {name}-decoded")
