"""SageMaker's ``DataProcessing`` for one record: ``InputFilter``, ``JoinSource`` and ``OutputFilter``.

A record is JSON (``application/json``, JSON lines) or a CSV row; SageMaker supports data processing for
these two only, and so does this module.

- **Input filter** (``--input-filter``): a :mod:`JSONPath <tfio_handlers.transform.jsonpath>` applied to the
  record before it is sent; a CSV row is an array of its fields. The selected part is written back as
  compact JSON (numbers as Python reads and writes them: the same value, not always the same text, e.g.
  ``1e3`` becomes ``1000.0``) or as a CSV row.
- **Join** (``--join-source Input``): the *original* record (before the input filter) with the record's
  output. JSON: an object gets a member ``SageMakerOutput`` holding the output; anything else becomes
  ``{"SageMakerInput": <record>, "SageMakerOutput": <output>}``. CSV: the output's fields are appended
  to the row. Both are spliced as text, so the input's bytes and the model's answer are kept exactly.
- **Output filter** (``--output-filter``): a JSONPath applied to the joined record (or to the output
  alone without a join) before it is written.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from .jsonpath import JSONPath, JSONPathError

__all__ = ["DataProcessing", "RecordKind"]

RecordKind = Literal["json", "csv"]

OUTPUT_KEY = b'"SageMakerOutput":'
INPUT_KEY = b'{"SageMakerInput":'


class DataProcessing:
    """The filters and the join of one job, applied per record (thread-safe: no state)."""

    def __init__(
        self,
        kind: RecordKind,
        *,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_input: bool = False,
    ) -> None:
        self.kind = kind
        self.input_filter = _path(input_filter)
        self.output_filter = _path(output_filter)
        self.join_input = join_input

    @property
    def filters_input(self) -> bool:
        return self.input_filter is not None

    @property
    def changes_output(self) -> bool:
        return self.join_input or self.output_filter is not None

    def filter_input(self, record: bytes) -> bytes:
        """The part of ``record`` to send; :class:`ValueError` (with the reason) when it cannot be read or
        the filter does not fit it."""
        assert self.input_filter is not None
        return self._dump(self.input_filter.select(self._load(record, "input")))

    def output(self, record: bytes, output: bytes) -> bytes:
        """The line to write for ``record`` whose answer is ``output`` (one line, no line end)."""
        joined = self._join(record, output) if self.join_input else output
        if self.output_filter is None:
            return joined
        return self._dump(self.output_filter.select(self._load(joined, "joined output")))

    def _join(self, record: bytes, output: bytes) -> bytes:
        if self.kind == "csv":
            return record + b"," + output
        text = record.strip()
        if text.startswith(b"{") and text.endswith(b"}"):
            inner = text[1:-1]
            separator = b"," if inner.strip() else b""
            return text[:-1] + separator + OUTPUT_KEY + output + b"}"
        return INPUT_KEY + text + b"," + OUTPUT_KEY + output + b"}"

    def _load(self, data: bytes, what: str) -> Any:
        try:
            if self.kind == "json":
                return json.loads(data)
            return next(csv.reader([data.decode("utf-8")]), [])
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"the {what} is not {self.kind.upper()}: {exc}") from None

    def _dump(self, value: Any) -> bytes:
        if self.kind == "json":
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise JSONPathError("a filter on a CSV row must select fields of the row")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(value)
        return buffer.getvalue().encode("utf-8")


def _path(text: str | None) -> JSONPath | None:
    if text is None:
        return None
    path = JSONPath(text)
    return None if path.is_root else path
