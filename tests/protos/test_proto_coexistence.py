"""Our classes and TensorFlow's live side by side, whichever is imported first.

Each check runs in a fresh interpreter so that import order is real. With the pure-Python
protobuf backend the check matters most: there, registering our classes in the default symbol
database (as protoc's own builder would) would silently replace TensorFlow's descriptors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BOTH = textwrap.dedent(
    """
    import sys, warnings
    warnings.filterwarnings("error", message=".*[Cc]onflict.*")

    def load_tf():
        from tensorflow.core.framework import tensor_pb2
        from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2
        return tensor_pb2, predict_pb2, get_model_metadata_pb2

    def load_ours():
        import tfio_handlers.protos as ours
        return ours

    if sys.argv[1] == "tf-first":
        tensor_pb2, predict_pb2, get_model_metadata_pb2 = load_tf()
        ours = load_ours()
    else:
        ours = load_ours()
        tensor_pb2, predict_pb2, get_model_metadata_pb2 = load_tf()

    from google.protobuf import descriptor_pool, json_format
    from google.protobuf.internal import api_implementation
    assert api_implementation.Type() == sys.argv[2], api_implementation.Type()

    # Each pool keeps its own descriptors under the shared names.
    default = descriptor_pool.Default()
    for tf_cls, our_cls in ((tensor_pb2.TensorProto, ours.TensorProto),
                            (predict_pb2.PredictRequest, ours.PredictRequest)):
        name = tf_cls.DESCRIPTOR.full_name
        assert default.FindMessageTypeByName(name) is tf_cls.DESCRIPTOR
        assert ours.POOL.FindMessageTypeByName(name) is our_cls.DESCRIPTOR
        assert our_cls is not tf_cls and our_cls.DESCRIPTOR.full_name == name

    # Both sets of classes work and convert into each other.
    tf_request = predict_pb2.PredictRequest()
    tf_request.model_spec.name = "m"
    tf_request.inputs["x"].dtype = 1
    tf_request.inputs["x"].tensor_shape.dim.add(size=2)
    tf_request.inputs["x"].float_val.extend([1.0, 2.0])
    request = ours.coerce(tf_request, ours.PredictRequest)
    assert isinstance(request, ours.PredictRequest)
    assert list(request.inputs["x"].float_val) == [1.0, 2.0]
    assert ours.coerce(request, predict_pb2.PredictRequest) == tf_request

    # TensorFlow's own helpers keep working on its classes, fed from ours.
    import tensorflow as tf
    tensor = ours.coerce(request.inputs["x"], tensor_pb2.TensorProto)
    assert tf.make_ndarray(tensor).tolist() == [1.0, 2.0]
    assert isinstance(tf.make_tensor_proto([3]), tensor_pb2.TensorProto)

    # Any resolution: TF's classes through the default pool, ours through POOL.
    tf_metadata = get_model_metadata_pb2.GetModelMetadataResponse()
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signatures.signature_def["serving_default"].method_name = "tensorflow/serving/predict"
    tf_metadata.metadata["signature_def"].Pack(signatures)
    metadata = ours.coerce(tf_metadata, ours.GetModelMetadataResponse)
    assert ours.to_json(metadata) == json_format.MessageToJson(tf_metadata)
    unpacked = ours.unpack_signature_def_map(tf_metadata)
    assert unpacked.signature_def["serving_default"].method_name == "tensorflow/serving/predict"
    print("coexistence ok")
    """
)

WITHOUT_TF = textwrap.dedent(
    """
    import sys
    import tfio_handlers.protos as ours
    assert "tensorflow" not in sys.modules and "tensorflow_serving" not in sys.modules

    from google.protobuf import descriptor_pool, json_format
    default = descriptor_pool.Default()
    for name in ("tensorflow/core/framework/tensor.proto", "tensorflow_serving/apis/predict.proto"):
        try:
            default.FindFileByName(name)
        except KeyError:
            pass
        else:
            raise AssertionError(name + " leaked into the default pool")

    response = ours.GetModelMetadataResponse()
    ours.pack_signature_def_map(response, {"serving_default": ours.SignatureDef(method_name="m")})
    try:
        json_format.MessageToJson(response)
    except TypeError:
        pass  # the default pool cannot resolve the Any: hence to_json
    else:
        raise AssertionError("json_format resolved our Any without our pool")
    assert "tensorflow.serving.SignatureDefMap" in ours.to_json(response)
    assert "tensorflow" not in sys.modules
    print("no tensorflow ok")
    """
)


def _run(code: str, *args: str, implementation: str | None = None) -> str:
    env = dict(os.environ)
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    if implementation is not None:
        env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = implementation
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.tensorflow
@pytest.mark.slow
@pytest.mark.parametrize(
    ("order", "implementation"),
    [("tf-first", "upb"), ("ours-first", "upb"), ("ours-first", "python")],
)
def test_import_order(order: str, implementation: str) -> None:
    pytest.importorskip("tensorflow_serving")
    out = _run(BOTH, order, implementation, implementation=implementation)
    assert "coexistence ok" in out


@pytest.mark.parametrize("implementation", ["upb", "python"])
def test_no_tensorflow_import_and_default_pool_untouched(implementation: str) -> None:
    assert "no tensorflow ok" in _run(WITHOUT_TF, implementation=implementation)


def test_import_does_not_load_tensorflow_one_liner() -> None:
    _run("import tfio_handlers.protos, sys; assert 'tensorflow' not in sys.modules")
