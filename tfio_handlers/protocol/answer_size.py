"""What an answer will cost to write, from shapes alone: checked before a single byte is written.

A tensor of shape ``[N, 0]`` holds no elements, yet every writer of nested lists (TF Serving JSON,
JSON lines, CSV) writes its ``N`` empty rows: a 13-byte request can ask for a 400 MB answer. So
every built-in encoder bounds its answer first, with :class:`~tfio_handlers.config.Limits`:

* each output's extent (:meth:`Limits.check_shape`: its elements, or the rows a zero dimension
  hides) against ``max_elements``;
* a **lower bound** of the answer's bytes in the format being written against
  ``max_response_bytes``. Lower bounds only (one byte per number, no quotes, no keys), so nothing
  a format could really carry is refused for an estimate, and each format pays for its own
  layout: an npy answer costs its ``nbytes``, not what its JSON text would take.

The functions here need only dims (from a ``TensorProto``'s shape, never its values), so the
check costs nothing on the normal path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..config import Limits, shape_extent
from ..protos import TensorProto, coerce
from ..tensors import shape_of
from .arrays import Prediction

__all__ = [
    "binary_bytes",
    "check_answer",
    "check_response",
    "csv_bytes",
    "flat_text_bytes",
    "nested_text_bytes",
    "tensor_dims",
]

Cost = tuple[str, Sequence[int], int]
"""One part of an answer: what it is (``output 'y'``), its shape, and its bytes' lower bound."""


def tensor_dims(tensor: Any) -> tuple[int, ...]:
    """A ``TensorProto``'s dims, validated (:func:`tfio_handlers.tensors.shape_of`), values unread."""
    return shape_of(coerce(tensor, TensorProto))


def _elements(dims: Sequence[int]) -> int:
    count = 1
    for d in dims:
        count *= d
    return count


def nested_text_bytes(dims: Sequence[int], itemsize: int = 1) -> int:
    """At least what a tensor takes as nested JSON lists (``[[1,2],[3,4]]``): two brackets per
    list, a comma between items, one byte per value. ``[N, 0]`` costs ``3N``: ``[],`` per row."""
    total = 0
    lists = 1
    for d in dims:
        total += lists * (2 + max(d - 1, 0))
        lists *= d
        if lists == 0:
            return total
    return total + lists


def flat_text_bytes(dims: Sequence[int], itemsize: int = 1) -> int:
    """At least what a tensor takes as one flat JSON list of its values (proto3 JSON's
    ``floatVal``): one byte per value and a comma between values; the shape is a few bytes."""
    count = _elements(dims)
    return max(2 * count - 1, 0)


def csv_bytes(dims: Sequence[int], itemsize: int = 1) -> int:
    """At least what a tensor takes as CSV, one row per batch element: a line end per row, a
    byte per value and a comma between values of a row. ``[N, 0]`` costs ``N``."""
    if not dims:
        return 2
    rows = dims[0]
    per_row = _elements(dims[1:])
    return rows * (1 + max(2 * per_row - 1, 0))


def binary_bytes(dims: Sequence[int], itemsize: int) -> int:
    """At least what a tensor takes as raw values (npy, npz, pickle, ``tensor_content``)."""
    return _elements(dims) * max(itemsize, 1)


def check_answer(
    costs: Iterable[Cost], limits: Limits, media_type: str, *, overhead: int = 0
) -> None:
    """Bound an answer before writing it: every part's extent against ``max_elements`` and the
    sum of the parts' lower bounds (plus ``overhead``) against ``max_response_bytes``; 413
    naming the costliest part, its shape and the limit."""
    total = overhead
    worst: Cost | None = None
    for what, dims, estimate in costs:
        limits.check_shape(dims, what)
        total += estimate
        if worst is None or estimate > worst[2]:
            worst = (what, dims, estimate)
    if total > limits.max_response_bytes:
        if worst is None:
            limits.check_response(total, "the answer", None, media_type)
        else:
            limits.check_response(total, worst[0], worst[1], media_type)


_KINDS = {
    "tensorflow.serving.PredictResponse": "predict",
    "tensorflow.serving.ClassificationResponse": "classify",
    "tensorflow.serving.RegressionResponse": "regress",
}
_DT_STRING = 7


def _itemsize(tensor: TensorProto) -> int:
    """Bytes per value in a binary format (1 for strings, whose lengths are not known yet)."""
    if tensor.dtype == _DT_STRING:
        return 1
    from ..tensors import numpy_dtype

    try:
        return int(numpy_dtype(tensor.dtype).itemsize)
    except Exception:  # an unknown dtype is the writer's error to word; cost it at 1 byte
        return 1


def _array_itemsize(array: Any) -> int:
    """Bytes per value of an array in a binary format (1 for strings, as for messages)."""
    return 1 if array.dtype.kind in "OSU" else max(int(array.dtype.itemsize), 1)


def _arrays_fit(
    outputs: Mapping[str, Any],
    limits: Limits,
    cost: Callable[[Sequence[int], int], int],
    overhead: int,
) -> bool:
    """Whether arrays pass :func:`check_answer` (the same arithmetic), judged without naming
    anything: the answers that fit, nearly all, skip building the parts' names and messages."""
    total = overhead
    for array in outputs.values():
        shape = array.shape
        if shape_extent(shape) > limits.max_elements:
            return False
        total += cost(shape, _array_itemsize(array))
    return total <= limits.max_response_bytes


def check_response(
    response: Any,
    limits: Limits,
    media_type: str,
    cost: Callable[[Sequence[int], int], int],
    *,
    overhead: int = 0,
) -> None:
    """:func:`check_answer` for a backend's answer (a :class:`~.arrays.Prediction` or a response
    message), from shapes and counts alone.

    ``cost(dims, itemsize)`` is the format's lower bound for one tensor: one of this module's cost
    functions (text formats ignore ``itemsize``, which they take so that every cost fits here). A
    predict response's outputs are costed one by one (``output 'y'``); a classify response as
    ``[N, K]`` values (``K`` the mean classes per example), a regress response as ``[N]``. Anything
    else is left to the encoder (it raises its own error).
    """
    if isinstance(response, Prediction):
        if response.message is None:
            if _arrays_fit(response.outputs, limits, cost, overhead):
                return
            check_answer(
                [
                    (f"output {name!r}", array.shape, cost(array.shape, _array_itemsize(array)))
                    for name, array in response.outputs.items()
                ],
                limits,
                media_type,
                overhead=overhead,
            )
            return
        response = response.message
    descriptor = getattr(response, "DESCRIPTOR", None)
    kind = _KINDS.get(getattr(descriptor, "full_name", ""))
    if kind == "predict":
        outputs = response.outputs
        parts: list[Cost] = []
        for name in outputs:
            tensor = outputs[name]
            dims = tensor_dims(tensor)
            parts.append((f"output {name!r}", dims, cost(dims, _itemsize(tensor))))
        check_answer(parts, limits, media_type, overhead=overhead)
    elif kind == "classify":
        classifications = response.result.classifications
        count = len(classifications)
        classes = sum(len(item.classes) for item in classifications) if count else 0
        dims = (count, classes // count if count else 0)
        check_answer([("classifications", dims, cost(dims, 4))], limits, media_type)
    elif kind == "regress":
        dims = (len(response.result.regressions),)
        check_answer([("regressions", dims, cost(dims, 4))], limits, media_type)
