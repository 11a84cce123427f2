"""The JSON lines codec: one instance per line in, one result per line out, in order."""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any

import numpy as np
import pytest
from codec_support import context, predict_response, signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, PayloadTooLarge, Unimplemented
from tfio_handlers.formats import jsonlines
from tfio_handlers.media import parse_media_type
from tfio_handlers.protos import (
    DT_BOOL,
    DT_FLOAT,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT64,
    ClassificationResponse,
    RegressionResponse,
)
from tfio_handlers.registry import Kind, Registry
from tfio_handlers.tensors import data_type_of

JSONL = parse_media_type("application/jsonlines")
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"


def decode(body: bytes, ctx: Context | None = None, media_type: Any = JSONL) -> Any:
    return jsonlines.decode_jsonlines(body, media_type, ctx or context())


def encode(response: Any, ctx: Context | None = None) -> bytes:
    return jsonlines.encode_jsonlines(response, JSONL, ctx or context())


CLASSIFIER = signature(
    {"inputs": (DT_STRING, [-1])}, CLASSIFY, {"classes": DT_STRING, "scores": DT_FLOAT}
)


# -- decoding ----------------------------------------------------------------------------------


def test_each_line_is_an_instance_and_blank_lines_are_skipped() -> None:
    array = decode(b"[1, 2]\n\n  \n[3, 4]\r\n")
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, np.array([[1, 2], [3, 4]], np.float32))
    assert decode(b"[1, 2]").shape == (1, 2)
    assert decode(b"1.5\n2.5\n").tolist() == [1.5, 2.5]


def test_a_bad_line_is_named_counting_blank_lines() -> None:
    with pytest.raises(BadRequest, match=r"line 4, column 4: not valid JSON"):
        decode(b"[1]\n\n[2]\n[3,\n[4]\n")
    with pytest.raises(BadRequest, match="holds no records"):
        decode(b"\n \n")


def test_instances_of_one_shape() -> None:
    with pytest.raises(BadRequest, match=r"line 3: input 'inputs': Expecting shape \[2\] but got"):
        decode(b"[1,2]\n[3,4]\n[5]\n")
    with pytest.raises(BadRequest, match=r"line 2: Encountered list at unexpected size"):
        decode(b"[[1,2],[3,4]]\n[[1,2],[3]]\n")


def test_typed_by_the_signature_with_tf_serving_rules() -> None:
    ints = decode(b"[1, 2]\n[3, 4]\n", context(signature({"x": (DT_INT64, [-1, 2])})))
    assert ints.dtype == np.int64
    int32 = context(signature({"x": (DT_INT32, [-1, 1])}))
    assert decode(b"[1]\n[2.0]\n", int32).tolist() == [[1], [2]]  # a whole float (cast policy)
    with pytest.raises(
        BadRequest, match=r"line 2: input 'x' \(DT_INT32\): value 1.5 has a fraction"
    ):
        decode(b"[1]\n[1.5]\n", int32)
    with pytest.raises(BadRequest, match=r"value 3000000000 is out of range"):
        decode(b"[3000000000]\n", context(signature({"x": (DT_INT32, [-1, 1])})))
    with pytest.raises(BadRequest, match="expects booleans"):
        decode(b"[1]\n", context(signature({"x": (DT_BOOL, [-1, 1])})))
    assert decode(b"[true]\n", context(signature({"x": (DT_BOOL, [-1, 1])}))).tolist() == [[True]]
    with pytest.raises(BadRequest, match="expects strings, got a number"):
        decode(b'["a", 1]\n', context(signature({"x": (DT_STRING, [-1, 2])})))
    with pytest.raises(BadRequest, match="expects numbers, got a string"):
        decode(b'["a"]\n', context(signature({"x": (DT_FLOAT, [-1, 1])})))
    with pytest.raises(BadRequest, match="expects numbers, got null"):
        decode(b"[1, null]\n")


def test_nan_tokens_and_big_integers() -> None:
    array = decode(b"[NaN, Infinity, -Infinity]\n")
    assert np.isnan(array[0, 0]) and array[0, 1] == np.inf and array[0, 2] == -np.inf
    assert decode(b"[1, 100000000000000000000000]\n").tolist() == [[1.0, float(np.float32(1e23))]]
    with pytest.raises(BadRequest, match=r"out of range for int64|not a whole number"):
        decode(b"[1, 100000000000000000000000]\n", context(signature({"x": (DT_INT64, None)})))


def test_strings_and_b64() -> None:
    sig = signature({"x": (DT_STRING, [-1])})
    value = decode(b'"caf\xc3\xa9"\n{"b64": "AP8="}\n', context(sig))
    assert value.dtype == object and value.tolist() == ["café".encode(), b"\x00\xff"]
    with pytest.raises(BadRequest, match="Unable to base64 decode"):
        decode(b'{"b64": "!!"}\n', context(sig))
    assert decode(b'"a"\n"b"\n').tolist() == [b"a", b"b"]


def test_objects_name_the_inputs() -> None:
    sig = signature({"a": (DT_STRING, [-1]), "b": (DT_INT64, [-1, 2])})
    value = decode(b'{"a": "x", "b": [1, 2]}\n{"b": [3, 4], "a": "y"}\n', context(sig))
    assert value["a"].tolist() == [b"x", b"y"] and value["b"].tolist() == [[1, 2], [3, 4]]
    with pytest.raises(BadRequest, match="does not have named input: c"):
        decode(b'{"a": "x", "b": [1, 2], "c": 1}\n', context(sig))
    with pytest.raises(BadRequest, match="missing input 'b'"):
        decode(b'{"a": "x"}\n', context(sig))
    with pytest.raises(BadRequest, match=r"line 2: the object's keys must be equal to: a,b"):
        decode(b'{"a": "x", "b": [1, 2]}\n{"a": "y"}\n', context(sig))
    with pytest.raises(BadRequest, match=r"line 2: expected an object naming the inputs"):
        decode(b'{"a": "x", "b": [1, 2]}\n[1]\n', context(sig))
    with pytest.raises(BadRequest, match="write each line as an object naming them"):
        decode(b"[1, 2]\n", context(sig))
    untyped = decode(b'{"p": [1], "q": "s"}\n')
    assert untyped["p"].dtype == np.float32 and untyped["q"].tolist() == [b"s"]


def test_classify_and_regress_lines_are_examples() -> None:
    body = b'{"age": 35, "city": "Paris", "w": [0.5, 1.5]}\n[1.0, 2.0]\n7\n{"k": {"b64": "eA=="}}\n'
    assert decode(body, context(CLASSIFIER)) == [
        {"age": [35], "city": [b"Paris"], "w": [0.5, 1.5]},
        {"inputs": [1.0, 2.0]},
        {"inputs": [7]},
        {"k": [b"x"]},
    ]
    assert decode(b'{"x": 1}\n', Context(method="regress")) == [{"x": [1]}]
    with pytest.raises(BadRequest, match="Feature: w has element with unexpected JSON type: Array"):
        decode(b'{"w": [[1]]}\n', context(CLASSIFIER))
    with pytest.raises(BadRequest, match="unexpected JSON type: Null"):
        decode(b'{"w": null}\n', context(CLASSIFIER))


def test_limits() -> None:
    with pytest.raises(PayloadTooLarge):
        decode(b"[1, 2, 3]\n", Context(settings=Settings(limits=Limits(max_body_bytes=4))))
    few = Context(settings=Settings(limits=Limits(max_elements=3)))
    with pytest.raises(PayloadTooLarge, match="over the limit of 3"):
        decode(b"[1, 2]\n[3, 4]\n", few)
    with pytest.raises(PayloadTooLarge, match="over the limit of 3"):
        decode(b"[1, 2]\n[3, 4, 5]\n", few)
    with pytest.raises(PayloadTooLarge, match="over the limit of 3"):
        decode(
            b'{"a": [1, 2]}\n{"a": [3, 4]}\n',
            Context(settings=Settings(limits=Limits(max_elements=3)), method="classify"),
        )
    shallow = Context(settings=Settings(limits=Limits(max_depth=3)))
    with pytest.raises(BadRequest, match="deeper than the limit of 3"):
        decode(b"[[[[1]]]]\n", shallow)
    short = Context(settings=Settings(limits=Limits(max_string_bytes=3)))
    with pytest.raises(PayloadTooLarge, match="over the limit of 3 bytes"):
        decode(b'"abcd"\n', short)
    with pytest.raises(BadRequest, match=r"nested too deeply|not valid JSON"):
        decode(b"[" * 100_000 + b"]" * 100_000 + b"\n")


def test_charsets() -> None:
    utf16 = parse_media_type("application/jsonlines; charset=utf-16")
    assert decode("[1]\n[2]\n".encode("utf-16"), media_type=utf16).tolist() == [[1.0], [2.0]]
    assert decode(b"\xef\xbb\xbf[1]\n").tolist() == [[1.0]]


# -- encoding ----------------------------------------------------------------------------------


def test_one_output_writes_its_value_per_line() -> None:
    response = predict_response(scores=np.array([[0.1, 0.9], [0.5, 0.5]], np.float32))
    assert encode(response) == b"[0.1,0.9]\n[0.5,0.5]\n"
    assert encode(predict_response(y=np.array([1, 2], np.int64))) == b"1\n2\n"
    assert encode(predict_response(y=np.zeros((0, 2), np.float32))) == b""


def test_several_outputs_write_an_object_per_line() -> None:
    response = predict_response(
        label=np.array([b"cat", b"\xff"], object),
        label_bytes=np.array([b"a", b"b"], object),
        flag=np.array([True, False]),
    )
    lines = [json.loads(line) for line in encode(response).splitlines()]
    assert lines == [
        {"flag": True, "label": "cat", "label_bytes": {"b64": "YQ=="}},
        {"flag": False, "label": {"b64": "/w=="}, "label_bytes": {"b64": "Yg=="}},
    ]


def test_non_finite_floats_are_bare_tokens_unless_strict() -> None:
    response = predict_response(y=np.array([[np.nan, 1.0], [np.inf, -np.inf]], np.float32))
    assert encode(response) == b"[NaN,1.0]\n[Infinity,-Infinity]\n"
    assert encode(response, context(strict_json=True)) == b"[null,1.0]\n[null,null]\n"


def test_the_same_json_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    response = predict_response(a=np.array([[0.25, 2.0]], np.float32), b=np.array([b"x"], object))
    fast = encode(response)
    monkeypatch.setitem(sys.modules, "orjson", None)
    slow = encode(response)
    assert [json.loads(x) for x in fast.splitlines()] == [json.loads(x) for x in slow.splitlines()]
    monkeypatch.setattr(jsonlines, "_LOADS", [])
    assert decode(b"[1, 2]\n[NaN, 3]\n").shape == (2, 2)


F32_MAX = float(np.finfo(np.float32).max)


def edge_responses() -> list[Any]:
    """Responses whose float32 values have a shortest text unlike their widened double's."""
    classify = ClassificationResponse()
    item = classify.result.classifications.add()
    for label, score in (("a", 0.1), ("b", F32_MAX), ("c", 1e-45), ("d", -0.0), ("e", 0.7)):
        item.classes.add(label=label, score=score)
    regress = RegressionResponse()
    for value in (0.1, F32_MAX, 1e-45):
        regress.result.regressions.add(value=value)
    return [
        predict_response(y=np.array([[0.1, F32_MAX], [1e-45, -0.0]], np.float32)),
        predict_response(y=np.array([[0.1, np.nan], [np.inf, 0.3]], np.float32)),
        predict_response(
            y=np.array([0.1, 1e-6], np.float32), z=np.array([np.inf, 0.5], np.float16)
        ),
        classify,
        regress,
    ]


@pytest.mark.parametrize("strict", [False, True])
def test_float32_values_are_their_shortest_texts_without_orjson(
    monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)
    ctx = context(strict_json=strict)
    texts = [encode(response, ctx) for response in edge_responses()]
    nan, inf = (b"null", b"null") if strict else (b"NaN", b"Infinity")
    assert texts == [
        b"[0.1,3.4028235e+38]\n[1e-45,-0.0]\n",
        b"[0.1," + nan + b"]\n[" + inf + b",0.3]\n",
        b'{"y":0.1,"z":' + inf + b'}\n{"y":0.000001,"z":0.5}\n',
        b'[["a",0.1],["b",3.4028235e+38],["c",1e-45],["d",-0.0],["e",0.7]]\n',
        b"0.1\n3.4028235e+38\n1e-45\n",
    ]


@pytest.mark.skipif(importlib.util.find_spec("orjson") is None, reason="compares with orjson")
@pytest.mark.parametrize("strict", [False, True])
def test_the_same_bytes_with_and_without_orjson(
    monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    ctx = context(strict_json=strict)
    fast = [encode(response, ctx) for response in edge_responses()]
    monkeypatch.setitem(sys.modules, "orjson", None)
    assert [encode(response, ctx) for response in edge_responses()] == fast


@pytest.mark.parametrize("hide_orjson", [False, True])
def test_big_integers_read_as_orjson_reads_them(
    monkeypatch: pytest.MonkeyPatch, hide_orjson: bool
) -> None:
    """An integer beyond 64 bits is a float, whichever reader reads the line (orjson refuses a
    line with ``NaN`` and hands it to the standard library)."""
    if hide_orjson:
        monkeypatch.setitem(sys.modules, "orjson", None)
    monkeypatch.setattr(jsonlines, "_LOADS", [])
    big = float(np.float32(1e23))
    assert decode(b"[1, 100000000000000000000000]\n").tolist() == [[1.0, big]]
    array = decode(b"[NaN, 100000000000000000000000, -18446744073709551616]\n")
    assert np.isnan(array[0, 0]) and array[0, 1:].tolist() == [big, -float(2**64)]
    uint64 = context(signature({"x": (DT_UINT64, None)}))
    assert decode(b"[18446744073709551615]\n", uint64).tolist() == [[2**64 - 1]]
    int64 = context(signature({"x": (DT_INT64, None)}))
    with pytest.raises(BadRequest, match=r"out of range for int64|not a whole number"):
        decode(b"[NaN]\n[100000000000000000000000]\n", int64)


def test_classify_and_regress_lines() -> None:
    response = ClassificationResponse()
    for scores in ([0.25, 0.75], [0.5, 0.5]):
        classification = response.result.classifications.add()
        for label, score in zip(("a", "b"), scores, strict=True):
            classification.classes.add(label=label, score=score)
    assert encode(response) == b'[["a",0.25],["b",0.75]]\n[["a",0.5],["b",0.5]]\n'
    regression = RegressionResponse()
    for value in (1.5, -2.0):
        regression.result.regressions.add(value=value)
    assert encode(regression) == b"1.5\n-2.0\n"


def test_encode_errors() -> None:
    with pytest.raises(BadRequest, match="inconsistent batch size"):
        encode(predict_response(a=np.zeros(2, np.float32), b=np.zeros(3, np.float32)))
    with pytest.raises(Unimplemented, match="complex"):
        encode(predict_response(a=np.zeros(2, np.complex64)))
    assert encode(predict_response(a=np.float32(2.5), b=np.int32(1))) == b'{"a":2.5,"b":1}\n'


def test_registered_with_aliases_as_text() -> None:
    registry = Registry(builtins=False)
    registry.register(jsonlines, name="jsonlines", kind=Kind.BUILTIN)
    for alias in (
        "application/jsonlines",
        "application/jsons",
        "application/x-jsonlines",
        "application/jsonl",
        "application/x-ndjson",
    ):
        assert registry.decode(b"[1]\n", parse_media_type(alias), context()).shape == (1, 1)
        assert registry.is_text(alias)


# -- properties --------------------------------------------------------------------------------

DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
]


@st.composite
def batches(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    # An empty body holds no records, and JSON writes an empty list for any shape (0, ...):
    # a zero-sized dimension can only be the last one.
    shape = (max(shape[0], 1), *shape[1:])
    if 0 in shape:
        shape = shape[: shape.index(0) + 1]
    elements = None
    if dtype.kind == "f":
        elements = st.floats(width=dtype.itemsize * 8)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.booleans())
def test_encode_then_decode_gives_back_the_tensor(array: np.ndarray, strict: bool) -> None:
    if strict and array.dtype.kind == "f":
        array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0)
    sig = signature({"x": (data_type_of(array.dtype), None)})
    body = encode(predict_response(x=array), context(strict_json=strict))
    assert body.count(b"\n") == array.shape[0]
    back = decode(body, context(sig))
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=5))
def test_strings_round_trip(items: list[bytes]) -> None:
    array = np.empty(len(items), object)
    array[:] = items
    body = encode(predict_response(x_bytes=array, y=np.arange(len(items), dtype=np.int32)))
    sig = signature({"x_bytes": (DT_STRING, [-1]), "y": (DT_INT32, [-1])})
    back = decode(body, context(sig))
    assert back["x_bytes"].tolist() == items
    np.testing.assert_array_equal(back["y"], np.arange(len(items), dtype=np.int32))


# -- end to end, with real SavedModels ---------------------------------------------------------


@pytest.mark.tensorflow
def test_end_to_end_lines_line_up(embedded_backend: Any) -> None:
    from tfio_handlers.pipeline import Pipeline

    pipeline = Pipeline(embedded_backend, settings=Settings.from_env({}), registry=Registry())
    headers = {
        "X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=string_model",
        "Content-Type": "application/jsonlines",
        "Accept": "application/jsonlines",
    }
    response = pipeline.invoke(b'"hello"\n\n{"b64": "Ynll"}\n"caf\xc3\xa9"\n', headers)
    assert response.status == 200, response.body
    assert [json.loads(line) for line in response.body.splitlines()] == [
        {"length": 5, "upper": "HELLO"},
        {"length": 3, "upper": "BYE"},
        {"length": 5, "upper": "CAFé"},
    ]
    regression = {
        "X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=regression",
        "Content-Type": "application/jsonlines",
        "Accept": "application/jsonlines",
    }
    response = pipeline.invoke(b'{"x": 1.5, "k": 2}\n{"x": 2.0}\n', regression)
    assert response.status == 200, response.body
    assert response.body == b"5.0\n4.0\n"
