"""Shared fixtures for the wire-type tests: TensorFlow's classes, imported once per process."""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace

import pytest

# TensorFlow / TF Serving generated modules whose classes our tests compare against ours.
TF_MODULES = (
    "tensorflow.core.framework.types_pb2",
    "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow.core.framework.resource_handle_pb2",
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.example.feature_pb2",
    "tensorflow.core.example.example_pb2",
    "tensorflow.core.protobuf.struct_pb2",
    "tensorflow.core.protobuf.meta_graph_pb2",
    "tensorflow.core.protobuf.error_codes_pb2",
    "tensorflow_serving.apis.model_pb2",
    "tensorflow_serving.apis.input_pb2",
    "tensorflow_serving.apis.classification_pb2",
    "tensorflow_serving.apis.regression_pb2",
    "tensorflow_serving.apis.inference_pb2",
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.status_pb2",
    "tensorflow_serving.apis.prediction_service_pb2",
    "tensorflow_serving.apis.model_service_pb2",
    "tensorflow_serving.apis.model_management_pb2",
    "tensorflow_serving.config.file_system_storage_path_source_pb2",
    "tensorflow_serving.config.log_collector_config_pb2",
    "tensorflow_serving.config.logging_config_pb2",
    "tensorflow_serving.config.model_server_config_pb2",
)


def _namespace(modules: list[ModuleType]) -> SimpleNamespace:
    """All public classes/enums/constants of ``modules`` as one flat namespace."""
    names: dict[str, object] = {}
    for module in modules:
        for name, value in vars(module).items():
            if not name.startswith("_"):
                names.setdefault(name, value)
    return SimpleNamespace(**names)


@pytest.fixture(scope="session")
def tf() -> SimpleNamespace:
    """TensorFlow's and TF Serving's message classes (``tf.TensorProto``, ``tf.PredictRequest``...)."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorflow_serving")
    return _namespace([importlib.import_module(name) for name in TF_MODULES])


@pytest.fixture(scope="session")
def ours() -> SimpleNamespace:
    """Our classes under the same names as :func:`tf` (from the generated modules, not __init__)."""
    return _namespace(
        [importlib.import_module("tfio_handlers.protos." + name) for name in TF_MODULES]
    )
