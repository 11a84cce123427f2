"""The CSV codec (``text/csv``): RFC 4180 rows in, one row per instance out.

Decoding (``docs/formats/csv.md`` has the full rules):

* every row is an instance, so a one-row body keeps its batch dimension ([1, C], not [C]);
* quoted fields may hold commas, quotes (doubled) and line breaks; lines end in LF or CRLF; blank lines
  are skipped; a row with a different number of fields is a 400 naming its line;
* ``text/csv; header=present`` says the first row names the columns: the inputs of a multi-input
  predict signature, or the features of a classify/regress signature (a name may repeat: its columns
  go together into one input or feature);
* cells are typed by the signature input's dtype (text stays text for ``DT_STRING`` inputs); with no
  signature, numbers become float32 and a table with any non-number becomes strings;
* a single predict input is shaped by its signature shape: rank 1 (or one column and an unknown
  rank) gives ``[N]``, rank 2 ``[N, C]``, a higher rank with known dimensions ``[N, *dims]``;
* a classify/regress body without a header gives one example per row with the float feature
  ``inputs`` holding the row, as SageMaker's legacy container did (for its first row only); with a
  header, each column is a feature typed as TF Serving types JSON example values (integer literals
  int64, other numbers float, anything else bytes), and an empty cell leaves the feature out.

The numeric fast path reads a quote-free body as one JSON document (rows become arrays), with
pysimdjson when installed, else orjson, else the standard library, and checks every row's length;
anything it cannot take (quotes, text, blank lines, ragged rows, bad cells) goes to the exact path on
the ``csv`` module, which also produces every error message.

Encoding writes one row per batch element; see :func:`encode_csv`.
"""

from __future__ import annotations

import codecs
import csv as _csv
import io
import itertools
import json
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import accelerators
from ..config import Limits
from ..context import Context
from ..errors import BadRequest, HTTPError, NotAcceptable, PayloadTooLarge
from ..hookspecs import Register, hookimpl
from ..media import MediaType, text_of
from ..protocol._json_compact import float_texts
from ..protocol.answer_size import check_response, csv_bytes
from ..protocol.requests import choose_method
from ._request import InputSpec, check_string, input_specs, shape_text
from ._response import (
    batch_size,
    classification_rows,
    predict_outputs,
    regression_values,
    response_kind,
)

__all__ = ["MEDIA_TYPE", "decode_csv", "encode_csv", "register_codecs"]

MEDIA_TYPE = "text/csv"
ALIASES = ("application/csv", "text/comma-separated-values")

Array = NDArray[Any]

_UTF8_NAMES = frozenset({"utf-8", "ascii"})
_FAST_REFUSED = (b'"', b"[", b"{", b"a", b"u")
"""Bytes that rule the JSON fast path out: quotes, JSON arrays/objects, and the letters of the JSON
literals ``true``/``false``/``null`` (and of ``nan``), so that the JSON document holds numbers only."""
_BLANK = re.compile(rb"(?:\xef\xbb\xbf)?\s*\Z")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


@hookimpl
def register_codecs(register: Register) -> None:
    """Declare ``text/csv`` (aliases ``application/csv``, ``text/comma-separated-values``)."""
    register(MEDIA_TYPE, decode=decode_csv, encode=encode_csv, aliases=list(ALIASES))


def _header_param(media_type: MediaType) -> bool:
    value = media_type.params.get("header", "absent").strip().lower()
    if value not in ("present", "absent"):
        raise BadRequest(f"The CSV header parameter must be 'present' or 'absent', not {value!r}")
    return value == "present"


# -- reading ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Table:
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
            return json.loads(document, parse_float=_parse_float, parse_int=_bounded_int)

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


def _fast_table(
    body: bytes, media_type: MediaType, header: bool, kind: str, context: Context
) -> _Table | None:
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
        return _Table(names, len(names), 0, matrix=np.zeros((0, len(names)), np.float64))
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
    return _Table(names, matrix.shape[1], matrix.shape[0], matrix=matrix)


def _exact_table(body: bytes, media_type: MediaType, header: bool, context: Context) -> _Table:
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
    return _Table(names, max(width, 0), len(rows), rows=rows, lines=lines, header_line=header_line)


# -- typing cells ----------------------------------------------------------------------------------


def _bad_cell(
    table: _Table, row: int, col: int, message: str, error: type[BadRequest] = BadRequest
) -> BadRequest:
    assert table.rows is not None and table.lines is not None
    cell = table.rows[row][col]
    shown = repr(cell) if len(cell) <= 40 else repr(cell[:40]) + "..."
    what = "an empty field" if not cell.strip() else shown
    return error(f"CSV line {table.lines[row]}, {table.column_label(col)}: {what} {message}")


class _OutOfRange(ValueError):
    """A finite number written beyond the range of float64 (``1e999``, 400 digits)."""


class _OutOfRangeCell(BadRequest):
    """400 for a number beyond its dtype's range: never read as text instead (a table of
    numbers without a signature falls back to strings only when a cell is not a number)."""


_INFINITE_WORDS = frozenset({"inf", "infinity"})


def _parse_float(cell: str) -> float:
    """``float(cell)``, except that a finite text beyond float64 (``1e999``, an integer of 5000
    digits) is out of range rather than infinity: only ``inf``/``infinity`` spell infinity."""
    value = float(cell)
    if value in (math.inf, -math.inf) and cell.strip().lstrip("+-").lower() not in _INFINITE_WORDS:
        raise _OutOfRange(cell)
    return value


def _bounded_int(text: str) -> int | float:
    """An integer literal for the fast path without orjson: an exact ``int``, except that one
    of over 400 digits (beyond float64) is out of range, and the exact path then names it."""
    return int(text) if len(text) <= 400 else _parse_float(text)


def _convert_cells(
    table: _Table,
    columns: Sequence[int],
    parse: Callable[[str], Any],
    message: str,
    out_of_range: str = "is out of range",
) -> list[Any]:
    """``parse`` of every cell of ``columns``, row by row; the first bad cell is a 400 naming it
    (``out_of_range`` when the parser found a number too big for it)."""
    assert table.rows is not None
    if len(columns) == table.width:
        cells: Any = itertools.chain.from_iterable(table.rows)
    else:
        cells = (row[c] for row in table.rows for c in columns)
    try:
        return list(map(parse, cells))
    except (ValueError, TypeError, OverflowError):
        pass
    for r, row in enumerate(table.rows):
        for c in columns:
            try:
                parse(row[c])
            except _OutOfRange:
                raise _bad_cell(table, r, c, out_of_range, _OutOfRangeCell) from None
            except (ValueError, TypeError, OverflowError):
                raise _bad_cell(table, r, c, message) from None
    raise AssertionError("unreachable: a cell failed to parse once")  # pragma: no cover


def _parse_complex(cell: str) -> complex:
    """``complex(cell)``; a part written finite but beyond float64 (``1e999+1j``) is out of range
    (a text that spells ``inf`` anywhere keeps its infinite parts)."""
    value = complex(cell.strip())
    if (math.isinf(value.real) or math.isinf(value.imag)) and "inf" not in cell.lower():
        raise _OutOfRange(cell)
    return value


def _parse_bool(cell: str) -> bool:
    word = cell.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(cell)


def _strings(table: _Table, columns: Sequence[int]) -> Array:
    assert table.rows is not None
    flat = [row[c].encode("utf-8", "surrogatepass") for row in table.rows for c in columns]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(table.count, len(columns))


def _numbers(table: _Table, columns: Sequence[int], spec: InputSpec | None) -> Array:
    """Cells of ``columns`` as a ``[N, len(columns)]`` array of the spec's dtype (float32 without)."""
    dtype: np.dtype[Any] = (
        spec.dtype if spec is not None and spec.dtype is not None else np.dtype(np.float32)
    )
    label = spec.label if spec is not None else "a float32 input"
    shape = (table.count, len(columns))
    if table.matrix is not None:
        block = _columns_of(table.matrix, columns)
        if dtype.kind in "iu" and block.dtype.kind in "iu":
            info = np.iinfo(dtype)
            if block.size and (int(block.min()) < info.min or int(block.max()) > info.max):
                raise _FastMiss
        with np.errstate(over="ignore", invalid="ignore"):
            out = block.astype(dtype)
        if dtype.kind == "f" and not np.isfinite(out).all():
            raise _FastMiss
        return out
    kind = dtype.kind
    if kind == "f":
        values = _convert_cells(
            table,
            columns,
            _parse_float,
            f"is not a number for {label}",
            f"is out of range for {label}",
        )
        array = np.array(values, dtype=np.float64).reshape(shape)
        with np.errstate(over="ignore"):
            out = array.astype(dtype)
        if dtype.itemsize < 8:
            overflow = np.isinf(out) & np.isfinite(array)
            if overflow.any():
                r, c = (int(i[0]) for i in np.nonzero(overflow))
                raise _bad_cell(
                    table, r, columns[c], f"is out of range for {label}", _OutOfRangeCell
                )
        return out
    if kind in "iu":
        ints = _convert_cells(table, columns, int, f"is not an integer for {label}")
        info = np.iinfo(dtype)
        for i, value in enumerate(ints):
            if not info.min <= value <= info.max:
                raise _bad_cell(
                    table,
                    i // len(columns),
                    columns[i % len(columns)],
                    f"is out of range [{info.min}, {info.max}] for {label}",
                )
        return np.array(ints, dtype=dtype).reshape(shape)
    if kind == "b":
        bools = _convert_cells(table, columns, _parse_bool, f"is not a boolean for {label}")
        return np.array(bools, dtype=np.bool_).reshape(shape)
    if kind == "c":
        values = _convert_cells(
            table,
            columns,
            _parse_complex,
            f"is not a number for {label}",
            f"is out of range for {label}",
        )
        return np.array(values, dtype=dtype).reshape(shape)
    raise BadRequest(f"CSV cannot carry {label}")


def _columns_of(matrix: Array, columns: Sequence[int]) -> Array:
    """``matrix[:, columns]`` without a copy when the columns are all of them, in order."""
    if len(columns) == matrix.shape[1] and list(columns) == list(range(matrix.shape[1])):
        return matrix
    return matrix[:, list(columns)]


class _FastMiss(Exception):
    """The fast path's result does not fit; the exact path decides (and words the error)."""


def _column_block(table: _Table, columns: Sequence[int], spec: InputSpec | None) -> Array:
    """One input's columns, typed: strings for ``DT_STRING``, numbers otherwise.

    Without a spec, numbers become float32 unless some cell is not a number: then all are strings.
    """
    if spec is not None and spec.is_string:
        if table.rows is None:
            raise _FastMiss
        return _strings(table, columns)
    if spec is None or spec.dtype is None:
        if table.matrix is not None:
            with np.errstate(over="ignore"):
                block = _columns_of(table.matrix, columns).astype(np.float32)
            if not np.isfinite(block).all():
                raise _FastMiss  # float32 overflow: the exact path names the cell
            return block
        try:
            return _numbers(table, columns, None)
        except _OutOfRangeCell:
            raise
        except BadRequest:
            return _strings(table, columns)
    return _numbers(table, columns, spec)


def _shape(block: Array, spec: InputSpec | None) -> Array:
    """Apply the shape rule to one input's ``[N, k]`` block (see the module docstring)."""
    count, width = block.shape
    rank = len(spec.shape) if spec is not None and spec.shape is not None else None
    name = spec.label if spec is not None else "the input"
    if rank is None:
        return block[:, 0] if width == 1 else block
    assert spec is not None and spec.shape is not None
    if rank == 0:
        if count * width != 1:
            raise BadRequest(
                f"CSV: {name} is a scalar (shape []), but the body holds {count} rows of {width} "
                "values"
            )
        return block.reshape(())
    if rank == 1:
        if width != 1:
            raise BadRequest(
                f"CSV: {name} has shape {shape_text(spec.shape)}: one value per instance, but the "
                f"rows have {width} columns"
            )
        return block[:, 0]
    dims = spec.shape[1:]
    known = [d for d in dims if d >= 0]
    product = int(np.prod(known)) if known else 1
    unknown = len(dims) - len(known)
    fits = (
        (unknown == 0 and product == width)
        or (unknown == 1 and product > 0 and width % product == 0)
        or unknown > 1
    )
    if not fits:
        raise BadRequest(
            f"CSV: {name} has shape {shape_text(spec.shape)}, which does not take {width} values "
            "per row"
        )
    if rank == 2 or unknown > 1:
        return block
    missing = width // product if product else 0
    return block.reshape((count, *(d if d >= 0 else missing for d in dims)))


# -- decoding --------------------------------------------------------------------------------------


def _fast_kind(specs: Sequence[InputSpec | None]) -> str | None:
    """The JSON number type the fast path parses for these inputs, or ``None`` for the exact path."""
    kinds = set()
    for spec in specs:
        if spec is None or spec.dtype is None:
            kinds.add("d")
        elif spec.is_string:
            return None
        elif spec.dtype.kind == "f":
            kinds.add("d")
        elif spec.dtype.kind == "i":
            kinds.add("i")
        elif spec.dtype.kind == "u":
            kinds.add("u")
        else:
            return None
    return kinds.pop() if len(kinds) == 1 else None


def decode_csv(body: bytes, media_type: MediaType, context: Context) -> Any:
    """Decode a CSV body into an array (one input), a dict of arrays, or a list of feature dicts."""
    context.limits.check_body(len(body))
    header = _header_param(media_type)
    method = choose_method(context)
    specs = input_specs(context) if method == "predict" else {}
    if _BLANK.match(body):
        raise BadRequest("The CSV body is empty")
    # Classify/regress with a header types features by their text (integer literals): exact path.
    kind = None if header and method != "predict" else _fast_kind(list(specs.values()) or [None])
    if kind is not None:
        table = _fast_table(body, media_type, header, kind, context)
        if table is not None:
            try:
                return _assemble(table, method, specs, header, context.limits)
            except _FastMiss:
                pass
            except PayloadTooLarge:
                raise
            except HTTPError:
                pass
    table = _exact_table(body, media_type, header, context)
    try:
        return _assemble(table, method, specs, header, context.limits)
    except _FastMiss:  # pragma: no cover - the exact path never misses
        raise BadRequest("CSV body could not be read") from None


def _assemble(
    table: _Table, method: str, specs: dict[str, InputSpec], header: bool, limits: Limits
) -> Any:
    if method != "predict":
        limits.check_examples(table.count, "CSV body")
        return _examples(table)
    if table.names is None or len(specs) == 1:
        if len(specs) > 1:
            raise BadRequest(
                f"The signature has {len(specs)} inputs ({', '.join(specs)}); send a header row "
                "naming each column's input (Content-Type: text/csv; header=present)"
            )
        spec = next(iter(specs.values())) if specs else None
        block = _column_block(table, range(table.width), spec)
        return _shape(block, spec)
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(table.names):
        groups.setdefault(name, []).append(index)
    if specs:
        unknown = [name for name in groups if name not in specs]
        if unknown:
            raise BadRequest(
                f"CSV header line {table.header_line}: column {unknown[0]!r} is not an input of "
                f"the signature (inputs: {', '.join(specs)})"
            )
        missing = [name for name in specs if name not in groups]
        if missing:
            raise BadRequest(
                f"CSV header line {table.header_line}: no column for input {missing[0]!r} "
                f"(inputs: {', '.join(specs)})"
            )
    return {
        name: _shape(_column_block(table, columns, specs.get(name)), specs.get(name))
        for name, columns in groups.items()
    }


def _examples(table: _Table) -> list[dict[str, list[Any]]]:
    """Classify/regress: one feature dict per row."""
    if table.names is None:
        if table.matrix is not None:
            return [{"inputs": row} for row in table.matrix.tolist()]
        assert table.rows is not None and table.lines is not None
        examples: list[dict[str, list[Any]]] = []
        for row, line in zip(table.rows, table.lines, strict=True):
            try:
                examples.append({"inputs": [_parse_float(cell) for cell in row]})
            except _OutOfRange as exc:
                raise BadRequest(f"CSV line {line}: {str(exc)[:40]!r} is out of range") from None
            except ValueError:
                if any(_is_number(cell) for cell in row):
                    raise BadRequest(
                        f"CSV line {line}: the row mixes numbers and text, which one feature "
                        "cannot hold; send a header row (text/csv; header=present) to name the "
                        "features"
                    ) from None
                examples.append({"inputs": [cell.encode("utf-8") for cell in row]})
        return examples
    # With a header each column is one feature, typed as TF Serving types JSON example values: a
    # column of integer literals is an int64 feature, other numbers float, anything else bytes.
    assert table.rows is not None
    names = table.names
    # A repeated name is one feature: its columns share the widest type (int < float < bytes).
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name, []).append(index)
    parsers: list[Callable[[str], Any]] = [_utf8] * table.width
    for columns in groups.values():
        cells = [row[c] for row in table.rows for c in columns if row[c].strip()]
        parser: Callable[[str], Any] = _utf8
        if all(_is_integer(cell) for cell in cells):
            parser = int
        elif all(_is_number(cell) for cell in cells):
            parser = _parse_float
        for c in columns:
            parsers[c] = parser
    examples = []
    for r, row in enumerate(table.rows):
        example: dict[str, list[Any]] = {}
        for c, name in enumerate(names):
            cell = row[c]
            items = example.setdefault(name, [])
            if cell.strip():
                try:
                    items.append(parsers[c](cell))
                except _OutOfRange:
                    raise _bad_cell(table, r, c, "is out of range for a float feature") from None
        examples.append({name: items for name, items in example.items() if items})
    return examples


def _utf8(cell: str) -> bytes:
    return cell.encode("utf-8", "surrogatepass")


def _is_integer(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# -- encoding --------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    if not text or any(c in text for c in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


_CSV_NON_FINITE = ("nan", "inf", "-inf")


def _orjson_rows(block: Array) -> list[str] | None:
    orjson = accelerators.orjson()
    if orjson is None:
        return None
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        return None
    try:
        text: str = orjson.dumps(
            np.ascontiguousarray(block), option=orjson.OPT_SERIALIZE_NUMPY
        ).decode("ascii")
    except (TypeError, orjson.JSONEncodeError):
        return None
    return text[2:-2].split("],[")


def _text_rows(block: Array, name: str) -> list[str]:
    """Each row of a ``[n, k]`` block as CSV text: numbers that parse back to the same value."""
    count, width = block.shape
    if count == 0:
        return []
    if width == 0:
        return [""] * count
    kind = block.dtype.kind
    if kind in "biuf" and block.dtype.itemsize <= 8 and block.dtype.name != "bfloat16":
        fast = _orjson_rows(block)
        if fast is not None:
            return fast
    if kind == "b":
        cells = np.where(block, "true", "false")
    elif kind in "iuc":
        cells = block.astype(str)
    elif kind == "f" or block.dtype.name == "bfloat16":
        # The texts orjson writes (shortest round trip; float16 and bfloat16 as float32), so that
        # a body does not change with the fast extra, and ``nan``/``inf``/``-inf`` for the rest.
        texts = float_texts(block.astype(np.float32) if kind != "f" else block, _CSV_NON_FINITE)
        cells = np.array(texts, dtype=object).reshape(count, width)
    elif kind == "O" or kind == "S" or kind == "U":
        try:
            flat = [
                _quote(v if isinstance(v, str) else bytes(v).decode("utf-8"))
                for v in block.ravel().tolist()
            ]
        except UnicodeDecodeError:
            raise NotAcceptable(
                f"Output {name!r} holds bytes that are not UTF-8 text, which CSV cannot carry; "
                "ask for application/json (base64) or application/x-npy"
            ) from None
        cells = np.array(flat, dtype=object).reshape(count, width)
    else:
        raise NotAcceptable(f"Output {name!r} is {block.dtype}, which CSV cannot carry")
    return [",".join(row) for row in cells.tolist()]


def _join(columns: Sequence[list[str]], count: int) -> list[str]:
    if len(columns) == 1:
        return columns[0]
    return [",".join(parts) for parts in zip(*columns, strict=True)] if count else []


def _csv_cost(dims: Sequence[int], itemsize: int) -> int:
    return csv_bytes(dims)


def encode_csv(response: Any, media_type: MediaType, context: Context) -> bytes:
    """Write a response as CSV, one row per batch element, rows ending in LF.

    * predict: each output's values for one instance, flattened; several outputs side by side in
      output-name order. With ``header=present`` the first row names each column by its output
      (an output with k values per instance names k columns);
    * classify: ``label,score`` pairs per example (scores only when every label is empty);
    * regress: one value per example (header ``value``).
    """
    header = _header_param(media_type)
    kind = response_kind(response)
    check_response(response, context.limits, MEDIA_TYPE, _csv_cost)
    names: list[str] = []
    if kind == "predict":
        outputs = predict_outputs(response)
        count = batch_size(outputs)
        parts: list[list[str]] = []
        for name, array in outputs.items():
            if array.ndim == 0:
                block = array.reshape(1, 1)
            else:
                block = array.reshape(count, int(np.prod(array.shape[1:], dtype=np.int64)))
            names.extend([name] * block.shape[1])
            parts.append(_text_rows(block, name))
        rows = _join(parts, count)
    elif kind == "regress":
        values = regression_values(response)
        names = ["value"]
        rows = _text_rows(values.reshape(-1, 1), "value")
    else:
        examples = classification_rows(response)
        with_labels = any(label for example in examples for label, _ in example)
        rows = []
        width = 0
        for example in examples:
            scores = np.array([score for _, score in example], dtype=np.float32)
            score_text = (
                _text_rows(scores.reshape(1, -1), "scores")[0].split(",") if len(example) else []
            )
            if with_labels:
                cells = [
                    item
                    for (label, _), score in zip(example, score_text, strict=True)
                    for item in (_quote(label), score)
                ]
            else:
                cells = score_text
            width = max(width, len(example))
            rows.append(",".join(cells))
        names = ["label", "score"] * width if with_labels else ["score"] * width
    text = "\n".join(rows)
    if header:
        text = ",".join(_quote(name) for name in names) + ("\n" + text if rows else "")
    return (text + "\n").encode("utf-8") if text or rows else b""
