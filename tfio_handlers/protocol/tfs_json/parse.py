"""Parse a TF Serving REST body: fast where that is safe, exactly as TF Serving's RapidJSON always.

:func:`parse_body` first offers the body to the fast parsers in :data:`FAST_PARSERS` (orjson when
it is installed, else the standard library's ``json``), each of which accepts only plain RFC 8259
JSON and declines everything else by raising :class:`Decline`. Two checks then confirm that the
fast result is the document RapidJSON would build:

* no object repeats a name (RapidJSON keeps repeats, a ``dict`` cannot): every object member has
  one structural ``:`` in the body, so the members found must account for every ``:`` outside
  strings;
* no zero written with an exponent above 308 (``0e400`` is ``Number too big`` for RapidJSON and
  0.0 for the others).

Whatever is declined or fails a check goes to :mod:`.rapidjson_reader`, the exact (slower) path,
which also produces TF Serving's error messages. A new fast parser (simdjson, say) slots in by
being added to :data:`FAST_PARSERS`; it must return the document model below and decline what it
cannot vouch for.

The document model: ``None``, ``bool``, ``int`` (an integer literal within int64/uint64), ``float``
(any other number, NaN and infinities included), ``str`` (a string whose bytes are valid UTF-8) or
``bytes`` (one whose bytes are not: RapidJSON does not validate), ``list``, and ``dict`` for an
object, or :class:`~.rapidjson_reader.JsonObject` for an object that repeats a name.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from ... import accelerators
from ...errors import BadRequest, PayloadTooLarge
from .rapidjson_reader import (
    MAX_DOCUMENT_DEPTH,
    JsonDepthError,
    JsonObject,
    JsonParseError,
    parse_prefix,
)

__all__ = [
    "FAST_PARSERS",
    "MISSING",
    "Decline",
    "find_member",
    "members",
    "parse_body",
    "parse_first",
    "parse_stdlib",
    "to_bytes",
]


class Decline(Exception):
    """A fast parser cannot vouch for this body: the exact reader must parse it."""


def _orjson_parser() -> Callable[[bytes], Any] | None:
    orjson = accelerators.orjson()
    if orjson is None:  # pragma: no cover - orjson is an optional dependency
        return None
    loads = orjson.loads
    error = orjson.JSONDecodeError

    def parse_orjson(data: bytes) -> Any:
        """orjson: strict RFC 8259, UTF-8 validated, depth limited, big integers as floats."""
        try:
            return loads(data)
        except error:
            raise Decline from None

    return parse_orjson


_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> Any:
    raise Decline


def _json_int(text: str) -> int | float:
    value = int(text)
    if _INT_MIN <= value <= _UINT_MAX:
        return value
    as_float = float(text)
    if as_float in (float("inf"), float("-inf")):
        raise Decline
    return as_float


def _json_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise Decline
    return value


def parse_stdlib(data: bytes) -> Any:
    """The standard library's ``json``, restricted to what RapidJSON reads the same way."""
    if b"\\u" in data and _SURROGATE_ESCAPE.search(data):
        raise Decline  # lone surrogates: RapidJSON rejects high ones, keeps low ones as bytes
    try:
        text = data.decode("utf-8")
        return json.loads(
            text, parse_constant=_refuse_constant, parse_int=_json_int, parse_float=_json_float
        )
    except (ValueError, RecursionError, Decline):
        raise Decline from None


def _default_fast_parsers() -> list[Callable[[bytes], Any]]:
    fast = _orjson_parser()
    return [fast] if fast is not None else [parse_stdlib]


_FAST_DEPTH: Final = 1024

FAST_PARSERS: list[Callable[[bytes], Any]] = _default_fast_parsers()
"""The fast parsers :func:`parse_body` tries, in order, before the exact reader."""


def to_bytes(body: bytes | bytearray | memoryview | str) -> bytes:
    """The body's bytes (a ``str`` body is encoded as UTF-8)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return bytes(body)


def parse_body(data: bytes, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """The parsed body, or :class:`BadRequest` with TF Serving's ``JSON Parse error`` message.

    An empty body is ``JSON Parse error: The document is empty`` (TF Serving's own wording, with
    no period and no offset); nesting beyond ``max_depth`` is :class:`PayloadTooLarge`. As in TF
    Serving (RapidJSON's ``kParseStopWhenDoneFlag``), what follows the first value is ignored.
    """
    return parse_first(data, max_depth=max_depth)[0]


def parse_first(data: bytes, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> tuple[Any, int]:
    """:func:`parse_body`'s value and the offset where what it ignores begins (``len(data)`` when
    a fast parser read the whole body as one value). ``data[end:]`` holding more than whitespace
    means the body is more than one JSON value (or one followed by bytes that are not JSON)."""
    if not data:
        raise BadRequest("JSON Parse error: The document is empty")
    # The fast parsers stop at about 1,000 levels themselves; a lower bound needs the reader.
    fast_parsers = FAST_PARSERS if max_depth >= _FAST_DEPTH and not _holds_long_string(data) else ()
    for fast in fast_parsers:
        try:
            document = fast(data)
        except Decline:
            continue
        if _confirmed(data, document):
            return document, len(data)
        break
    try:
        return parse_prefix(data, max_depth=max_depth)
    except JsonParseError as error:
        raise BadRequest(f"JSON Parse error: {error.message} at offset: {error.offset}") from None
    except JsonDepthError as error:
        raise PayloadTooLarge(
            f"JSON nesting is deeper than the limit of {error.max_depth} levels"
        ) from None


_LONG_STRING_BYTES: Final = 4 * 1024 * 1024


def _holds_long_string(data: bytes) -> bool:
    """Does the body hold a string of 4 MiB or more? Then only the exact reader parses it.

    orjson reserves many times a long string's size while it parses it (750 MiB for a 50 MB
    string), the exact reader twice. A string is the stretch from an opening quote to the next
    quote; a body of few quotes is walked quote by quote (a big array of numbers has two), one of
    many by numpy (the gaps after every other quote). Escaped quotes can mislead both; the parsers
    build the same document, so a wrong guess costs only speed or memory.
    """
    if len(data) < _LONG_STRING_BYTES:
        return False
    if data.count(b'"') > _FEW_QUOTES:
        quotes = np.flatnonzero(np.frombuffer(data, np.uint8) == _QUOTE)
        return bool((np.diff(quotes)[::2] > _LONG_STRING_BYTES).any())
    opening = True
    at = data.find(b'"')
    while at >= 0:
        following = data.find(b'"', at + 1)
        if following < 0:
            return False
        if opening and following - at > _LONG_STRING_BYTES:
            return True
        opening = not opening
        at = following
    return False


_FEW_QUOTES: Final = 4096
_QUOTE: Final = ord('"')


_ZERO_BIG_EXPONENT: Final = re.compile(rb"0[eE]\+?[0-9]{3}")
_BIG_EXPONENT: Final = re.compile(rb"\+?[0-9]{3}")


def _zero_big_exponent(data: bytes) -> bool:
    """Might a zero be written with an exponent of three digits or more (``0e400``)?

    Looks at each ``e``/``E`` (a fast ``memchr``), with one regex scan of the whole body when
    there are many. A yes only sends the body to the exact reader.
    """
    seen = 0
    for letter in (b"e", b"E"):
        i = data.find(letter)
        while i >= 0:
            if i and data[i - 1] == 0x30 and _BIG_EXPONENT.match(data, i + 1):
                return True
            seen += 1
            if seen > 4096:
                return _ZERO_BIG_EXPONENT.search(data) is not None
            i = data.find(letter, i + 1)
    return False


def _confirmed(data: bytes, document: Any) -> bool:
    """Does the fast parse equal RapidJSON's (see the module docstring)?"""
    if _zero_big_exponent(data):
        return False
    colons = data.count(b":")
    if not colons:
        return True
    found = _count_members(document, data.count(b"{"))
    if found == colons:
        return True
    if b"\\u003" in data:
        return False  # an escaped colon would upset the count below
    return _count_members(document, -1, strings=True) == colons


def _count_members(document: Any, objects: int, *, strings: bool = False) -> int:
    """Object members in ``document``, plus the ``:`` inside its strings when ``strings``.

    Walks breadth first and stops once ``objects`` objects are found (they are all of them when
    that is the number of ``{`` in the body), so a big array under the last object is not read.
    """
    total = 0
    seen = 0
    pending: deque[Any] = deque([document])
    while pending:
        value = pending.popleft()
        kind = type(value)
        if kind is dict:
            seen += 1
            total += len(value)
            if strings:
                for key in value:
                    total += key.count(":")
            if seen == objects:
                return total
            children = value.values()
        elif kind is list:
            children = value
        else:
            continue
        for child in children:
            child_kind = type(child)
            if child_kind is dict or child_kind is list:
                pending.append(child)
            elif strings and (child_kind is str or child_kind is bytes):
                total += child.count(":" if child_kind is str else b":")
    return total


def members(value: dict[Any, Any] | JsonObject) -> Any:
    """An object's members, repeats included, in document order."""
    return value.items()


_MISSING: Final = object()


def find_member(value: dict[Any, Any] | JsonObject, name: str) -> Any:
    """RapidJSON's ``FindMember``: the first member called ``name``, or ``MISSING``."""
    if type(value) is dict:
        return value.get(name, _MISSING)
    for key, item in value.items():
        if key == name:
            return item
    return _MISSING


MISSING: Final = _MISSING
"""What :func:`find_member` returns for an absent name."""
