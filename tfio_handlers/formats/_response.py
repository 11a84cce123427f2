"""Encoder-side helpers shared by the CSV, JSON lines, npy and pickle codecs.

They turn the backend's answer into numpy arrays and rows: a
:class:`~tfio_handlers.protocol.arrays.Prediction`'s (or a ``PredictResponse``'s) outputs as
``{name: ndarray}`` in name order, a ``ClassificationResponse`` as per-example ``(label, score)``
lists, a ``RegressionResponse`` as a float32 vector, and any of them as named arrays for the binary
formats. TensorFlow's and TF Serving's own message classes are accepted too (converted with
:func:`tfio_handlers.protos.coerce`).

Formats that write one record per instance (CSV rows, JSON lines) split the outputs along the batch
dimension with TF Serving's row-format rule: every output has the same first dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ..errors import BadRequest, InternalError, NotAcceptable
from ..protocol.arrays import Prediction
from ..protos import ClassificationResponse, PredictResponse, RegressionResponse, coerce
from ..tensors import to_ndarray

__all__ = [
    "ResponseKind",
    "batch_size",
    "classification_rows",
    "predict_outputs",
    "regression_values",
    "response_arrays",
    "response_kind",
]

Array = NDArray[Any]
ResponseKind = Literal["predict", "classify", "regress"]

_KINDS: dict[str, ResponseKind] = {
    "tensorflow.serving.PredictResponse": "predict",
    "tensorflow.serving.ClassificationResponse": "classify",
    "tensorflow.serving.RegressionResponse": "regress",
}


def response_kind(response: Any) -> ResponseKind:
    """Which answer ``response`` is; anything else is an internal error."""
    if isinstance(response, Prediction):
        return "predict"
    descriptor = getattr(response, "DESCRIPTOR", None)
    kind = _KINDS.get(getattr(descriptor, "full_name", ""))
    if kind is None:
        raise InternalError(
            f"Cannot encode a {type(response).__name__}: expected a Prediction, PredictResponse, "
            "ClassificationResponse or RegressionResponse"
        )
    return kind


def predict_outputs(response: Any) -> dict[str, Array]:
    """A :class:`Prediction`'s or a ``PredictResponse``'s outputs as arrays, in output-name order
    (protobuf maps have none)."""
    if isinstance(response, Prediction):
        return response.outputs
    message = coerce(response, PredictResponse)
    return {name: to_ndarray(message.outputs[name]) for name in sorted(message.outputs)}


def classification_rows(response: Any) -> list[list[tuple[str, float]]]:
    """One list of ``(label, score)`` per example, in the classes' order."""
    message = coerce(response, ClassificationResponse)
    return [
        [(cls.label, float(np.float32(cls.score))) for cls in classification.classes]
        for classification in message.result.classifications
    ]


def regression_values(response: Any) -> NDArray[np.float32]:
    """One float32 value per example."""
    message = coerce(response, RegressionResponse)
    return np.array([r.value for r in message.result.regressions], dtype=np.float32)


def batch_size(outputs: Mapping[str, Array]) -> int:
    """The common first dimension of ``outputs`` (TF Serving's row-format rule).

    When every output is a scalar the response is one record (``1``). A scalar next to batched
    outputs, or two outputs with different first dimensions, cannot be split into records: 400 with
    TF Serving's wording and a hint at a format that can carry it.
    """
    if not outputs:
        raise BadRequest("Cannot convert empty tensor map to records")
    if all(array.ndim == 0 for array in outputs.values()):
        return 1
    size: int | None = None
    first = ""
    for name, array in outputs.items():
        if array.ndim == 0:
            raise BadRequest(
                f"Tensor name: {name} has no shape information; one record per instance needs a "
                "batch dimension on every output: ask for application/json"
            )
        if size is None:
            size, first = int(array.shape[0]), name
        elif array.shape[0] != size:
            raise BadRequest(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: "
                f"{size} (as {first}); ask for application/json to get the outputs as they are"
            )
    assert size is not None
    return size


def response_arrays(response: Any) -> dict[str, Array]:
    """Any response as named arrays, for formats that carry arrays (npy, npz, pickle).

    Predict: the outputs. Classify: ``classes`` (a ``U`` array ``[N, K]`` of labels, left out when
    every label is empty, as with a scores-only signature) and ``scores`` (float32 ``[N, K]``).
    Regress: ``outputs`` (float32 ``[N]``), the name of a regress signature's output.
    """
    kind = response_kind(response)
    if kind == "predict":
        return predict_outputs(response)
    if kind == "regress":
        return {"outputs": regression_values(response)}
    rows = classification_rows(response)
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise NotAcceptable(
            "The examples have different numbers of classes, which an array cannot hold; "
            "ask for application/json"
        )
    width = widths.pop() if widths else 0
    labels = [[label for label, _ in row] for row in rows]
    scores = np.array([[score for _, score in row] for row in rows], dtype=np.float32)
    scores = scores.reshape(len(rows), width)
    arrays: dict[str, Array] = {}
    if any(label for row in labels for label in row):
        arrays["classes"] = np.array(labels, dtype=str).reshape(len(rows), width)
    arrays["scores"] = scores
    return arrays
