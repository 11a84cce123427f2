"""TF Serving's response JSON, byte for byte: predict outputs, classification and regression results.

* :func:`predict_response_to_json`: outputs → ``{"predictions": ...}`` (row) or ``{"outputs": ...}``
  (columnar), the form the request used (:class:`~.requests.JsonFormat`);
* :func:`classification_result_to_json`, :func:`regression_result_to_json` → ``{"results": ...}``.

The text is written by :mod:`.text` (RapidJSON's ``PrettyWriter`` layout and ``WriteDecimal``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from google.protobuf.message import Message

from ... import accelerators
from ...errors import BadRequest
from ...protos import (
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT8,
    DT_UINT32,
    DT_UINT64,
    ClassificationResult,
    PredictResponse,
    RegressionResult,
    TensorProto,
    coerce,
)
from ...tensors import data_type_of, dtype_name, shape_of, to_ndarray
from ..arrays import Array, Prediction
from .rapidjson_writer import escape_string
from .requests import JsonFormat
from .text import indent, nested_text, row_item_texts, value_texts

__all__ = [
    "FAST_TEXT_THRESHOLD",
    "classification_result_to_json",
    "predict_response_to_json",
    "regression_result_to_json",
]


_KIND: Final[dict[int, str]] = {
    DT_FLOAT: "float",
    DT_DOUBLE: "double",
    DT_INT32: "int",
    DT_INT16: "int",
    DT_INT8: "int",
    DT_UINT8: "int",
    DT_INT64: "int",
    DT_UINT32: "int",
    DT_UINT64: "int",
    DT_BOOL: "bool",
    DT_STRING: "string",
}


class _Output:
    """One output tensor: its name, dtype, shape, and (lazily) its values and their JSON text.

    Made from an array (the embedded backend's answer) or from a ``TensorProto`` (a remote
    backend's), read only when its values are written.
    """

    def __init__(self, name: str, tensor: TensorProto | Array) -> None:
        self.name = name
        self._tensor = tensor
        if isinstance(tensor, np.ndarray):
            self.dtype = data_type_of(tensor.dtype)
            self.dims = list(tensor.shape)
        else:
            self.dtype = int(tensor.dtype)
            self.dims = list(shape_of(tensor.tensor_shape))
        self.kind = _KIND.get(self.dtype)
        self.b64 = self.dtype == DT_STRING and name.endswith("_bytes")

    def values(self) -> Array:
        """The values, as an array of the output's shape."""
        tensor = self._tensor
        return tensor if isinstance(tensor, np.ndarray) else to_ndarray(tensor)

    def texts(self, strict: bool, depth: int) -> list[str]:
        """The values' JSON texts; ``depth`` is the containers open around each value."""
        if math.prod(self.dims) == 0:
            return []
        if self.kind is None:
            raise BadRequest(
                f"Failed to write JSON value for tensor type: {dtype_name(self.dtype)}"
            )
        return value_texts(
            self.values(), self.kind, strict=strict, b64_depth=depth if self.b64 else None
        )


def _outputs(response_or_outputs: Any) -> list[_Output]:
    """The outputs of a :class:`Prediction`, a ``PredictResponse`` or a mapping of name to
    ``TensorProto`` or array, in name order."""
    if isinstance(response_or_outputs, Prediction):
        message = response_or_outputs.message
        if message is None:
            return [_Output(k, v) for k, v in response_or_outputs.outputs.items()]
        response_or_outputs = message
    if isinstance(response_or_outputs, Message):
        tensors: Mapping[str, Any] = coerce(response_or_outputs, PredictResponse).outputs
    else:
        tensors = response_or_outputs
    out = []
    for name in sorted(tensors):
        tensor = tensors[name]
        if not isinstance(tensor, (TensorProto, np.ndarray)):
            tensor = coerce(tensor, TensorProto)
        out.append(_Output(name, tensor))
    return out


FAST_TEXT_THRESHOLD: Final = 65536
"""Outputs holding more values than this may be written by :func:`predict_response_to_json`'s fast
path when the caller asks for it (``fast=True``): see that function."""


def predict_response_to_json(
    response_or_outputs: Prediction | PredictResponse | Message | Mapping[str, Any],
    format: JsonFormat | str,
    *,
    strict: bool = False,
    fast: bool = False,
) -> bytes:
    """Predict outputs → TF Serving's response JSON (``MakeJsonFromTensors``), as bytes.

    Row (``JsonFormat.ROW``): ``{"predictions": [...]}``, every output with rank >= 1 and the
    same first dimension: one output gives its items (scalars for rank 1), several give one
    object per item. Columnar: ``{"outputs": <tensor>}`` or ``{"outputs": {name: tensor}}``.
    Outputs are written in name order (TF Serving's map order is unspecified). An output whose
    name ends in ``_bytes`` and holds strings is written as ``{"b64": ...}`` objects. The text,
    whitespace included, is what TF Serving writes. A :class:`Prediction` of arrays is written
    from its arrays; tensors are read with :func:`~tfio_handlers.tensors.to_ndarray`, so
    ``tensor_content`` works too.

    ``strict=True`` writes RFC 8259 JSON: NaN and infinities become ``null`` and strings that
    are not UTF-8 get U+FFFD; otherwise (TF Serving's way) they are the bare tokens ``NaN``,
    ``Infinity``, ``-Infinity`` and raw bytes.

    ``fast=True`` lets numeric outputs of more than :data:`FAST_TEXT_THRESHOLD` values in all be
    written by orjson (when installed): the same document, compact, with each float as the
    shortest text that parses back to the same float32/float64 rather than TF Serving's
    ``%g``-then-``%.9g`` text, about 30 times faster. Strings, non-finite values, dtypes JSON
    cannot carry and every error case always take the exact path.
    """
    if isinstance(format, str):
        try:
            format = JsonFormat(format)
        except ValueError:
            raise BadRequest("Invalid request format") from None
    if not isinstance(format, JsonFormat):
        raise BadRequest("Invalid request format")
    outputs = _outputs(response_or_outputs)
    if not outputs:
        raise BadRequest("Cannot convert empty tensor map to JSON")
    if fast:
        quick = _fast_json(outputs, format)
        if quick is not None:
            return quick
    text = (
        _row_json(outputs, strict) if format is JsonFormat.ROW else _columnar_json(outputs, strict)
    )
    return text.encode("utf-8", "surrogateescape")


def _row_json(outputs: list[_Output], strict: bool) -> str:
    batch = -1
    for output in outputs:
        if not output.dims:
            raise BadRequest(f"Tensor name: {output.name} has no shape information ")
        current = output.dims[0]
        if batch >= 0 and batch != current:
            raise BadRequest(
                f"Tensor name: {output.name} has inconsistent batch size: {current} "
                f"expecting: {batch}"
            )
        batch = current
    head = '{\n    "predictions": ['
    if batch == 0:
        return head + "]\n}"
    if len(outputs) == 1:
        (output,) = outputs
        items = row_item_texts(output.texts(strict, 2 + len(output.dims) - 1), output.dims, 2)
        return head + ", ".join(items) + "\n    ]\n}"
    columns = []
    for output in outputs:
        texts = output.texts(strict, 3 + len(output.dims) - 1)
        columns.append(row_item_texts(texts, output.dims, 3))
    member = ",\n" + indent(3)
    keys = [_key(output.name) for output in outputs]
    objects = [
        "{\n"
        + indent(3)
        + member.join(f"{key}: {column[i]}" for key, column in zip(keys, columns, strict=True))
        + "\n"
        + indent(2)
        + "}"
        for i in range(batch)
    ]
    # Each object starts before the single-line option is set: on a line of its own.
    separator = ",\n" + indent(2)
    return head + "\n" + indent(2) + separator.join(objects) + "\n    ]\n}"


_FAST_KINDS: Final = frozenset({"float", "double", "int", "bool"})


def _fast_json(outputs: list[_Output], format: JsonFormat) -> bytes | None:
    """The fast path of :func:`predict_response_to_json`, or ``None`` to take the exact path."""
    if sum(math.prod(o.dims) for o in outputs) <= FAST_TEXT_THRESHOLD:
        return None
    orjson = accelerators.orjson()
    if orjson is None:
        return None
    arrays: dict[str, Any] = {}
    for output in outputs:
        if output.kind not in _FAST_KINDS:
            return None
        array = output.values()
        if output.kind in ("float", "double") and not np.isfinite(array).all():
            return None
        arrays[output.name] = np.ascontiguousarray(array) if array.ndim else array.item()
    document: dict[str, Any]
    if format is JsonFormat.COLUMNAR:
        document = {"outputs": next(iter(arrays.values())) if len(arrays) == 1 else arrays}
    else:
        batches = {output.dims[0] if output.dims else -1 for output in outputs}
        if len(batches) != 1 or -1 in batches:
            return None  # the exact path raises TF Serving's error
        if len(arrays) == 1:
            document = {"predictions": next(iter(arrays.values()))}
        else:
            (batch,) = batches
            rows = [{name: array[i] for name, array in arrays.items()} for i in range(batch)]
            document = {"predictions": rows}
    body: bytes = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return body


def _key(name: str) -> str:
    return escape_string(name.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogateescape")


def _tensor_text(output: _Output, depth: int, strict: bool) -> str:
    """A whole tensor in the default (multi-line) layout, ``depth`` containers around it."""
    texts = output.texts(strict, depth + len(output.dims))
    if not output.dims:
        return texts[0]
    return nested_text(texts, output.dims, depth, False)


def _columnar_json(outputs: list[_Output], strict: bool) -> str:
    if len(outputs) == 1:
        return '{\n    "outputs": ' + _tensor_text(outputs[0], 1, strict) + "\n}"
    parts = [f"{_key(o.name)}: {_tensor_text(o, 2, strict)}" for o in outputs]
    return '{\n    "outputs": {\n' + indent(2) + (",\n" + indent(2)).join(parts) + "\n    }\n}"


def _scores_texts(values: list[float], strict: bool) -> list[str]:
    return value_texts(np.array(values, dtype=np.float32), "float", strict=strict)


def classification_result_to_json(
    result: ClassificationResult | Message, *, strict: bool = False
) -> bytes:
    """A ``ClassificationResult`` → ``{"results": [[[label, score], ...], ...]}`` as TF Serving
    writes it (labels as JSON strings, scores by ``WriteDecimal``); ``strict`` as in
    :func:`predict_response_to_json`. No classifications: ``Cannot convert empty
    ClassificationResults to JSON``."""
    result = coerce(result, ClassificationResult)
    if not result.classifications:
        raise BadRequest("Cannot convert empty ClassificationResults to JSON")
    items = []
    for classifications in result.classifications:
        classes = classifications.classes
        scores = _scores_texts([c.score for c in classes], strict)
        pairs = [f"[{_key(c.label)}, {score}]" for c, score in zip(classes, scores, strict=True)]
        items.append("[" + ", ".join(pairs) + "]")
    text = '{\n    "results": [' + ", ".join(items) + "\n    ]\n}"
    return text.encode("utf-8", "surrogateescape")


def regression_result_to_json(result: RegressionResult | Message, *, strict: bool = False) -> bytes:
    """A ``RegressionResult`` → ``{"results": [value, ...]}`` as TF Serving writes it; ``strict``
    as in :func:`predict_response_to_json`. No regressions: ``Cannot convert empty
    RegressionResults to JSON``."""
    result = coerce(result, RegressionResult)
    if not result.regressions:
        raise BadRequest("Cannot convert empty RegressionResults to JSON")
    values = _scores_texts([r.value for r in result.regressions], strict)
    return ('{\n    "results": [' + ", ".join(values) + "]\n}").encode("ascii")
