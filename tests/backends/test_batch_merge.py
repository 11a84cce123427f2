"""tfio_handlers.backends.batching.merge: requests merged into one, responses split back by rows.

The scheduler's end-to-end behaviour (who is merged with whom, timeouts, errors) is in
test_batching.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tfio_handlers import protos as P
from tfio_handlers.backends.batching.merge import (
    merge_arrays,
    merge_examples,
    merge_predict,
    split_examples,
    split_predict,
    split_prediction,
)
from tfio_handlers.protocol.arrays import PredictArrays, Prediction
from tfio_handlers.protos import (
    ClassificationResponse,
    ModelSpec,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
)
from tfio_handlers.tensors import SUPPORTED_DTYPES, numpy_dtype, to_ndarray, to_tensor_proto

DTYPES = sorted(SUPPORTED_DTYPES - {P.DT_BFLOAT16})


def rows_of(dt: int, count: int) -> np.ndarray:
    """``count`` rows of two distinct values each, of dtype ``dt``."""
    if dt == P.DT_STRING:
        return np.array([[b"r%d" % i, b"s%d" % i] for i in range(count)], object)
    if dt == P.DT_BOOL:
        return np.array([[i % 2 == 0, i % 3 == 0] for i in range(count)])
    values = np.arange(2 * count).reshape(count, 2)
    if numpy_dtype(dt).kind == "c":
        values = values + 1j * values
    return values.astype(numpy_dtype(dt))


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "content"])
@pytest.mark.parametrize("dt", DTYPES, ids=str)
def test_split_predict_keeps_the_inner_layout(dt: int, typed: bool) -> None:
    """Each caller's piece is the message the inner backend would have written for its rows."""
    array = rows_of(dt, 4)
    response = PredictResponse()
    response.model_spec.name = "m"
    response.outputs["y"].CopyFrom(to_tensor_proto(array, typed_fields=typed))
    pieces = split_predict(response, [1, 3])
    assert pieces is not None
    for piece, rows in zip(pieces, (array[:1], array[1:]), strict=True):
        assert piece.model_spec.name == "m"
        expected = to_tensor_proto(rows, dtype=dt, typed_fields=typed)
        assert piece.outputs["y"] == expected
        np.testing.assert_array_equal(to_ndarray(piece.outputs["y"]), rows)


def test_split_predict_refuses_outputs_that_are_not_row_aligned() -> None:
    response = PredictResponse()
    response.outputs["y"].CopyFrom(to_tensor_proto(np.zeros((3, 2), np.float32)))
    assert split_predict(response, [1, 1]) is None
    response.outputs["y"].CopyFrom(to_tensor_proto(np.float32(1)))
    assert split_predict(response, [1, 1]) is None


def test_merge_predict_concatenates_rows() -> None:
    requests = []
    for start in (0, 10):
        request = PredictRequest()
        request.model_spec.name = "m"
        request.output_filter.append("y")
        request.inputs["x"].CopyFrom(to_tensor_proto(np.arange(start, start + 4).reshape(2, 2)))
        requests.append(request)
    merged = merge_predict(requests, [PredictArrays.from_message(r).inputs for r in requests])
    assert merged.model_spec.name == "m" and list(merged.output_filter) == ["y"]
    assert to_ndarray(merged.inputs["x"]).tolist() == [[0, 1], [2, 3], [10, 11], [12, 13]]
    assert merged.inputs["x"].dtype == requests[0].inputs["x"].dtype


def test_examples_merged_and_split() -> None:
    requests = []
    for count in (1, 2):
        request = RegressionRequest()
        request.model_spec.name = "m"
        for _ in range(count):
            request.input.example_list.examples.add()
        requests.append(request)
    merged = merge_examples(requests)
    assert len(merged.input.example_list.examples) == 3
    response = RegressionResponse()
    for value in (1.0, 2.0, 3.0):
        response.result.regressions.add(value=value)
    pieces = split_examples("regress", response, [1, 2])
    assert pieces is not None
    assert [[r.value for r in p.result.regressions] for p in pieces] == [[1.0], [2.0, 3.0]]
    assert split_examples("regress", response, [1, 1]) is None
    classified = ClassificationResponse()
    for label in "abc":
        classified.result.classifications.add().classes.add(label=label)
    split = split_examples("classify", classified, [2, 1])
    assert split is not None
    assert [len(p.result.classifications) for p in split] == [2, 1]


def test_merge_arrays_concatenates_rows() -> None:
    spec = ModelSpec(name="m", signature_name="s")
    requests = [
        PredictArrays({"x": np.arange(start, start + 4).reshape(2, 2)}, spec, ("y",))
        for start in (0, 10)
    ]
    merged = merge_arrays(requests)
    assert merged.model_spec == spec and merged.output_filter == ("y",)
    assert merged.inputs["x"].tolist() == [[0, 1], [2, 3], [10, 11], [12, 13]]
    assert merged.inputs["x"].dtype == requests[0].inputs["x"].dtype


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "content"])
def test_split_prediction_gives_views_and_the_model_spec(typed: bool) -> None:
    spec = ModelSpec(name="m", signature_name="s")
    spec.version.value = 3
    outputs = {"y": np.arange(8.0, dtype=np.float32).reshape(4, 2), "z": np.arange(4)}
    pieces = split_prediction(Prediction(outputs, spec, typed_fields=typed), [1, 3])
    assert pieces is not None
    for piece, rows in zip(pieces, (slice(0, 1), slice(1, 4)), strict=True):
        assert piece.model_spec == spec and piece.model_spec is not spec
        assert piece.typed_fields == typed
        for name, array in outputs.items():
            assert piece.outputs[name].tolist() == array[rows].tolist()
            assert np.shares_memory(piece.outputs[name], array)  # a view, no copy
        whole = Prediction({k: v[rows] for k, v in outputs.items()}, spec, typed_fields=typed)
        assert piece.to_message() == whole.to_message()


def test_split_prediction_of_a_message_keeps_its_layout() -> None:
    """A remote backend's answer (made from a ``PredictResponse``) is split as that message."""
    response = PredictResponse()
    response.model_spec.name = "m"
    response.outputs["y"].CopyFrom(to_tensor_proto(np.arange(6).reshape(3, 2), typed_fields=True))
    pieces = split_prediction(Prediction.from_message(response), [2, 1])
    assert pieces is not None
    expected = split_predict(response, [2, 1])
    assert expected is not None
    assert [p.to_message() for p in pieces] == expected


def test_split_prediction_refuses_outputs_that_are_not_row_aligned() -> None:
    assert split_prediction(Prediction({"y": np.zeros((3, 2))}), [1, 1]) is None
    assert split_prediction(Prediction({"y": np.float32(1)}), [1, 1]) is None
    message = PredictResponse()
    message.outputs["y"].CopyFrom(to_tensor_proto(np.zeros((3, 2), np.float32)))
    assert split_prediction(Prediction.from_message(message), [1, 1]) is None
