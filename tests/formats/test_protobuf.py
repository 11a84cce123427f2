"""The protobuf codec: message type by parameter or method, round trips, errors."""

from __future__ import annotations

import numpy as np
import pytest
from codec_support import CLASSIFY, context, signature
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers.errors import BadRequest, NotAcceptable
from tfio_handlers.formats.protobuf import decode_protobuf, encode_protobuf
from tfio_handlers.media import parse_media_type
from tfio_handlers.protos import (
    DT_FLOAT,
    DT_STRING,
    ClassificationRequest,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    TensorProto,
)
from tfio_handlers.tensors import to_ndarray, to_tensor_proto

PROTOBUF = parse_media_type("application/x-protobuf")
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint16, np.bool_]


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
    data=st.data(),
)
def test_predict_request_round_trip(
    dtype: type, shape: tuple[int, ...], data: st.DataObject
) -> None:
    array = data.draw(hnp.arrays(dtype, shape))
    request = PredictRequest()
    request.inputs["x"].CopyFrom(to_tensor_proto(array))
    decoded = decode_protobuf(request.SerializeToString(), PROTOBUF, context())
    assert isinstance(decoded, PredictRequest)
    back = to_ndarray(decoded.inputs["x"])
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_response_round_trip(data: st.DataObject) -> None:
    array = data.draw(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, min_side=0, max_side=4)))
    response = PredictResponse()
    response.outputs["y"].CopyFrom(to_tensor_proto(array))
    body = encode_protobuf(response, PROTOBUF, context())
    assert PredictResponse.FromString(body) == response
    single = encode_protobuf(
        response,
        parse_media_type("application/x-protobuf; proto=tensorflow.TensorProto"),
        context(),
    )
    assert to_ndarray(TensorProto.FromString(single)).tobytes() == array.tobytes()


def test_message_type_from_the_method_when_no_parameter() -> None:
    classifier = signature({"inputs": (DT_STRING, [-1])}, CLASSIFY, {"scores": DT_FLOAT})
    request = ClassificationRequest()
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(1.0)
    decoded = decode_protobuf(request.SerializeToString(), PROTOBUF, context(classifier))
    assert isinstance(decoded, ClassificationRequest) and decoded == request
    regress = context()
    regress.method = "regress"
    assert isinstance(decode_protobuf(b"", PROTOBUF, regress), RegressionRequest)


def test_parameter_names_the_type() -> None:
    tensor = to_tensor_proto(np.arange(3, dtype=np.float32))
    media = parse_media_type("application/octet-stream; proto=tensorflow.TensorProto")
    assert decode_protobuf(tensor.SerializeToString(), media, context()) == tensor


def test_errors() -> None:
    with pytest.raises(BadRequest, match="Unsupported protobuf message type"):
        decode_protobuf(b"", parse_media_type("application/x-protobuf; proto=x.Y"), context())
    with pytest.raises(BadRequest, match=r"Invalid tensorflow\.serving\.PredictRequest"):
        decode_protobuf(b"\xff\xff\xff", PROTOBUF, context())
    two = PredictResponse()
    two.outputs["a"].dtype = DT_FLOAT
    two.outputs["b"].dtype = DT_FLOAT
    with pytest.raises(NotAcceptable, match="exactly one output"):
        encode_protobuf(
            two, parse_media_type("application/x-protobuf; proto=tensorflow.TensorProto"), context()
        )


def test_a_message_other_than_the_method_implies_names_the_expected_one() -> None:
    """A PredictRequest sent as octet-stream to a classify model: a 400 that says what to do."""
    predict = PredictRequest()
    predict.inputs["x"].CopyFrom(to_tensor_proto(np.array([[6.4, 3.2, 4.5, 1.5]], np.float32)))
    octet = parse_media_type("application/octet-stream")
    classifier = context(signature({"inputs": (DT_STRING, [-1])}, CLASSIFY, {"scores": DT_FLOAT}))
    with pytest.raises(BadRequest) as caught:
        decode_protobuf(predict.SerializeToString(), octet, classifier)
    message = caught.value.message
    assert "tensorflow.serving.ClassificationRequest" in message
    assert "proto=" in message and "tfs-method" in message
    # The reverse: a ClassificationRequest to a predict model.
    classify = ClassificationRequest()
    classify.input.example_list.examples.add().features.feature["x"].float_list.value.append(1.0)
    with pytest.raises(BadRequest, match=r"tensorflow\.serving\.PredictRequest.*proto="):
        decode_protobuf(classify.SerializeToString(), octet, context())
    # Naming the message type is the way out.
    named = parse_media_type("application/octet-stream; proto=tensorflow.serving.PredictRequest")
    assert decode_protobuf(predict.SerializeToString(), named, classifier) == predict


@pytest.mark.parametrize("content_bytes", [0, 256 * 1024], ids=["small body", "large body"])
def test_fields_the_implied_message_lacks_are_refused_inside_it_too(content_bytes: int) -> None:
    """Small bodies are checked whole, large ones by a bounded look from the top: both find an
    unknown field inside an input tensor."""
    tensor = TensorProto.FromString(
        TensorProto(dtype=1, tensor_content=b"\0" * content_bytes).SerializeToString()
        + b"\xa0\x06\x01"  # field 100 in the tensor
    )
    request = PredictRequest()
    request.inputs["x"].CopyFrom(tensor)
    with pytest.raises(BadRequest, match=r"is not a tensorflow\.serving\.PredictRequest"):
        decode_protobuf(request.SerializeToString(), PROTOBUF, context())


def test_fields_the_implied_message_lacks_are_refused() -> None:
    request = PredictRequest()
    request.model_spec.name = "m"
    unknown = b"\xa0\x06\x01"  # field 100, varint 1: in no request message
    with pytest.raises(BadRequest, match=r"is not a tensorflow\.serving\.PredictRequest"):
        decode_protobuf(request.SerializeToString() + unknown, PROTOBUF, context())
