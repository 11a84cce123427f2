"""Media types and ``Accept`` negotiation.

``Content-Type`` and ``Accept`` values are parsed once per distinct header string (the results are cached),
case-insensitively, with their parameters kept: ``application/json; charset=utf-8`` is JSON in UTF-8, and
``text/csv; header=present`` tells the CSV codec the first row is a header. Which types exist, and which are
aliases of which, is the registry's business; this module only reads and ranks what clients send.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import BadRequest, NotAcceptable, UnsupportedMediaType

__all__ = [
    "ANY",
    "JSON",
    "TEXT_TYPES",
    "MediaRange",
    "MediaType",
    "is_text_type",
    "negotiate",
    "parse_accept",
    "parse_media_type",
    "text_of",
]

JSON = "application/json"
ANY = "*/*"

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class MediaType:
    """A parsed media type: ``essence`` is ``type/subtype`` in lower case; ``params`` keeps the parameters.

    Parameter names are lower-cased; values keep their case (a ``charset`` value is compared
    case-insensitively by :attr:`charset`).
    """

    essence: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.essence.partition("/")[0]

    @property
    def subtype(self) -> str:
        return self.essence.partition("/")[2]

    @property
    def charset(self) -> str | None:
        value = self.params.get("charset")
        return value.lower() if value is not None else None

    def with_essence(self, essence: str) -> MediaType:
        """The same parameters under another essence (used when an alias resolves to its canonical type)."""
        return MediaType(essence, self.params)

    def __str__(self) -> str:
        if not self.params:
            return self.essence
        rendered = "; ".join(f"{k}={_quote(v)}" for k, v in self.params.items())
        return f"{self.essence}; {rendered}"

    def __hash__(self) -> int:
        return hash((self.essence, tuple(sorted(self.params.items()))))


@dataclass(frozen=True)
class MediaRange:
    """One entry of an ``Accept`` header: a media type that may hold wildcards, and its quality."""

    media_type: MediaType
    quality: float

    @property
    def essence(self) -> str:
        return self.media_type.essence

    @property
    def specificity(self) -> int:
        """2 for ``type/subtype``, 1 for ``type/*``, 0 for ``*/*``; more specific ranges decide first."""
        main, _, sub = self.essence.partition("/")
        if main == "*":
            return 0
        return 1 if sub == "*" else 2

    def matches(self, essence: str) -> bool:
        main, _, sub = self.essence.partition("/")
        if main == "*":
            return True
        other_main, _, other_sub = essence.partition("/")
        return main == other_main and (sub == "*" or sub == other_sub)


def _quote(value: str) -> str:
    if value and all(c.lower() in _TOKEN_CHARS for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_params(text: str) -> list[str]:
    """Split on ``;`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and in_quotes:
            current.append(ch)
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
            current.append(ch)
        elif ch == ";" and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for ch in inner:
            if escaped:
                out.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)
    return value


def _parse(text: str, *, allow_wildcards: bool) -> tuple[MediaType, dict[str, str]]:
    pieces = _split_params(text)
    essence = pieces[0].strip().lower()
    main, slash, sub = essence.partition("/")
    if not slash or not main or not sub or not set(main + sub) <= _TOKEN_CHARS:
        raise ValueError(f"not a media type: {text.strip()!r}")
    if not allow_wildcards and "*" in essence:
        raise ValueError(f"a content type cannot be a wildcard: {text.strip()!r}")
    if main == "*" and sub != "*":
        raise ValueError(f"not a media range: {text.strip()!r}")
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        piece = piece.strip()
        if not piece:
            continue
        name, eq, value = piece.partition("=")
        if not eq:
            raise ValueError(f"parameter without a value in {text.strip()!r}")
        params[name.strip().lower()] = _unquote(value.strip())
    return MediaType(essence, params), params


@lru_cache(maxsize=512)
def parse_media_type(text: str) -> MediaType:
    """Parse a ``Content-Type`` value. Raises :class:`UnsupportedMediaType` (415) when it is not one."""
    try:
        media_type, _ = _parse(text, allow_wildcards=False)
    except ValueError as exc:
        raise UnsupportedMediaType(f"Malformed Content-Type: {exc}") from None
    return media_type


@lru_cache(maxsize=512)
def parse_accept(text: str) -> tuple[MediaRange, ...]:
    """Parse an ``Accept`` value into its ranges, best first (quality, then specificity, then order).

    A malformed entry is skipped rather than failing the request, as browsers and proxies do; an
    entry with ``q=0`` is kept, since it explicitly refuses a type.
    """
    ranges: list[tuple[float, int, int, MediaRange]] = []
    for index, item in enumerate(_split_commas(text)):
        if not item.strip():
            continue
        try:
            media_type, params = _parse(item, allow_wildcards=True)
        except ValueError:
            continue
        quality = 1.0
        if "q" in params:
            try:
                quality = min(max(float(params.pop("q")), 0.0), 1.0)
            except ValueError:
                continue
            media_type = MediaType(media_type.essence, params)
        entry = MediaRange(media_type, quality)
        ranges.append((-quality, -entry.specificity, index, entry))
    ranges.sort(key=lambda r: (r[0], r[1], r[2]))
    return tuple(r[3] for r in ranges)


def _split_commas(text: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    in_quotes = False
    for ch in text:
        if ch == '"':
            in_quotes = not in_quotes
        if ch == "," and not in_quotes:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def _quality_for(essence: str, ranges: Iterable[MediaRange]) -> tuple[float, MediaRange | None]:
    """The quality the client gives ``essence``: the most specific matching range decides (RFC 9110)."""
    best: MediaRange | None = None
    for entry in ranges:
        if entry.matches(essence) and (best is None or entry.specificity > best.specificity):
            best = entry
    return (best.quality, best) if best is not None else (0.0, None)


def negotiate(accept: str | None, available: Iterable[str], default: str) -> MediaType:
    """Pick the media type of the response.

    ``available`` lists the essences that have an encoder, in order of preference. A missing, empty or
    ``*/*``-only ``Accept`` means ``default`` (SageMaker's ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``).
    Otherwise the available type with the highest quality wins, ties broken by the client's order of
    its ranges and then by ``available``'s order; the default type wins ties under a wildcard. The
    parameters of the client's range (e.g. ``text/csv; header=present``) are kept on the result.
    Raises :class:`NotAcceptable` (406) listing the supported types when nothing is acceptable.
    """
    candidates = list(available)
    if accept is None or not accept.strip():
        return MediaType(default)
    ranges = parse_accept(accept)
    if not ranges:
        raise NotAcceptable(_not_acceptable_message(accept, candidates))
    if all(r.essence == ANY for r in ranges) and ranges[0].quality > 0:
        return MediaType(default)
    ordered = sorted(candidates, key=lambda essence: essence != default)
    best: tuple[float, int, int] | None = None
    chosen: MediaType | None = None
    range_order = {id(r): i for i, r in enumerate(ranges)}
    for position, essence in enumerate(ordered):
        quality, entry = _quality_for(essence, ranges)
        if quality <= 0 or entry is None:
            continue
        key = (-quality, range_order[id(entry)], position)
        if best is None or key < best:
            best = key
            params = dict(entry.media_type.params) if entry.specificity == 2 else {}
            chosen = MediaType(essence, params)
    if chosen is None:
        raise NotAcceptable(_not_acceptable_message(accept, candidates))
    return chosen


def _not_acceptable_message(accept: str, candidates: list[str]) -> str:
    return f"No encoder for Accept: {accept}. Supported types: {', '.join(sorted(set(candidates)))}"


TEXT_TYPES: frozenset[str] = frozenset({"application/json", "application/jsonlines"})
"""Media types outside ``text/`` whose bodies are text."""


def is_text_type(essence: str) -> bool:
    """Whether bodies of a media type are text by default (handed to user code as ``str``):
    ``text/*``, JSON, JSON lines and ``+json`` types. A codec may say otherwise when it registers."""
    return essence.startswith("text/") or essence in TEXT_TYPES or essence.endswith("+json")


def text_of(body: bytes, media_type: MediaType) -> str:
    """Decode a text body by its ``charset`` parameter (UTF-8 when absent; a UTF-8 BOM is dropped).

    An unknown charset is refused with 415, bytes that are not valid in the charset with 400.
    """
    charset = media_type.charset or "utf-8"
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        raise UnsupportedMediaType(
            f"Unsupported charset {charset!r} in Content-Type {media_type}; send UTF-8 or a charset "
            "Python knows"
        ) from None
    name = "utf-8-sig" if codec.name == "utf-8" else codec.name
    try:
        return body.decode(name)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"Body is not valid {charset}: byte {exc.start}: {exc.reason}") from None
