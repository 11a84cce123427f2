"""Merging alike requests into one and splitting the response back into each caller's rows.

Predict requests are merged by concatenating every input along dimension 0 (the scheduler only
merges requests whose inputs have the same names, dtypes and shapes after dimension 0); classify
and regress requests by concatenating their examples (the context, when there is one, is the
first request's: the scheduler merges only requests with identical contexts). A response is split
by rows: each caller gets exactly its own rows of every output, in the layout the inner backend
wrote (typed fields or ``tensor_content``). A response whose outputs are not row-aligned cannot be
split: ``None``, and the scheduler runs each request again alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import Message

from ...protos import (
    ClassificationResponse,
    PredictRequest,
    PredictResponse,
    RegressionResponse,
    TensorProto,
)
from ...tensors import (
    RAW_PACKED_DTYPES,
    SUPPORTED_DTYPES,
    to_ndarray,
    to_tensor_proto,
    typed_field,
)

__all__ = ["merge_examples", "merge_predict", "split_examples", "split_predict"]


def merge_predict(requests: Sequence[PredictRequest]) -> PredictRequest:
    """One predict request of ``requests``: each input concatenated along dimension 0, the model
    spec and output filter of the first."""
    first = requests[0]
    merged = PredictRequest()
    merged.model_spec.CopyFrom(first.model_spec)
    merged.output_filter.extend(first.output_filter)
    for name in first.inputs:
        parts = [to_ndarray(request.inputs[name]) for request in requests]
        dtype = int(first.inputs[name].dtype)
        merged.inputs[name].CopyFrom(to_tensor_proto(np.concatenate(parts), dtype=dtype))
    return merged


def split_predict(response: PredictResponse, rows: Sequence[int]) -> list[PredictResponse] | None:
    """Each caller's rows of every output (``rows[i]`` rows for caller ``i``, in order); ``None``
    when an output is a scalar or its dimension 0 is not the total row count."""
    total = sum(rows)
    outputs: list[_Output] = []
    for alias, tensor in response.outputs.items():
        array = to_ndarray(tensor)
        if array.ndim == 0 or array.shape[0] != total:
            return None
        outputs.append(_Output.of(alias, tensor, array))
    answers = []
    offset = 0
    for count in rows:
        answer = PredictResponse()
        answer.model_spec.CopyFrom(response.model_spec)
        for output in outputs:
            output.write(offset, count, answer.outputs[output.alias])
        offset += count
        answers.append(answer)
    return answers


def merge_examples(requests: Sequence[Any]) -> Any:
    """One classify or regress request of ``requests``: their examples in order, the model spec
    (and context, if any) of the first."""
    first = requests[0]
    merged = type(first)()
    merged.model_spec.CopyFrom(first.model_spec)
    which = first.input.WhichOneof("kind")
    if which == "example_list_with_context":
        target = merged.input.example_list_with_context
        target.context.CopyFrom(first.input.example_list_with_context.context)
        for request in requests:
            target.examples.extend(request.input.example_list_with_context.examples)
    else:
        target = merged.input.example_list
        for request in requests:
            target.examples.extend(request.input.example_list.examples)
    return merged


def split_examples(kind: str, response: Any, rows: Sequence[int]) -> list[Any] | None:
    """Each caller's results of a ``classify`` or ``regress`` response, ``rows[i]`` for caller
    ``i``; ``None`` when the response does not hold one result per example."""
    total = sum(rows)
    if kind == "classify":
        items: Any = response.result.classifications
        response_type: type[Message] = ClassificationResponse
    else:
        items = response.result.regressions
        response_type = RegressionResponse
    if len(items) != total:
        return None
    answers = []
    offset = 0
    for count in rows:
        answer: Any = response_type()
        answer.model_spec.CopyFrom(response.model_spec)
        field = answer.result.classifications if kind == "classify" else answer.result.regressions
        field.extend(items[offset : offset + count])
        offset += count
        answers.append(answer)
    return answers


@dataclass(slots=True)
class _Output:
    """One output of a merged response, ready to be cut into each caller's rows."""

    alias: str
    dtype: int
    array: np.ndarray[Any, Any]
    typed: bool
    """The inner backend wrote typed fields (else ``tensor_content``): the slices are written so."""
    values: Any
    """The typed repeated field, when it holds one value per element (sliced as is)."""
    inner: int
    """Elements per row."""

    @classmethod
    def of(cls, alias: str, tensor: TensorProto, array: np.ndarray[Any, Any]) -> _Output:
        dtype = int(tensor.dtype)
        typed = not tensor.tensor_content
        values = None
        # Raw packed dtypes are re-encoded (one copy of the slice's bytes), the others sliced.
        if typed and dtype not in RAW_PACKED_DTYPES and dtype in SUPPORTED_DTYPES:
            field = getattr(tensor, typed_field(dtype))
            if len(field) == array.size:  # one value per element (not complex pairs, no broadcast)
                values = field
        inner = math.prod(array.shape[1:])
        return cls(alias, dtype, array, typed, values, inner)

    def write(self, start: int, rows: int, out: TensorProto) -> None:
        """Rows ``start:start + rows`` into ``out``, in the inner backend's layout."""
        piece = self.array[start : start + rows]
        if self.values is None:
            out.CopyFrom(to_tensor_proto(piece, dtype=self.dtype, typed_fields=self.typed))
            return
        out.dtype = self.dtype  # type: ignore[assignment]
        dims = out.tensor_shape.dim
        for d in piece.shape:
            dims.add().size = d
        if not piece.size:
            return
        # A slice of the typed field: the same values, no conversion.
        getattr(out, typed_field(self.dtype)).extend(
            self.values[start * self.inner : (start + rows) * self.inner]
        )
