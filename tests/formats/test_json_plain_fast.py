"""The simdjson fast path for plain JSON bodies (``[[0.1, 0.2], ...]`` on ``/invocations``).

The one rule: the JSON codec plus ``build_request`` give the same answer with the fast path as
without it (pysimdjson absent): the same array (dtype, shape, bytes) or the same error (class,
status, message). The property test draws nested lists of every kind of leaf the rule is about
(integers near and beyond 2**53 and 64 bits, -0.0, 1e308, subnormals, float32's edges, bools,
strings, nulls, ``NaN`` tokens), ragged ones, many spellings, and signatures of several dtypes,
and compares the two paths; it holds for any seed. The examples pin down what the fast path
answers and what it leaves to the exact path.
"""

from __future__ import annotations

import json
import math
from typing import Any
from unittest import mock

import numpy as np
import pytest
from codec_support import CLASSIFY, context, signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import Context
from tfio_handlers.errors import HTTPError
from tfio_handlers.formats.json import decode_json
from tfio_handlers.media import parse_media_type
from tfio_handlers.protocol.arrays import PredictArrays
from tfio_handlers.protocol.requests import build_request
from tfio_handlers.protocol.tfs_json import simd
from tfio_handlers.protos import (
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    ClassificationRequest,
    SignatureDef,
)

pytest.importorskip("simdjson")

JSON = parse_media_type("application/json")
FLOAT = signature({"x": (DT_FLOAT, None)})
DOUBLE = signature({"x": (DT_DOUBLE, None)})

Outcome = tuple[str, str, tuple[int, ...], bytes] | tuple[str, type, int, str]


def outcome(body: bytes, sig: SignatureDef | None, *, fast: bool, **limits: Any) -> Outcome:
    """What the codec and ``build_request`` make of ``body``: the only input's array, or the
    error; ``fast=False`` runs them as without pysimdjson."""
    ctx = (
        Context(
            settings=Settings(limits=Limits(**limits)),
            signature_defs={"serving_default": sig} if sig is not None else {},
        )
        if limits
        else context(sig)
    )
    patch = mock.patch.object(simd, "_simdjson", simd._module() if fast else None)
    try:
        with patch:
            request = build_request(decode_json(body, JSON, ctx), ctx)
    except HTTPError as exc:
        return ("error", type(exc), exc.status_code, exc.message)
    assert isinstance(request, PredictArrays)
    (array,) = request.inputs.values()
    return ("array", array.dtype.str, array.shape, array.tobytes())


def fast_array(body: bytes, sig: SignatureDef = FLOAT, **limits: Any) -> np.ndarray | None:
    """The fast path's own answer (``None``: it declined)."""
    return simd.decode_plain(body, sig, limits=Limits(**limits) if limits else None)


def agree(body: bytes, sig: SignatureDef | None = FLOAT, **limits: Any) -> Outcome:
    fast = outcome(body, sig, fast=True, **limits)
    exact = outcome(body, sig, fast=False, **limits)
    assert fast == exact, (body[:300], fast[:3], exact[:3])
    return exact


# -- what the fast path answers ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [FLOAT, DOUBLE], ids=["float", "double"])
@pytest.mark.parametrize(
    "body",
    [
        b"[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]",
        b"[6.4, 3.2, 4.5, 1.5]",  # one instance
        b"[[1, 2], [3, 4]]",  # integers become floats
        b"[[1, 2.5], [-3, 4e-3]]",
        b" [[[0.5]], [[1.5]]]\n",
        b"[[0.0, -0.0, -0, 5e-324, 1.4e-45, 1e15, -1e-400]]",
        b"[[9007199254740991, -9007199254740991, 16777217]]",  # 2**53 - 1 and 2**24 + 1
        b"[[0e5, 0E+99, 1.5e10]]",
    ],
)
def test_numeric_bodies_are_answered_as_the_exact_path(body: bytes, sig: SignatureDef) -> None:
    assert fast_array(body, sig) is not None
    kind, dtype, shape, _ = agree(body, sig)
    assert kind == "array"
    assert dtype == ("<f4" if sig is FLOAT else "<f8")
    assert shape == np.shape(json.loads(body)) or shape == (1, len(json.loads(body)))


def test_the_codec_returns_the_typed_array_only_to_build_request() -> None:
    ctx = context(FLOAT)
    value = decode_json(b"[[1.5, 2.5]]", JSON, ctx)
    assert isinstance(value, np.ndarray) and value.dtype == np.float32
    assert ctx.response_form == ctx.settings.json_response_style
    request = build_request(value, ctx)
    assert isinstance(request, PredictArrays)
    assert request.inputs["x"] is value  # no copy, no second cast


def test_a_big_body_uses_the_fast_path() -> None:
    array = np.random.default_rng(0).random((300, 784), dtype=np.float32)
    body = json.dumps(array.tolist()).encode()
    fast = fast_array(body)
    assert fast is not None and fast.tobytes() == array.tobytes()
    kind, dtype, shape, data = agree(body)
    assert (kind, dtype, shape, data) == ("array", "<f4", (300, 784), array.tobytes())


# -- what it leaves to the exact path ----------------------------------------------------------------

DECLINED = {
    "integer 2**53": b"[[9007199254740992, 1]]",
    "integer beyond 2**53": b"[[9007199254740993, 1]]",
    "integers beyond 2**53 only": b"[[36028797018963971]]",
    "negative integer beyond 2**53": b"[[-9007199254740993]]",
    "float beyond 2**53": b"[[1e20, 0.5]]",
    "beyond float32": b"[[1e308]]",
    "beyond int64": b"[[9223372036854775808, -1]]",
    "beyond 64 bits": b"[[18446744073709551616]]",
    "beyond double": b"[[1e400]]",
    "NaN": b"[[NaN, 1]]",
    "Infinity": b"[[1, -Infinity]]",
    "bool": b"[[true, 2.0]]",
    "bools": b"[[true, false]]",
    "string": b'[["1", 2]]',
    "null": b"[[null]]",
    "object": b'[{"x": 1}]',
    "ragged": b"[[1, 2], [3]]",
    "ragged deeper": b"[[[1, 2, 3], [4]], [[5, 6], [7, 8]]]",
    "number among rows": b"[[1, 2], 3]",
    "empty": b"[]",
    "empty rows": b"[[], []]",
    "zero with a big exponent": b"[[0e400, 1.5]]",
    "several values": b"[1, 2]\n[3, 4]\n",
    "trailing bytes": b"[1, 2] x",
    "not JSON": b"[1, 2",
    "leading zero": b"[01]",
    "scalar": b"1.5",
}


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declined_bodies_get_the_exact_paths_answer(name: str) -> None:
    body = DECLINED[name]
    assert fast_array(body) is None
    agree(body)
    agree(body, DOUBLE)


def test_values_beyond_2_53_would_round_differently() -> None:
    """Why integers beyond 2**53 are declined: numpy casts an int64 list to float32 once,
    simdjson's double rounds first, and the two differ."""
    value = 2**54 + 2**30 + 1  # just above a float32 midpoint; a double rounds it onto it
    body = f"[[{value}]]".encode()
    assert fast_array(body) is None
    kind, _, _, data = agree(body)
    assert kind == "array"
    assert np.frombuffer(data, np.float32)[0] == np.float32(2**54 + 2**31)
    assert np.float32(np.float64(value)) == np.float32(2**54)


def test_negative_zero_integer_is_positive_zero() -> None:
    """``-0`` is an integer literal: 0, so +0.0; ``-0.0`` keeps its sign, on both paths."""
    fast = fast_array(b"[[-0, -0.0]]")
    assert fast is not None
    assert np.signbit(fast).tolist() == [[False, True]]
    agree(b"[[-0, -0.0]]")
    agree(b"[[-0]]")


@pytest.mark.parametrize(
    "sig",
    [
        None,  # no signature: the dtype is inferred (float32 for floats, as TensorFlow does)
        signature({"x": (DT_INT32, None)}),
        signature({"x": (DT_INT64, None)}),
        signature({"x": (DT_STRING, None)}),
        signature({"a": (DT_FLOAT, None), "b": (DT_FLOAT, None)}),
    ],
    ids=["none", "int32", "int64", "string", "two inputs"],
)
def test_other_signatures_take_the_exact_path(sig: SignatureDef | None) -> None:
    body = b"[[1.0, 2.0], [3.0, 4.0]]"
    ctx = context(sig)
    value = decode_json(body, JSON, ctx)
    assert value == [[1.0, 2.0], [3.0, 4.0]]  # the list, as before
    agree(body, sig)
    if sig is None:
        assert outcome(body, None, fast=True)[1] == "<f4"


def test_classify_signatures_make_examples_from_the_list() -> None:
    sig = signature({"inputs": (DT_STRING, [-1])}, CLASSIFY, {"scores": DT_FLOAT})
    ctx = context(sig)
    value = decode_json(b"[[6, 3, 4, 1]]", JSON, ctx)
    assert value == [[6, 3, 4, 1]]
    assert isinstance(build_request(value, ctx), ClassificationRequest)


def test_limits_are_left_to_the_exact_path() -> None:
    body = b"[[[1.0]]]"
    assert fast_array(body) is not None
    assert fast_array(body, max_depth=2) is None
    assert agree(body, max_depth=2)[0] == "error"
    assert fast_array(b"[[1.0, 2.0, 3.0]]", max_elements=2) is None
    agree(b"[[1.0, 2.0, 3.0]]", max_elements=2)


def test_without_simdjson_nothing_is_answered() -> None:
    with mock.patch.object(simd, "_simdjson", None):
        assert simd.decode_plain(b"[[1.0]]", FLOAT) is None
        assert decode_json(b"[[1.0]]", JSON, context(FLOAT)) == [[1.0]]


# -- the property --------------------------------------------------------------------------------------

EDGES: list[Any] = [
    0,
    -0.0,
    0.0,
    1,
    -1,
    2**24 + 1,
    2**53,
    -(2**53),
    2**53 + 1,
    -(2**53) - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64 - 1,
    2**64,
    -(2**64),
    1e308,
    -1e308,
    1.7976931348623157e308,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.4e-45,
    3.4028234663852886e38,
    3.4028235677973366e38,
    3.5e38,
    1e20,
    0.1,
]
TOKENS = ["true", "false", "null", '"1"', '""', "NaN", "Infinity", "-Infinity", "{}", "0e400"]


class _Raw:
    """A leaf written as is (a token, a bool, a string)."""

    def __init__(self, text: str) -> None:
        self.text = text


leaf = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.floats(-1e-300, 1e-300),
    st.integers(-(2**54), 2**54),
    st.integers(-(2**66), 2**66),
    st.integers(-1000, 1000),
    st.sampled_from(EDGES),
)
rare = st.sampled_from(TOKENS).map(_Raw)


def _spell(draw: st.DrawFn, value: Any) -> str:
    """A JSON spelling of a leaf: integers as literals or exponent forms, floats in several."""
    if isinstance(value, _Raw):
        return value.text
    if isinstance(value, int):
        style = draw(st.integers(0, 4))
        if style == 0 and value and abs(value) < 10**15:
            return f"{value}.0"
        if style == 1 and value and abs(value) < 10**15:
            return f"{value}e0"
        return str(value)
    style = draw(st.integers(0, 3))
    if style == 0:
        return repr(value)
    if style == 1:
        return f"{value:.17e}"
    if style == 2:
        return f"{value:.6E}"
    text = f"{value:.25g}"
    return text if ("e" in text or "." in text) else repr(value)


@st.composite
def plain_bodies(draw: st.DrawFn) -> bytes:
    dims = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    count = math.prod(dims)
    with_rare = draw(st.integers(0, 4)) == 0
    leaves = draw(
        st.lists(
            st.one_of(leaf, rare) if with_rare else leaf,
            min_size=count,
            max_size=count,
        )
    )

    def nest(items: list[Any], shape: list[int]) -> Any:
        if len(shape) == 1:
            return list(items)
        step = len(items) // shape[0]
        return [nest(items[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]

    value = nest(leaves, dims)
    mutation = draw(st.sampled_from(["none", "none", "none", "drop", "wrap", "empty", "move"]))
    lists = _all_lists(value)
    target = draw(st.sampled_from(lists))
    index = draw(st.integers(0, len(target) - 1))
    if mutation == "drop" and len(value) + len(target) > 2:
        del target[index]
    elif mutation == "wrap":
        target[index] = [target[index]]
    elif mutation == "empty":
        target[index] = []
    elif mutation == "move" and len(lists) > 2:
        other = draw(st.sampled_from(lists))
        if other is not target and other:
            target.append(other.pop())
    separator = draw(st.sampled_from([",", ", ", " ,\n ", ",\t"]))
    text = _dump(draw, value, separator)
    return (
        draw(st.sampled_from(["", " ", "\n"])) + text + draw(st.sampled_from(["", "\n"]))
    ).encode()


def _all_lists(value: Any) -> list[list[Any]]:
    found = [value]
    for item in value:
        if isinstance(item, list):
            found.extend(_all_lists(item))
    return found


def _dump(draw: st.DrawFn, value: Any, separator: str) -> str:
    if isinstance(value, list):
        inner = separator.join(_dump(draw, item, separator) for item in value)
        return draw(st.sampled_from(["[{}]", "[ {} ]", "[\n{}\n]"])).format(inner)
    return _spell(draw, value)


SIGNATURES = {
    "float": FLOAT,
    "double": DOUBLE,
    "int64": signature({"x": (DT_INT64, None)}),
    "none": None,
}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=plain_bodies(), which=st.sampled_from(["float", "float", "double", "int64", "none"]))
def test_fast_and_exact_paths_agree(body: bytes, which: str) -> None:
    agree(body, SIGNATURES[which])
