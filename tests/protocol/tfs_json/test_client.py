"""The client's side of TF Serving's REST JSON (:mod:`tfio_handlers.protocol.tfs_json.client`),
directly: TF Serving's answer forms our own server does not produce (metadata without ``@type``,
``{"b64"}`` outputs, raw non-UTF-8 strings, bare NaN tokens), answers that are not TF Serving's, and
request tensors → JSON → response tensors. The REST backend's transport, over a real server, is
tested in ``tests/backends/test_rest.py``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfio_handlers.errors import BadRequest, HTTPError, InternalError, Unimplemented
from tfio_handlers.protocol.tfs_json import client
from tfio_handlers.protos import (
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_HALF,
    DT_INT8,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT8,
    DT_UINT64,
    Example,
    Input,
    ModelSpec,
    PredictRequest,
    SignatureDef,
    TensorInfo,
    unpack_signature_def_map,
)
from tfio_handlers.tensors import make_shape, to_ndarray, to_tensor_proto


def _signature(outputs: dict[str, tuple[int, list[int] | None]]) -> SignatureDef:
    signature = SignatureDef()
    for alias, (dtype, dims) in outputs.items():
        info = signature.outputs[alias]
        info.dtype = dtype  # type: ignore[assignment]
        if dims is None:
            info.tensor_shape.unknown_rank = True
        else:
            info.tensor_shape.CopyFrom(make_shape(dims))
    return signature


def _parse_predict(text: bytes, signature: SignatureDef, wanted: list[str]) -> Any:
    return client.predict_response_from_json(
        client.parse_answer(text), signature, wanted, ModelSpec(name="m")
    )


def test_tf_serving_predict_forms() -> None:
    one = _signature({"y": (DT_FLOAT, [-1])})
    answer = _parse_predict(b'{"outputs": [1.5, NaN, -Infinity, Infinity]}', one, ["y"])
    values = to_ndarray(answer.outputs["y"])
    assert values.dtype == np.float32 and values.shape == (4,)
    assert values[0] == 1.5 and np.isnan(values[1]) and values[2] == -np.inf
    assert answer.outputs["y"].float_val  # typed fields, as TF Serving's gRPC answers

    several = _signature(
        {
            "raw_bytes": (DT_STRING, [-1]),
            "text": (DT_STRING, [-1]),
            "big": (DT_UINT64, [-1]),
            "flag": (DT_BOOL, []),
            "empty": (DT_INT32, [-1, 3]),
        }
    )
    body = (
        b'{"outputs": {"raw_bytes": [{"b64": "/wA="}], "text": ["\xff\xfe ok \\u00e9"], '
        b'"big": [18446744073709551615], "flag": true, "empty": []}}'
    )
    answer = _parse_predict(body, several, ["raw_bytes", "text", "big", "flag", "empty"])
    assert list(answer.outputs["raw_bytes"].string_val) == [b"\xff\x00"]
    assert list(answer.outputs["text"].string_val) == [b"\xff\xfe ok \xc3\xa9"]
    assert list(answer.outputs["big"].uint64_val) == [2**64 - 1]
    assert to_ndarray(answer.outputs["flag"]).shape == ()
    assert to_ndarray(answer.outputs["empty"]).shape == (0, 3)

    with pytest.raises(HTTPError, match="not a rectangular array"):
        _parse_predict(b'{"outputs": [[1, 2], [3]]}', _signature({"y": (DT_INT64, None)}), ["y"])
    with pytest.raises(HTTPError, match="output 'big' is missing"):
        _parse_predict(b'{"outputs": {"text": ["a"], "x": 1}}', several, ["big"])


def test_tf_serving_metadata_without_type() -> None:
    body = {
        "model_spec": {"name": "m", "signature_name": "", "version": "3"},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {
                            "x": {
                                "dtype": "DT_FLOAT",
                                "tensor_shape": {"dim": [{"size": "-1"}], "unknown_rank": False},
                                "name": "serving_default_x:0",
                            }
                        },
                        "outputs": {},
                        "method_name": "tensorflow/serving/predict",
                        "defaults": {},
                    }
                }
            }
        },
    }
    for entry in (
        body,
        json.loads(
            json.dumps(body).replace(
                '"signature_def": {"signature_def"',
                '"signature_def": {"@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap", '
                '"signature_def"',
            )
        ),
    ):
        response = client.metadata_response_from_json(entry)
        assert response.model_spec.version.value == 3
        signature = unpack_signature_def_map(response).signature_def["serving_default"]
        assert signature.inputs["x"].name == "serving_default_x:0"


def test_error_bodies() -> None:
    assert client.error_message(400, b'{ "error": "bad \\"x\\"" }') == 'bad "x"'
    assert client.error_message(502, b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert client.error_message(500, b"") == "HTTP 500"


_DTYPES = {
    DT_FLOAT: st.floats(width=32),
    DT_DOUBLE: st.floats(),
    DT_INT32: st.integers(-(2**31), 2**31 - 1),
    DT_INT8: st.integers(-128, 127),
    DT_UINT8: st.integers(0, 255),
    DT_INT64: st.integers(-(2**63), 2**63 - 1),
    DT_UINT64: st.integers(0, 2**64 - 1),
    DT_BOOL: st.booleans(),
    DT_STRING: st.binary(max_size=8),
}


@st.composite
def _tensors(draw: st.DrawFn) -> tuple[int, list[int], list[Any]]:
    dtype = draw(st.sampled_from(sorted(_DTYPES)))
    dims = draw(st.lists(st.integers(0, 3), max_size=3))
    count = int(np.prod(dims)) if dims else 1
    values = draw(st.lists(_DTYPES[dtype], min_size=count, max_size=count))
    return dtype, dims, values


@settings(max_examples=60, deadline=None)
@given(_tensors())
def test_tensor_json_round_trip(tensor: tuple[int, list[int], list[Any]]) -> None:
    """Request tensor → TF Serving JSON → response tensor gives the same dtype, shape and values."""
    dtype, dims, values = tensor
    from tfio_handlers.tensors import numpy_dtype

    array = np.array(values, dtype=object if dtype == DT_STRING else numpy_dtype(dtype))
    proto = to_tensor_proto(array.reshape(dims), dtype)
    # JSON writes an empty tensor as nested [] and so loses its inner dimensions; they come back
    # from the signature, which declares all but the batch dimension here.
    declared = [-1, *dims[1:]] if dims else []
    info = TensorInfo(dtype=dtype, tensor_shape=make_shape(declared))  # type: ignore[arg-type]
    wire = client.parse_answer(client.body_bytes({"t": client.tensor_to_json("t", proto, info, 0)}))
    back = client.tensor_from_json(wire["t"], info, "t")
    original, restored = to_ndarray(proto), to_ndarray(back)
    assert restored.shape == original.shape and restored.dtype == original.dtype
    if dtype == DT_STRING:
        assert restored.tolist() == original.tolist()
    else:
        np.testing.assert_array_equal(restored, original)


# -- answers that are not TF Serving's ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "text", "detail"),
    [
        (DT_INT32, b"[1.5]", "is not a rectangular array of int32"),
        (DT_BOOL, b"[0]", "is not a rectangular array of bool"),
        (DT_FLOAT, b'["1.5"]', "is not a rectangular array of float"),
        (DT_STRING, b"[1]", "is not a rectangular array of string"),
        (DT_STRING, b'[{"b64": "!!"}]', "Unable to base64 decode"),
        (DT_STRING, b'[{"b64": "YQ==", "x": 1}]', "not formatted correctly for base64 data"),
        (DT_INT8, b"[300]", "output 'y' holds a value outside int8"),
        (DT_FLOAT, b"[1" + b"0" * 400 + b"]", "is not a rectangular array of float"),
        (DT_HALF, b"[1.5]", "output 'y' has dtype half, which JSON cannot carry"),
    ],
)
def test_answers_not_tf_servings_are_500(dtype: int, text: bytes, detail: str) -> None:
    """An output TF Serving could not have written is an InternalError quoting what is wrong,
    never a silent cast (1.5 → 1, 0 → False, 300 → 44)."""
    with pytest.raises(
        InternalError, match=r"^Unexpected answer from the model server: "
    ) as caught:
        _parse_predict(b'{"outputs": ' + text + b"}", _signature({"y": (dtype, None)}), ["y"])
    assert detail in caught.value.message


def test_answer_strings_use_tf_servings_base64_rule() -> None:
    """``{"b64"}`` values are read as TF Serving reads them (absl's ``Base64Unescape``)."""
    signature = _signature({"y": (DT_STRING, [-1])})
    answer = _parse_predict(b'{"outputs": [{"b64": "YQ"}, {"b64": " Y Q = = "}]}', signature, ["y"])
    assert list(answer.outputs["y"].string_val) == [b"a", b"a"]


def test_answer_string_with_an_escaped_lone_surrogate() -> None:
    """A ``\\ud800`` escape holds no raw byte: it is encoded as TF Serving's reader encodes it."""
    signature = _signature({"y": (DT_STRING, [-1])})
    answer = _parse_predict(b'{"outputs": ["\\ud800", "\xff"]}', signature, ["y"])
    assert list(answer.outputs["y"].string_val) == [b"\xed\xa0\x80", b"\xff"]


def test_deep_answers() -> None:
    """Nesting past the JSON parser's depth is a 500, not a RecursionError; below it, the string
    output's walk (iterative) reads any depth, and a rank no tensor can have is a 500, not a 400."""
    signature = _signature({"y": (DT_STRING, None)})
    with pytest.raises(InternalError, match="JSON nested too deeply"):
        _parse_predict(b'{"outputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", signature, ["y"])
    for depth in (64, 65, 400):
        text = b'{"outputs": ' + b"[" * depth + b'"\xff"' + b"]" * depth + b"}"
        if depth > 64:  # numpy's and TensorFlow's rank limit
            with pytest.raises(InternalError, match=f"output 'y': .*64, found {depth}"):
                _parse_predict(text, signature, ["y"])
            continue
        answer = _parse_predict(text, signature, ["y"])
        assert list(answer.outputs["y"].string_val) == [b"\xff"]
        assert len(answer.outputs["y"].tensor_shape.dim) == depth


def test_invalid_json_answer() -> None:
    with pytest.raises(InternalError, match="invalid JSON"):
        client.parse_answer(b"{nope")


def test_classify_and_regress_answers() -> None:
    spec = ModelSpec(name="m")
    classified = client.classification_response_from_json(
        client.parse_answer(b'{"results": [[["a", 0.25], ["\xff", 1]]]}'), spec
    )
    classes = classified.result.classifications[0].classes
    assert [(c.label, c.score) for c in classes] == [("a", 0.25), ("\ufffd", 1.0)]
    assert classified.model_spec == spec
    regressed = client.regression_response_from_json({"results": [1, 2.5]}, spec)
    assert [r.value for r in regressed.result.regressions] == [1.0, 2.5]
    with pytest.raises(InternalError, match=r"classification \['a'\] is not \[label, score\]"):
        client.classification_response_from_json({"results": [[["a"]]]}, spec)
    with pytest.raises(InternalError, match="regression value True is not a number"):
        client.regression_response_from_json({"results": [True]}, spec)
    with pytest.raises(InternalError, match="no 'results' list in the regress answer"):
        client.regression_response_from_json({"outputs": []}, spec)


# -- what the client writes ------------------------------------------------------------------------


def test_predict_request_body() -> None:
    signature = SignatureDef()
    for alias, dtype in (("text", DT_STRING), ("raw", DT_STRING), ("x", DT_FLOAT), ("k", DT_INT32)):
        signature.inputs[alias].dtype = dtype  # type: ignore[assignment]
    signature.outputs["y"].dtype = DT_FLOAT  # type: ignore[assignment]
    signature.defaults["k"].CopyFrom(to_tensor_proto(7, "int32"))
    request = PredictRequest(model_spec=ModelSpec(name="m", signature_name="s"))
    request.inputs["text"].CopyFrom(to_tensor_proto([[b"a", "é".encode()]], "string"))
    request.inputs["raw"].CopyFrom(to_tensor_proto([b"ok", b"\xff"], "string"))
    request.inputs["x"].CopyFrom(to_tensor_proto([1.5, float("nan")], "float32"))
    body, wanted = client.predict_request_to_json(request, signature)
    assert wanted == ["y"]
    assert body["signature_name"] == "s"
    assert body["inputs"]["text"] == [["a", "é"]]
    assert body["inputs"]["raw"] == [{"b64": "b2s="}, {"b64": "/w=="}]
    assert body["inputs"]["k"] == 7
    assert client.body_bytes(body["inputs"]["x"]) == b"[1.5,NaN]"
    request.inputs["x"].CopyFrom(to_tensor_proto([1.0], "float64"))
    with pytest.raises(BadRequest, match=r"^Expects arg\[3\] to be float but double is provided$"):
        client.predict_request_to_json(request, signature)
    signature.inputs["x"].dtype = DT_HALF  # type: ignore[assignment]
    request.inputs["x"].CopyFrom(to_tensor_proto([1.0], "float16"))
    with pytest.raises(Unimplemented, match="REST API cannot carry half tensors"):
        client.predict_request_to_json(request, signature)


def test_examples_body() -> None:
    example = Example()
    example.features.feature["f"].float_list.value.append(1.0)
    example.features.feature["b"].bytes_list.value.extend([b"a", b"\x00"])
    example.features.feature["i"].int64_list.value.append(3)
    request_input = Input()
    request_input.example_list_with_context.examples.append(example)
    request_input.example_list_with_context.context.features.feature["s"].bytes_list.value.append(
        b"t"
    )
    body = client.examples_to_json(request_input, "")
    assert body == {
        "examples": [{"f": [1.0], "b": [{"b64": "YQ=="}, {"b64": "AA=="}], "i": [3]}],
        "context": {"s": ["t"]},
    }
    assert b'"f":[1.0]' in client.body_bytes(body)
    with pytest.raises(BadRequest, match=r"^Input is empty\.$"):
        client.examples_to_json(Input(), "s")
