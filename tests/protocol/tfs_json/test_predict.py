"""Predict requests and responses in TF Serving's REST JSON (spec sections 3 and 6).

Cases marked [T] are the ones TF Serving's own ``json_tensor_test.cc`` checks; the rest follow its
code. Expected response texts were checked byte for byte against RapidJSON's ``PrettyWriter``
driven as TF Serving drives it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from tfio_handlers.config import Limits
from tfio_handlers.errors import BadRequest, PayloadTooLarge, Unimplemented
from tfio_handlers.protocol.tfs_json import (
    JsonFormat,
    classification_result_to_json,
    predict_request_from_json,
    predict_response_to_json,
    regression_result_to_json,
)
from tfio_handlers.protos import (
    DT_BOOL,
    DT_COMPLEX64,
    DT_DOUBLE,
    DT_FLOAT,
    DT_HALF,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT8,
    DT_UINT16,
    DT_UINT32,
    DT_UINT64,
    ClassificationResult,
    ModelSpec,
    PredictResponse,
    RegressionResult,
    SignatureDef,
    TensorProto,
)
from tfio_handlers.tensors import to_tensor_proto


def signatures(name: str = "serving_default", **inputs: int) -> dict[str, SignatureDef]:
    signature = SignatureDef()
    for alias, dtype in inputs.items():
        signature.inputs[alias].dtype = dtype
    return {name: signature}


def request(body: str | bytes, **inputs: int) -> tuple[dict[str, TensorProto], JsonFormat]:
    message, form = predict_request_from_json(body, signatures(**inputs))
    return dict(message.inputs), form


def error(body: str | bytes, kind: type[Exception] = BadRequest, **inputs: int) -> str:
    with pytest.raises(kind) as info:
        predict_request_from_json(body, signatures(**inputs))
    return str(info.value)


def dims(tensor: TensorProto) -> list[int]:
    return [d.size for d in tensor.tensor_shape.dim]


# --------------------------------------------------------------------------------------------
# 3.1 top level
# --------------------------------------------------------------------------------------------


def test_single_unnamed_tensor() -> None:  # [T] SingleUnnamedTensor
    tensors, form = request('{"instances": [[1,2],[3,4],[5,6]]}', default=DT_INT32)
    assert form is JsonFormat.ROW
    tensor = tensors["default"]
    assert tensor.dtype == DT_INT32
    assert dims(tensor) == [3, 2]
    assert list(tensor.int_val) == [1, 2, 3, 4, 5, 6]  # typed fields, as TF Serving fills them
    assert not tensor.tensor_content


def test_signature_name_goes_into_model_spec() -> None:  # [T] SingleUnnamedTensorWithSignature
    body = '{"signature_name": "predict_images", "instances": [[1,2]]}'
    message, form = predict_request_from_json(body, signatures("predict_images", default=DT_INT32))
    assert message.model_spec.signature_name == "predict_images"
    assert dims(message.inputs["default"]) == [1, 2]
    assert form is JsonFormat.ROW


def test_model_spec_is_copied_and_the_body_signature_wins() -> None:
    spec = ModelSpec(name="m", signature_name="from_url")
    spec.version.value = 7
    sigs = {**signatures("from_url", x=DT_INT32), **signatures("body", x=DT_FLOAT)}
    message, _ = predict_request_from_json('{"instances": [1]}', sigs, model_spec=spec)
    assert (message.model_spec.name, message.model_spec.version.value) == ("m", 7)
    assert message.model_spec.signature_name == "from_url"
    assert message.inputs["x"].dtype == DT_INT32
    message, _ = predict_request_from_json(
        '{"signature_name": "body", "instances": [1]}', sigs, model_spec=spec
    )
    assert message.model_spec.signature_name == "body"
    assert message.inputs["x"].dtype == DT_FLOAT


def test_a_single_signature_def_is_accepted() -> None:
    signature = signatures(x=DT_FLOAT)["serving_default"]
    message, _ = predict_request_from_json('{"signature_name": "any", "instances": [1]}', signature)
    assert message.model_spec.signature_name == "any"
    assert list(message.inputs["x"].float_val) == [1.0]


def test_trailing_data_is_ignored() -> None:  # [T] TensorFromNonNullTerminatedBuffer
    tensors, _ = request(b'{"instances": [[1,2],[3,4],[5,6]]}X', default=DT_INT32)
    assert list(tensors["default"].int_val) == [1, 2, 3, 4, 5, 6]


def test_str_body_is_accepted() -> None:
    tensors, _ = request('{"instances": ["é"]}', x=DT_STRING)
    assert list(tensors["x"].string_val) == ["é".encode()]


def test_top_level_errors() -> None:
    assert error("", x=DT_INT32) == "JSON Parse error: The document is empty"  # [T]
    assert error("[1]", x=DT_INT32) == "JSON Value: [1] Is not object"
    assert error('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}', x=DT_INT32) == (
        'JSON Value: {\n    "signature_name": 5,\n    "instances": [[1, 2], [3, 4], [5, 6, 7]]\n}'
        " not formatted correctly. 'signature_name' key must be a string value."
    )  # [T]
    assert error('{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}', x=3) == (
        'JSON Value: {\n    "instances": [[1, 2], [3, 4], [5, 6, 7]],\n'
        '    "inputs": [[1, 2], [3, 4], [5, 6, 7]]\n} Not formatted correctly expecting only one'
        " of 'inputs' or 'instances' keys to exist "
    )  # [T]
    assert error('{"instances": 1}', x=DT_INT32) == (
        "JSON Value: {\n    \"instances\": 1\n} Expecting 'instances' to be an list/array"
    )
    assert error('{"instances": []}', x=DT_INT32) == (
        "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"
    )
    assert error('{"other": 1}', x=DT_INT32) == "Missing 'inputs' or 'instances' key"


def test_signature_lookup() -> None:
    sigs = signatures("other", x=DT_INT32)
    with pytest.raises(BadRequest) as info:
        predict_request_from_json('{"instances": [1]}', sigs)
    assert (
        info.value.message == 'Serving signature name: "serving_default" not found in signature def'
    )
    with pytest.raises(BadRequest) as info:
        predict_request_from_json('{"signature_name": "nope", "instances": [1]}', sigs)
    assert info.value.message == 'Serving signature name: "nope" not found in signature def'
    empty = {"serving_default": SignatureDef(), "named": SignatureDef()}
    with pytest.raises(BadRequest) as info:
        predict_request_from_json('{"instances": [1]}', empty)
    assert info.value.message == "Failed to get input map for signature: DEFAULT"
    with pytest.raises(BadRequest) as info:
        predict_request_from_json('{"signature_name": "named", "instances": [1]}', empty)
    assert info.value.message == "Failed to get input map for signature: named"


def test_signature_errors_come_before_key_errors() -> None:
    with pytest.raises(BadRequest) as info:
        predict_request_from_json('{"nothing": 1}', signatures("other", x=DT_INT32))
    assert "not found in signature def" in info.value.message


def test_signature_shape_is_not_checked() -> None:  # half_plus_two: x [-1, 1]
    signature = signatures(x=DT_FLOAT)
    signature["serving_default"].inputs["x"].tensor_shape.dim.add(size=-1)
    signature["serving_default"].inputs["x"].tensor_shape.dim.add(size=1)
    message, _ = predict_request_from_json('{"instances": [[1.0,2.0],[3.0,4.0]]}', signature)
    assert dims(message.inputs["x"]) == [2, 2]


def test_other_top_level_keys_are_ignored() -> None:
    tensors, _ = request('{"meta": {"a": [1, "x"]}, "instances": [1]}', x=DT_INT32)
    assert list(tensors["x"].int_val) == [1]


# --------------------------------------------------------------------------------------------
# 3.2 leaf values by dtype
# --------------------------------------------------------------------------------------------


def test_mixed_input_for_float_tensor() -> None:  # [T]
    tensors, _ = request('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', default=DT_FLOAT)
    tensor = tensors["default"]
    assert dims(tensor) == [7]
    expected = np.array([1, 2.0, 3, 4, 5.003, 0.007, 0.0], np.float32)
    assert np.array_equal(np.array(tensor.float_val, np.float32), expected)


def test_mixed_input_for_double_tensor() -> None:  # [T]
    tensors, _ = request('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', default=DT_DOUBLE)
    assert list(tensors["default"].double_val) == [1.0, 2, 3, 4, 0.662, 0, 0.0]


def test_float_precision_loss() -> None:  # [T] FloatTensorWithPrecisionLoss
    for body in ('{"instances": [1435774380]}', '{"instances": [1435774380.0]}'):
        tensors, _ = request(body, default=DT_FLOAT)
        assert list(tensors["default"].float_val) == [1435774336.0]


def test_float_beyond_range() -> None:  # [T] ExceedsMax → inf, ExceedsMin → 0
    big = repr(float(np.finfo(np.float64).max))
    tiny = repr(float(np.finfo(np.float64).tiny))
    tensors, _ = request(f'{{"instances": [{big}, -{big}, {tiny}, -{tiny}]}}', x=DT_FLOAT)
    values = list(tensors["x"].float_val)
    assert values[:2] == [math.inf, -math.inf]
    assert values[2:] == [0.0, 0.0] and math.copysign(1, values[3]) == -1


def test_integer_above_2_53_goes_through_double_for_float() -> None:
    tensors, _ = request('{"instances": [9007199254740993]}', x=DT_FLOAT)
    assert list(tensors["x"].float_val) == [float(np.float32(9007199254740992.0))]


def test_non_finite_tokens() -> None:
    tensors, _ = request('{"instances": [NaN, Inf, -Infinity, -NaN]}', x=DT_DOUBLE)
    values = list(tensors["x"].double_val)
    assert math.isnan(values[0]) and math.isnan(values[3])
    assert values[1:3] == [math.inf, -math.inf]


@pytest.mark.parametrize(
    ("dtype", "body", "field", "expected"),
    [
        (DT_INT32, "[-2147483648, 2147483647]", "int_val", [-2147483648, 2147483647]),
        (DT_INT16, "[-32768, 32767]", "int_val", [-32768, 32767]),
        (DT_INT8, "[-128, 127]", "int_val", [-128, 127]),
        (DT_UINT8, "[0, 255]", "int_val", [0, 255]),
        (
            DT_INT64,
            "[-9223372036854775808, 9223372036854775807]",
            "int64_val",
            [-9223372036854775808, 9223372036854775807],
        ),
        (DT_UINT32, "[0, 4294967295]", "uint32_val", [0, 4294967295]),
        (DT_UINT64, "[0, 18446744073709551615]", "uint64_val", [0, 18446744073709551615]),
        (DT_BOOL, "[true, false]", "bool_val", [True, False]),
        (DT_STRING, '["a", {"b64": "aGVsbG8="}, ""]', "string_val", [b"a", b"hello", b""]),
        (DT_FLOAT, "[1, 1.5, 1e2]", "float_val", [1.0, 1.5, 100.0]),
        (DT_DOUBLE, "[1, 0.1]", "double_val", [1.0, 0.1]),
    ],
)
def test_accepted_leaves(dtype: int, body: str, field: str, expected: list[Any]) -> None:
    tensors, _ = request(f'{{"inputs": {body}}}', x=dtype)
    assert tensors["x"].dtype == dtype
    assert list(getattr(tensors["x"], field)) == expected


@pytest.mark.parametrize(
    ("dtype", "body"),
    [(DT_INT16, "[100000]"), (DT_INT8, "[-1000]"), (DT_UINT8, "[-1]"), (DT_UINT8, "[1, 256]")],
)
def test_narrow_integers_out_of_range(dtype: int, body: str) -> None:
    """TF Serving checks only the int32 range and TensorFlow then wraps the value (300 → 44 for
    int8); the value is refused instead, as a tensor that cannot be read (a deliberate departure,
    docs/formats/tfs-json.md)."""
    for form in ("inputs", "instances"):
        with pytest.raises(BadRequest, match=r"^tensor parsing error: x$"):
            request(f'{{"{form}": {body}}}', x=dtype)


TYPE_ERRORS = [
    (DT_INT32, "1.0", "1.0", "Number", "int32"),
    (DT_INT32, "1e2", "100.0", "Number", "int32"),
    (DT_INT32, "NaN", "", "Number", "int32"),  # RapidJSON cannot write NaN: nothing is quoted
    (DT_INT32, "true", "true", "True", "int32"),
    (DT_INT32, '"a"', '"a"', "String", "int32"),
    (DT_INT32, "null", "null", "Null", "int32"),
    (DT_INT32, "2147483648", "2147483648", "Number", "int32"),
    (DT_INT32, '{"b64": "AA=="}', '{\n    "b64": "AA=="\n}', "Object", "int32"),
    (DT_INT64, "9223372036854775808", "9223372036854775808", "Number", "int64"),
    (DT_UINT32, "-1", "-1", "Number", "uint32"),
    (DT_UINT32, "4294967296", "4294967296", "Number", "uint32"),
    (DT_UINT64, "-1", "-1", "Number", "uint64"),
    (DT_UINT64, "18446744073709551616", "18446744073709553000.0", "Number", "uint64"),
    (DT_BOOL, "1", "1", "Number", "bool"),
    (DT_BOOL, "0", "0", "Number", "bool"),
    (DT_FLOAT, '"1.5"', '"1.5"', "String", "float"),
    (DT_FLOAT, "false", "false", "False", "float"),
    (DT_DOUBLE, "null", "null", "Null", "double"),
    (DT_STRING, "1", "1", "Number", "string"),
    (DT_INT8, "1.5", "1.5", "Number", "int8"),
    (DT_UINT8, "true", "true", "True", "uint8"),
]


@pytest.mark.parametrize(("dtype", "leaf", "quoted", "kind", "name"), TYPE_ERRORS)
def test_type_errors(dtype: int, leaf: str, quoted: str, kind: str, name: str) -> None:
    message = f"JSON Value: {quoted} Type: {kind} is not of expected type: {name}"
    assert error(f'{{"inputs": [{leaf}]}}', x=dtype) == message  # columnar: not wrapped
    assert error(f'{{"instances": [{leaf}]}}', x=dtype) == (  # row: wrapped [T]
        f"Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: {message}"
    )


def test_type_error_text_is_tf_servings() -> None:  # [T]
    assert error('{"instances": [[1,2],["a", "b"]]}', x=DT_INT32) == (
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: "a" Type: String is not of expected type: int32'
    )


@pytest.mark.parametrize("dtype", [DT_HALF, DT_COMPLEX64, DT_UINT16])
def test_dtypes_json_cannot_carry(dtype: int) -> None:
    name = {DT_HALF: "half", DT_COMPLEX64: "complex64", DT_UINT16: "uint16"}[dtype]
    message = f"Conversion of JSON Value: 1.5 to type: {name}"
    assert error('{"inputs": [1.5]}', Unimplemented, x=dtype) == message
    assert error('{"instances": [1.5]}', BadRequest, x=dtype) == (
        f"Failed to process element: 0 of 'instances' list. Error: UNIMPLEMENTED: {message}"
    )
    # Objects are a type error first; and an empty list holds no value to convert.
    assert "Type: Object is not of expected type" in error('{"inputs": [{"a": 1}]}', x=dtype)
    tensors, _ = request('{"inputs": []}', x=dtype)
    assert tensors["x"].dtype == dtype and dims(tensors["x"]) == [0]


def test_unimplemented_is_501() -> None:
    with pytest.raises(Unimplemented) as info:
        predict_request_from_json('{"inputs": 1.5}', signatures(x=DT_HALF))
    assert info.value.status_code == 501


def test_base64() -> None:  # [T] SingleUnnamedTensorBase64Scalars / Lists / SingleNamedTensorBase64
    tensors, _ = request(
        '{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}', default=DT_STRING
    )
    assert dims(tensors["default"]) == [2]
    assert list(tensors["default"].string_val) == [b"hello", b"world"]
    tensors, _ = request(
        '{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}', default=DT_STRING
    )
    assert dims(tensors["default"]) == [2, 1]
    tensors, _ = request(
        '{"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}]}',
        default=DT_STRING,
    )
    assert dims(tensors["default"]) == [1, 2, 1]
    assert list(tensors["default"].string_val) == [b"hello", b"world"]


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),  # padding is optional
        ("aGVsbG8.", b"hello"),  # '.' pads like '='
        ("aGVs bG8=\n", b"hello"),  # whitespace is skipped
        ("", b""),
        ("QR==", b"A"),  # leftover bits are ignored
        ("aGk=", b"hi"),
    ],
)
def test_base64_decoding(text: str, decoded: bytes) -> None:
    tensors, _ = request(json.dumps({"inputs": [{"b64": text}]}), x=DT_STRING)
    assert list(tensors["x"].string_val) == [decoded]


@pytest.mark.parametrize(
    "text", ["aGVsbG8==", "aGk==", "a", "aGVsbG8=x", "aGVs*bG8=", "aGVsbG8_", "=aGk", "aGVs\x00"]
)
def test_base64_failures(text: str) -> None:
    assert error(json.dumps({"inputs": [{"b64": text}]}), x=DT_STRING) == "Unable to base64 decode"


def test_not_a_base64_object() -> None:
    for leaf, quoted in [
        ('{"b64": 1}', '{\n    "b64": 1\n}'),
        ('{"b64": "AA==", "x": 1}', '{\n    "b64": "AA==",\n    "x": 1\n}'),
        ('{"B64": "AA=="}', '{\n    "B64": "AA=="\n}'),
    ]:
        assert error(f'{{"inputs": [{leaf}]}}', x=DT_STRING) == (
            f"JSON Value: {quoted} not formatted correctly for base64 data"
        )


def test_strings_are_raw_bytes() -> None:
    tensors, _ = request(b'{"inputs": ["\xff\xfe", "\\u00e9", "\\udc00"]}', x=DT_STRING)
    assert list(tensors["x"].string_val) == [b"\xff\xfe", "é".encode(), b"\xed\xb0\x80"]


# --------------------------------------------------------------------------------------------
# 3.3 shapes
# --------------------------------------------------------------------------------------------


def test_shape_errors() -> None:
    assert error('{"inputs": [[1, 2], [3]]}', x=DT_INT32) == (
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2"
    )
    assert error('{"inputs": [[1, 2], [3, [4]]]}', x=DT_INT32) == (
        "Encountered list at unexpected level: 2 expected < 2"
    )
    assert error('{"inputs": [[1, 2], 3]}', x=DT_INT32) == (
        "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"
    )
    assert error('{"inputs": [[], [1]]}', x=DT_INT32) == (  # the shape is [2, 0]
        "Encountered list at unexpected size: 1 at level: 1 expected size: 0"
    )
    assert error('{"inputs": [[1], 2, [3]]}', x=DT_INT32) == (
        "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"
    )


def test_errors_are_reported_in_tf_servings_order() -> None:
    # A type error in row 0 comes before a size error in row 1 (depth first).
    assert error('{"inputs": [["a", 2], [3]]}', x=DT_INT32) == (
        'JSON Value: "a" Type: String is not of expected type: int32'
    )
    assert error('{"inputs": [[1, 2], [3], ["a"]]}', x=DT_INT32) == (
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2"
    )


def test_empty_arrays() -> None:
    tensors, _ = request('{"inputs": [[], []]}', x=DT_FLOAT)
    assert dims(tensors["x"]) == [2, 0] and not tensors["x"].float_val
    tensors, _ = request('{"inputs": []}', x=DT_STRING)
    assert dims(tensors["x"]) == [0]


# --------------------------------------------------------------------------------------------
# 3.4 row format
# --------------------------------------------------------------------------------------------


def test_multiple_named_tensors() -> None:  # [T] MultipleNamedTensor
    body = """{"instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
         "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"],
         "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}"""
    tensors, form = request(
        body,
        int_tensor=DT_INT32,
        str_tensor=DT_STRING,
        float_tensor=DT_FLOAT,
        dbl_tensor=DT_DOUBLE,
    )
    assert form is JsonFormat.ROW
    assert dims(tensors["int_tensor"]) == [2, 3, 2]
    assert list(tensors["int_tensor"].int_val) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert dims(tensors["str_tensor"]) == [2, 2]
    assert list(tensors["str_tensor"].string_val) == [b"foo", b"bar", b"baz", b"bat"]
    floats = list(tensors["float_tensor"].float_val)
    assert floats[0] == 1.0 and math.isnan(floats[1]) and floats[2:] == [2.0, math.inf]
    assert dims(tensors["dbl_tensor"]) == [2, 1]


def test_row_shapes() -> None:
    tensors, _ = request('{"instances": [1, 2, 3]}', x=DT_INT32)
    assert dims(tensors["x"]) == [3]
    tensors, _ = request('{"instances": [[1, 2]]}', x=DT_INT32)
    assert dims(tensors["x"]) == [1, 2]


def test_row_errors() -> None:
    multi = {"a": DT_INT32, "b": DT_STRING}
    assert error('{"instances": [1, 2]}', **multi) == (
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map"
    )
    # A b64 object passes that check (it is an object) but is not an instance object.
    assert error('{"instances": [{"b64": "AA=="}]}', **multi) == (
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: {\n    "b64": "AA=="\n} Type: Object is not of expected type: int32'
    )
    assert error('{"instances": [{"a": 1, "b": "x"}, [1, 20, 30]]}', **multi) == (
        "Expecting object but got list at item 1 of input list"
    )  # [T]
    assert error('{"instances": [{"a": 1, "b": "x"}, 5]}', **multi) == (
        "Expecting object but got list at item 1 of input list"
    )
    assert error('{"instances": [{"a": 1, "b": "x"}, {"b64": "AA=="}]}', **multi) == (
        "Expecting object but got list at item 1 of input list"
    )
    assert error('{"instances": [["baz", "bar"], {"s": ["baz", "bat"]}]}', s=DT_STRING) == (
        "Expecting value/list but got object at item 1 of input list"
    )  # [T]
    assert error('{"instances": [{"a": 1, "c": 2}]}', **multi) == (
        "Failed to process element: 0 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON object: does not have named input: c"
    )
    assert error('{"instances": [{"a": 1}]}', **multi) == (
        "Failed to process element: 0 of 'instances' list. JSON object: {\n    \"a\": 1\n} "
        "keys must be equal to: a,b"
    )
    assert error('{"instances": [{"a": 1, "b": 2}]}', **multi) == (
        "Failed to process element: 0 key: b of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON Value: 2 Type: Number is not of expected type: string"
    )


def test_row_size_and_shape_errors() -> None:  # [T]
    assert error('{"instances": [[1,2],[3,4],[5,6,7]]}', x=DT_INT32) == (
        "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 3"
    )
    assert error('{"instances": [[1,2],[3,4],[[5,6]]]}', x=DT_INT32) == (
        "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting shape [2] but got: [1,2]"
    )
    assert error('{"instances": [1, [1]]}', x=DT_INT32) == (
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting shape [] but got: [1]"
    )
    body = """{"instances": [{"i": [[1,2],[3,4],[5,6]], "s": ["foo", "bar"]},
                             {"i": [[[7,8],[9,0],[1,2]]], "s": ["baz", "bat"]}]}"""
    assert error(body, i=DT_INT32, s=DT_STRING) == (
        "Failed to process element: 1 key: i of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting shape [3,2] but got: [1,3,2]"
    )


def test_a_name_repeated_in_an_instance_is_refused() -> None:
    assert error('{"instances": [{"x": 1, "x": 2}]}', x=DT_INT32) == "tensor parsing error: x"


def test_one_named_input_in_object_mode() -> None:
    tensors, _ = request('{"instances": [{"x": 1}, {"x": 2}]}', x=DT_INT32)
    assert dims(tensors["x"]) == [2] and list(tensors["x"].int_val) == [1, 2]


# --------------------------------------------------------------------------------------------
# 3.5 columnar format
# --------------------------------------------------------------------------------------------


def test_single_unnamed_tensor_columnar() -> None:  # [T]
    for body in (
        '{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}',
        '{"inputs": [[[1,2],[3,4],[5,6]]]}',
    ):
        tensors, form = request(body, int_tensor=DT_INT32)
        assert form is JsonFormat.COLUMNAR
        assert dims(tensors["int_tensor"]) == [1, 3, 2]
        assert list(tensors["int_tensor"].int_val) == [1, 2, 3, 4, 5, 6]


def test_multiple_named_tensors_columnar() -> None:  # [T]
    body = """{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo", "bar"],
                          "bin_tensor": {"b64": "aGVsbG8="}, "extra": "ignored"}}"""
    tensors, _ = request(body, int_tensor=DT_INT32, str_tensor=DT_STRING, bin_tensor=DT_STRING)
    assert set(tensors) == {"int_tensor", "str_tensor", "bin_tensor"}
    assert dims(tensors["str_tensor"]) == [2]
    assert dims(tensors["bin_tensor"]) == [] and tensors["bin_tensor"].HasField("tensor_shape")
    assert list(tensors["bin_tensor"].string_val) == [b"hello"]


def test_columnar_leading_dimensions_may_differ_and_scalars_are_rank_0() -> None:
    tensors, _ = request('{"inputs": {"a": [1, 2, 3], "b": 5}}', a=DT_INT32, b=DT_FLOAT)
    assert dims(tensors["a"]) == [3] and dims(tensors["b"]) == []
    assert list(tensors["b"].float_val) == [5.0]


def test_columnar_errors() -> None:
    multi = {"a": DT_INT32, "b": DT_INT32}
    assert error('{"inputs": [1]}', **multi) == (
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per tensorinfo_map"
    )
    assert error('{"inputs": {"b64": "AA=="}}', **multi) == (
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per tensorinfo_map"
    )
    assert error('{"inputs": {"a": 1}}', **multi) == "Missing named input: b in 'inputs' object."
    assert error('{"inputs": {"x": 1}}', x=DT_STRING) == (
        "JSON Value: 1 Type: Number is not of expected type: string"
    )


# --------------------------------------------------------------------------------------------
# limits
# --------------------------------------------------------------------------------------------


def test_limits() -> None:
    sigs = signatures(x=DT_INT32)
    tight = Limits(max_body_bytes=100, max_elements=4, max_depth=2, max_string_bytes=3)
    with pytest.raises(PayloadTooLarge):
        predict_request_from_json(b'{"instances": [' + b"1," * 100 + b"1]}", sigs, limits=tight)
    with pytest.raises(PayloadTooLarge):
        predict_request_from_json('{"inputs": [1, 2, 3, 4, 5]}', sigs, limits=tight)
    with pytest.raises(PayloadTooLarge):
        predict_request_from_json('{"instances": [[1, 2], [3, 4], [5, 6]]}', sigs, limits=tight)
    with pytest.raises(BadRequest) as info:
        predict_request_from_json('{"inputs": [[[1]]]}', sigs, limits=tight)
    assert "more than the limit of 2" in info.value.message
    with pytest.raises(PayloadTooLarge):
        predict_request_from_json('{"inputs": ["abcd"]}', signatures(x=DT_STRING), limits=tight)
    predict_request_from_json('{"inputs": [[1, 2], [3, 4]]}', sigs, limits=tight)


# --------------------------------------------------------------------------------------------
# 6. responses
# --------------------------------------------------------------------------------------------


def proto(text_dims: list[int], dtype: int, **fields: list[Any]) -> TensorProto:
    tensor = TensorProto(dtype=dtype, **fields)
    for d in text_dims:
        tensor.tensor_shape.dim.add(size=d)
    return tensor


def respond(outputs: dict[str, TensorProto], form: JsonFormat | str, strict: bool = False) -> str:
    return predict_response_to_json(outputs, form, strict=strict).decode("utf-8", "surrogateescape")


def test_single_tensor_row_and_columnar() -> None:  # [T] FromJsonSingleTensor
    outputs = {
        "int_tensor": proto([2, 3, 2], DT_INT32, int_val=[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2])
    }
    assert respond(outputs, JsonFormat.ROW) == (
        '{\n    "predictions": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]\n    ]\n}'
    )
    text = respond(outputs, JsonFormat.COLUMNAR)
    assert json.loads(text) == {"outputs": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]}
    assert text.startswith('{\n    "outputs": [\n        [\n            [\n                1,\n')


def test_single_scalar_tensor() -> None:  # [T] FromJsonSingleScalarTensor
    outputs = {"int_tensor": proto([5], DT_INT32, int_val=[1, 2, 3, 4, 5])}
    assert json.loads(respond(outputs, JsonFormat.ROW)) == {"predictions": [1, 2, 3, 4, 5]}
    assert json.loads(respond(outputs, "columnar")) == {"outputs": [1, 2, 3, 4, 5]}


def test_bytes_tensor() -> None:  # [T] FromJsonSingleBytesTensor
    outputs = {
        "str_tensor_bytes": proto(
            [2, 2], DT_STRING, string_val=[b"hello", b"world", b"tf", b"serving"]
        )
    }
    assert json.loads(respond(outputs, JsonFormat.ROW)) == {
        "predictions": [
            [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
            [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
        ]
    }
    assert respond(outputs, JsonFormat.ROW) == (
        '{\n    "predictions": [[{\n                "b64": "aGVsbG8="\n            }, {\n'
        '                "b64": "d29ybGQ="\n            }], [{\n                "b64": "dGY="\n'
        '            }, {\n                "b64": "c2VydmluZw=="\n            }]\n    ]\n}'
    )


def test_six_digit_float_formatting() -> None:  # [T] FromJsonSingleFloatTensorSixDigitPrecision
    outputs = {
        "float_tensor": proto(
            [2, 3], DT_FLOAT, float_val=[9000000, 999999, 0.5, 0.0003, 0.00003, 555557.5]
        )
    }
    assert respond(outputs, JsonFormat.ROW) == (
        '{\n    "predictions": [[9e+06, 999999.0, 0.5], [0.0003, 3e-05, 555557.5]\n    ]\n}'
    )


def test_non_finite_floats() -> None:  # [T] FromJsonSingleFloatTensorNonFinite
    outputs = {
        "float_tensor": proto([2, 2], DT_FLOAT, float_val=[math.nan, math.inf, 3, -math.inf])
    }
    assert respond(outputs, JsonFormat.ROW) == (
        '{\n    "predictions": [[NaN, Infinity], [3.0, -Infinity]\n    ]\n}'
    )
    assert respond(outputs, JsonFormat.ROW, strict=True) == (
        '{\n    "predictions": [[null, null], [3.0, null]\n    ]\n}'
    )
    assert json.loads(respond(outputs, JsonFormat.COLUMNAR, strict=True)) == {
        "outputs": [[None, None], [3.0, None]]
    }


@pytest.mark.parametrize(
    ("value", "dtype", "text"),
    [
        (3.0, DT_FLOAT, "3.0"),
        (0.2, DT_FLOAT, "0.2"),
        (-0.0, DT_FLOAT, "-0.0"),
        (0.1 + 0.2, DT_DOUBLE, "0.30000000000000004"),
        (0.1, DT_FLOAT, "0.1"),
        (1 / 3, DT_FLOAT, "0.333333343"),
        (1 / 3, DT_DOUBLE, "0.33333333333333331"),
        (123456789.0, DT_FLOAT, "123456792.0"),
        (1e10, DT_DOUBLE, "1e+10"),
        (1e-10, DT_FLOAT, "1e-10"),
        (1.5e-45, DT_FLOAT, "1.4013e-45"),  # six digits read back as the same denormal
        (3.4028234663852886e38, DT_FLOAT, "3.40282347e+38"),
        (100000.0, DT_FLOAT, "100000.0"),
        (1000000.0, DT_FLOAT, "1e+06"),
        (1234567.0, DT_FLOAT, "1234567.0"),
    ],
)
def test_decimal_texts(value: float, dtype: int, text: str) -> None:
    field = "float_val" if dtype == DT_FLOAT else "double_val"
    outputs = {"x": proto([], dtype, **{field: [value]})}
    assert respond(outputs, JsonFormat.COLUMNAR) == '{\n    "outputs": ' + text + "\n}"


def test_integers_bools_and_strings() -> None:
    outputs = {
        "a": proto([2], DT_INT64, int64_val=[2**53 + 1, -(2**63)]),
        "b": proto([2], DT_UINT64, uint64_val=[2**64 - 1, 0]),
        "c": proto([2], DT_BOOL, bool_val=[True, False]),
        "d": proto([2], DT_STRING, string_val=[b'q"\\/\x01\n\x7f', "é".encode() + b"\xff"]),
        "e": proto([2], DT_UINT8, int_val=[255, 0]),
        "f": proto([2], DT_UINT32, uint32_val=[4294967295, 1]),
    }
    text = predict_response_to_json(outputs, JsonFormat.ROW)
    assert b'"a": 9007199254740993' in text and b'"a": -9223372036854775808' in text
    assert b'"b": 18446744073709551615' in text
    assert b'"c": true' in text and b'"c": false' in text
    assert b'"d": "q\\"\\\\/\\u0001\\n\x7f"' in text
    assert '"d": "é'.encode() + b'\xff"' in text  # raw bytes, as TF Serving writes them
    assert b'"e": 255' in text and b'"f": 4294967295' in text
    strict = predict_response_to_json(outputs, JsonFormat.ROW, strict=True)
    assert '"d": "é\ufffd"'.encode() in strict


def test_multiple_named_tensors_response() -> None:  # [T] FromJsonMultipleNamedTensors
    outputs = {
        "int_tensor": proto([2, 3, 2], DT_INT32, int_val=[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]),
        "str_tensor": proto([2, 2], DT_STRING, string_val=[b"foo", b"bar", b"baz", b"bat"]),
        "float_tensor": proto([2, 1], DT_FLOAT, float_val=[1.0, 2.0]),
        "double_scalar_tensor": proto([2], DT_DOUBLE, double_val=[8.0, 9.0]),
        "str_tensor_bytes": proto(
            [2, 2], DT_STRING, string_val=[b"hello", b"world", b"tf", b"serving"]
        ),
    }
    assert json.loads(respond(outputs, JsonFormat.ROW)) == {
        "predictions": [
            {
                "double_scalar_tensor": 8.0,
                "float_tensor": [1.0],
                "int_tensor": [[1, 2], [3, 4], [5, 6]],
                "str_tensor": ["foo", "bar"],
                "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
            },
            {
                "double_scalar_tensor": 9.0,
                "float_tensor": [2.0],
                "int_tensor": [[7, 8], [9, 0], [1, 2]],
                "str_tensor": ["baz", "bat"],
                "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
            },
        ]
    }
    assert json.loads(respond(outputs, JsonFormat.COLUMNAR)) == {
        "outputs": {
            "double_scalar_tensor": [8.0, 9.0],
            "float_tensor": [[1.0], [2.0]],
            "int_tensor": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
            "str_tensor": [["foo", "bar"], ["baz", "bat"]],
            "str_tensor_bytes": [
                [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
            ],
        }
    }


def test_row_layout_with_several_outputs_is_tf_servings() -> None:
    outputs = {
        "a": proto([2], DT_INT32, int_val=[1, 2]),
        "b": proto([2, 1], DT_FLOAT, float_val=[0.5, 1]),
    }
    assert respond(outputs, JsonFormat.ROW) == (
        '{\n    "predictions": [\n        {\n            "a": 1,\n            "b": [0.5]\n'
        '        },\n        {\n            "a": 2,\n            "b": [1.0]\n        }\n    ]\n}'
    )
    assert respond(outputs, JsonFormat.COLUMNAR) == (
        '{\n    "outputs": {\n        "a": [\n            1,\n            2\n        ],\n'
        '        "b": [\n            [\n                0.5\n            ],\n            [\n'
        "                1.0\n            ]\n        ]\n    }\n}"
    )


def test_response_errors() -> None:
    with pytest.raises(BadRequest, match=r"^Cannot convert empty tensor map to JSON$"):  # [T]
        predict_response_to_json({}, JsonFormat.ROW)
    with pytest.raises(BadRequest, match=r"^Cannot convert empty tensor map to JSON$"):
        predict_response_to_json(PredictResponse(), JsonFormat.COLUMNAR)
    with pytest.raises(BadRequest, match=r"^Invalid request format$"):
        predict_response_to_json({"a": proto([1], DT_INT32, int_val=[1])}, "kInvalid")
    with pytest.raises(BadRequest) as info:  # [T]
        predict_response_to_json({"tensor": proto([], DT_INT32, int_val=[1])}, JsonFormat.ROW)
    assert info.value.message == "Tensor name: tensor has no shape information "
    with pytest.raises(BadRequest) as info:  # [T]
        predict_response_to_json(
            {
                "int_tensor": proto([2, 3], DT_INT32, int_val=[1] * 6),
                "str_tensor": proto([1, 3], DT_STRING, string_val=[b"a"] * 3),
            },
            JsonFormat.ROW,
        )
    assert (
        info.value.message == "Tensor name: str_tensor has inconsistent batch size: 1 expecting: 2"
    )
    with pytest.raises(BadRequest) as info:  # [T]
        predict_response_to_json(
            {"tensor": proto([2], DT_COMPLEX64, scomplex_val=[1, 2, 3, 4])}, JsonFormat.ROW
        )
    assert info.value.message == "Failed to write JSON value for tensor type: complex64"
    for dtype, name in ((DT_HALF, "half"), (DT_UINT16, "uint16")):
        with pytest.raises(BadRequest, match=f"tensor type: {name}$"):
            predict_response_to_json({"t": proto([1], dtype, int_val=[1])}, JsonFormat.COLUMNAR)


def test_columnar_batches_may_differ_and_scalars_are_bare() -> None:
    outputs = {"a": proto([2], DT_INT32, int_val=[1, 2]), "b": proto([], DT_FLOAT, float_val=[0.5])}
    assert json.loads(respond(outputs, JsonFormat.COLUMNAR)) == {"outputs": {"a": [1, 2], "b": 0.5}}
    with pytest.raises(BadRequest, match="no shape information"):
        respond(outputs, JsonFormat.ROW)


def test_zero_batch() -> None:  # [T] FromJsonSingleZeroBatchTensor / MultipleZeroBatchTensors
    outputs = {"int_tensor": proto([0, 2], DT_INT32)}
    assert respond(outputs, JsonFormat.ROW) == '{\n    "predictions": []\n}'
    outputs["float_tensor"] = proto([0, 7, 3], DT_FLOAT)
    assert json.loads(respond(outputs, JsonFormat.ROW)) == {"predictions": []}
    outputs["one"] = proto([1], DT_FLOAT, float_val=[1])
    with pytest.raises(BadRequest, match="inconsistent batch size"):
        respond(outputs, JsonFormat.ROW)
    # Nothing is written for an empty tensor, so even a dtype JSON cannot carry passes.
    assert respond({"h": proto([0], DT_HALF)}, JsonFormat.COLUMNAR) == '{\n    "outputs": []\n}'


def test_tensor_content_and_tensorflow_messages_are_read() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    ours = to_tensor_proto(array)
    assert ours.tensor_content  # not TF Serving's layout: read anyway
    assert json.loads(respond({"x": ours}, JsonFormat.ROW)) == {"predictions": array.tolist()}
    tf_tensor_pb2 = pytest.importorskip("tensorflow.core.framework.tensor_pb2")
    theirs = tf_tensor_pb2.TensorProto.FromString(ours.SerializeToString())
    assert respond({"x": theirs}, JsonFormat.ROW) == respond({"x": ours}, JsonFormat.ROW)


def test_predict_response_message() -> None:
    response = PredictResponse()
    response.outputs["y"].CopyFrom(proto([2], DT_FLOAT, float_val=[1.5, 2]))
    assert json.loads(predict_response_to_json(response, JsonFormat.ROW)) == {
        "predictions": [1.5, 2.0]
    }


def test_classification_and_regression_results() -> None:  # [T]
    result = ClassificationResult()
    first = result.classifications.add()
    first.classes.add(label="car", score=0.2)
    first.classes.add(label="bike", score=0.8)
    second = result.classifications.add()
    second.classes.add(label='"x"', score=math.nan)
    assert classification_result_to_json(result) == (
        b'{\n    "results": [[["car", 0.2], ["bike", 0.8]], [["\\"x\\"", NaN]]\n    ]\n}'
    )
    assert json.loads(classification_result_to_json(result, strict=True))["results"][1] == [
        ['"x"', None]
    ]
    regression = RegressionResult()
    for value in (1.5, 2.0, math.inf):
        regression.regressions.add(value=value)
    assert regression_result_to_json(regression) == b'{\n    "results": [1.5, 2.0, Infinity]\n}'
    assert (
        regression_result_to_json(regression, strict=True)
        == b'{\n    "results": [1.5, 2.0, null]\n}'
    )
    with pytest.raises(BadRequest, match=r"^Cannot convert empty ClassificationResults to JSON$"):
        classification_result_to_json(ClassificationResult())
    with pytest.raises(BadRequest, match=r"^Cannot convert empty RegressionResults to JSON$"):
        regression_result_to_json(RegressionResult())
