"""TF Serving REST JSON parsing: RapidJSON 1.1.0's behaviour under TF Serving's flags (spec 3.1).

The expected messages and offsets below were produced by RapidJSON 1.1.0 itself (parsing with
``kParseIterativeFlag | kParseNanAndInfFlag | kParseStopWhenDoneFlag`` over a ``MemoryStream``, and
printing with TF Serving's ``JsonValueToDebugString``), so they pin the exact behaviour.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfio_handlers.errors import BadRequest, PayloadTooLarge
from tfio_handlers.protocol.tfs_json import parse as _json_parse
from tfio_handlers.protocol.tfs_json import predict_request_from_json
from tfio_handlers.protocol.tfs_json.parse import Decline, parse_body, parse_stdlib
from tfio_handlers.protocol.tfs_json.rapidjson_reader import JsonDepthError, JsonObject, parse
from tfio_handlers.protocol.tfs_json.rapidjson_writer import debug_string, dtoa
from tfio_handlers.protos import DT_INT32, SignatureDef
from tfio_handlers.tensors import to_ndarray


def _signatures(dtype: int = DT_INT32, name: str = "x") -> dict[str, SignatureDef]:
    signature = SignatureDef()
    signature.inputs[name].dtype = dtype
    return {"serving_default": signature}


def _error(body: bytes) -> str:
    with pytest.raises(BadRequest) as info:
        predict_request_from_json(body, _signatures())
    return info.value.message


# (body, RapidJSON's message, offset) — every one checked against RapidJSON 1.1.0.
PARSE_ERRORS = [
    (b" ", "The document is empty.", 1),
    (b"instances = [1, 2]", "Invalid value.", 0),
    (b"{", "Missing a name for object member.", 1),
    (b"[", "Invalid value.", 1),
    (b'{"a"', "Missing a colon after a name of object member.", 4),
    (b'{"a":', "Invalid value.", 5),
    (b'{"a":1', "Missing a comma or '}' after an object member.", 6),
    (b'{"a":1,', "Missing a name for object member.", 7),
    (b'{"a":1,}', "Missing a name for object member.", 7),
    (b"[1,]", "Invalid value.", 3),
    (b"[1 2]", "Missing a comma or ']' after an array element.", 3),
    (b'{"a" 1}', "Missing a colon after a name of object member.", 5),
    (b"{1:2}", "Missing a name for object member.", 1),
    (b"]", "The document is empty.", 0),
    (b"}", "The document is empty.", 0),
    (b",", "The document is empty.", 0),
    (b":", "The document is empty.", 0),
    (b'"abc', "Missing a closing quotation mark in string.", 4),
    (b'"\\x"', "Invalid escape character in string.", 1),
    (b'"\\u12"', "Incorrect hex digit after \\u escape in string.", 1),
    (b'"\\u12G4"', "Incorrect hex digit after \\u escape in string.", 1),
    (b'"\\ud800"', "The surrogate pair in string is invalid.", 1),
    (b'"\\ud800\\u0041"', "The surrogate pair in string is invalid.", 1),
    (b'"\\ud800x"', "The surrogate pair in string is invalid.", 1),
    (b'"a\x01b"', "Invalid escape character in string.", 2),
    (b'"a\x00b"', "Missing a closing quotation mark in string.", 2),
    (b"tru", "Invalid value.", 3),
    (b"nul", "Invalid value.", 3),
    (b"fals", "Invalid value.", 4),
    (b"-", "Invalid value.", 1),
    (b"1.", "Miss fraction part in number.", 2),
    (b"1.e5", "Miss fraction part in number.", 2),
    (b"1e", "Miss exponent in number.", 2),
    (b"1e+", "Miss exponent in number.", 3),
    (b"-x", "Invalid value.", 1),
    (b"x", "Invalid value.", 0),
    (b"Nan", "Invalid value.", 2),
    (b"Infin", "Invalid value.", 5),
    (b"1e309", "Number too big to be stored in double.", 0),
    (b"0e400", "Number too big to be stored in double.", 0),
    (b"-0.0e999", "Number too big to be stored in double.", 0),
    (b"[01]", "Missing a comma or ']' after an array element.", 2),
    (b"\xef\xbb\xbf", "The document is empty.", 3),
    (b"[1,\x002]", "Invalid value.", 3),
    (b'{"a":\x00}', "Invalid value.", 5),
    (b'{"instances": [0e400]}', "Number too big to be stored in double.", 15),
    (b'{"instances": [1, 1' + b"0" * 320 + b"]}", "Number too big to be stored in double.", 18),
]


def test_empty_body_has_tf_servings_own_wording() -> None:  # [T]
    assert _error(b"") == "JSON Parse error: The document is empty"


@pytest.mark.parametrize(("body", "message", "offset"), PARSE_ERRORS)
def test_parse_errors_match_rapidjson(body: bytes, message: str, offset: int) -> None:
    assert _error(body) == f"JSON Parse error: {message} at offset: {offset}"


@pytest.mark.parametrize(("body", "message", "offset"), PARSE_ERRORS)
def test_parse_errors_match_with_the_stdlib_fast_path(
    body: bytes, message: str, offset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_json_parse, "FAST_PARSERS", [parse_stdlib])
    assert _error(body) == f"JSON Parse error: {message} at offset: {offset}"


def _bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


# (body, value): documents RapidJSON accepts, and what it makes of them.
PARSE_VALUES: list[tuple[bytes, Any]] = [
    (b"NaN", "nan"),
    (b"-NaN", "nan"),
    (b"Inf", math.inf),
    (b"-Inf", -math.inf),
    (b"Infinity", math.inf),
    (b"-Infinity", -math.inf),
    (b"Infinityx", math.inf),  # anything after the root value is ignored
    (b"NInf", math.inf),  # RapidJSON's Consume chain falls through to "Inf"
    (b"NaInf", math.inf),
    (b"NaN.5", 0.5),  # ... and goes on to a fraction
    (b"-Inf.25", -0.25),
    (b"NaNe5", 0.0),
    (b"10e308", math.inf),  # within RapidJSON's exponent bound, overflows to infinity
    (b"0.001e310", 1e307),
    (b"1e-400", 0.0),
    (b"18446744073709551615", 18446744073709551615),
    (b"18446744073709551616", 1.8446744073709552e19),  # beyond uint64: a double
    (b"-9223372036854775808", -9223372036854775808),
    (b"-9223372036854775809", -9.223372036854776e18),
    (b"01", 0),
    (b"-01", 0),
    (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),
    (b"\xef{}", {}),  # each BOM byte is skipped on its own
    (b"\xbb\xbf[]", []),
    (b'{"a": 1} trailing garbage', {"a": 1}),
    (b"[1]\x00xyz", [1]),
    (b'  \t\n\r {"a" : [ 1 , 2 ] }  ', {"a": [1, 2]}),
    (b'{"a": "\xff\xfe"}', {"a": b"\xff\xfe"}),  # not UTF-8: kept as raw bytes
    (b'"\\udc00"', b"\xed\xb0\x80"),  # a lone low surrogate: its 3-byte form
    (b'"\\ud83d\\ude00"', "\U0001f600"),
    (b'"\\/\\b\\f\\n\\r\\t\\"\\\\"', '/\b\f\n\r\t"\\'),
    (b"[1.5, -0.0, 1e-7, 100]", [1.5, -0.0, 1e-07, 100]),
    (b"[true, false, null]", [True, False, None]),
]


def _same(a: Any, b: Any) -> bool:
    """Deep equality that tells ints from floats, -0.0 from 0.0, and NaN equals NaN."""
    if b == "nan":
        return isinstance(a, float) and math.isnan(a)
    if isinstance(b, float):
        return isinstance(a, float) and _bits(a) == _bits(b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("body", "expected"), PARSE_VALUES)
def test_values_match_rapidjson(body: bytes, expected: Any) -> None:
    assert _same(parse(body), expected)
    assert _same(parse_body(body), expected)


def test_integer_literal_or_double() -> None:
    document = parse_body(b"[1, 1.0, 1e2, -0, 4294967296, 1.5E+2]")
    assert [type(v) for v in document] == [int, float, float, int, int, float]


def test_repeated_names_are_all_kept_and_the_first_wins() -> None:
    document = parse_body(b'{"a": 1, "a": 2}')
    assert isinstance(document, JsonObject)
    assert list(document.items()) == [("a", 1), ("a", 2)]
    request, _ = predict_request_from_json(
        b'{"instances": [1], "instances": [2, 3]}', _signatures()
    )
    assert to_ndarray(request.inputs["x"]).tolist() == [1]
    message = _error(b'{"instances": [1], "inputs": [1], "inputs": 2}')
    assert '"inputs": [1],\n    "inputs": 2' in message


def test_colons_in_strings_do_not_hide_repeats() -> None:
    body = b'{"k": "a:b", "instances": [1], "instances": [2]}'
    request, _ = predict_request_from_json(body, _signatures())
    assert to_ndarray(request.inputs["x"]).tolist() == [1]


def test_deep_nesting_under_an_ignored_key_is_accepted() -> None:  # [T] 500,000 levels
    body = b'{"instances":[1], "nested":' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    request, _ = predict_request_from_json(body, _signatures())
    assert to_ndarray(request.inputs["x"]).tolist() == [1]
    objects = b'{"instances":[1], "n":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}"
    request, _ = predict_request_from_json(objects, _signatures())
    assert to_ndarray(request.inputs["x"]).tolist() == [1]


def test_deep_nesting_as_signature_name_is_quoted_up_to_256_bytes() -> None:  # [T]
    body = b'{"signature_name":' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    message = _error(body)
    assert message == (
        'JSON Value: {\n    "signature_name": '
        + "[" * (256 - len('{\n    "signature_name": '))
        + " not formatted correctly. 'signature_name' key must be a string value."
    )


def test_deep_nesting_as_an_input_value_is_refused_without_crashing() -> None:
    body = b'{"instances": ' + b"[" * 100_000 + b"1" + b"]" * 100_000 + b"}"
    message = _error(body)
    assert "more than the limit of 64" in message
    body = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "more than the limit of 64" in _error(body)


def test_nesting_beyond_the_document_limit_is_413() -> None:
    with pytest.raises(JsonDepthError):
        parse(b"[" * 11, max_depth=10)
    assert parse(b"[" * 10 + b"]" * 10, max_depth=10) is not None
    with pytest.raises(PayloadTooLarge):
        parse_body(b"[" * 11 + b"]" * 11, max_depth=10)


# JsonValueToDebugString: the document as TF Serving quotes it (checked against RapidJSON).
DEBUG_STRINGS = [
    (
        b'{"instances": [' + b", ".join(b'"%d"' % i for i in range(200)) + b'], "inputs": 1}',
        '{\n    "instances": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", '
        '"13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", '
        '"27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37", "38", "39", "40", '
        '"41"',
    ),
    (
        b'{"inputs": {"a": [1.5, 2.25e-9, 1e300, -7], "b": {"c": [true, null, "x\\ty\\u00e9"]}},'
        b' "instances": [{"k": "' + b"v" * 300 + b'"}]}',
        '{\n    "inputs": {\n        "a": [1.5, 2.25e-9, 1e300, -7],\n        "b": {\n'
        '            "c": [true, null, "x\\tyé"]\n        }\n    },\n    "instances": [{\n'
        '            "k": "' + "v" * 300 + '"',
    ),
    (b'{"x": [1, 2, NaN, 3], "y": 2}', '{\n    "x": [1, 2, '),  # NaN stops RapidJSON's writer
    (
        b'{"a": [1, {"b": null}], "c": {}, "d": []}',
        '{\n    "a": [1, {\n            "b": null\n        }],\n    "c": {},\n    "d": []\n}',
    ),
    (b'{"a": 1, "a": 2}', '{\n    "a": 1,\n    "a": 2\n}'),
    (b'"\\u0000\\u001f\\u007f/\\"\\\\"', '"\\u0000\\u001F\x7f/\\"\\\\"'),
    (
        b"[18446744073709551616, -9223372036854775809, 1e21, 1e22, 123456.789]",
        "[18446744073709553000.0, -9223372036854776000.0, 1e21, 1e22, 123456.789]",
    ),
]


@pytest.mark.parametrize(("body", "text"), DEBUG_STRINGS)
def test_debug_strings_match_rapidjson(body: bytes, text: str) -> None:
    assert debug_string(parse(body)) == text


def test_not_object_quotes_the_document() -> None:
    assert _error(b'"x"') == 'JSON Value: "x" Is not object'
    assert _error(b"[1, NaN, 2]") == "JSON Value: [1,  Is not object"
    assert _error(b"[1.0, 2]") == "JSON Value: [1.0, 2] Is not object"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (1e21, "1e21"),
        (1e20, "100000000000000000000.0"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (0.1, "0.1"),
        (123456.789, "123456.789"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e308"),
        (2.25e-9, "2.25e-9"),
    ],
)
def test_dtoa_matches_rapidjson(value: float, text: str) -> None:
    assert dtoa(value) == text


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_dtoa_round_trips(value: float) -> None:
    assert _bits(float(dtoa(value))) == _bits(value)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_documents)
def test_fast_and_exact_parsers_agree(document: Any) -> None:
    import json

    body = json.dumps(document).encode()
    assert _same(parse(body), document)
    assert _same(parse_body(body), document)
    try:
        fast = parse_stdlib(body)
    except Decline:  # it declines surrogate escapes; the exact reader takes those
        return
    assert _same(fast, document)


def test_a_long_string_goes_to_the_exact_reader_which_holds_twice_its_size() -> None:
    """orjson reserves many times a long string's size (750 MiB for 50 MB): bounded work says no."""
    import tracemalloc

    from tfio_handlers.protocol.tfs_json.parse import _holds_long_string, parse_body

    mib = 1024 * 1024
    long = b'{"instances": ["' + b"x" * (8 * mib) + b'"]}'
    numbers = b'{"instances": [' + b",".join([b"1.25"] * (2 * mib)) + b"]}"
    short = b'{"instances": [' + b",".join([b'"ab"'] * mib) + b"]}"
    mixed = short[:-2] + b', "' + b"y" * (5 * mib) + b'"]}'
    assert _holds_long_string(long) and _holds_long_string(mixed)
    assert not _holds_long_string(numbers) and not _holds_long_string(short)
    tracemalloc.start()
    try:
        document = parse_body(long)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert document == {"instances": ["x" * (8 * mib)]}
    assert peak < 3 * len(long)


def test_an_error_quoting_a_huge_string_does_not_copy_it() -> None:
    """TF Serving quotes a bad value whole; the answer's message is cut at 4,096 characters, so a
    50 MB string is not copied (twice) to build it."""
    import tracemalloc

    from tfio_handlers.protocol.tfs_json.rapidjson_writer import debug_string

    huge = "x" * (20 * 1024 * 1024)
    tracemalloc.start()
    try:
        text = debug_string([huge])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text.startswith('["xxx') and len(text) > 4096
    assert peak < 8 * 1024 * 1024
