"""Request bodies with a ``Content-Encoding``: undone by a bounded decompressor before any codec runs.

SageMaker's and TF Serving's clients may gzip their bodies; a compressed body is inflated under the
same body limit as a plain one, so a decompression bomb costs at most that limit.
"""

from __future__ import annotations

import zlib

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
    """Inflate ``data`` (all its gzip members), at most ``limit + 1`` bytes held at any time."""
    out = bytearray()
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits)
        pending = rest
        try:
            while True:
                room = limit + 1 - len(out)
                out += inflater.decompress(pending, min(room, _INFLATE_STEP))
                if len(out) > limit:
                    raise PayloadTooLarge(
                        f"Request body is over the limit of {limit} bytes once {name}-decoded"
                    )
                pending = inflater.unconsumed_tail
                if inflater.eof or not pending:
                    break
            if not inflater.eof:
                out += inflater.flush()
                if len(out) > limit:
                    raise PayloadTooLarge(
                        f"Request body is over the limit of {limit} bytes once {name}-decoded"
                    )
                if not inflater.eof:
                    raise BadRequest(f"Request body is not complete {name} data (it ends early)")
        except zlib.error as exc:
            raise BadRequest(f"Request body is not valid {name} data: {exc}") from None
        rest = inflater.unused_data
        if name != "gzip" or not rest.strip(b"\0"):
            return bytes(out)
