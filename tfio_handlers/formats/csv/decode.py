"""Decoding: a :class:`~.table.Table` → an array (one input), a dict of arrays, or feature dicts.

Cells are typed by the signature input's dtype, each predict input shaped by its signature shape,
and classify/regress rows made examples (the rules are the package docstring's and
``docs/formats/csv.md``'s); a cell that does not fit is a 400 naming its line and column.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...config import Limits
from ...context import Context
from ...errors import BadRequest, HTTPError, PayloadTooLarge
from ...media import MediaType
from ...protocol.requests import choose_method
from ...tensors.casting import integer_from_text
from .._request import InputSpec, input_specs, shape_text
from .cells import (
    OutOfRange,
    is_integer,
    is_number,
    parse_bool,
    parse_complex,
    parse_float,
    utf8,
)
from .dialect import header_present
from .table import Table, exact_table, fast_table

__all__ = ["decode_csv"]

Array = NDArray[Any]


_BLANK = re.compile(rb"(?:\xef\xbb\xbf)?\s*\Z")


def _bad_cell(
    table: Table, row: int, col: int, message: str, error: type[BadRequest] = BadRequest
) -> BadRequest:
    assert table.rows is not None and table.lines is not None
    cell = table.rows[row][col]
    shown = repr(cell) if len(cell) <= 40 else repr(cell[:40]) + "..."
    what = "an empty field" if not cell.strip() else shown
    return error(f"CSV line {table.lines[row]}, {table.column_label(col)}: {what} {message}")


class _OutOfRangeCell(BadRequest):
    """400 for a number beyond its dtype's range: never read as text instead (a table of
    numbers without a signature falls back to strings only when a cell is not a number)."""


def _convert_cells(
    table: Table,
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
            except OutOfRange:
                raise _bad_cell(table, r, c, out_of_range, _OutOfRangeCell) from None
            except (ValueError, TypeError, OverflowError):
                raise _bad_cell(table, r, c, message) from None
    raise AssertionError("unreachable: a cell failed to parse once")  # pragma: no cover


def _strings(table: Table, columns: Sequence[int]) -> Array:
    assert table.rows is not None
    flat = [row[c].encode("utf-8", "surrogatepass") for row in table.rows for c in columns]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(table.count, len(columns))


def _numbers(table: Table, columns: Sequence[int], spec: InputSpec | None) -> Array:
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
            parse_float,
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
        ints = _convert_cells(
            table, columns, integer_from_text, f"is not a whole number for {label}"
        )
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
        bools = _convert_cells(table, columns, parse_bool, f"is not a boolean for {label}")
        return np.array(bools, dtype=np.bool_).reshape(shape)
    if kind == "c":
        values = _convert_cells(
            table,
            columns,
            parse_complex,
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


def _column_block(table: Table, columns: Sequence[int], spec: InputSpec | None) -> Array:
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
    header = header_present(media_type)
    method = choose_method(context)
    specs = input_specs(context) if method == "predict" else {}
    if _BLANK.match(body):
        raise BadRequest("The CSV body is empty")
    # Classify/regress with a header types features by their text (integer literals): exact path.
    kind = None if header and method != "predict" else _fast_kind(list(specs.values()) or [None])
    if kind is not None:
        table = fast_table(body, media_type, header, kind, context)
        if table is not None:
            try:
                return _assemble(table, method, specs, header, context.limits)
            except _FastMiss:
                pass
            except PayloadTooLarge:
                raise
            except HTTPError:
                pass
    table = exact_table(body, media_type, header, context)
    try:
        return _assemble(table, method, specs, header, context.limits)
    except _FastMiss:  # pragma: no cover - the exact path never misses
        raise BadRequest("CSV body could not be read") from None


def _assemble(
    table: Table, method: str, specs: dict[str, InputSpec], header: bool, limits: Limits
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


def _examples(table: Table) -> list[dict[str, list[Any]]]:
    """Classify/regress: one feature dict per row."""
    if table.names is None:
        if table.matrix is not None:
            return [{"inputs": row} for row in table.matrix.tolist()]
        assert table.rows is not None and table.lines is not None
        examples: list[dict[str, list[Any]]] = []
        for row, line in zip(table.rows, table.lines, strict=True):
            try:
                examples.append({"inputs": [parse_float(cell) for cell in row]})
            except OutOfRange as exc:
                raise BadRequest(f"CSV line {line}: {str(exc)[:40]!r} is out of range") from None
            except ValueError:
                if any(is_number(cell) for cell in row):
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
    parsers: list[Callable[[str], Any]] = [utf8] * table.width
    for columns in groups.values():
        cells = [row[c] for row in table.rows for c in columns if row[c].strip()]
        parser: Callable[[str], Any] = utf8
        if all(is_integer(cell) for cell in cells):
            parser = int
        elif all(is_number(cell) for cell in cells):
            parser = parse_float
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
                except OutOfRange:
                    raise _bad_cell(table, r, c, "is out of range for a float feature") from None
        examples.append({name: items for name, items in example.items() if items})
    return examples
