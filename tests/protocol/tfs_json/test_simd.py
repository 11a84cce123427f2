"""The simdjson fast path for numeric predict bodies: it answers only what the exact path would.

The property tests generate bodies (rectangular or not, every supported dtype, many number
spellings and layouts, hostile additions) and check the one rule that matters: when
:func:`decode_predict` answers, the exact path (:func:`rest_json.predict_request_from_json`)
succeeds and gives the same tensor, bit for bit; when the exact path fails, the fast path declines.
Both rectangularity proofs (lengths and skeleton) are run on every generated body.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfio_handlers.config import Limits
from tfio_handlers.errors import HTTPError
from tfio_handlers.protocol.tfs_json import requests as rest_json
from tfio_handlers.protocol.tfs_json import simd as _simd
from tfio_handlers.protos import (
    DT_BOOL,
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
    ModelSpec,
    SignatureDef,
)
from tfio_handlers.tensors import to_ndarray

pytest.importorskip("simdjson")

NUMERIC = {
    DT_FLOAT: np.float32,
    DT_DOUBLE: np.float64,
    DT_INT8: np.int8,
    DT_INT16: np.int16,
    DT_INT32: np.int32,
    DT_INT64: np.int64,
    DT_UINT8: np.uint8,
    DT_UINT32: np.uint32,
    DT_UINT64: np.uint64,
}


def signatures(dtype: int = DT_FLOAT, *names: str) -> dict[str, SignatureDef]:
    """``serving_default`` (and ``other``) with inputs ``names`` (default ``x``) of ``dtype``."""
    signature = SignatureDef()
    for name in names or ("x",):
        signature.inputs[name].dtype = dtype  # type: ignore[assignment]
        signature.inputs[name].name = f"{name}:0"
    return {"serving_default": signature, "other": signature}


SIGS = signatures()


def exact(body: bytes, sigs: Any = SIGS, **kwargs: Any) -> tuple[str, np.ndarray] | HTTPError:
    """The exact path's (form, array of its only input), or the error it raised."""
    try:
        request, form = rest_json.predict_request_from_json(body, sigs, fast=False, **kwargs)
        (tensor,) = request.inputs.values()
        return form.value, to_ndarray(tensor)
    except HTTPError as exc:  # int8 beyond its range: TF Serving builds it, reading refuses
        return exc


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def check(body: bytes, sigs: Any = SIGS, **kwargs: Any) -> _simd.FastPredict | None:
    """Run both paths; assert the fast one answers only with the exact path's tensor."""
    fast = _simd.decode_predict(body, sigs)
    if fast is None:
        return None
    reference = exact(body, sigs, **kwargs)
    assert not isinstance(reference, HTTPError), (body[:200], reference)
    form, array = reference
    assert fast.form == form
    assert same(fast.array, array), (body[:200], fast.array, array)
    assert fast.array.flags.c_contiguous
    return fast


@contextmanager
def proof(kind: str) -> Iterator[None]:
    """Force one rectangularity proof: ``lengths`` or ``skeleton``."""
    if kind == "lengths":
        patch = mock.patch.object(_simd, "_NS_PER_BYTE_SKELETON", 1e18)
    else:
        patch = mock.patch.object(_simd, "_NS_PER_ARRAY", 1e18)
    with patch:
        yield


PROOFS = pytest.mark.parametrize("kind", ["lengths", "skeleton"])


# -- what the fast path answers ------------------------------------------------------------------


@PROOFS
@pytest.mark.parametrize(
    "value",
    [
        [1.5],
        [[6.4, 3.2, 4.5, 1.5]],
        [[1, 2], [3, 4], [5, 6]],
        [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]],
        [[[[0.5]]]],
        [[0.0, -0.0, 1e-300, 5e-324, 3.4028234663852886e38]],
    ],
)
@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_numeric_bodies_are_answered_as_the_exact_path(kind: str, value: Any, key: str) -> None:
    body = json.dumps({key: value}).encode()
    with proof(kind):
        fast = check(body)
    assert fast is not None
    assert fast.form == ("row" if key == "instances" else "columnar")
    assert fast.input_name == "x"
    assert fast.signature_name is None
    assert same(fast.array, np.array(value, np.float32))


@PROOFS
@pytest.mark.parametrize("dtype", sorted(NUMERIC))
def test_every_supported_dtype(kind: str, dtype: int) -> None:
    info = np.iinfo(NUMERIC[dtype]) if dtype not in (DT_FLOAT, DT_DOUBLE) else None
    if info is None:
        value: list[Any] = [[0.1, -2.5], [1e300 if dtype == DT_DOUBLE else 1e30, 7]]
    else:
        value = [[int(info.min), int(info.max)], [0, 1]]
    body = json.dumps({"instances": value}).encode()
    with proof(kind):
        fast = check(body, signatures(dtype))
    assert fast is not None
    assert fast.array.dtype == NUMERIC[dtype]


def test_signature_name_and_layout() -> None:
    body = b'{ "signature_name" : "other" ,\n  "instances" : [ [ 1 , 2 ] ,\t[ 3 , 4 ] ] }'
    fast = check(body)
    assert fast is not None and fast.signature_name == "other"
    assert same(fast.array, np.array([[1, 2], [3, 4]], np.float32))
    body = b'{"inputs": [[1, 2]], "signature_name": "other"}'
    fast = check(body)
    assert fast is not None and fast.signature_name == "other" and fast.form == "columnar"


def test_bytes_like_and_str_bodies() -> None:
    text = '{"instances": [[1, 2]]}'
    for body in (text, text.encode(), bytearray(text.encode()), memoryview(text.encode())):
        fast = _simd.decode_predict(body, SIGS)
        assert fast is not None and same(fast.array, np.array([[1, 2]], np.float32))


def test_big_bodies_use_both_proofs_by_cost() -> None:
    wide = np.arange(64 * 784, dtype=np.float32).reshape(64, 784) / 7
    deep = np.arange(2 * 16 * 16 * 3, dtype=np.float32).reshape(2, 16, 16, 3) / 3
    calls: list[str] = []
    original = _simd._lengths_ok

    def spy(value: Any, dims: tuple[int, ...]) -> bool:
        calls.append("lengths")
        return original(value, dims)

    with mock.patch.object(_simd, "_lengths_ok", spy):
        for array, proof_kind in ((wide, "lengths"), (deep, "skeleton")):
            calls.clear()
            body = json.dumps({"instances": array.tolist()}).encode()
            fast = check(body)
            assert fast is not None and same(fast.array, array)
            assert calls == (["lengths"] if proof_kind == "lengths" else [])


# -- what it leaves to the exact path ---------------------------------------------------------------


RAGGED = [
    [[1, 2], [3]],
    [[1, 2], 3],
    [1, [2, 3]],
    [[1], []],
    [[[1]], [2]],
    [[1, 2], [3, [4]]],
    [[1, [2]], [3, 4]],
    # Same count of leaves, of arrays and of commas as a 2x2x2 array: only the lengths differ.
    [[[1, 2, 3], [4]], [[5, 6], [7, 8]]],
    [[5, [[1, 2, 3], 4, 5]]],
    [[[1, 2], [3, 4]], [[5, 6], [7, 8]], [[9, 10], [11]]],
]


@PROOFS
@pytest.mark.parametrize("value", RAGGED, ids=lambda v: json.dumps(v).replace(" ", ""))
def test_ragged_arrays_are_declined(kind: str, value: Any) -> None:
    body = json.dumps({"instances": value}).encode()
    with proof(kind):
        assert _simd.decode_predict(body, SIGS) is None
    assert isinstance(exact(body), HTTPError)


def _arrays_at(value: list[Any], depth: int) -> list[list[Any]]:
    """The arrays at ``depth`` of the nested list ``value`` (0: ``value`` itself), in order."""
    level = [value]
    for _ in range(depth):
        level = [child for parent in level for child in parent]
    return level


def _structure_counts(text: str) -> tuple[int, int, int, int]:
    """Numbers, ``[``, ``]`` and ``,`` of a body: what a global count can see."""

    def leaves(value: Any) -> int:
        return sum(leaves(item) for item in value) if isinstance(value, list) else 1

    return (
        leaves(json.loads(text)["instances"]),
        text.count("["),
        text.count("]"),
        text.count(","),
    )


def _moved(shape: tuple[int, ...], depth: int, source: int, target: int) -> list[Any]:
    """A rectangular array of ``shape`` with the last element of its ``source``-th array at
    ``depth`` moved to the end of its ``target``-th: every global count is kept, and the first
    element of each level still reads ``shape``."""
    value: list[Any] = np.arange(math.prod(shape), dtype=np.float32).reshape(shape).tolist()
    arrays = _arrays_at(value, depth)
    arrays[target].append(arrays[source].pop())
    return value


RAGGED_DEPTHS = [
    (shape, depth, source, target)
    for shape in ((3, 2), (3, 3, 2), (3, 2, 2, 3))
    for depth in range(1, len(shape))
    for source, target in ((1, -1), (-1, 1))
]


@PROOFS
@pytest.mark.parametrize(("shape", "depth", "source", "target"), RAGGED_DEPTHS)
def test_ragged_at_every_depth_with_every_count_kept_is_declined(
    kind: str, shape: tuple[int, ...], depth: int, source: int, target: int
) -> None:
    value = _moved(shape, depth, source, target)
    body = json.dumps({"instances": value})
    rectangle = json.dumps({"instances": _moved(shape, depth, 0, 0)})
    # [[1, 2], [3], [4, 5, 6]] for (3, 2): numbers, brackets and commas of a 3x2 array.
    assert _structure_counts(body) == _structure_counts(rectangle)
    with proof(kind):
        assert _simd.decode_predict(body.encode(), SIGS) is None
        assert check(rectangle.encode()) is not None
    assert isinstance(exact(body.encode()), HTTPError)


DECLINED = {
    "string": b'{"instances": ["a", "b"]}',
    "b64": b'{"instances": [{"b64": "AAAA"}]}',
    "object instance": b'{"instances": [{"x": [1, 2]}]}',
    "named inputs": b'{"inputs": {"x": [1, 2]}}',
    "NaN": b'{"instances": [1.0, NaN]}',
    "Infinity": b'{"instances": [Infinity, 1]}',
    "-Infinity": b'{"instances": [[-Infinity]]}',
    "bool": b'{"instances": [1, true]}',
    "bools": b'{"instances": [true, false]}',
    "null": b'{"instances": [1, null]}',
    "beyond double": b'{"instances": [1e400]}',
    "beyond float32": b'{"instances": [3.5e38]}',
    "zero with a big exponent": b'{"instances": [0e400, 1.5]}',
    "negative zero with a big exponent": b'{"instances": [[-0.0E+999, 2]]}',
    "integer beyond 64 bits": b'{"instances": [18446744073709551616]}',
    "scalar input": b'{"inputs": 1.5}',
    "empty instances": b'{"instances": []}',
    "empty rows": b'{"instances": [[], []]}',
    "instances not a list": b'{"instances": 3}',
    "both keys": b'{"instances": [1], "inputs": [1]}',
    "neither key": b'{"signature_name": "other"}',
    "unknown key": b'{"instances": [1], "extra": 1}',
    "duplicate key": b'{"instances": [1], "instances": [2]}',
    "duplicate signature": b'{"signature_name": "other", "signature_name": "x", "instances": [1]}',
    "signature name not a string": b'{"signature_name": 1, "instances": [1]}',
    "signature name with a bracket": b'{"signature_name": "a[", "instances": [1]}',
    "signature name with a colon": b'{"signature_name": "a:b", "instances": [1]}',
    "escaped colon": b'{"signature_name": "a\\u003ab", "instances": [1]}',
    "unknown signature": b'{"signature_name": "nope", "instances": [1]}',
    "trailing garbage": b'{"instances": [1, 2]} [',
    "trailing value": b'{"instances": [1, 2]}{}',
    "root array": b"[1, 2]",
    "root number": b"1",
    "empty": b"",
    "blank": b"   ",
    "invalid utf-8": b'{"signature_name": "\xff", "instances": [1]}',
    "utf-16": '{"instances": [1]}'.encode("utf-16"),
    "leading zero": b'{"instances": [01]}',
    "deep": b'{"instances": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
}


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declined_bodies(name: str) -> None:
    assert _simd.decode_predict(DECLINED[name], SIGS) is None


INT_DECLINED = {
    DT_INT32: [b"[1.0]", b"[1e2]", b"[2147483648]", b"[-2147483649]", b"[1, 2.5]", b"[-0.0]"],
    DT_INT8: [b"[128]", b"[-129]", b"[[1], [300]]"],
    DT_INT16: [b"[32768]"],
    DT_UINT8: [b"[-1]", b"[256]"],
    DT_UINT32: [b"[-1]", b"[4294967296]"],
    DT_UINT64: [b"[-1]", b"[18446744073709551616]"],
    DT_INT64: [b"[9223372036854775808]", b"[1.5]"],
}


@pytest.mark.parametrize(
    ("dtype", "value"), [(d, v) for d, values in INT_DECLINED.items() for v in values]
)
def test_integer_dtypes_decline_what_they_cannot_hold(dtype: int, value: bytes) -> None:
    body = b'{"instances": ' + value + b"}"
    assert _simd.decode_predict(body, signatures(dtype)) is None


@pytest.mark.parametrize("dtype", [DT_STRING, DT_BOOL, DT_HALF, DT_UINT16])
def test_other_dtypes_are_left_to_the_exact_path(dtype: int) -> None:
    assert _simd.decode_predict(b'{"instances": [1, 0]}', signatures(dtype)) is None


def test_multiple_inputs_are_left_to_the_exact_path() -> None:
    sigs = signatures(DT_FLOAT, "a", "b")
    assert _simd.decode_predict(b'{"instances": [[1, 2]]}', sigs) is None


def test_limits_are_left_to_the_exact_path() -> None:
    body = b'{"inputs": [[1, 2, 3], [4, 5, 6]]}'
    assert _simd.decode_predict(body, SIGS) is not None
    for limits in (Limits(max_elements=5), Limits(max_depth=1), Limits(max_body_bytes=10)):
        assert _simd.decode_predict(body, SIGS, limits=limits) is None
        assert isinstance(exact(body, limits=limits), HTTPError)


def test_small_exponents_of_zero_are_fine() -> None:
    body = b'{"instances": [0e5, 0.0e-400, 1e-400, 1.5e10, 0E+99]}'
    fast = check(body)
    assert fast is not None
    assert same(fast.array, np.array([0, 0, 0, 1.5e10, 0], np.float32))


def test_without_simdjson_nothing_is_answered() -> None:
    with mock.patch.object(_simd, "_simdjson", None):
        assert not _simd.available()
        assert _simd.decode_predict(b'{"instances": [1]}', SIGS) is None
    assert _simd.available()


# -- the request it builds ------------------------------------------------------------------------


def test_the_request_it_builds_matches_the_exact_path() -> None:
    spec = ModelSpec(name="m", signature_name="other")
    spec.version.value = 3
    for body in (
        b'{"instances": [[1, 2], [3, 4]]}',
        b'{"signature_name": "serving_default", "inputs": [[1.5]]}',
    ):
        assert _simd.decode_predict(body, SIGS, signature_name="other") is not None
        request, form = rest_json.predict_arrays_from_json(body, SIGS, model_spec=spec)
        reference, reference_form = rest_json.predict_arrays_from_json(
            body, SIGS, model_spec=spec, fast=False
        )
        assert form == reference_form
        assert request.model_spec == reference.model_spec
        assert set(request.inputs) == set(reference.inputs)
        for name, array in request.inputs.items():
            assert same(array, reference.inputs[name])
    assert _simd.decode_predict(b'{"instances": ["a"]}', SIGS) is None


def test_model_spec_signature_is_used_when_the_body_names_none() -> None:
    sigs = {
        "serving_default": signatures(DT_STRING)["serving_default"],
        "ints": signatures(DT_INT64)["other"],
    }
    body = b'{"instances": [1, 2]}'
    assert _simd.decode_predict(body, sigs) is None  # serving_default takes strings
    decoded = _simd.decode_predict(body, sigs, signature_name="ints")
    assert decoded is not None
    assert decoded.array.dtype == np.int64
    request, _ = rest_json.predict_arrays_from_json(
        body, sigs, model_spec=ModelSpec(signature_name="ints")
    )
    assert request.model_spec.signature_name == "ints"
    assert request.inputs["x"].dtype == np.int64


def test_a_single_signature_def_is_used_whatever_the_body_names() -> None:
    only = signatures(DT_DOUBLE)["serving_default"]
    fast = _simd.decode_predict(b'{"signature_name": "any", "instances": [1]}', only)
    assert fast is not None and fast.array.dtype == np.float64


# -- parsers, threads ------------------------------------------------------------------------------


def test_a_leaked_proxy_does_not_break_the_thread() -> None:
    module = _simd._module()
    parser = _simd._parser(module)
    leaked = parser.parse(b"[1, [2]]")[1]  # holds the thread's parser
    fast = _simd.decode_predict(b'{"instances": [[1, 2]]}', SIGS)
    assert fast is not None and same(fast.array, np.array([[1, 2]], np.float32))
    del leaked
    assert _simd.decode_predict(b'{"instances": [3]}', SIGS) is not None


def test_threads_get_their_own_rows() -> None:
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(40):
                rows = int(rng.integers(1, 30))
                array = rng.random((rows, 17), dtype=np.float32)
                body = json.dumps({"instances": array.tolist()}).encode()
                fast = _simd.decode_predict(body, SIGS)
                assert fast is not None and same(fast.array, array)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


# -- properties -----------------------------------------------------------------------------------


def _number_text(draw: st.DrawFn, value: int | float) -> str:
    """A JSON spelling of ``value``: plain, exponent, long mantissa."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
    style = draw(st.integers(0, 3))
    if style == 0:
        return repr(value)
    if style == 1:
        return f"{value:.17e}"
    if style == 2:
        return f"{value:.25g}" if "e" in f"{value:.25g}" or "." in f"{value:.25g}" else repr(value)
    return f"{value:.6E}"


@st.composite
def leaves(draw: st.DrawFn, dtype: int) -> Any:
    if dtype in (DT_FLOAT, DT_DOUBLE):
        return draw(
            st.one_of(
                st.floats(allow_nan=False, allow_infinity=False, width=32),
                st.floats(allow_nan=False, allow_infinity=False),
                st.floats(min_value=-1e-30, max_value=1e-30),
                st.integers(-(2**64), 2**64),
                st.sampled_from([0.0, -0.0, 0, 3.4028235e38, 3.4028236e38, 1.4e-45, 2**53 + 1]),
            )
        )
    info = np.iinfo(NUMERIC[dtype])
    return draw(
        st.one_of(
            st.integers(int(info.min), int(info.max)),
            st.integers(int(info.min) - 2, int(info.min) + 2),
            st.integers(int(info.max) - 2, int(info.max) + 2),
            st.just(1.0),
        )
    )


MUTATIONS = [
    "none",
    "none",
    "none",
    "drop",
    "wrap",
    "empty",
    "move",
    "bool",
    "null",
    "string",
    "b64",
    "nan",
    "big zero",
    "trailing",
    "duplicate",
]


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, int, str]:
    dtype = draw(st.sampled_from(sorted(NUMERIC)))
    dims = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    count = math.prod(dims)
    flat = draw(st.lists(leaves(dtype), min_size=count, max_size=count))

    def nest(items: list[Any], shape: list[int]) -> Any:
        if len(shape) == 1:
            return list(items)
        step = len(items) // shape[0]
        return [nest(items[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]

    value = nest(flat, dims)
    mutation = draw(st.sampled_from(MUTATIONS))
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
    elif mutation in ("bool", "null", "string", "b64", "nan", "big zero"):
        target[index] = _Raw(
            {
                "bool": "true",
                "null": "null",
                "string": '"1"',
                "b64": '{"b64": "AA=="}',
                "nan": "NaN",
                "big zero": "0e400",
            }[mutation]
        )
    key = draw(st.sampled_from(["instances", "inputs"]))
    separator = draw(st.sampled_from([",", ", ", " ,\n ", ",\t"]))
    text = _dump(draw, value, separator)
    members = [f'"{key}": {text}']
    if draw(st.booleans()):
        members.insert(draw(st.integers(0, 1)), '"signature_name": "other"')
    if mutation == "duplicate":
        members.append(f'"{key}": [1]')
    body = "{" + ", ".join(members) + "}"
    if mutation == "trailing":
        body += draw(st.sampled_from(["x", "]", " {}", "\n1"]))
    return body.encode(), dtype, mutation


class _Raw:
    """Text written as is into a generated body."""

    def __init__(self, text: str) -> None:
        self.text = text


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
    if isinstance(value, _Raw):
        return value.text
    return _number_text(draw, value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=bodies(), kind=st.sampled_from(["lengths", "skeleton"]))
def test_fast_path_answers_only_with_the_exact_paths_tensor(
    case: tuple[bytes, int, str], kind: str
) -> None:
    body, dtype, mutation = case
    sigs = signatures(dtype)
    with proof(kind):
        fast = check(body, sigs)
    # (a wrapped leaf, a dropped or moved element may leave the array rectangular)
    if mutation in (
        "empty",
        "bool",
        "null",
        "string",
        "b64",
        "nan",
        "big zero",
        "trailing",
        "duplicate",
    ):
        assert fast is None


@settings(max_examples=100, deadline=None)
@given(
    array=st.integers(1, 3)
    .flatmap(lambda rank: st.lists(st.integers(1, 5), min_size=rank, max_size=rank))
    .flatmap(
        lambda dims: st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=32),
            min_size=math.prod(dims),
            max_size=math.prod(dims),
        ).map(lambda values: np.array(values, np.float32).reshape(dims))
    ),
    kind=st.sampled_from(["lengths", "skeleton"]),
)
def test_rectangular_float32_bodies_are_always_answered(array: np.ndarray, kind: str) -> None:
    body = json.dumps({"instances": array.tolist()}).encode()
    with proof(kind):
        fast = check(body)
    assert fast is not None
    assert same(fast.array, array)


def test_huge_bodies_get_a_parser_of_their_own() -> None:
    module = _simd._module()
    kept = _simd._parser(module)
    with mock.patch.object(_simd, "KEEP_PARSER_MAX_BYTES", 10):
        fast = _simd.decode_predict(b'{"instances": [[1, 2], [3, 4]]}', SIGS)
    assert fast is not None and same(fast.array, np.array([[1, 2], [3, 4]], np.float32))
    assert _simd._parser(module) is kept
