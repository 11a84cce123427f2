"""A CSV body → a :class:`Table`: header names, and either a numeric matrix or rows of text.

The numeric fast path (:func:`fast_table`) reads a quote-free body as one JSON document (rows
become arrays), with pysimdjson when installed, else orjson, else the standard library, and checks
every row's length; anything it cannot take (quotes, text, blank lines, ragged rows, bad cells)
goes to the exact path (:func:`exact_table`) on the ``csv`` module (RFC 4180), which also produces
every error message about the body's rows.
"""

from __future__ import annotations

import codecs
import csv as _csv
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ... import accelerators
from ...context import Context
from ...errors import BadRequest
from ...media import MediaType, text_of
from .._request import check_string
from .cells import bounded_int, parse_float

__all__ = ["Table", "exact_table", "fast_table"]

Array = NDArray[Any]

_UTF8_NAMES = frozenset({"utf-8", "ascii"})
_FAST_REFUSED = (b'"', b"[", b"{", b"a", b"u")
"""Bytes that rule the JSON fast path out: quotes, JSON arrays/objects, and the letters of the JSON
literals ``true``/``false``/``null`` (and of ``nan``), so that the JSON document holds numbers only."""


@dataclass(slots=True)
class Table:
    """A parsed body: header names (or ``None``), and either a numeric matrix or rows of text."""

    names: list[str] | None
    width: int
    count: int
    matrix: Array | None = None
    rows: list[list[str]] | None = None
    lines: list[int] | None = None
    header_line: int = 1

    def column_label(self, index: int) -> str:
        if self.names is not None:
            return f"column {index + 1} ({self.names[index]!r})"
        return f"column {index + 1}"


_local = threading.local()


def _simdjson_loader() -> Callable[[bytes, str], Array | None] | None:
    simdjson = accelerators.simdjson()
    if simdjson is None:
        return None

    def load(document: bytes, kind: str) -> Array | None:
        parser = getattr(_local, "parser", None)
        if parser is None:
            parser = _local.parser = simdjson.Parser()
        try:
            doc: Any = parser.parse(document)
            try:
                widths = set(map(len, doc))
                count = len(doc)
                buffer = doc.as_buffer(of_type=kind)
            finally:
                del doc
        except (ValueError, TypeError, RuntimeError):
            return None
        if len(widths) > 1:
            return None
        width = widths.pop() if widths else 0
        dtype = {"d": np.float64, "i": np.int64, "u": np.uint64}[kind]
        flat = np.frombuffer(buffer, dtype=dtype)
        if flat.size != count * width:
            return None
        return flat.reshape(count, width)

    return load


def _generic_loader() -> Callable[[bytes, str], Array | None]:
    loads: Callable[[bytes], Any]
    orjson = accelerators.orjson()
    if orjson is not None:
        loads = orjson.loads  # refuses a number beyond float64 (``1e999``)
    else:

        def loads(document: bytes) -> Any:
            return json.loads(document, parse_float=parse_float, parse_int=bounded_int)

    def load(document: bytes, kind: str) -> Array | None:
        # The document holds only numbers (the caller ruled out every other JSON token), so
        # numpy's conversion cannot turn a boolean or a string into a number here.
        try:
            parsed = loads(document)
            matrix = np.array(parsed, dtype=np.float64) if kind == "d" else np.array(parsed)
        except (ValueError, TypeError, OverflowError):
            return None
        if matrix.ndim != 2 or matrix.dtype.kind not in "iuf":
            return None
        if kind != "d" and matrix.dtype.kind == "f":
            return None
        if kind == "u" and matrix.dtype.kind == "i" and matrix.size and matrix.min() < 0:
            return None
        return matrix

    return load


_LOADERS: list[Callable[[bytes, str], Array | None]] = []


def _loader() -> Callable[[bytes, str], Array | None]:
    if not _LOADERS:
        _LOADERS.append(_simdjson_loader() or _generic_loader())
    return _LOADERS[0]


def _utf8_bytes(body: bytes, media_type: MediaType) -> bytes | None:
    """The body as UTF-8 bytes without a BOM when its charset allows reading it as is."""
    charset = media_type.charset
    if charset is not None:
        try:
            name = codecs.lookup(charset).name
        except LookupError:
            return None
        if name not in _UTF8_NAMES:
            return None
    return body[3:] if body.startswith(b"\xef\xbb\xbf") else body


def fast_table(
    body: bytes, media_type: MediaType, header: bool, kind: str, context: Context
) -> Table | None:
    """The numeric fast path: a quote-free body of numbers, or ``None`` to take the exact path."""
    data = _utf8_bytes(body, media_type)
    if data is None:
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    # Work with offsets into ``data`` rather than slices: each slice of a large body is a copy.
    start, end = 0, len(data)
    while end and data[end - 1] == 0x0A:
        end -= 1
    names: list[str] | None = None
    if header:
        newline = data.find(b"\n", 0, end)
        first = data[: newline if newline >= 0 else end]
        start = newline + 1 if newline >= 0 else end
        if b'"' in first:
            return None
        try:
            names = [name.strip() for name in first.decode("utf-8").split(",")]
        except UnicodeDecodeError:
            return None
    if start >= end:
        if names is None:
            return None
        return Table(names, len(names), 0, matrix=np.zeros((0, len(names)), np.float64))
    for refused in _FAST_REFUSED:
        if data.find(refused, start, end) >= 0:
            return None
    limits = context.limits
    if (end - start) // 2 + 1 > limits.max_elements:
        fields = data.count(b",", start, end) + data.count(b"\n", start, end) + 1
        limits.check_elements(fields, "CSV body")
    replaced = data.replace(b"\n", b"],[")
    newlines = (len(replaced) - len(data)) // 2
    trailing = len(data) - end
    # An offset p in ``data`` is p + 2 * (newlines before p) in ``replaced``.
    view = memoryview(replaced)[start + (2 if header else 0) : end + 2 * (newlines - trailing)]
    matrix = _loader()(b"".join((b"[[", view, b"]]")), kind)
    if matrix is None:
        return None
    if names is not None and matrix.shape[1] != len(names):
        return None
    return Table(names, matrix.shape[1], matrix.shape[0], matrix=matrix)


def exact_table(body: bytes, media_type: MediaType, header: bool, context: Context) -> Table:
    """Read the body with the ``csv`` module (RFC 4180); checks row lengths and limits as it goes."""
    text = text_of(body, media_type)
    limits = context.limits
    if _csv.field_size_limit() < limits.max_string_bytes:
        _csv.field_size_limit(limits.max_string_bytes)
    reader = _csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    names: list[str] | None = None
    header_line = 1
    width = -1
    width_line = 0
    fields = 0
    previous = 0
    source: list[str] | None = None
    try:
        for row in reader:
            line = previous + 1
            previous = reader.line_num
            if not row:
                continue
            if len(row) == 1 and not row[0].strip():
                # A blank line, or a line holding one quoted empty (or blank) field, which is data.
                if source is None:
                    source = io.StringIO(text, newline="").readlines()
                if not source[line - 1].strip():
                    continue
            if header and names is None:
                names = [name.strip() for name in row]
                header_line = line
                width, width_line = len(names), line
                continue
            if width < 0:
                width, width_line = len(row), line
            elif len(row) != width:
                what = "the header" if names is not None else "the first row"
                raise BadRequest(
                    f"CSV line {line}: the row has {len(row)} fields, expected {width} as "
                    f"{what} (line {width_line}) has"
                )
            fields += width
            limits.check_elements(fields, "CSV body")
            for cell in row:
                if len(cell) * 4 > limits.max_string_bytes:
                    check_string(cell, limits, f"CSV line {line}")
            rows.append(row)
            lines.append(line)
    except _csv.Error as exc:
        raise BadRequest(f"CSV line {reader.line_num}: {exc}") from None
    if names is None and not rows:
        raise BadRequest("The CSV body holds no rows")
    return Table(names, max(width, 0), len(rows), rows=rows, lines=lines, header_line=header_line)
