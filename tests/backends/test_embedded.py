"""EmbeddedBackend: predict, models/versions/labels, metadata, status, signatures, async twins.

Real SavedModels from ``tests/saved_models.py`` (built once per session, see conftest.py); the
expected error texts are TF Serving's (predict_util.cc, saved_model/util.cc, server_core.cc, ...).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from saved_models import ECHO_DTYPES

from tfio_handlers.backends import Backend, ResolvedModel
from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.errors import BackendUnavailable, BadRequest, NotFound
from tfio_handlers.protocol.arrays import Prediction
from tfio_handlers.protos import (
    DT_FLOAT,
    DT_STRING,
    GetModelMetadataRequest,
    GetModelStatusRequest,
    ModelVersionStatus,
    PredictRequest,
    PredictResponse,
    TensorProto,
    unpack_signature_def_map,
)
from tfio_handlers.tensors import to_ndarray, to_tensor_proto

pytestmark = pytest.mark.tensorflow


def predict_request(
    model: str = "half_plus_two",
    signature: str = "",
    version: int | None = None,
    label: str | None = None,
    output_filter: tuple[str, ...] = (),
    **inputs: Any,
) -> PredictRequest:
    request = PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, value in inputs.items():
        proto = value if isinstance(value, TensorProto) else to_tensor_proto(value)
        request.inputs[name].CopyFrom(proto)
    request.output_filter.extend(output_filter)
    return request


def outputs(response: PredictResponse) -> dict[str, np.ndarray]:
    return {name: to_ndarray(proto) for name, proto in response.outputs.items()}


def bad(backend: EmbeddedBackend, request: PredictRequest) -> BadRequest:
    with pytest.raises(BadRequest) as error:
        backend.predict(request)
    assert error.value.status_code == 400
    return error.value


X = np.array([1.0, 2.0, 5.0], np.float32)


class TestPredict:
    def test_half_plus_two(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.predict(predict_request(x=X))
        np.testing.assert_allclose(outputs(response)["y"], [2.5, 3.0, 4.5])
        spec = response.model_spec
        assert (spec.name, spec.version.value, spec.signature_name) == (
            "half_plus_two",
            1,
            "serving_default",
        )

    def test_outputs_in_typed_fields_like_tf_serving(
        self, embedded_backend: EmbeddedBackend
    ) -> None:
        y = embedded_backend.predict(predict_request(x=X)).outputs["y"]
        assert y.dtype == DT_FLOAT
        assert list(y.float_val) == [2.5, 3.0, 4.5]
        assert y.tensor_content == b""
        assert [d.size for d in y.tensor_shape.dim] == [3]

    def test_any_rank_for_unknown_rank_input(self, embedded_backend: EmbeddedBackend) -> None:
        column = np.array([[1.0], [2.0]], np.float32)
        response = embedded_backend.predict(predict_request(x=column))
        assert outputs(response)["y"].tolist() == [[2.5], [3.0]]
        scalar = embedded_backend.predict(predict_request(x=np.float32(4.0)))
        assert outputs(scalar)["y"].tolist() == 4.0

    def test_empty_model_name_is_the_default_model(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.predict(predict_request(model="", x=X))
        assert response.model_spec.name == "half_plus_two"
        assert embedded_backend.default_model == "half_plus_two"

    def test_tensorflow_classes_are_accepted(self, embedded_backend: EmbeddedBackend) -> None:
        tf = pytest.importorskip("tensorflow")
        predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32))
        response = embedded_backend.predict(request)
        assert isinstance(response, PredictResponse)
        assert list(response.outputs["y"].float_val) == [2.5, 3.0]

    def test_mixed_dtypes(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request(
            "multi_input",
            a=np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
            b=np.array([10, 20], np.int64),
            c=np.array([b"hello", b"\xff\x00"], object),
        )
        result = outputs(embedded_backend.predict(request))
        assert result["total"].tolist() == [13.0, 27.0]
        assert result["b_doubled"].tolist() == [20, 40]
        assert result["c_length"].tolist() == [5, 2]
        assert result["c_bytes"].tolist() == [b"hello", b"\xff\x00"]
        assert result["b_doubled"].dtype == np.int64
        assert result["c_length"].dtype == np.int32

    def test_every_dtype_round_trips(self, embedded_backend: EmbeddedBackend) -> None:
        values: dict[str, np.ndarray] = {}
        for name, dtype in ECHO_DTYPES.items():
            if dtype == "string":
                values[name] = np.array([b"a", b"", "é".encode()], object)
            elif dtype == "bool":
                values[name] = np.array([True, False, True])
            else:
                values[name] = np.array([0, 1, 100], dtype)
        result = outputs(embedded_backend.predict(predict_request("multi_input", "echo", **values)))
        for name, value in values.items():
            key = "text_bytes" if name == "text" else f"{name}_out"
            assert result[key].dtype == value.dtype, name
            assert result[key].tolist() == value.tolist(), name

    def test_string_model(self, embedded_backend: EmbeddedBackend) -> None:
        text = np.array([b"abc", b"Hello world"], object)
        response = embedded_backend.predict(predict_request("string_model", text=text))
        result = outputs(response)
        assert result["upper"].tolist() == [b"ABC", b"HELLO WORLD"]
        assert result["length"].tolist() == [3, 11]
        assert response.outputs["upper"].dtype == DT_STRING

    def test_default_input_value(self, embedded_backend: EmbeddedBackend) -> None:
        a = np.array([1.0, 2.0], np.float32)
        default = embedded_backend.predict(predict_request("multi_input", "with_default", a=a))
        assert outputs(default)["y"].tolist() == [2.0, 4.0]
        given = embedded_backend.predict(
            predict_request("multi_input", "with_default", a=a, scale=np.float32(10.0))
        )
        assert outputs(given)["y"].tolist() == [10.0, 20.0]

    def test_output_filter(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request(
            "iris",
            "predict",
            output_filter=("classes", "probabilities"),
            inputs=np.array([[6.4, 3.2, 4.5, 1.5]], np.float32),
        )
        response = embedded_backend.predict(request)
        assert sorted(response.outputs) == ["classes", "probabilities"]
        assert outputs(response)["classes"].tolist() == [b"1"]

    def test_all_outputs_without_filter(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request(
            "iris", "predict", inputs=np.array([[6.4, 3.2, 4.5, 1.5]], np.float32)
        )
        assert sorted(embedded_backend.predict(request).outputs) == [
            "class_ids",
            "classes",
            "probabilities",
        ]

    def test_concurrent_calls(self, embedded_backend: EmbeddedBackend) -> None:
        def call(i: int) -> list[float]:
            x = np.array([i, i + 1], np.float32)
            result: list[float] = outputs(embedded_backend.predict(predict_request(x=x)))[
                "y"
            ].tolist()
            return result

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(call, range(40)))
        assert results == [[i / 2 + 2, (i + 1) / 2 + 2] for i in range(40)]


class TestPredictErrors:
    def test_unknown_signature(self, embedded_backend: EmbeddedBackend) -> None:
        error = bad(embedded_backend, predict_request(signature="nope", x=X))
        assert error.message == 'Serving signature key "nope" not found.'

    def test_extra_input(self, embedded_backend: EmbeddedBackend) -> None:
        error = bad(embedded_backend, predict_request(x=X, z=X))
        assert error.message == (
            "input size does not match signature: 2!=1 len({x,z}) != len({x}). "
            "Sent extra: {z}. Missing but required: {}."
        )

    def test_missing_input_without_defaults(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request(
            "multi_input", a=np.ones((1, 2), np.float32), b=np.array([1], np.int64)
        )
        assert bad(embedded_backend, request).message == (
            "input size does not match signature: 2!=3 len({a,b}) != len({a,b,c}). "
            "Sent extra: {}. Missing but required: {c}."
        )

    def test_no_inputs(self, embedded_backend: EmbeddedBackend) -> None:
        assert bad(embedded_backend, predict_request()).message == (
            "input size does not match signature: 0!=1 len({}) != len({x}). "
            "Sent extra: {}. Missing but required: {x}."
        )

    def test_wrong_name_same_count(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request(
            "multi_input",
            a=np.ones((1, 2), np.float32),
            b=np.array([1], np.int64),
            d=np.array([b"x"], object),
        )
        tensor_name = (
            embedded_backend.signatures("multi_input")
            .signature_defs["serving_default"]
            .inputs["c"]
            .name
        )
        assert bad(embedded_backend, request).message == (
            f"Signature input alias: c(feed name: {tensor_name}) not found in request and no "
            "default value provided. Inputs expected to be in the request {a,b,d}, or default "
            "input alias set: "
        )

    def test_missing_alias_with_defaults_elsewhere(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request("multi_input", "with_default", scale=np.float32(3.0))
        tensor_name = (
            embedded_backend.signatures("multi_input")
            .signature_defs["with_default"]
            .inputs["a"]
            .name
        )
        assert bad(embedded_backend, request).message == (
            f"Signature input alias: a(feed name: {tensor_name}) not found in request and no "
            "default value provided. Inputs expected to be in the request {scale}, or default "
            "input alias set: scale"
        )

    def test_invalid_name_beside_defaults(self, embedded_backend: EmbeddedBackend) -> None:
        a = np.ones(2, np.float32)
        request = predict_request("multi_input", "with_default", a=a, bogus=a)
        assert bad(embedded_backend, request).message == (
            "Inputs contains invalid name. Used request inputs: a, request input: a,bogus"
        )

    def test_tensor_parsing_error(self, embedded_backend: EmbeddedBackend) -> None:
        broken = TensorProto(dtype=DT_FLOAT, tensor_content=b"\x00" * 5)
        broken.tensor_shape.dim.add().size = 2
        error = bad(embedded_backend, predict_request(x=broken))
        assert error.message == "tensor parsing error: x"

    def test_dtype_mismatch(self, embedded_backend: EmbeddedBackend) -> None:
        error = bad(embedded_backend, predict_request(x=np.array([b"a"], object)))
        assert error.message == "Expects arg[0] to be float but string is provided"

    def test_dtype_mismatch_names_the_feed_position(
        self, embedded_backend: EmbeddedBackend
    ) -> None:
        request = predict_request(
            "multi_input",
            a=np.ones((1, 2), np.float32),
            b=np.array([1], np.int64),
            c=np.array([1.0], np.float32),
        )
        assert bad(embedded_backend, request).message == (
            "Expects arg[2] to be string but float is provided"
        )
        request = predict_request(
            "multi_input",
            a=np.ones((1, 2), np.float64),
            b=np.array([1], np.int64),
            c=np.array([b"x"], object),
        )
        assert bad(embedded_backend, request).message == (
            "Expects arg[0] to be float but double is provided"
        )

    def test_shape_mismatch(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request(
            "multi_input",
            a=np.ones((1, 3), np.float32),
            b=np.array([1], np.int64),
            c=np.array([b"x"], object),
        )
        assert bad(embedded_backend, request).message == (
            "input tensor alias a has shape [1,3] but the signature expects [?,2]"
        )
        request = predict_request("iris", "predict", inputs=np.ones(4, np.float32))
        assert bad(embedded_backend, request).message == (
            "input tensor alias inputs has shape [4] but the signature expects [?,4]"
        )

    def test_output_filter_unknown(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request(
            "iris", "predict", output_filter=("nope",), inputs=np.ones((1, 4), np.float32)
        )
        assert bad(embedded_backend, request).message == (
            "output tensor alias not found in signature: nope Outputs expected to be in the set "
            "{class_ids,classes,probabilities}."
        )

    def test_output_filter_duplicate(self, embedded_backend: EmbeddedBackend) -> None:
        request = predict_request(
            "iris",
            "predict",
            output_filter=("classes", "classes"),
            inputs=np.ones((1, 4), np.float32),
        )
        assert bad(embedded_backend, request).message == "duplicate output tensor alias: classes"

    def test_model_error_becomes_bad_request(self, embedded_backend: EmbeddedBackend) -> None:
        # A classify signature run through Predict: parse_example fails on a non-Example string.
        request = predict_request("iris", inputs=np.array([b"not an example"], object))
        error = bad(embedded_backend, request)
        assert "parse" in error.message.lower() or "example" in error.message.lower()

    def test_predict_runs_classify_signatures(self, embedded_backend: EmbeddedBackend) -> None:
        tf = pytest.importorskip("tensorflow")
        example = tf.train.Example()
        example.features.feature["inputs"].float_list.value.extend([6.4, 3.2, 4.5, 1.5])
        request = predict_request("iris", inputs=np.array([example.SerializeToString()], object))
        result = outputs(embedded_backend.predict(request))
        assert result["classes"].tolist() == [[b"0", b"1", b"2"]]
        assert int(np.argmax(result["scores"][0])) == 1


class TestModelsVersionsLabels:
    def test_models_found(self, embedded_backend: EmbeddedBackend) -> None:
        assert sorted(embedded_backend.model_names) == sorted(
            [
                "bad_signatures",
                "half_plus_two",
                "iris",
                "multi_input",
                "regression",
                "string_model",
                "versioned",
            ]
        )
        assert embedded_backend.versions("versioned") == [1, 2]
        assert embedded_backend.labels("versioned") == {"stable": 1, "canary": 2}

    def test_latest_by_default(self, embedded_backend: EmbeddedBackend) -> None:
        response = embedded_backend.predict(predict_request("versioned", x=X))
        assert response.model_spec.version.value == 2
        assert outputs(response)["y"].tolist() == [3.5, 4.0, 5.5]

    @pytest.mark.parametrize(
        ("version", "label", "expected", "offset"),
        [
            (1, None, 1, 2.0),
            (2, None, 2, 3.0),
            (None, "stable", 1, 2.0),
            (None, "canary", 2, 3.0),
        ],
    )
    def test_version_and_label(
        self,
        embedded_backend: EmbeddedBackend,
        version: int | None,
        label: str | None,
        expected: int,
        offset: float,
    ) -> None:
        response = embedded_backend.predict(
            predict_request("versioned", version=version, label=label, x=X)
        )
        assert response.model_spec.version.value == expected
        assert outputs(response)["y"].tolist() == (X / 2 + offset).tolist()

    def test_unknown_model(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(NotFound) as error:
            embedded_backend.predict(predict_request("half", x=X))
        assert error.value.message == "Servable not found for request: Latest(half)"
        assert error.value.status_code == 404

    def test_unknown_version(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(
            NotFound, match=r"^Servable not found for request: Specific\(versioned, 3\)$"
        ):
            embedded_backend.predict(predict_request("versioned", version=3, x=X))
        with pytest.raises(NotFound, match=r"Specific\(nope, 1\)"):
            embedded_backend.predict(predict_request("nope", version=1, x=X))

    def test_unknown_label(self, embedded_backend: EmbeddedBackend) -> None:
        error = bad(embedded_backend, predict_request("versioned", label="beta", x=X))
        assert error.message == "Unrecognized servable version label: beta"
        error = bad(embedded_backend, predict_request("iris", label="stable", x=X))
        assert error.message == "Unrecognized servable version label: stable"

    def test_multi_model_mapping(self, half_plus_two_model: Path, versioned_model: Path) -> None:
        backend = EmbeddedBackend({"a": half_plus_two_model, "b": versioned_model})
        try:
            assert backend.model_names == ["a", "b"]
            assert backend.default_model == "a"
            assert backend.versions("b") == [1, 2]
            y = outputs(backend.predict(predict_request("b", version=1, x=X)))["y"]
            assert y.tolist() == [2.5, 3.0, 4.5]
        finally:
            backend.close()

    def test_set_label(self, versioned_model: Path) -> None:
        backend = EmbeddedBackend(versioned_model)
        try:
            assert backend.model_names == ["versioned"]
            backend.set_label("versioned", "next", 2)
            assert backend.signatures("versioned", label="next").version == 2
            with pytest.raises(BadRequest) as raised:
                backend.set_label("versioned", "old", 7)
            assert raised.value.message == (
                "Request to assign label to version 7 of model versioned, which is not "
                "currently available for inference"
            )
            assert getattr(raised.value, "grpc_code", None) == "FAILED_PRECONDITION"
        finally:
            backend.close()


class TestConstruction:
    def test_labels_must_point_at_loaded_versions(self, versioned_model: Path) -> None:
        with pytest.raises(BadRequest, match="version 5 of model versioned, which is not"):
            EmbeddedBackend(versioned_model, labels={"versioned": {"stable": 5}})

    def test_default_model_must_exist(self, half_plus_two_model: Path) -> None:
        with pytest.raises(BackendUnavailable, match="Default model 'nope' is not among"):
            EmbeddedBackend(half_plus_two_model, default_model="nope")

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (b"\x0a\x05junk!", "no meta graph is tagged 'serve'"),
            (b"\xff\xff\xff not a protobuf", "DecodeError"),
        ],
    )
    def test_load_failure_names_the_path(self, tmp_path: Path, content: bytes, reason: str) -> None:
        pytest.importorskip("tensorflow")
        broken = tmp_path / "broken" / "1"
        broken.mkdir(parents=True)
        (broken / "saved_model.pb").write_bytes(content)
        with pytest.raises(BackendUnavailable) as error:
            EmbeddedBackend(tmp_path / "broken")
        assert error.value.message.startswith(
            f"Could not load model 'broken' version 1 from {broken}: "
        )
        assert reason in error.value.message

    def test_no_model_found(self, tmp_path: Path) -> None:
        with pytest.raises(BackendUnavailable, match="No SavedModel found"):
            EmbeddedBackend(tmp_path)

    def test_thread_settings_from_env_are_validated(self, half_plus_two_model: Path) -> None:
        with pytest.raises(
            BackendUnavailable, match="SAGEMAKER_TFS_INTER_OP_PARALLELISM='many' is not an integer"
        ):
            EmbeddedBackend(half_plus_two_model, env={"SAGEMAKER_TFS_INTER_OP_PARALLELISM": "many"})

    def test_thread_settings_after_start_only_warn(
        self, half_plus_two_model: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        tf = pytest.importorskip("tensorflow")
        tf.constant(1.0) + 1.0  # make sure TensorFlow's runtime has started
        current = tf.config.threading.get_intra_op_parallelism_threads()
        wanted = current + 3
        with caplog.at_level(logging.WARNING, logger="tfio_handlers.backends.embedded"):
            backend = EmbeddedBackend(
                half_plus_two_model, env={"SAGEMAKER_TFS_INTRA_OP_PARALLELISM": str(wanted)}
            )
        backend.close()
        assert f"{wanted} is ignored" in caplog.text

    def test_content_layout(self, half_plus_two_model: Path) -> None:
        backend = EmbeddedBackend(half_plus_two_model, output_layout="content")
        try:
            y = backend.predict(predict_request(x=X)).outputs["y"]
            assert y.tensor_content == (X / 2 + 2).astype("<f4").tobytes()
            assert list(y.float_val) == []
        finally:
            backend.close()
        with pytest.raises(ValueError, match="output_layout"):
            EmbeddedBackend(half_plus_two_model, output_layout="json")  # type: ignore[arg-type]

    def test_closed_backend(self, half_plus_two_model: Path) -> None:
        backend = EmbeddedBackend(half_plus_two_model)
        backend.close()
        with pytest.raises(BackendUnavailable, match="closed"):
            backend.predict(predict_request(x=X))
        with pytest.raises(BackendUnavailable, match="closed"):
            backend.get_model_status(GetModelStatusRequest())

    def test_context_manager(self, half_plus_two_model: Path) -> None:
        with EmbeddedBackend(half_plus_two_model) as backend:
            assert isinstance(backend, Backend)
        with pytest.raises(BackendUnavailable):
            backend.predict(predict_request(x=X))


class TestMetadata:
    def test_signature_defs(self, embedded_backend: EmbeddedBackend) -> None:
        request = GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "iris"
        response = embedded_backend.get_model_metadata(request)
        assert response.model_spec.name == "iris"
        assert response.model_spec.version.value == 1
        assert not response.model_spec.signature_name
        assert response.metadata["signature_def"].type_url == (
            "type.googleapis.com/tensorflow.serving.SignatureDefMap"
        )
        signatures = unpack_signature_def_map(response).signature_def
        assert set(signatures) == {"serving_default", "predict", "__saved_model_init_op"}
        classify = signatures["serving_default"]
        assert classify.method_name == "tensorflow/serving/classify"
        assert classify.inputs["inputs"].dtype == DT_STRING
        assert [d.size for d in classify.outputs["scores"].tensor_shape.dim] == [-1, 3]
        assert signatures["predict"].method_name == "tensorflow/serving/predict"

    def test_version_and_label(self, embedded_backend: EmbeddedBackend) -> None:
        request = GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "versioned"
        assert embedded_backend.get_model_metadata(request).model_spec.version.value == 2
        request.model_spec.version_label = "stable"
        assert embedded_backend.get_model_metadata(request).model_spec.version.value == 1

    def test_field_errors(self, embedded_backend: EmbeddedBackend) -> None:
        request = GetModelMetadataRequest()
        request.model_spec.name = "iris"
        with pytest.raises(
            BadRequest, match=r"^GetModelMetadataRequest must specify at least one metadata_field$"
        ):
            embedded_backend.get_model_metadata(request)
        request.metadata_field.extend(["signature_def", "labels"])
        with pytest.raises(BadRequest, match=r"^Metadata field labels is not supported$"):
            embedded_backend.get_model_metadata(request)

    def test_unknown_model(self, embedded_backend: EmbeddedBackend) -> None:
        request = GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "nope"
        with pytest.raises(NotFound, match=r"Latest\(nope\)"):
            embedded_backend.get_model_metadata(request)


class TestStatus:
    def test_all_versions_newest_first(self, embedded_backend: EmbeddedBackend) -> None:
        request = GetModelStatusRequest()
        request.model_spec.name = "versioned"
        statuses = embedded_backend.get_model_status(request).model_version_status
        assert [s.version for s in statuses] == [2, 1]
        assert all(s.state == ModelVersionStatus.AVAILABLE for s in statuses)
        assert all(s.status.error_code == 0 and s.status.error_message == "" for s in statuses)

    def test_one_version(self, embedded_backend: EmbeddedBackend) -> None:
        request = GetModelStatusRequest()
        request.model_spec.name = "versioned"
        request.model_spec.version.value = 1
        statuses = embedded_backend.get_model_status(request).model_version_status
        assert [s.version for s in statuses] == [1]

    def test_label_is_ignored_as_in_tf_serving(self, embedded_backend: EmbeddedBackend) -> None:
        request = GetModelStatusRequest()
        request.model_spec.name = "versioned"
        request.model_spec.version_label = "stable"
        statuses = embedded_backend.get_model_status(request).model_version_status
        assert [s.version for s in statuses] == [2, 1]

    def test_errors(self, embedded_backend: EmbeddedBackend) -> None:
        request = GetModelStatusRequest()
        request.model_spec.name = "versioned"
        request.model_spec.version.value = 9
        with pytest.raises(NotFound, match=r"^Could not find version 9 of model versioned$"):
            embedded_backend.get_model_status(request)
        request = GetModelStatusRequest()
        request.model_spec.name = "nope"
        with pytest.raises(NotFound, match=r"^Could not find any versions of model nope$"):
            embedded_backend.get_model_status(request)

    def test_default_model(self, embedded_backend: EmbeddedBackend) -> None:
        statuses = embedded_backend.get_model_status(GetModelStatusRequest()).model_version_status
        assert [s.version for s in statuses] == [1]


class TestSignaturesHelper:
    def test_resolved_model(self, embedded_backend: EmbeddedBackend) -> None:
        resolved = embedded_backend.signatures("iris")
        assert isinstance(resolved, ResolvedModel)
        assert (resolved.name, resolved.version) == ("iris", 1)
        assert resolved.signature_defs["predict"].inputs["inputs"].dtype == DT_FLOAT

    def test_default_model_and_versions(self, embedded_backend: EmbeddedBackend) -> None:
        assert embedded_backend.signatures().name == "half_plus_two"
        assert embedded_backend.signatures("versioned").version == 2
        assert embedded_backend.signatures("versioned", 1).version == 1
        assert embedded_backend.signatures("versioned", label="canary").version == 2
        assert embedded_backend.signatures("versioned", 1, label="canary").version == 1

    def test_cache(self, versioned_model: Path) -> None:
        backend = EmbeddedBackend(versioned_model)
        calls: list[Any] = []
        original = backend.get_model_metadata

        def counting(request: GetModelMetadataRequest) -> Any:
            calls.append(request)
            return original(request)

        backend.get_model_metadata = counting  # type: ignore[method-assign]
        try:
            assert not backend.signatures_cached("versioned")
            first = backend.signatures("versioned")
            assert backend.signatures_cached("versioned")
            assert backend.signatures_cached()  # None is the default model
            assert backend.signatures("versioned") is first
            assert backend.signatures() is first
            backend.signatures("versioned", 1)
            assert len(calls) == 2
            backend.invalidate_signatures("other")
            assert backend.signatures_cached("versioned")
            backend.invalidate_signatures("versioned")
            assert not backend.signatures_cached("versioned", 1)
            backend.signatures("versioned")
            backend.invalidate_signatures()
            assert not backend.signatures_cached("versioned")
            assert len(calls) == 3
        finally:
            backend.close()

    def test_errors_are_not_cached(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(NotFound):
            embedded_backend.signatures("nope")
        assert not embedded_backend.signatures_cached("nope")


class TestAsyncTwins:
    def test_every_twin(self, embedded_backend: EmbeddedBackend) -> None:
        status_request = GetModelStatusRequest()
        status_request.model_spec.name = "versioned"
        metadata_request = GetModelMetadataRequest(metadata_field=["signature_def"])
        metadata_request.model_spec.name = "iris"

        async def main() -> tuple[Any, ...]:
            return await asyncio.gather(
                embedded_backend.apredict(predict_request(x=X)),
                embedded_backend.aget_model_status(status_request),
                embedded_backend.aget_model_metadata(metadata_request),
                embedded_backend.asignatures("versioned", label="stable"),
                *(embedded_backend.apredict(predict_request(x=np.float32(i))) for i in range(8)),
            )

        predict, status, metadata, resolved, *many = asyncio.run(main())
        assert outputs(predict)["y"].tolist() == [2.5, 3.0, 4.5]
        assert [s.version for s in status.model_version_status] == [2, 1]
        assert metadata.model_spec.name == "iris"
        assert resolved.version == 1
        assert [outputs(r)["y"].tolist() for r in many] == [i / 2 + 2 for i in range(8)]

    def test_errors_propagate(self, embedded_backend: EmbeddedBackend) -> None:
        with pytest.raises(NotFound):
            asyncio.run(embedded_backend.apredict(predict_request("nope", x=X)))

    def test_async_context_manager(self, half_plus_two_model: Path) -> None:
        async def main() -> EmbeddedBackend:
            async with EmbeddedBackend(half_plus_two_model) as backend:
                await backend.apredict(predict_request(x=X))
            assert isinstance(backend, EmbeddedBackend)
            return backend

        closed = asyncio.run(main())
        with pytest.raises(BackendUnavailable):
            closed.predict(predict_request(x=X))


class TestOutputWriting:
    """Every output dtype written in typed fields (TF Serving's layout) or as tensor_content."""

    VALUES: ClassVar[list[Any]] = [
        np.float32(1.5),
        np.array([], np.float32),
        np.array([[1.5, -2.0], [0.0, 3.25]], np.float32),
        np.array([1e300, -0.0], np.float64),
        np.complex64(1 + 2j),
        np.array([[1 + 2j, 3 - 4j]], np.complex64),
        np.array([1 + 2j], np.complex128),
        np.array([True, False, True]),
        np.bool_(True),
        np.array([1, -2], np.int32),
        np.array([2**40, -1], np.int64),
        np.array([255, 0], np.uint8),
        np.array([1.5], np.float16),
        np.array([b"a", b"\xff"], object),
        np.array([[3]], np.int8),
        np.array([7], np.uint64),
    ]

    @pytest.mark.parametrize("layout", ["typed", "content"])
    def test_round_trip(self, layout: str) -> None:
        tf = pytest.importorskip("tensorflow")
        for value in self.VALUES:
            # What the embedded backend answers: TensorFlow's output as an array, written in the
            # layout the backend was configured with when a message is asked for.
            answer = Prediction({"y": tf.constant(value).numpy()}, typed_fields=layout == "typed")
            proto = answer.to_message().outputs["y"]
            expected = tf.make_tensor_proto(value)
            assert proto.dtype == expected.dtype, value
            assert [d.size for d in proto.tensor_shape.dim] == list(np.shape(value)), value
            back = to_ndarray(proto)
            assert back.dtype == np.asarray(value).dtype, value
            np.testing.assert_array_equal(back, value)
            if layout == "typed":
                assert proto.tensor_content == b"", value
            elif np.size(value) > 1 and proto.dtype != DT_STRING:
                assert proto.tensor_content != b"", value
