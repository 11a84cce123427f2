"""Several JSON values in one ``application/json`` body: read as JSON lines, never truncated.

The codec's side of issue 14 (the pipeline's, with real models, is
``tests/adapters/test_invocations_records.py``): a plain body of several values decodes exactly as
the same bytes sent as ``application/jsonlines``; anything after a TF Serving request object is a
400; a body of one value is read as before. :func:`~tfio_handlers.protocol.tfs_json.parse.parse_first`
says where the first value ends, on the fast path and on the exact reader's.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from codec_support import CLASSIFY, context, signature
from hypothesis import given, settings
from hypothesis import strategies as st

from tfio_handlers.errors import BadRequest
from tfio_handlers.formats.json import decode_json
from tfio_handlers.formats.jsonlines import decode_jsonlines
from tfio_handlers.media import parse_media_type
from tfio_handlers.protocol.arrays import PredictArrays
from tfio_handlers.protocol.tfs_json.parse import parse_body, parse_first
from tfio_handlers.protos import DT_FLOAT, DT_STRING

JSON = parse_media_type("application/json")
JSON_LINES = parse_media_type("application/jsonlines")
X = signature({"x": (DT_FLOAT, None)})


def as_json(body: bytes, sig: Any = X) -> Any:
    return decode_json(body, JSON, context(sig))


def as_lines(body: bytes, sig: Any = X) -> Any:
    return decode_jsonlines(body, JSON_LINES, context(sig))


def same(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for key in a:
            same(a[key], b[key])
        return
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
        return
    assert a == b


# -- parse_first -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "value", "rest"),
    [
        (b"[1, 2]", [1, 2], b""),  # the fast parser read it whole
        (b' {"a": 1} \n', {"a": 1}, b""),
        (b"[1] [2]", [1], b"[2]"),  # the exact reader stops after the first value
        (b'{"x": [1.0]}\n{"x": [2.0]}\n', {"x": [1.0]}, b'{"x": [2.0]}'),
        (b"NaN\n1", None, b"1"),  # a token only the exact reader reads
        (b"1 2", 1, b"2"),
        (b"[1]\x00[2]", [1], b"\x00[2]"),
    ],
)
def test_parse_first_says_where_the_first_value_ends(body: bytes, value: Any, rest: bytes) -> None:
    got, end = parse_first(body)
    if value is not None:
        assert got == value
    assert body[end:].strip() == rest
    assert parse_body(body) == got or value is None  # parse_body is its first half


# -- several plain values are JSON lines ---------------------------------------------------------------


rows_of = st.integers(1, 4).flatmap(
    lambda k: st.lists(
        st.lists(st.floats(-1e6, 1e6, width=32), min_size=k, max_size=k), min_size=2, max_size=8
    )
)


@settings(max_examples=60, deadline=None)
@given(
    rows=rows_of,
    objects=st.booleans(),
    end=st.sampled_from(["\n", "\r\n", " \n", "\n\n"]),
    last=st.sampled_from(["", "\n"]),
)
def test_several_values_decode_as_json_lines(
    rows: list[list[float]], objects: bool, end: str, last: str
) -> None:
    values: list[Any] = [{"x": r} for r in rows] if objects else rows
    body = (end.join(json.dumps(v) for v in values) + last).encode()
    decoded = as_json(body)
    same(decoded, as_lines(body))
    batch = decoded["x"] if objects else decoded
    assert batch.shape == (len(rows), len(rows[0]))


def test_one_value_is_read_as_before() -> None:
    # A flat list is one instance: for a float input the simdjson fast path (when installed)
    # gives it typed already, the exact path the list; without a signature, always the list.
    assert np.asarray(as_json(b"[1.0, 2.0]\n")).tolist() == [[1.0, 2.0]]
    assert as_json(b"[1.0, 2.0]\n", None) == [[1.0, 2.0]]
    assert as_json(b'{"x": [1.0, 2.0]}\r\n') == {"x": [1.0, 2.0]}  # named, already batched


def test_several_values_for_a_classify_signature_are_one_example_each() -> None:
    sig = signature({"inputs": (DT_STRING, [-1])}, method=CLASSIFY)
    examples = as_json(b"[1.0, 2.0]\n[3.0, 4.0]\n[5.0, 6.0]", sig)
    assert examples == [{"inputs": [1.0, 2.0]}, {"inputs": [3.0, 4.0]}, {"inputs": [5.0, 6.0]}]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[1.0] [2.0]", "line 1, column 7: not valid JSON"),  # two values on one line
        (b"[1.0]X", "line 1, column 6: not valid JSON"),  # bytes that are not JSON after it
        (b'{\n "x": [1.0]\n}\n{\n "x": [2.0]\n}', "line 1, column 2: not valid JSON"),
        (b'[1.0]\n{"x": [2.0]}', "line 2: expected an instance (not an object), as on line 1"),
    ],
)
def test_several_values_that_are_not_json_lines_are_a_400(body: bytes, says: str) -> None:
    with pytest.raises(BadRequest) as caught:
        as_json(body)
    message = caught.value.message
    assert message.startswith(
        "The body holds more than one JSON value, read as JSON lines (one value a line, one "
        "record each): JSON lines: "
    ), message
    assert says in message


# -- a TF Serving request object is the body's only value --------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [1.0]}\n{"instances": [2.0]}',
        b'{"inputs": [1.0]} [2.0]',
        b'{"instances": [1.0]}X',
        b'{"instances": [1.0]}\n5',
        b'{"examples": [{"x": 1.0}]}\n{"examples": [{"x": 2.0}]}',
        # More than 64 braces: the scan by regular expression.
        json.dumps({"instances": [{"x": 1.0}] * 100}).encode() + b'\n{"instances": []}',
    ],
)
def test_anything_after_a_tf_serving_request_is_a_400(body: bytes) -> None:
    with pytest.raises(BadRequest, match=r"^The body holds more than a TF Serving request: the "):
        as_json(body)


@pytest.mark.parametrize(
    "body",
    [
        # A '}' followed by ',', ']' or '}' was taken for one inside the object: the second
        # request was dropped without a word (200, one prediction) on /invocations.
        b'{"instances": [1.0]},{"instances": [2.0]}',
        b'{"instances": [1.0]}\n,{"instances": [2.0]}',
        b'{"instances": [1.0]}, [2.0]',
        b'{"instances": [1.0]}]',
        b'{"instances": [1.0]} }',
        b'{"instances": [1.0]},',
        b'{"inputs": {"x": [1.0]}},{"inputs": {"x": [2.0]}}',
        b'{"examples": [{"x": 1.0}]},{"examples": [{"x": 2.0}]}',
        json.dumps({"instances": [{"x": 1.0}] * 100}).encode() + b',{"instances": []}',
        json.dumps({"instances": [{"x": 1.0}] * 3}).encode() + b"}}",
    ],
)
def test_a_tf_serving_request_followed_by_a_comma_or_bracket_is_a_400(body: bytes) -> None:
    with pytest.raises(BadRequest, match=r"^The body holds more than a TF Serving request: the "):
        as_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [1.0]}\n\r\n  ',
        b'{"instances": ["a}b", "}c", "} {"]}',  # braces inside strings are not the object's end
        json.dumps({"instances": [{"x": "}x"}] * 100}).encode(),
        json.dumps({"instances": [{"x": 1.0}] * 100}).encode(),
    ],
)
def test_a_tf_serving_request_alone_is_read(body: bytes) -> None:
    sig = signature({"x": (DT_STRING if b'"}' in body or b"a}" in body else DT_FLOAT, None)})
    assert isinstance(as_json(body, sig), PredictArrays)
