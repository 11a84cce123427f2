"""Encoding: a response → CSV text, one row per batch element (see :func:`encode_csv`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ... import accelerators
from ...context import Context
from ...errors import NotAcceptable
from ...media import MediaType
from ...protocol._json_compact import float_texts
from ...protocol.answer_size import check_response, csv_bytes
from .._response import (
    batch_size,
    classification_rows,
    predict_outputs,
    regression_values,
    response_kind,
)
from .dialect import MEDIA_TYPE, header_present

__all__ = ["encode_csv"]

Array = NDArray[Any]


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


def encode_csv(response: Any, media_type: MediaType, context: Context) -> bytes:
    """Write a response as CSV, one row per batch element, rows ending in LF.

    * predict: each output's values for one instance, flattened; several outputs side by side in
      output-name order. With ``header=present`` the first row names each column by its output
      (an output with k values per instance names k columns);
    * classify: ``label,score`` pairs per example (scores only when every label is empty);
    * regress: one value per example (header ``value``).
    """
    header = header_present(media_type)
    kind = response_kind(response)
    check_response(response, context.limits, MEDIA_TYPE, csv_bytes)
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
