"""Answers to MultiRecord bodies split back into one output per record, and outputs made lines.

SageMaker writes the answer to a MultiRecord body as it comes, so a JSON answer holding many
predictions ends up as one line for many input lines. Here every record gets its own output, split from
the answer exactly, by the answer's ``Content-Type``:

- JSON lines: one line per record;
- CSV: one row per record (a quoted field may hold a line break; rows are found with the quotes in mind);
- JSON: an object with a single member whose value is an array of one element per record (TF Serving's
  ``{"predictions": [...]}`` and ``{"results": [...]}``): each record's output is the answer's own text
  with only that record's element in the array (the bytes a body of that record alone is answered with);
- anything else (the proto3 JSON form of ``{"outputs": ...}``, npy, a user ``output_fn``'s own format):
  not split (``None``); the job then sends those records one to a body.

A split whose count is not the number of records is refused (``None``) the same way, never guessed.
"""

from __future__ import annotations

import json
import re

from ..formats.csv.dialect import ALIASES as CSV_ALIASES
from ..formats.csv.dialect import MEDIA_TYPE as CSV
from ..formats.jsonlines import ALIASES as JSON_LINES_ALIASES
from ..formats.jsonlines import MEDIA_TYPE as JSON_LINES
from ..media import JSON, parse_media_type

__all__ = ["is_csv", "is_json", "is_json_lines", "one_line", "split_answer"]

_JSON_LINES_TYPES = frozenset((JSON_LINES, *JSON_LINES_ALIASES))
_CSV_TYPES = frozenset((CSV, *CSV_ALIASES))

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


def _essence(content_type: str) -> str:
    try:
        return parse_media_type(content_type).essence
    except ValueError:
        return content_type.partition(";")[0].strip().lower()


def is_json_lines(content_type: str) -> bool:
    return _essence(content_type) in _JSON_LINES_TYPES


def is_csv(content_type: str) -> bool:
    return _essence(content_type) in _CSV_TYPES


def is_json(content_type: str) -> bool:
    """``application/json`` and the ``+json`` types."""
    essence = _essence(content_type)
    return essence == JSON or essence.endswith("+json")


def split_answer(body: bytes, content_type: str, n: int) -> list[bytes] | None:
    """``n`` outputs (each without a line end) from the answer to a body of ``n`` records, or ``None``."""
    parts: list[bytes] | None
    if is_json_lines(content_type):
        parts = _lines(body)
    elif is_csv(content_type):
        parts = _csv_rows(body)
    elif is_json(content_type):
        parts = _json_elements(body, n)
    else:
        return None
    return parts if parts is not None and len(parts) == n else None


def _lines(body: bytes) -> list[bytes]:
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _csv_rows(body: bytes) -> list[bytes]:
    if b'"' not in body:
        return _lines(body)
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    rows: list[bytes] = []
    pending: list[bytes] = []
    quotes = 0
    for line in lines:
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:  # not inside a quoted field: the row ends here
            row = b"\n".join(pending)
            rows.append(row[:-1] if row.endswith(b"\r") else row)
            pending, quotes = [], 0
    if pending:
        rows.append(b"\n".join(pending))
    return rows


def _json_elements(body: bytes, n: int) -> list[bytes] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or len(document) != 1:
        return None
    (value,) = document.values()
    if not isinstance(value, list) or len(value) != n:
        return None
    depth = 0
    opened = -1
    starts: list[int] = []
    ends: list[int] = []
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token[0] == 0x22:  # a string: a member name or a string value
            continue
        position = match.start()
        if token in (b"[", b"{"):
            depth += 1
            if depth == 2 and token == b"[" and opened < 0:
                opened = position
                starts.append(position + 1)
        elif token in (b"]", b"}"):
            if depth == 2 and opened >= 0 and token == b"]":
                ends.append(position)
                break
            depth -= 1
        elif depth == 2 and opened >= 0:  # a comma between the array's elements
            ends.append(position)
            starts.append(position + 1)
    if opened < 0 or len(ends) != len(starts):
        return None
    prefix, suffix = body[: opened + 1], body[ends[-1] :]
    elements = [body[s:e].strip() for s, e in zip(starts, ends, strict=True)]
    if n == 0 or len(elements) != n:
        return None
    return [prefix + element + suffix for element in elements]


def one_line(output: bytes, content_type: str) -> bytes:
    """``output`` as one line (no line end) for ``--assemble-with Line``; ``ValueError`` if it cannot be.

    One trailing line end is dropped. A JSON answer's line breaks lie between tokens (JSON strings
    escape theirs), so they become spaces: the same JSON. Any other answer holding a line break
    cannot be one line without changing it.
    """
    if output.endswith(b"\n"):
        output = output[:-1]
    if output.endswith(b"\r"):
        output = output[:-1]
    if b"\n" not in output and b"\r" not in output:
        return output
    lines = output.count(b"\n") + 1
    if is_json(content_type) or is_json_lines(content_type):
        if is_json_lines(content_type) and b"\n" in output.strip():
            raise ValueError(
                f"the answer for this record is {lines} JSON lines; "
                "--assemble-with Line writes one line per record (use --assemble-with None)"
            )
        return output.replace(b"\r", b" ").replace(b"\n", b" ")
    raise ValueError(
        f"the answer for this record holds {lines} lines; --assemble-with Line "
        "writes one line per record (use --assemble-with None)"
    )
