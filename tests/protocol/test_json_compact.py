"""The standard-library JSON writer gives orjson's very bytes, and float texts that read back exactly.

The tests without orjson run in a core-only venv (they pin the texts); those that compare with orjson
need the ``fast`` extra and skip without it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers.protocol._json_compact import TOKENS, dumps, float_texts, write

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)


needs_orjson = pytest.mark.skipif(
    importlib.util.find_spec("orjson") is None, reason="compares with orjson (the fast extra)"
)


def fast(value: Any) -> bytes:
    """What orjson writes (the fast path)."""
    import orjson

    data: bytes = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    return data


# -- the texts, with the standard library alone --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (np.float32(0.1), b"0.1"),
        (np.float32(F32_MAX), b"3.4028235e+38"),
        (np.float32(-F32_MAX), b"-3.4028235e+38"),
        (np.float32(F32_TINY), b"1e-45"),
        (np.float32(1.1754944e-38), b"1.1754944e-38"),
        (np.float32(-0.0), b"-0.0"),
        (np.float32(0.0), b"0.0"),
        (np.float32(16777216.0), b"16777216.0"),
        (np.float32(1e-6), b"0.000001"),
        (np.float32(1.2345679e-7), b"1.2345679e-7"),
        (np.float32(1e12), b"1000000000000.0"),
        (np.float32(1e13), b"1e+13"),
        (np.float16(0.1), b"0.099975586"),
        (0.1, b"0.1"),
        (1e-5, b"0.00001"),
        (1e-6, b"1e-6"),
        (1e15, b"1000000000000000.0"),
        (1e16, b"1e+16"),
        (5e-324, b"5e-324"),
        (np.float64(1.7976931348623157e308), b"1.7976931348623157e+308"),
        (np.float32(np.nan), b"null"),
        (-np.inf, b"null"),
        (np.int64(-(2**63)), b"-9223372036854775808"),
        (np.uint64(2**64 - 1), b"18446744073709551615"),
        (np.bool_(True), b"true"),
    ],
)
def test_scalar_texts(value: Any, text: bytes) -> None:
    assert write(value) == text


def test_documents_are_compact_utf8_with_numpy_inside() -> None:
    doc = {
        "a": [np.float32(0.1), None, True, 1, 'é\n\x00"\\'],
        "b": np.array([[0.1, 0.2], [0.3, F32_MAX]], np.float32),
        "c": np.zeros((2, 0, 3)),
        "d": (np.array([1, 2], np.uint8), np.array([True, False])),
    }
    assert (
        write(doc)
        == (
            '{"a":[0.1,null,true,1,"é\\n\\u0000\\"\\\\"],"b":[[0.1,0.2],[0.3,3.4028235e+38]],'
            '"c":[[],[]],"d":[[1,2],[true,false]]}'
        ).encode()
    )


def test_non_finite_tokens_and_default() -> None:
    values = np.array([np.nan, np.inf, -np.inf, 0.5], np.float32)
    assert write(values, non_finite=TOKENS) == b"[NaN,Infinity,-Infinity,0.5]"
    assert float_texts(values, ("nan", "inf", "-inf")) == ["nan", "inf", "-inf", "0.5"]
    assert write(object(), default=lambda v: [np.float32(0.1)]) == b"[0.1]"
    with pytest.raises(TypeError):
        write(object())
    with pytest.raises(TypeError):
        write({1: 2})
    with pytest.raises(TypeError):
        write(np.array([b"x"], object))
    with pytest.raises(TypeError):
        write("\ud800")


def test_dumps_without_orjson_is_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)
    assert dumps({"s": np.float32(0.1)}) == b'{"s":0.1}'


@settings(max_examples=300, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_text_reads_back_to_the_same_bits(value: float) -> None:
    single = np.float32(value)
    text = write(single)
    back = np.float32(json.loads(text))
    assert back.tobytes() == single.tobytes()
    # No longer than the float64 text of the same value, and never the widened double's digits.
    assert len(text) <= len(write(float(single)))


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float64_text_reads_back_to_the_same_bits(value: float) -> None:
    text = write(value)
    assert np.float64(json.loads(text)).tobytes() == np.float64(value).tobytes()


# -- the same bytes as orjson ------------------------------------------------------------------

EDGES32 = [F32_MAX, -F32_MAX, F32_TINY, -F32_TINY, 1.1754944e-38, -0.0, 0.0, 0.1, 1e-6, 1e13]

scalars = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(np.float32),
    st.floats(width=16, allow_nan=False, allow_infinity=False).map(np.float16),
    st.integers(-(2**63), 2**64 - 1),
    st.booleans(),
    st.none(),
    st.text(),
)
arrays = st.sampled_from(["f2", "f4", "f8", "i1", "i8", "u8", "?"]).flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
        elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False),
    )
)
documents = st.recursive(
    scalars | arrays,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(documents)
def test_writer_gives_orjsons_bytes(document: Any) -> None:
    assert write(document) == fast(document)


@needs_orjson
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_edge_values_give_orjsons_bytes(dtype: type) -> None:
    with np.errstate(over="ignore"):
        values = np.array([*EDGES32, 1e-300, 1e300, 5e-324], np.float64).astype(dtype)
    values = values[np.isfinite(values)]
    assert write(values) == fast(values)
    assert [write(v) for v in values] == [fast(v) for v in values]
    assert write(np.array([np.nan, np.inf], dtype)) == fast(np.array([np.nan, np.inf], dtype))


@needs_orjson
@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_float32_bit_patterns_give_orjsons_bytes(seed: int) -> None:
    bits = np.random.default_rng(seed).integers(0, 2**32, 2000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    assert write(values) == fast(values)
