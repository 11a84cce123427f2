"""Merging alike requests into one and splitting the response back into each caller's rows.

Predict requests come in two forms, merged and split alike: :class:`~tfio_handlers.protocol.
arrays.PredictArrays` (what the pipeline sends: :func:`merge_arrays` and :func:`split_prediction`,
no ``TensorProto`` built, each caller's outputs views of the merged ones) and ``PredictRequest``
messages (the gRPC adapter, callers of ``predict``: :func:`merge_predict` and
:func:`split_predict`). Either is merged by concatenating every input along dimension 0 (the
scheduler only merges requests whose inputs have the same names, dtypes and shapes after
dimension 0); classify and regress requests by concatenating their examples (the context, when
there is one, is the first request's: the scheduler merges only requests with identical
contexts). A response is split by rows: each caller gets exactly its own rows of every output, in
the layout the inner backend wrote (arrays, typed fields or ``tensor_content``). A response whose
outputs are not row-aligned cannot be split: ``None``, and the scheduler runs each request again
alone (one rule for every form, :func:`_row_aligned`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import Message

from ...protocol.arrays import Array, PredictArrays, Prediction
from ...protos import (
    ClassificationResponse,
    ModelSpec,
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

__all__ = [
    "merge_arrays",
    "merge_examples",
    "merge_predict",
    "split_examples",
    "split_predict",
    "split_prediction",
]


def _row_aligned(shapes: Iterable[tuple[int, ...]], total: int) -> bool:
    """Whether every output has ``total`` rows in dimension 0 (a scalar has none): the one rule
    for whether a merged answer can be split back into its callers' rows."""
    return all(shape and shape[0] == total for shape in shapes)


def merge_arrays(requests: Sequence[PredictArrays]) -> PredictArrays:
    """One predict request of ``requests``: each input concatenated along dimension 0 (one copy),
    the model spec and output filter of the first."""
    first = requests[0]
    inputs = {
        name: np.concatenate([request.inputs[name] for request in requests])
        for name in first.inputs
    }
    return PredictArrays(inputs, first.model_spec, first.output_filter)


def split_prediction(prediction: Prediction, rows: Sequence[int]) -> list[Prediction] | None:
    """Each caller's rows of every output (``rows[i]`` rows for caller ``i``, in order), as
    views of the merged outputs; ``None`` when an output is a scalar or its dimension 0 is not the
    total row count. Each answer has its own copy of the model spec that answered, and the merged
    answer's layout: a :class:`Prediction` made from a ``PredictResponse`` (a remote inner
    backend) is split as that message, by :func:`split_predict`."""
    message = prediction.message
    if message is not None:
        pieces = split_predict(message, rows)
        return None if pieces is None else [Prediction.from_message(p) for p in pieces]
    outputs = prediction.outputs
    if not _row_aligned((array.shape for array in outputs.values()), sum(rows)):
        return None
    answers = []
    offset = 0
    for count in rows:
        end = offset + count
        spec = ModelSpec()
        spec.CopyFrom(prediction.model_spec)
        answers.append(
            Prediction(
                {name: array[offset:end] for name, array in outputs.items()},
                spec,
                typed_fields=prediction.typed_fields,
            )
        )
        offset = end
    return answers


def merge_predict(
    requests: Sequence[PredictRequest], inputs: Sequence[Mapping[str, Array]]
) -> PredictRequest:
    """One predict request of ``requests``: each input concatenated along dimension 0, the model
    spec and output filter of the first. ``inputs`` are each request's tensors as its caller read
    them (:meth:`PredictArrays.from_message`), so that a request that cannot be read fails alone
    and not its whole batch."""
    first = requests[0]
    merged = PredictRequest()
    merged.model_spec.CopyFrom(first.model_spec)
    merged.output_filter.extend(first.output_filter)
    for name in first.inputs:
        parts = [arrays[name] for arrays in inputs]
        dtype = int(first.inputs[name].dtype)
        merged.inputs[name].CopyFrom(to_tensor_proto(np.concatenate(parts), dtype=dtype))
    return merged


def split_predict(response: PredictResponse, rows: Sequence[int]) -> list[PredictResponse] | None:
    """Each caller's rows of every output (``rows[i]`` rows for caller ``i``, in order); ``None``
    when an output is a scalar or its dimension 0 is not the total row count."""
    arrays = {alias: to_ndarray(tensor) for alias, tensor in response.outputs.items()}
    if not _row_aligned((array.shape for array in arrays.values()), sum(rows)):
        return None
    outputs = [_Output.of(alias, response.outputs[alias], array) for alias, array in arrays.items()]
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
