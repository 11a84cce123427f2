"""Our messages and TensorFlow's are interchangeable on the wire and in proto3 JSON.

Each builder fills a message through the namespace it is given, so the same code builds our
message and TensorFlow's; the two must then serialize to the same bytes, parse each other's
bytes into equal messages, and print the same JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

import tfio_handlers.protos as protos

pytestmark = pytest.mark.tensorflow

Builder = Callable[[SimpleNamespace], Message]


def _fill_tensor(ns: SimpleNamespace, tensor: Any) -> None:
    tensor.dtype = ns.DT_FLOAT
    for size, name in ((2, "batch"), (3, "")):
        tensor.tensor_shape.dim.add(size=size, name=name)
    tensor.float_val.extend([1.5, -2.0, 0.0, 3.25, 1e-30, 7.0])


def tensor_proto(ns: SimpleNamespace) -> Message:
    t = ns.TensorProto()
    _fill_tensor(ns, t)
    t.version_number = 1
    return t


def tensor_every_field(ns: SimpleNamespace) -> Message:
    """A TensorProto with every field set (not a meaningful tensor; a wire check)."""
    t = ns.TensorProto(dtype=ns.DT_VARIANT, version_number=2, tensor_content=b"\x00\x01\xff")
    t.tensor_shape.unknown_rank = True
    t.half_val.extend([0x3C00, 0xFFFF])
    t.float_val.extend([1.0, float("inf")])
    t.double_val.extend([2.5, -0.0])
    t.int_val.extend([-(2**31), 2**31 - 1])
    t.string_val.extend([b"", b"\xff\x00bytes", "é".encode()])
    t.scomplex_val.extend([1.0, -1.0])
    t.int64_val.extend([-(2**63), 2**63 - 1])
    t.bool_val.extend([True, False])
    t.dcomplex_val.extend([0.5, 0.25])
    handle = t.resource_handle_val.add(
        device="/job:a/cpu:0", container="c", name="v", hash_code=2**64 - 1, maybe_type_name="T"
    )
    pair = handle.dtypes_and_shapes.add(dtype=ns.DT_INT32)
    pair.shape.dim.add(size=-1)
    variant = t.variant_val.add(type_name="tensorflow::TensorList", metadata=b"\x01")
    _fill_tensor(ns, variant.tensors.add())
    t.uint32_val.extend([0, 2**32 - 1])
    t.uint64_val.extend([0, 2**64 - 1])
    t.float8_val = b"\x38\x40"
    return t


def _model_spec(spec: Any, *, label: bool = False) -> None:
    spec.name = "half_plus_two"
    if label:
        spec.version_label = "stable"
    else:
        spec.version.value = 7
    spec.signature_name = "serving_default"


def predict_request(ns: SimpleNamespace) -> Message:
    r = ns.PredictRequest()
    _model_spec(r.model_spec)
    _fill_tensor(ns, r.inputs["x"])
    strings = r.inputs["names"]
    strings.dtype = ns.DT_STRING
    strings.tensor_shape.dim.add(size=2)
    strings.string_val.extend([b"a", b"\xfe"])
    packed = r.inputs["ids"]
    packed.dtype = ns.DT_INT64
    packed.tensor_shape.dim.add(size=2)
    packed.tensor_content = (5).to_bytes(8, "little") + (6).to_bytes(8, "little")
    r.output_filter.extend(["y", "z"])
    r.predict_streamed_options.request_state = ns.PredictStreamedOptions.SPLIT
    r.predict_streamed_options.split_dimensions["x"] = 0
    r.client_id = b"client-1"
    options = r.request_options
    options.deterministic_mode = ns.PredictRequest.RequestOptions.FIXED_DECODER_SLOT
    options.return_stoptokens.extend([1, 2])
    options.handshake.estimated_payload_bytes = 1024
    return r


def predict_response(ns: SimpleNamespace) -> Message:
    r = ns.PredictResponse()
    _model_spec(r.model_spec)
    _fill_tensor(ns, r.outputs["y"])
    return r


def _fill_example(example: Any, i: int) -> None:
    features = example.features.feature
    features["text"].bytes_list.value.extend([f"row {i}".encode(), b"\x00"])
    features["score"].float_list.value.extend([0.5 * i, 1.0])
    features["ids"].int64_list.value.extend([i, -(2**40)])
    features["empty"].SetInParent()


def classification_request(ns: SimpleNamespace) -> Message:
    r = ns.ClassificationRequest()
    _model_spec(r.model_spec, label=True)
    with_context = r.input.example_list_with_context
    for i in range(2):
        _fill_example(with_context.examples.add(), i)
    _fill_example(with_context.context, 99)
    return r


def classification_response(ns: SimpleNamespace) -> Message:
    r = ns.ClassificationResponse()
    _model_spec(r.model_spec)
    for i in range(2):
        classes = r.result.classifications.add()
        classes.classes.add(label="cat", score=0.25 * i)
        classes.classes.add(label="dog", score=0.75)
    return r


def regression_request(ns: SimpleNamespace) -> Message:
    r = ns.RegressionRequest()
    _model_spec(r.model_spec)
    for i in range(3):
        _fill_example(r.input.example_list.examples.add(), i)
    return r


def regression_response(ns: SimpleNamespace) -> Message:
    r = ns.RegressionResponse()
    _model_spec(r.model_spec)
    r.result.regressions.add(value=1.5)
    r.result.regressions.add(value=-2.0)
    return r


def multi_inference(ns: SimpleNamespace) -> Message:
    r = ns.MultiInferenceRequest()
    task = r.tasks.add(method_name="tensorflow/serving/classify")
    _model_spec(task.model_spec)
    _fill_example(r.input.example_list.examples.add(), 1)
    return r


def multi_inference_response(ns: SimpleNamespace) -> Message:
    r = ns.MultiInferenceResponse()
    first = r.results.add()
    _model_spec(first.model_spec)
    first.classification_result.classifications.add().classes.add(label="a", score=1.0)
    r.results.add().regression_result.regressions.add(value=3.0)
    return r


def _signature_def_map(ns: SimpleNamespace) -> Any:
    signatures = ns.SignatureDefMap()
    sig = signatures.signature_def["serving_default"]
    sig.method_name = "tensorflow/serving/predict"
    x = sig.inputs["x"]
    x.name = "serving_default_x:0"
    x.dtype = ns.DT_FLOAT
    x.tensor_shape.dim.add(size=-1)
    x.tensor_shape.dim.add(size=3)
    sparse = sig.inputs["sparse"]
    sparse.dtype = ns.DT_INT64
    sparse.coo_sparse.values_tensor_name = "v:0"
    sparse.coo_sparse.indices_tensor_name = "i:0"
    sparse.coo_sparse.dense_shape_tensor_name = "s:0"
    ragged = sig.outputs["ragged"]
    ragged.dtype = ns.DT_FLOAT
    composite = ragged.composite_tensor
    composite.type_spec.type_spec_class = ns.TypeSpecProto.RAGGED_TENSOR_SPEC
    composite.type_spec.num_flat_components = 2
    state = composite.type_spec.type_state
    state.tuple_value.values.add().tensor_shape_value.dim.add(size=-1)
    state.tuple_value.values.add().tensor_dtype_value = ns.DT_FLOAT
    state.tuple_value.values.add().int64_value = -5
    state.tuple_value.values.add().dict_value.fields["k"].string_value = "v"
    state.tuple_value.values.add().none_value.SetInParent()
    composite.components.add(name="c:0", dtype=ns.DT_FLOAT)
    sig.defaults["x"].CopyFrom(tensor_proto(ns))
    signatures.signature_def["classify"].method_name = "tensorflow/serving/classify"
    return signatures


def get_model_metadata_response(ns: SimpleNamespace) -> Message:
    r = ns.GetModelMetadataResponse()
    _model_spec(r.model_spec)
    r.metadata["signature_def"].Pack(_signature_def_map(ns))
    return r


def get_model_metadata_request(ns: SimpleNamespace) -> Message:
    r = ns.GetModelMetadataRequest(metadata_field=["signature_def"])
    _model_spec(r.model_spec)
    return r


def get_model_status_response(ns: SimpleNamespace) -> Message:
    r = ns.GetModelStatusResponse()
    ok = r.model_version_status.add(version=1, state=ns.ModelVersionStatus.AVAILABLE)
    ok.status.error_code = ns.OK
    failed = r.model_version_status.add(version=2, state=ns.ModelVersionStatus.END)
    failed.status.error_code = ns.NOT_FOUND
    failed.status.error_message = "could not load"
    return r


def sequence_example(ns: SimpleNamespace) -> Message:
    r = ns.SequenceExample()
    r.context.feature["id"].int64_list.value.append(3)
    steps = r.feature_lists.feature_list["tokens"]
    steps.feature.add().bytes_list.value.append(b"hello")
    steps.feature.add().float_list.value.append(1.0)
    return r


BUILDERS: dict[str, Builder] = {
    f.__name__: f
    for f in (
        tensor_proto,
        tensor_every_field,
        predict_request,
        predict_response,
        classification_request,
        classification_response,
        regression_request,
        regression_response,
        multi_inference,
        multi_inference_response,
        get_model_metadata_request,
        get_model_metadata_response,
        get_model_status_response,
        sequence_example,
    )
}


@pytest.fixture(params=sorted(BUILDERS))
def pair(
    request: pytest.FixtureRequest, tf: SimpleNamespace, ours: SimpleNamespace
) -> tuple[Message, Message]:
    """(ours, TensorFlow's) built by the same code."""
    build = BUILDERS[request.param]
    return build(ours), build(tf)


def test_classes_differ_but_names_match(pair: tuple[Message, Message]) -> None:
    mine, theirs = pair
    assert type(mine) is not type(theirs)
    assert mine.DESCRIPTOR.full_name == theirs.DESCRIPTOR.full_name
    assert mine.DESCRIPTOR.file.pool is protos.POOL


def test_same_bytes(pair: tuple[Message, Message]) -> None:
    mine, theirs = pair
    assert mine.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )


def test_bytes_cross_parse(pair: tuple[Message, Message]) -> None:
    mine, theirs = pair
    assert type(theirs).FromString(mine.SerializeToString()) == theirs
    assert type(mine).FromString(theirs.SerializeToString()) == mine


@pytest.mark.parametrize(
    "options",
    [{}, {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}],
    ids=["default", "field-names-and-defaults"],
)
def test_same_json(pair: tuple[Message, Message], options: dict[str, Any]) -> None:
    mine, theirs = pair
    expected = json_format.MessageToJson(theirs, **options)
    assert protos.to_json(mine, **options) == expected
    assert json_format.MessageToJson(mine, descriptor_pool=protos.POOL, **options) == expected
    assert_same(protos.from_json(expected, type(mine)), mine)


def assert_same(parsed: Message, original: Message) -> None:
    """Equal messages; an ``Any`` is compared by its unpacked contents, since the serialized bytes
    it holds depend on map-entry order, which protobuf leaves unspecified."""
    if parsed.DESCRIPTOR.full_name == "tensorflow.serving.GetModelMetadataResponse":
        assert parsed.model_spec == original.model_spec  # type: ignore[attr-defined]
        assert protos.unpack_signature_def_map(parsed) == protos.unpack_signature_def_map(original)
    else:
        assert parsed == original


def test_json_any_resolves_through_our_pool(ours: SimpleNamespace) -> None:
    response = get_model_metadata_response(ours)
    text = protos.to_json(response)
    assert '"@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap"' in text
    assert '"serving_default_x:0"' in text
    assert_same(protos.from_json(text, protos.GetModelMetadataResponse), response)
    # (Without TensorFlow loaded, plain json_format.MessageToJson would fail on the Any: see
    # test_proto_coexistence.py, which checks that in a process without TensorFlow.)


def test_status_json_keeps_snake_case_keys(ours: SimpleNamespace) -> None:
    """TF Serving declares explicit json_names for the model-status REST response."""
    text = protos.to_json(get_model_status_response(ours))
    assert '"model_version_status"' in text
    assert '"error_code": "NOT_FOUND"' in text
    assert '"error_message": "could not load"' in text


_tensor_fields = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from([1, 2, 3, 7, 9, 10, 14, 19, 22, 23, 101]),
        "dims": st.lists(st.integers(-1, 2**40), max_size=4),
        "tensor_content": st.binary(max_size=32),
        "half_val": st.lists(st.integers(0, 0xFFFF), max_size=5),
        "float_val": st.lists(st.floats(width=32, allow_nan=False), max_size=5),
        "double_val": st.lists(st.floats(allow_nan=False), max_size=5),
        "int_val": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=5),
        "string_val": st.lists(st.binary(max_size=8), max_size=5),
        "int64_val": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5),
        "bool_val": st.lists(st.booleans(), max_size=5),
        "uint64_val": st.lists(st.integers(0, 2**64 - 1), max_size=5),
    },
)


def _tensor_from(ns: SimpleNamespace, fields: dict[str, Any]) -> Message:
    t = ns.TensorProto()
    for key, value in fields.items():
        if key == "dims":
            for size in value:
                t.tensor_shape.dim.add(size=size)
        elif isinstance(value, list):
            getattr(t, key).extend(value)
        else:
            setattr(t, key, value)
    return t


@settings(max_examples=60, deadline=None)
@given(fields=_tensor_fields)
def test_tensor_proto_round_trip_property(
    fields: dict[str, Any], tf: SimpleNamespace, ours: SimpleNamespace
) -> None:
    mine, theirs = _tensor_from(ours, fields), _tensor_from(tf, fields)
    data = mine.SerializeToString(deterministic=True)
    assert data == theirs.SerializeToString(deterministic=True)
    assert tf.TensorProto.FromString(data) == theirs
    assert protos.coerce(theirs, protos.TensorProto) == mine
    assert protos.from_json(json_format.MessageToJson(theirs), protos.TensorProto) == mine


def test_float32_max_as_messagetojson_writes_it_reads_back() -> None:
    """protobuf's Parse refuses "3.4028235e+38" (float32 max, shortest text); from_json reads it."""
    t = protos.TensorProto(dtype=protos.DT_FLOAT)
    t.float_val.extend([3.4028234663852886e38, -3.4028234663852886e38, 1.5])
    response = protos.PredictResponse()
    response.outputs["y"].CopyFrom(t)
    for message in (t, response):
        text = json_format.MessageToJson(message, descriptor_pool=protos.POOL)
        assert "3.4028235e+38" in text
        assert protos.from_json(text, type(message)) == message
    lowest = protos.TensorProto(dtype=protos.DT_FLOAT, float_val=[-3.4028234663852886e38])
    text = json_format.MessageToJson(lowest, descriptor_pool=protos.POOL)  # "too small" alone
    assert protos.from_json(text, protos.TensorProto) == lowest
    with pytest.raises(json_format.ParseError):
        protos.from_json('{"floatVal": [1e39]}', protos.TensorProto)  # beyond: still refused
    with pytest.raises(json_format.ParseError):
        protos.from_json('{"floatVal": [-1e39]}', protos.TensorProto)


# --- the model server config (--model_config_file) ------------------------------------------------

MODEL_CONFIG_TEXT = """
model_config_list {
  config {
    name: "half"
    base_path: "/models/half"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config {
    name: "iris"
    base_path: "/models/iris"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 3 } }
    logging_config { sampling_config { sampling_rate: 0.5 } }
  }
}
"""


def test_model_server_config_text_format_reads_as_tf_serving_does(
    tf: SimpleNamespace, ours: SimpleNamespace
) -> None:
    """TF Serving's --model_config_file text parses into our classes and TF Serving's alike, and
    the two are byte for byte the same message (so HandleReloadConfigRequest carries either)."""
    from google.protobuf import text_format

    mine = text_format.Parse(MODEL_CONFIG_TEXT, ours.ModelServerConfig())
    theirs = text_format.Parse(MODEL_CONFIG_TEXT, tf.ModelServerConfig())
    assert mine.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    half, iris = mine.model_config_list.config
    assert half.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert half.model_version_policy.latest.num_versions == 2
    assert dict(half.version_labels) == {"stable": 1, "canary": 2}
    assert list(iris.model_version_policy.specific.versions) == [1, 3]
    request = ours.ReloadConfigRequest(config=mine)
    tf_request = tf.ReloadConfigRequest.FromString(request.SerializeToString())
    assert text_format.MessageToString(tf_request.config) == text_format.MessageToString(mine)
    assert protos.coerce(tf_request, protos.ReloadConfigRequest) == request
