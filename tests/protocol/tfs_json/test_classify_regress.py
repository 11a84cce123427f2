"""Classify and regress bodies in TF Serving's REST JSON (spec section 5)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tfio_handlers.errors import BadRequest
from tfio_handlers.protocol.tfs_json import (
    classify_request_from_json,
    regress_request_from_json,
)
from tfio_handlers.protos import (
    ClassificationRequest,
    ModelSpec,
    RegressionRequest,
    SignatureDef,
)

CONVERTERS = [classify_request_from_json, regress_request_from_json]


def features(example: Any) -> dict[str, tuple[str | None, list[Any]]]:
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return out


@pytest.mark.parametrize("convert", CONVERTERS)
def test_request_without_context(convert: Any) -> None:  # [T] RequestNoContext
    request = convert(
        """{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},
                         {"names": ["baz"], "ratings": 6.0}]}"""
    )
    assert isinstance(request, (ClassificationRequest, RegressionRequest))
    assert request.input.WhichOneof("kind") == "example_list"
    first, second = request.input.example_list.examples
    assert features(first) == {
        "names": ("bytes_list", [b"foo", b"bar"]),
        "ratings": ("float_list", [8.0, 9.0]),
        "age": ("int64_list", [20]),
    }
    assert features(second) == {"names": ("bytes_list", [b"baz"]), "ratings": ("float_list", [6.0])}


@pytest.mark.parametrize("convert", CONVERTERS)
def test_request_with_context_and_signature(convert: Any) -> None:  # [T]
    request = convert(
        """{"signature_name": "custom_signture",
            "context": {"query": "pizza", "location": ["sfo"]},
            "examples": [
              {"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN, Infinity], "age": 20},
              {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0, "intboolmix": [1, true, false]},
              {"names": "bar", "ratings": -Infinity}]}"""
    )
    assert request.model_spec.signature_name == "custom_signture"
    assert request.input.WhichOneof("kind") == "example_list_with_context"
    with_context = request.input.example_list_with_context
    assert features(with_context.context) == {
        "query": ("bytes_list", [b"pizza"]),
        "location": ("bytes_list", [b"sfo"]),
    }
    first, second, third = with_context.examples
    ratings = features(first)["ratings"][1]
    assert ratings[:2] == [8.0, 9.0] and math.isnan(ratings[2]) and ratings[3] == math.inf
    assert features(second)["names"] == ("bytes_list", [b"baz", b"hello"])
    assert features(second)["intboolmix"] == ("int64_list", [1, 1, 0])
    assert features(third) == {
        "names": ("bytes_list", [b"bar"]),
        "ratings": ("float_list", [-math.inf]),
    }


def error(body: str, convert: Any = classify_request_from_json, **kwargs: Any) -> str:
    with pytest.raises(BadRequest) as info:
        convert(body, **kwargs)
    return info.value.message


@pytest.mark.parametrize("convert", CONVERTERS)
def test_request_errors(convert: Any) -> None:
    assert error('{"signature_name": 1, "examples": [{}]}', convert).endswith(
        "not formatted correctly. 'signature_name' key must be a string value."
    )  # [T]
    assert error('{"context": [1], "examples": [{}]}', convert) == (
        "Example must be JSON object but got JSON Array"
    )  # [T]
    # The message says "classify" for regress too, as TF Serving's does.
    assert error('{"example": [{}]}', convert) == (
        "JSON Value: {\n    \"example\": [{}]\n} When method is classify, key 'examples' is "
        "expected and was not found"
    )
    assert error('{"examples": {}}', convert) == (
        "JSON Value: {\n    \"examples\": {}\n} Expecting 'examples' value to be an list/array"
    )  # [T]
    assert error('{"examples": []}', convert) == (
        "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array"
    )
    assert error('{"examples": [{}, 1]}', convert) == (
        "Example must be JSON object but got JSON Number"
    )  # [T]
    assert error('{"examples": [{}, "x"]}', convert) == (
        "Example must be JSON object but got JSON String"
    )
    assert error("[]", convert) == "JSON Value: [] Is not object"
    assert error("", convert) == "JSON Parse error: The document is empty"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("null", "Feature: names has element with unexpected JSON type: Null"),  # [T]
        ('["a", null]', "Feature: names has element with unexpected JSON type: Null"),
        ('[1, "a"]', "Unexpected element type in feature: names expecting type: int64"),  # [T]
        ('["a", 1]', "Unexpected element type in feature: names expecting type: bytes"),
        ("[1.5, 1]", "Unexpected element type in feature: names expecting type: float"),
        ("[10, 10.0]", "Unexpected element type in feature: names expecting type: int64"),
        (
            '[1.5, {"b64": "AA=="}]',
            "Unexpected element type in feature: names expecting type: float",
        ),
        ("[true, 1.5]", "Unexpected element type in feature: names expecting type: int64"),
        ('{"a": 1}', "Feature: names has element with unexpected JSON type: Object"),  # [T]
        ('[{"b64": 1}]', "Feature: names has element with unexpected JSON type: Object"),
        ("[[1]]", "Feature: names has element with unexpected JSON type: Array"),  # [T]
        ("18446744073709551615", "Feature: names has uint64_t element. Only int64_t is supported."),
        (
            "[1, 9223372036854775808]",
            "Feature: names has uint64_t element. Only int64_t is supported.",
        ),
        ('{"b64": "A"}', "Unable to base64 decode"),
    ],
)
def test_feature_errors(value: str, message: str) -> None:
    assert error(f'{{"examples": [{{"names": {value}}}]}}') == message


def test_feature_kinds() -> None:
    request = classify_request_from_json(
        """{"examples": [{"s": "x", "b": {"b64": "aGk="}, "t": true, "f": false,
            "i": -9223372036854775808, "d": 1e2, "big": 18446744073709551616, "nan": NaN,
            "empty": [], "mixed": [true, 2, false], "ff": [1.5, 2.5]}]}"""
    )
    got = features(request.input.example_list.examples[0])
    assert got["s"] == ("bytes_list", [b"x"])
    assert got["b"] == ("bytes_list", [b"hi"])
    assert got["t"] == ("int64_list", [1]) and got["f"] == ("int64_list", [0])
    assert got["i"] == ("int64_list", [-(2**63)])
    assert got["d"] == ("float_list", [100.0])
    assert got["big"] == ("float_list", [float(2**64)])  # beyond uint64: a double
    assert math.isnan(got["nan"][1][0])
    assert got["empty"] == (None, [])  # a feature with no kind
    assert got["mixed"] == ("int64_list", [1, 2, 0])
    assert got["ff"] == ("float_list", [1.5, 2.5])


def test_repeated_feature_names_keep_the_later() -> None:
    request = classify_request_from_json('{"examples": [{"x": 1, "x": [2.5, 3.5]}]}')
    assert features(request.input.example_list.examples[0]) == {"x": ("float_list", [2.5, 3.5])}
    # Each is still converted, so an error in the earlier one is reported.
    assert error('{"examples": [{"x": null, "x": 1}]}') == (
        "Feature: x has element with unexpected JSON type: Null"
    )


def test_floats_are_rounded_to_float32() -> None:
    request = classify_request_from_json('{"examples": [{"x": 0.1}]}')
    value = features(request.input.example_list.examples[0])["x"][1][0]
    assert value == pytest.approx(0.1) and value != 0.1


def test_other_keys_are_ignored_and_model_spec_is_copied() -> None:
    spec = ModelSpec(name="iris")
    spec.version.value = 3
    request = regress_request_from_json(
        '{"extra": [1, {}], "examples": [{"x": 1}]}', model_spec=spec
    )
    assert request.model_spec.name == "iris" and request.model_spec.version.value == 3
    assert len(request.input.example_list.examples) == 1


def test_signature_check() -> None:
    signatures = {"serving_default": SignatureDef(), "other": SignatureDef()}
    classify_request_from_json('{"examples": [{}]}', signatures)
    classify_request_from_json('{"signature_name": "other", "examples": [{}]}', signatures)
    assert error('{"signature_name": "nope", "examples": [{}]}', signatures=signatures) == (
        "No signature was found with the name: nope"
    )
    assert error(
        '{"examples": [{}]}', regress_request_from_json, signatures={"x": SignatureDef()}
    ) == ("No signature was found with the name: serving_default")
    # Body errors come first, as in TF Serving (the check is its servable's, after parsing).
    assert error('{"examples": []}', signatures={"x": SignatureDef()}).endswith(
        "'examples' value is an empty array"
    )


def test_context_features_and_example_features_both_kept() -> None:
    request = classify_request_from_json(
        '{"context": {"q": "a"}, "examples": [{"q": "b"}, {"r": 1}]}'
    )
    with_context = request.input.example_list_with_context
    assert features(with_context.context) == {"q": ("bytes_list", [b"a"])}
    assert features(with_context.examples[0]) == {"q": ("bytes_list", [b"b"])}
