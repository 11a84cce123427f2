"""Signature method detection and TF Serving's signature rules (no TensorFlow needed)."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfio_handlers.errors import BadRequest, InternalError
from tfio_handlers.protocol.signatures import (
    CLASSIFY_METHOD_NAME,
    PREDICT_METHOD_NAME,
    REGRESS_METHOD_NAME,
    check_classify_signature,
    check_predict_signature,
    check_regress_signature,
    default_method,
    find_signature,
    is_classify_signature,
    is_regress_signature,
    signature_method,
    signature_text,
)
from tfio_handlers.protos import DT_DOUBLE, DT_FLOAT, DT_INT64, DT_STRING, SignatureDef


def sig(
    inputs: dict[str, int], outputs: dict[str, int], method: str = PREDICT_METHOD_NAME
) -> SignatureDef:
    signature = SignatureDef(method_name=method)
    for name, dtype in inputs.items():
        signature.inputs[name].dtype = dtype  # type: ignore[assignment]
        signature.inputs[name].name = f"{name}:0"
    for name, dtype in outputs.items():
        signature.outputs[name].dtype = dtype  # type: ignore[assignment]
        signature.outputs[name].name = f"{name}:0"
    return signature


EXAMPLES = {"inputs": DT_STRING}


class TestSignatureMethod:
    def test_method_name_classify_wins_over_shape(self) -> None:
        assert (
            signature_method(sig({"x": DT_FLOAT}, {"y": DT_FLOAT}, CLASSIFY_METHOD_NAME))
            == "classify"
        )

    def test_method_name_regress_wins_over_shape(self) -> None:
        assert (
            signature_method(sig({"x": DT_FLOAT}, {"y": DT_FLOAT}, REGRESS_METHOD_NAME))
            == "regress"
        )

    @pytest.mark.parametrize(
        "outputs",
        [
            {"classes": DT_STRING, "scores": DT_FLOAT},
            {"classes": DT_STRING},
            {"scores": DT_FLOAT},
        ],
    )
    @pytest.mark.parametrize("method", [PREDICT_METHOD_NAME, "", "custom"])
    def test_classify_by_shape(self, outputs: dict[str, int], method: str) -> None:
        signature = sig(EXAMPLES, outputs, method)
        assert is_classify_signature(signature)
        assert signature_method(signature) == "classify"

    @pytest.mark.parametrize("method", [PREDICT_METHOD_NAME, ""])
    def test_regress_by_shape(self, method: str) -> None:
        signature = sig(EXAMPLES, {"outputs": DT_FLOAT}, method)
        assert is_regress_signature(signature)
        assert signature_method(signature) == "regress"

    @pytest.mark.parametrize(
        ("inputs", "outputs"),
        [
            ({"inputs": DT_FLOAT}, {"scores": DT_FLOAT}),  # input not a string
            ({"examples": DT_STRING}, {"scores": DT_FLOAT}),  # input not named inputs
            ({"inputs": DT_STRING, "other": DT_STRING}, {"scores": DT_FLOAT}),  # two inputs
            (EXAMPLES, {"classes": DT_INT64}),  # classes not strings
            (EXAMPLES, {"scores": DT_DOUBLE}),  # scores not floats
            (EXAMPLES, {"scores": DT_FLOAT, "extra": DT_FLOAT}),  # an extra output
            (EXAMPLES, {"outputs": DT_DOUBLE}),  # regression output not float
            (EXAMPLES, {"outputs": DT_FLOAT, "scores": DT_FLOAT}),  # both kinds
            (EXAMPLES, {}),  # no outputs
            ({}, {"y": DT_FLOAT}),
            ({"x": DT_FLOAT}, {"y": DT_FLOAT}),  # half_plus_two
        ],
    )
    def test_predict_otherwise(self, inputs: dict[str, int], outputs: dict[str, int]) -> None:
        signature = sig(inputs, outputs)
        assert not is_classify_signature(signature)
        assert not is_regress_signature(signature)
        assert signature_method(signature) == "predict"

    def test_takes_tensorflow_signature_def(self) -> None:
        meta_graph_pb2 = pytest.importorskip("tensorflow.core.protobuf.meta_graph_pb2")
        theirs = meta_graph_pb2.SignatureDef.FromString(
            sig(EXAMPLES, {"scores": DT_FLOAT}).SerializeToString()
        )
        assert signature_method(theirs) == "classify"
        assert is_classify_signature(theirs)

    @settings(max_examples=200, deadline=None)
    @given(
        inputs=st.dictionaries(
            st.sampled_from(["inputs", "x", "examples"]),
            st.sampled_from([DT_STRING, DT_FLOAT]),
            max_size=2,
        ),
        outputs=st.dictionaries(
            st.sampled_from(["classes", "scores", "outputs", "y"]),
            st.sampled_from([DT_STRING, DT_FLOAT, DT_DOUBLE]),
            max_size=3,
        ),
        method=st.sampled_from(
            [PREDICT_METHOD_NAME, CLASSIFY_METHOD_NAME, REGRESS_METHOD_NAME, ""]
        ),
    )
    def test_method_is_consistent_with_predicates(
        self, inputs: dict[str, int], outputs: dict[str, int], method: str
    ) -> None:
        signature = sig(inputs, outputs, method)
        chosen = signature_method(signature)
        assert not (is_classify_signature(signature) and is_regress_signature(signature))
        if method == CLASSIFY_METHOD_NAME:
            assert chosen == "classify"
        elif method == REGRESS_METHOD_NAME:
            assert chosen == "regress"
        elif is_classify_signature(signature):
            assert chosen == "classify"
        elif is_regress_signature(signature):
            assert chosen == "regress"
        else:
            assert chosen == "predict"


class TestLookup:
    defs: ClassVar[dict[str, SignatureDef]] = {
        "serving_default": sig(EXAMPLES, {"scores": DT_FLOAT}),
        "predict": sig({"x": DT_FLOAT}, {"y": DT_FLOAT}),
        "regress": sig(EXAMPLES, {"outputs": DT_FLOAT}, REGRESS_METHOD_NAME),
    }

    @pytest.mark.parametrize(
        ("name", "method"),
        [
            (None, "classify"),
            ("", "classify"),
            ("serving_default", "classify"),
            ("predict", "predict"),
            ("regress", "regress"),
        ],
    )
    def test_default_method(self, name: str | None, method: str) -> None:
        assert default_method(self.defs, name) == method

    def test_default_method_missing(self) -> None:
        with pytest.raises(BadRequest, match=r'^Serving signature key "nope" not found.$'):
            default_method(self.defs, "nope")

    def test_find_signature(self) -> None:
        assert find_signature(self.defs, None) == ("serving_default", self.defs["serving_default"])
        assert find_signature(self.defs, "predict", "classify")[0] == "predict"

    def test_find_signature_errors_per_method(self) -> None:
        with pytest.raises(BadRequest) as predict_error:
            find_signature(self.defs, "nope", "predict")
        assert predict_error.value.message == 'Serving signature key "nope" not found.'
        assert predict_error.value.status_code == 400
        for method in ("classify", "regress"):
            with pytest.raises(BadRequest) as error:
                find_signature(self.defs, "nope", method)  # type: ignore[arg-type]
            assert error.value.message == "No signature was found with the name: nope"

    def test_default_name_in_missing_message(self) -> None:
        with pytest.raises(
            BadRequest, match="No signature was found with the name: serving_default"
        ):
            find_signature({}, "", "regress")


class TestStructuralChecks:
    def test_classify_ok(self) -> None:
        parts = check_classify_signature(sig(EXAMPLES, {"classes": DT_STRING, "scores": DT_FLOAT}))
        assert (parts.input_alias, parts.classes, parts.scores) == ("inputs", "classes", "scores")
        only_scores = check_classify_signature(sig(EXAMPLES, {"scores": DT_FLOAT}))
        assert (only_scores.classes, only_scores.scores) == (None, "scores")

    @pytest.mark.parametrize(
        ("inputs", "outputs", "message"),
        [
            (
                {"inputs": DT_STRING, "b": DT_STRING},
                {"scores": DT_FLOAT},
                "Expected one input Tensor.",
            ),
            ({}, {"scores": DT_FLOAT}, "Expected one input Tensor."),
            (EXAMPLES, {}, "Expected one or two output Tensors, found 0"),
            (
                EXAMPLES,
                {"classes": DT_STRING, "scores": DT_FLOAT, "x": DT_FLOAT},
                "Expected one or two output Tensors, found 3",
            ),
        ],
    )
    def test_classify_errors(
        self, inputs: dict[str, int], outputs: dict[str, int], message: str
    ) -> None:
        with pytest.raises(BadRequest) as error:
            check_classify_signature(sig(inputs, outputs))
        assert error.value.message == message

    def test_classify_missing_inputs_alias_shows_signature(self) -> None:
        signature = sig({"examples": DT_STRING}, {"scores": DT_FLOAT})
        with pytest.raises(BadRequest) as error:
            check_classify_signature(signature)
        assert error.value.message == (
            "No classification inputs found in SignatureDef: " + signature_text(signature)
        )
        assert 'key: "examples"' in error.value.message

    def test_classify_missing_outputs(self) -> None:
        signature = sig(EXAMPLES, {"probabilities": DT_FLOAT})
        with pytest.raises(BadRequest) as error:
            check_classify_signature(signature)
        assert error.value.message == (
            'Expected classification signature outputs to contain at least one of "classes" or '
            '"scores". Signature was: ' + signature_text(signature)
        )

    def test_classify_method_name_check(self) -> None:
        signature = sig(EXAMPLES, {"scores": DT_FLOAT})
        check_classify_signature(signature)  # off by default, as in TF Serving
        with pytest.raises(BadRequest) as error:
            check_classify_signature(signature, method_name_check=True)
        assert error.value.message == (
            "Expected classification signature method_name to be tensorflow/serving/classify. "
            "Was: tensorflow/serving/predict"
        )

    def test_regress_ok(self) -> None:
        parts = check_regress_signature(sig(EXAMPLES, {"outputs": DT_FLOAT}))
        assert (parts.input_alias, parts.output_alias) == ("inputs", "outputs")

    @pytest.mark.parametrize(
        ("inputs", "outputs", "message"),
        [
            (
                {"inputs": DT_STRING, "b": DT_STRING},
                {"outputs": DT_FLOAT},
                "Expected one input Tensor.",
            ),
            (EXAMPLES, {"outputs": DT_FLOAT, "b": DT_FLOAT}, "Expected one output Tensor."),
            (EXAMPLES, {}, "Expected one output Tensor."),
            (
                {"x": DT_STRING},
                {"outputs": DT_FLOAT},
                "No regression inputs found in SignatureDef: ",
            ),
            (EXAMPLES, {"y": DT_FLOAT}, "No regression outputs found in SignatureDef: "),
        ],
    )
    def test_regress_errors(
        self, inputs: dict[str, int], outputs: dict[str, int], message: str
    ) -> None:
        signature = sig(inputs, outputs)
        with pytest.raises(BadRequest) as error:
            check_regress_signature(signature)
        assert error.value.message.startswith(message)
        if message.endswith(": "):
            assert error.value.message == message + signature_text(signature)

    def test_regress_method_name_check(self) -> None:
        with pytest.raises(
            BadRequest,
            match=r"Expected regression signature method_name to be "
            r"tensorflow/serving/regress\. Was: custom",
        ):
            check_regress_signature(
                sig(EXAMPLES, {"outputs": DT_FLOAT}, "custom"), method_name_check=True
            )

    def test_predict_method_name_check(self) -> None:
        check_predict_signature(sig({}, {}, "custom"))
        for method in (PREDICT_METHOD_NAME, CLASSIFY_METHOD_NAME, REGRESS_METHOD_NAME):
            check_predict_signature(sig({}, {}, method), method_name_check=True)
        with pytest.raises(InternalError) as error:
            check_predict_signature(sig({}, {}, "custom"), method_name_check=True)
        assert error.value.message == (
            "Expected prediction signature method_name to be one of {tensorflow/serving/predict, "
            "tensorflow/serving/classify, tensorflow/serving/regress}. Was: custom"
        )
        assert error.value.status_code == 500
