"""The iris example: its data, its training script's export, and serving it with EmbeddedBackend."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from saved_models import IRIS_TRAIN, iris_example

from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.protocol.signatures import signature_method
from tfio_handlers.protos import (
    DT_FLOAT,
    DT_INT64,
    DT_STRING,
    ClassificationRequest,
    PredictRequest,
)
from tfio_handlers.tensors import to_ndarray, to_tensor_proto

CSV = IRIS_TRAIN.parent / "iris.csv"


def read_rows() -> list[list[str]]:
    with CSV.open(newline="") as handle:
        return list(csv.reader(handle))


class TestData:
    def test_shape_and_labels(self) -> None:
        header, *rows = read_rows()
        assert header == ["sepal_length", "sepal_width", "petal_length", "petal_width", "label"]
        assert len(rows) == 150
        assert Counter(row[4] for row in rows) == {"0": 50, "1": 50, "2": 50}
        assert [row[4] for row in rows] == ["0"] * 50 + ["1"] * 50 + ["2"] * 50

    def test_it_is_fishers_table(self) -> None:
        _, *rows = read_rows()
        table = np.array([[float(v) for v in row[:4]] for row in rows])
        # Column totals of Fisher's published table (the UCI file's two typos corrected).
        np.testing.assert_allclose(table.sum(0), [876.5, 458.6, 563.7, 179.9], atol=1e-9)
        assert rows[0] == ["5.1", "3.5", "1.4", "0.2", "0"]
        assert rows[34] == ["4.9", "3.1", "1.5", "0.2", "0"]  # UCI has 0.1
        assert rows[37] == ["4.9", "3.6", "1.4", "0.1", "0"]  # UCI has 3.1, 1.5
        assert rows[149] == ["5.9", "3.0", "5.1", "1.8", "2"]
        assert len({tuple(row) for row in rows}) == 149  # Fisher's table has one duplicate row

    def test_loader(self) -> None:
        features, labels = iris_example().load_data()
        assert features.shape == (150, 4) and features.dtype == np.float32
        assert labels.shape == (150,) and labels.dtype == np.int64


@pytest.mark.tensorflow
class TestExport:
    def test_signature_layout(self, embedded_backend: EmbeddedBackend) -> None:
        signatures = embedded_backend.signatures("iris").signature_defs
        classify = signatures["serving_default"]
        assert classify.method_name == "tensorflow/serving/classify"
        assert signature_method(classify) == "classify"
        assert list(classify.inputs) == ["inputs"]
        assert classify.inputs["inputs"].dtype == DT_STRING
        assert {
            k: (v.dtype, [d.size for d in v.tensor_shape.dim]) for k, v in classify.outputs.items()
        } == {
            "classes": (DT_STRING, [-1, 3]),
            "scores": (DT_FLOAT, [-1, 3]),
        }
        predict = signatures["predict"]
        assert signature_method(predict) == "predict"
        assert predict.inputs["inputs"].dtype == DT_FLOAT
        assert [d.size for d in predict.inputs["inputs"].tensor_shape.dim] == [-1, 4]
        assert {k: v.dtype for k, v in predict.outputs.items()} == {
            "probabilities": DT_FLOAT,
            "class_ids": DT_INT64,
            "classes": DT_STRING,
        }

    def test_accuracy(self, embedded_backend: EmbeddedBackend) -> None:
        features, labels = iris_example().load_data()
        request = PredictRequest()
        request.model_spec.name = "iris"
        request.model_spec.signature_name = "predict"
        request.inputs["inputs"].CopyFrom(to_tensor_proto(features))
        response = embedded_backend.predict(request)
        class_ids = to_ndarray(response.outputs["class_ids"])
        assert (class_ids == labels).mean() >= 0.95
        classes = to_ndarray(response.outputs["classes"])
        assert classes.tolist() == [str(i).encode() for i in class_ids]

    def test_cli_export_is_deterministic(self, tmp_path: Path, iris_model: Path) -> None:
        iris_example().main(["--output-dir", str(tmp_path), "--version", "3"])
        assert (tmp_path / "3" / "saved_model.pb").is_file()
        with EmbeddedBackend({"a": iris_model, "b": tmp_path}) as backend:
            assert backend.versions("b") == [3]
            scores = []
            for name in ("a", "b"):
                request = ClassificationRequest()
                request.model_spec.name = name
                request.input.example_list.examples.add().features.feature[
                    "inputs"
                ].float_list.value.extend([6.4, 3.2, 4.5, 1.5])
                response = backend.classify(request)
                scores.append([c.score for c in response.result.classifications[0].classes])
        assert scores[0] == pytest.approx(scores[1], rel=1e-5)
        assert int(np.argmax(scores[0])) == 1
