"""EmbeddedBackend: Classify and Regress with TF Serving's rules (classifier.cc, regressor.cc, util.cc)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from saved_models import BAD_SIGNATURE_ERRORS

from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.errors import BadRequest, NotFound
from tfio_handlers.protos import (
    ClassificationRequest,
    ClassificationResponse,
    Example,
    RegressionRequest,
    RegressionResponse,
)

pytestmark = pytest.mark.tensorflow

IRIS_VERSICOLOR = [6.4, 3.2, 4.5, 1.5]
IRIS_SETOSA = [5.1, 3.5, 1.4, 0.2]

Features = Mapping[str, Sequence[float] | Sequence[int] | Sequence[bytes]]


def example(features: Features) -> Example:
    result = Example()
    for name, values in features.items():
        feature = result.features.feature[name]
        first = values[0] if values else 0.0
        if isinstance(first, bytes):
            feature.bytes_list.value.extend(values)  # type: ignore[arg-type]
        elif isinstance(first, int):
            feature.int64_list.value.extend(values)  # type: ignore[arg-type]
        else:
            feature.float_list.value.extend(values)  # type: ignore[arg-type]
    return result


def classify_request(
    model: str, *examples: Features, signature: str = "", context: Features | None = None
) -> ClassificationRequest:
    request = ClassificationRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if context is None:
        request.input.example_list.examples.extend(example(f) for f in examples)
    else:
        with_context = request.input.example_list_with_context
        with_context.context.CopyFrom(example(context))
        with_context.examples.extend(example(f) for f in examples)
    return request


def regress_request(
    model: str, *examples: Features, signature: str = "", context: Features | None = None
) -> RegressionRequest:
    classify = classify_request(model, *examples, signature=signature, context=context)
    return RegressionRequest.FromString(classify.SerializeToString())


def labels_and_scores(response: ClassificationResponse) -> list[list[tuple[str, float]]]:
    return [[(c.label, c.score) for c in item.classes] for item in response.result.classifications]


def best(response: ClassificationResponse) -> list[str]:
    return [
        max(item.classes, key=lambda c: c.score).label for item in response.result.classifications
    ]


def values(response: RegressionResponse) -> list[float]:
    return [r.value for r in response.result.regressions]


class TestClassify:
    def test_iris_seed_example_is_label_1(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.classify(classify_request("iris", {"inputs": IRIS_VERSICOLOR}))
        (row,) = labels_and_scores(response)
        assert [label for label, _ in row] == ["0", "1", "2"]
        assert max(row, key=lambda item: item[1])[0] == "1"
        assert sum(score for _, score in row) == pytest.approx(1.0, abs=1e-5)
        spec = response.model_spec
        assert (spec.name, spec.version.value, spec.signature_name) == (
            "iris",
            1,
            "serving_default",
        )

    def test_batch(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.classify(
            classify_request(
                "iris",
                {"inputs": IRIS_SETOSA},
                {"inputs": IRIS_VERSICOLOR},
                {"inputs": [7.7, 3.0, 6.1, 2.3]},
            )
        )
        assert best(response) == ["0", "1", "2"]

    def test_context_is_merged_and_examples_win(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.classify(
            classify_request(
                "iris",
                {},
                {"inputs": IRIS_VERSICOLOR},
                context={"inputs": IRIS_SETOSA},
            )
        )
        assert best(response) == ["0", "1"]

    def test_scores_only_signature_has_empty_labels(
        self, embedded_backend: EmbeddedBackend
    ) -> None:
        response = embedded_backend.classify(
            classify_request(
                "half_plus_two",
                {"x": [1.0]},
                {"x": [4.0]},
                signature="classify_x_to_y",
            )
        )
        assert labels_and_scores(response) == [[("", 2.5)], [("", 4.0)]]
        assert response.model_spec.signature_name == "classify_x_to_y"

    def test_tensorflow_request_class(self, embedded_backend: EmbeddedBackend) -> None:
        classification_pb2 = pytest.importorskip("tensorflow_serving.apis.classification_pb2")
        theirs = classification_pb2.ClassificationRequest.FromString(
            classify_request("iris", {"inputs": IRIS_VERSICOLOR}).SerializeToString()
        )
        assert best(embedded_backend.classify(theirs)) == ["1"]

    def test_empty_input(self, embedded_backend: EmbeddedBackend) -> None:
        for request in (classify_request("iris"), classify_request("iris", context={"a": [1.0]})):
            with pytest.raises(BadRequest, match=r"^Input is empty\.$"):
                embedded_backend.classify(request)
        unset = ClassificationRequest()
        unset.model_spec.name = "iris"
        with pytest.raises(BadRequest, match=r"^Input is empty\.$"):
            embedded_backend.classify(unset)

    def test_unknown_signature(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(BadRequest, match=r"^No signature was found with the name: nope$"):
            embedded_backend.classify(
                classify_request("iris", {"inputs": IRIS_SETOSA}, signature="nope")
            )

    def test_predict_signature_is_rejected_by_structure(
        self, embedded_backend: EmbeddedBackend
    ) -> None:
        with pytest.raises(BadRequest, match=r"^Expected one or two output Tensors, found 3$"):
            embedded_backend.classify(
                classify_request("iris", {"inputs": IRIS_SETOSA}, signature="predict")
            )

    def test_unknown_model(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(NotFound, match=r"^Servable not found for request: Latest\(nope\)$"):
            embedded_backend.classify(classify_request("nope", {"inputs": IRIS_SETOSA}))

    def test_example_the_model_cannot_parse(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(BadRequest) as error:
            embedded_backend.classify(classify_request("iris", {"other": [1.0]}))
        assert "inputs" in error.value.message

    @pytest.mark.parametrize(
        "signature", [name for name in BAD_SIGNATURE_ERRORS if not name.startswith("regress")]
    )
    def test_structural_errors(self, embedded_backend: EmbeddedBackend, signature: str) -> None:
        request = classify_request(
            "bad_signatures", {"x": [1.0]}, {"x": [2.0]}, signature=signature
        )
        with pytest.raises(BadRequest) as error:
            embedded_backend.classify(request)
        assert error.value.message.startswith(BAD_SIGNATURE_ERRORS[signature])
        assert error.value.status_code == 400

    def test_valid_signature_of_the_bad_model(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.classify(classify_request("bad_signatures", {"x": [1.0]}))
        assert labels_and_scores(response) == [[("x", 1.0), ("x", 1.0)]]

    def test_method_name_check(self, regression_model: Path, iris_model: Path) -> None:
        backend = EmbeddedBackend(
            {"reg": regression_model, "iris": iris_model}, method_name_check=True
        )
        try:
            with pytest.raises(BadRequest) as error:
                backend.classify(classify_request("reg", {"x": [1.0]}))
            assert error.value.message == (
                "Expected classification signature method_name to be "
                "tensorflow/serving/classify. Was: tensorflow/serving/predict"
            )
            with pytest.raises(BadRequest, match="Expected regression signature method_name"):
                backend.regress(regress_request("reg", {"x": [1.0]}))
            assert best(backend.classify(classify_request("iris", {"inputs": IRIS_SETOSA}))) == [
                "0"
            ]
        finally:
            backend.close()


class TestRegress:
    def test_regression_model(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.regress(
            regress_request(
                "regression",
                {"x": [1.5], "k": [2]},
                {"x": [1.0]},
            )
        )
        assert values(response) == [5.0, 2.0]
        spec = response.model_spec
        assert (spec.name, spec.version.value, spec.signature_name) == (
            "regression",
            1,
            "serving_default",
        )

    def test_context(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.regress(
            regress_request(
                "regression",
                {"x": [1.0]},
                {"x": [1.0], "k": [5]},
                context={"k": [10]},
            )
        )
        assert values(response) == [12.0, 7.0]

    def test_batch_by_one_output(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.regress(
            regress_request(
                "half_plus_two",
                {"x": [2.0]},
                {"x": [3.0]},
                signature="regress_x_to_y",
            )
        )
        assert values(response) == [3.0, 3.5]

    def test_empty_input(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(BadRequest, match=r"^Input is empty\.$"):
            embedded_backend.regress(regress_request("regression"))

    def test_unknown_signature(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(BadRequest, match=r"^No signature was found with the name: nope$"):
            embedded_backend.regress(regress_request("regression", {"x": [1.0]}, signature="nope"))

    def test_classify_signature_is_rejected(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(BadRequest, match=r"^Expected one output Tensor\.$"):
            embedded_backend.regress(regress_request("iris", {"inputs": IRIS_SETOSA}))

    @pytest.mark.parametrize(
        "signature", [name for name in BAD_SIGNATURE_ERRORS if name.startswith("regress")]
    )
    def test_structural_errors(self, embedded_backend: EmbeddedBackend, signature: str) -> None:
        request = regress_request("bad_signatures", {"x": [1.0]}, {"x": [2.0]}, signature=signature)
        with pytest.raises(BadRequest) as error:
            embedded_backend.regress(request)
        assert error.value.message.startswith(BAD_SIGNATURE_ERRORS[signature])

    def test_async(self, embedded_backend: EmbeddedBackend) -> None:
        import asyncio

        async def main() -> tuple[RegressionResponse, ClassificationResponse]:
            return await asyncio.gather(
                embedded_backend.aregress(regress_request("regression", {"x": [2.0]})),
                embedded_backend.aclassify(classify_request("iris", {"inputs": IRIS_SETOSA})),
            )

        regression, classification = asyncio.run(main())
        assert values(regression) == [4.0]
        assert best(classification) == ["0"]


def test_scores_are_float32(embedded_backend: EmbeddedBackend) -> None:
    response = embedded_backend.classify(classify_request("iris", {"inputs": IRIS_VERSICOLOR}))
    scores = [c.score for c in response.result.classifications[0].classes]
    assert np.float32(scores[1]) == scores[1]
