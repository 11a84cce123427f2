"""The npy/npz codecs: no pickle ever, headers checked before any data is touched, exact round trips."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from typing import Any

import numpy as np
import pytest
from codec_support import context, predict_response, signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, NotAcceptable, PayloadTooLarge
from tfio_handlers.formats import npy
from tfio_handlers.media import parse_media_type
from tfio_handlers.protos import (
    DT_FLOAT,
    DT_INT8,
    DT_INT32,
    DT_STRING,
    ClassificationResponse,
    RegressionResponse,
)
from tfio_handlers.registry import Kind, Registry
from tfio_handlers.tensors import data_type_of

NPY = parse_media_type("application/x-npy")
NPZ = parse_media_type("application/x-npz")
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"


CLASSIFIER = signature(
    {"inputs": (DT_STRING, [-1])}, CLASSIFY, {"classes": DT_STRING, "scores": DT_FLOAT}
)


def save(array: np.ndarray, **kwargs: Any) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, **kwargs)
    return stream.getvalue()


def savez(**arrays: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.savez(stream, **arrays)
    return stream.getvalue()


def header(descr: str, shape: tuple[int, ...], fortran: bool = False) -> bytes:
    """An npy version 1.0 header, written by hand (for lying headers)."""
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


# -- decoding ----------------------------------------------------------------------------------


def test_npy_is_the_batch_of_the_single_input_zero_copy() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    body = save(array)
    value = npy.decode_npy(body, NPY, context())
    np.testing.assert_array_equal(value, array)
    assert not value.flags.writeable  # a view of the body, not a copy


def test_byte_order_fortran_order_and_strings() -> None:
    big = np.arange(6, dtype=">i4").reshape(2, 3)
    value = npy.decode_npy(save(big), NPY, context())
    assert value.dtype == np.dtype("int32") and value.dtype.isnative
    np.testing.assert_array_equal(value, big)
    fortran = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    np.testing.assert_array_equal(npy.decode_npy(save(fortran), NPY, context()), fortran)
    words = npy.decode_npy(save(np.array([["café"], ["b"]])), NPY, context())
    assert words.dtype == object and words.tolist() == [["café".encode()], [b"b"]]
    raw = npy.decode_npy(save(np.array([[b"\x00x", b"y"]])), NPY, context())
    assert raw.tolist() == [[b"\x00x", b"y"]]


def test_object_arrays_are_refused_and_never_unpickled() -> None:
    class Boom:
        def __reduce__(self) -> Any:
            return (pytest.fail, ("unpickled!",))

    body = save(np.array([Boom()], dtype=object), allow_pickle=True)
    with pytest.raises(BadRequest, match="object arrays need pickle"):
        npy.decode_npy(body, NPY, context())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not an npy", "is not an npy array"),
        (b"\x93NUMPY\x03\x00" + b"\x00" * 20, "bad npy header|version 3.0 is not supported"),
        (header("<f4", (2,)) + b"\x00" * 4, r"\(8 bytes\), but 4 bytes of data follow"),
        (header("<f4", (1,)) + b"\x00" * 8, r"\(4 bytes\), but 8 bytes of data follow"),
        (header("|V4", (1,)) + b"\x00" * 4, "is not supported"),
        (header("<M8[s]", (1,)) + b"\x00" * 8, "is not supported"),
        (header("<f16", (1,)) + b"\x00" * 16, "is not supported|extended precision"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}   \n", "bad npy header"),
    ],
)
def test_bad_npy(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        npy.decode_npy(body, NPY, context())


def test_a_lying_header_allocates_nothing() -> None:
    body = header("<f8", (1_000_000_000,)) + b"\x00" * 8
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        npy.decode_npy(body, NPY, context())
    roomy = context(limits=Limits(max_elements=2**40))
    tracemalloc.start()
    try:
        with pytest.raises(BadRequest, match="bytes of data follow"):
            npy.decode_npy(body, NPY, roomy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    with pytest.raises(PayloadTooLarge, match="strings of 100000000 bytes"):
        npy.decode_npy(
            header("|S100000000", (0,)), NPY, context(limits=Limits(max_string_bytes=1000))
        )


def test_typed_by_the_signature() -> None:
    sig = signature({"x": (DT_FLOAT, [-1, 2])})
    value = npy.decode_npy(save(np.ones((2, 2), np.float64)), NPY, context(sig))
    assert value.dtype == np.float32
    int32 = context(signature({"x": (DT_INT32, [-1])}))
    whole = npy.decode_npy(save(np.ones(2)), NPY, int32)  # whole floats: the cast policy
    assert whole.dtype == np.int32 and whole.ravel().tolist() == [1, 1]
    with pytest.raises(BadRequest, match=r"input 'x' \(DT_INT32\): value 1.5 has a fraction"):
        npy.decode_npy(save(np.full(2, 1.5)), NPY, int32)
    with pytest.raises(BadRequest, match="value 300 is out of range"):
        npy.decode_npy(save(np.array([300])), NPY, context(signature({"x": (DT_INT8, [-1])})))
    with pytest.raises(BadRequest, match="send application/x-npz"):
        npy.decode_npy(
            save(np.ones(2)),
            NPY,
            context(signature({"a": (DT_FLOAT, [-1]), "b": (DT_FLOAT, [-1])})),
        )
    empty = npy.decode_npy(
        save(np.zeros((0, 2))), NPY, context(signature({"x": (DT_STRING, None)}))
    )
    assert empty.dtype == object and empty.shape == (0, 2)


def test_npy_for_classify_is_one_example_per_row() -> None:
    value = npy.decode_npy(save(np.array([[1.5, 2.0], [3.0, 4.0]])), NPY, context(CLASSIFIER))
    assert value == [{"inputs": [1.5, 2.0]}, {"inputs": [3.0, 4.0]}]
    words = npy.decode_npy(save(np.array([["a"], ["b"]])), NPY, context(CLASSIFIER))
    assert words == [{"inputs": [b"a"]}, {"inputs": [b"b"]}]


@pytest.mark.parametrize("signature_def", [None, CLASSIFIER], ids=["predict", "classify"])
def test_npy_of_one_dimension_is_one_record_as_a_json_list_is(signature_def: Any) -> None:
    """``[6.4, 3.2, 4.5, 1.5]`` as npy answers as the same JSON list does: one record, not four."""
    record = np.array([6.4, 3.2, 4.5, 1.5])
    value = npy.decode_npy(save(record), NPY, context(signature_def))
    if signature_def is None:
        assert value.shape == (1, 4)
    else:
        assert value == [{"inputs": [6.4, 3.2, 4.5, 1.5]}]
    scalar = npy.decode_npy(save(np.float64(2.5)), NPY, context(signature_def))
    assert (scalar.tolist() if signature_def is None else scalar) == (
        [2.5] if signature_def is None else [{"inputs": [2.5]}]
    )


def test_npz_names_the_inputs() -> None:
    sig = signature({"a": (DT_FLOAT, [-1]), "b": (DT_STRING, [-1])})
    value = npy.decode_npz(savez(a=np.arange(2.0), b=np.array(["x", "y"])), NPZ, context(sig))
    assert value["a"].dtype == np.float32 and value["b"].tolist() == [b"x", b"y"]
    with pytest.raises(BadRequest, match="member 'c' is not an input"):
        npy.decode_npz(savez(a=np.arange(2.0), c=np.arange(2.0)), NPZ, context(sig))
    with pytest.raises(BadRequest, match="no member for input 'b'"):
        npy.decode_npz(savez(a=np.arange(2.0)), NPZ, context(sig))
    single = signature({"x": (DT_FLOAT, [-1])})
    stream = io.BytesIO()
    np.savez(stream, np.arange(3.0))  # member "arr_0"
    assert npy.decode_npz(stream.getvalue(), NPZ, context(single)).tolist() == [0.0, 1.0, 2.0]
    compressed = io.BytesIO()
    np.savez_compressed(compressed, a=np.zeros(100), b=np.array(["q"]))
    assert set(npy.decode_npz(compressed.getvalue(), NPZ, context(sig))) == {"a", "b"}


def test_npz_for_classify_is_one_example_per_row() -> None:
    body = savez(age=np.array([35, 40]), city=np.array(["Paris", "Rome"]))
    assert npy.decode_npz(body, NPZ, context(CLASSIFIER)) == [
        {"age": [35], "city": [b"Paris"]},
        {"age": [40], "city": [b"Rome"]},
    ]
    with pytest.raises(BadRequest, match="same number of rows"):
        npy.decode_npz(savez(a=np.zeros(2), b=np.zeros(3)), NPZ, context(CLASSIFIER))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_bad_npz() -> None:
    with pytest.raises(BadRequest, match="not a zip archive"):
        npy.decode_npz(b"PK nope", NPZ, context())
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(BadRequest, match=r"is not an \.npy array"):
        npy.decode_npz(stream.getvalue(), NPZ, context())
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("a.npy", save(np.zeros(1)))
        archive.writestr("a.npy", save(np.zeros(1)))
    with pytest.raises(BadRequest, match="appears twice"):
        npy.decode_npz(stream.getvalue(), NPZ, context())
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("a.npy", save(np.zeros(1, dtype=object), allow_pickle=True))
    with pytest.raises(BadRequest, match="object arrays need pickle"):
        npy.decode_npz(stream.getvalue(), NPZ, context())
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(BadRequest, match="holds no arrays"):
        npy.decode_npz(empty.getvalue(), NPZ, context())


def test_a_zip_bomb_stops_at_the_limit() -> None:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.npy", header("|u1", (50_000_000,)) + b"\x00" * 50_000_000)
    body = stream.getvalue()
    assert len(body) < 100_000
    limited = context(limits=Limits(max_body_bytes=1_000_000))
    with pytest.raises(PayloadTooLarge):
        npy.decode_npz(body, NPZ, limited)
    # A zip whose header lies about the member's size is cut off by the bounded read.
    lying = bytearray(body)
    index = lying.rfind(b"PK\x01\x02")
    lying[index + 24 : index + 28] = struct.pack("<I", 100)
    local = lying.find(b"PK\x03\x04")
    lying[local + 22 : local + 26] = struct.pack("<I", 100)
    with pytest.raises((PayloadTooLarge, BadRequest)):
        npy.decode_npz(bytes(lying), NPZ, limited)


def test_limits() -> None:
    with pytest.raises(PayloadTooLarge):
        npy.decode_npy(save(np.zeros(100)), NPY, context(limits=Limits(max_body_bytes=100)))
    with pytest.raises(PayloadTooLarge, match="over the limit of 10"):
        npy.decode_npy(save(np.zeros(11)), NPY, context(limits=Limits(max_elements=10)))
    with pytest.raises(PayloadTooLarge, match="over the limit of 10"):
        npy.decode_npz(
            savez(a=np.zeros(6), b=np.zeros(6)), NPZ, context(limits=Limits(max_elements=10))
        )


# -- encoding ----------------------------------------------------------------------------------


def test_one_output_is_an_npy() -> None:
    response = predict_response(y=np.arange(6, dtype=np.int16).reshape(2, 3))
    body = npy.encode_npy(response, NPY, context())
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), np.arange(6).reshape(2, 3))
    strings = predict_response(s=np.array([b"a", b"bcd"], object))
    loaded = np.load(io.BytesIO(npy.encode_npy(strings, NPY, context())))
    assert loaded.dtype == np.dtype("S3") and loaded.tolist() == [b"a", b"bcd"]


def test_strings_ending_in_nul_are_refused_not_cut() -> None:
    """numpy's fixed-width bytes drop trailing NULs: such an answer is a 406, never b"a"."""
    strings = predict_response(s=np.array([b"a\x00", b"b"], object))
    for encode, media_type in ((npy.encode_npy, NPY), (npy.encode_npz, NPZ)):
        with pytest.raises(NotAcceptable, match=r"'s' holds strings that end in NUL bytes"):
            encode(strings, media_type, context())
    inner = predict_response(s=np.array([b"a\x00b"], object))  # inside a string: kept
    loaded = np.load(io.BytesIO(npy.encode_npy(inner, NPY, context())))
    assert loaded.tolist() == [b"a\x00b"]


def test_several_outputs_need_npz() -> None:
    response = predict_response(a=np.zeros(2, np.float32), b=np.ones(2, np.int32))
    with pytest.raises(NotAcceptable, match=r"2 outputs \(a, b\).*ask for application/x-npz"):
        npy.encode_npy(response, NPY, context())
    accepting = Context(accept_header="application/x-npy, application/x-npz;q=0.5")
    body, content_type = npy.encode_npy(response, NPY, accepting)
    assert content_type == "application/x-npz"
    with np.load(io.BytesIO(body)) as loaded:
        assert sorted(loaded.files) == ["a", "b"]
    with np.load(io.BytesIO(npy.encode_npz(response, NPZ, context()))) as loaded:
        np.testing.assert_array_equal(loaded["b"], np.ones(2, np.int32))


def test_classify_regress_and_bfloat16() -> None:
    response = ClassificationResponse()
    for scores in ([0.25, 0.75], [0.5, 0.5]):
        classification = response.result.classifications.add()
        for label, score in zip(("a", "b"), scores, strict=True):
            classification.classes.add(label=label, score=score)
    with np.load(io.BytesIO(npy.encode_npz(response, NPZ, context()))) as loaded:
        assert loaded["classes"].tolist() == [["a", "b"], ["a", "b"]]
        np.testing.assert_array_equal(loaded["scores"], [[0.25, 0.75], [0.5, 0.5]])
    regression = RegressionResponse()
    regression.result.regressions.add(value=1.5)
    assert np.load(io.BytesIO(npy.encode_npy(regression, NPY, context()))).tolist() == [1.5]
    ml_dtypes = pytest.importorskip("ml_dtypes")
    half = predict_response(y=np.array([1.5, -2.0], ml_dtypes.bfloat16))
    loaded = np.load(io.BytesIO(npy.encode_npy(half, NPY, context())))
    assert loaded.dtype == np.float32 and loaded.tolist() == [1.5, -2.0]


def test_registered_as_binary() -> None:
    registry = Registry(builtins=False)
    registry.register(npy, name="npy", kind=Kind.BUILTIN)
    assert registry.decode(save(np.ones((2, 1))), NPY, context()).tolist() == [[1.0], [1.0]]
    assert not registry.is_text("application/x-npy") and not registry.is_text("application/x-npz")
    body, content_type = registry.encode(predict_response(y=np.ones(1)), NPZ, context())
    assert content_type == "application/x-npz" and body.startswith(b"PK")


# -- properties --------------------------------------------------------------------------------

DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
]


@st.composite
def tensors(draw: st.DrawFn) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    if draw(st.booleans()):
        items = draw(
            st.lists(
                st.binary(max_size=6).filter(lambda b: not b.endswith(b"\x00")),
                min_size=int(np.prod(shape)),
                max_size=int(np.prod(shape)),
            )
        )
        array = np.empty(len(items), object)
        array[:] = items
        return array.reshape(shape)
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    return draw(hnp.arrays(dtype, shape))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors())
def test_npy_round_trip(array: np.ndarray) -> None:
    body = npy.encode_npy(predict_response(x=array), NPY, context())
    sig = signature({"x": (data_type_of(array.dtype), None)})
    back = npy.decode_npy(body, NPY, context(sig))
    # the batch rule: an array of one dimension or none is one record
    expected = array.reshape((1, *array.shape)) if array.ndim <= 1 else array
    assert back.shape == expected.shape
    if array.dtype == object:
        assert back.dtype == object and back.tolist() == expected.tolist()
    else:
        assert back.dtype == array.dtype
        np.testing.assert_array_equal(back, expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["a", "b", "c/d", "e.f"]), tensors(), min_size=1))
def test_npz_round_trip(arrays: dict[str, np.ndarray]) -> None:
    body = npy.encode_npz(predict_response(**arrays), NPZ, context())
    back = npy.decode_npz(body, NPZ, context())
    assert set(back) == set(arrays)
    for name, array in arrays.items():
        assert back[name].shape == array.shape
        assert back[name].tolist() == array.tolist() or np.array_equal(
            back[name], array, equal_nan=True
        )


# -- end to end, with real SavedModels ---------------------------------------------------------


@pytest.mark.tensorflow
def test_end_to_end_every_dtype_through_npz(embedded_backend: Any) -> None:
    from tfio_handlers.pipeline import Pipeline

    pipeline = Pipeline(embedded_backend, settings=Settings.from_env({}), registry=Registry())
    inputs = {
        "f32": np.array([1.5, -2.0], np.float32),
        "f64": np.array([0.1, 1e300]),
        "f16": np.array([0.5, 65504], np.float16),
        "i32": np.array([-(2**31), 7], np.int32),
        "i64": np.array([2**62, -1]),
        "u8": np.array([0, 255], np.uint8),
        "flag": np.array([True, False]),
        "text": np.array(["café", "x"]),
    }
    headers = {
        "X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=multi_input,tfs-signature=echo",
        "Content-Type": "application/x-npz",
        "Accept": "application/x-npz",
    }
    response = pipeline.invoke(savez(**inputs), headers)
    assert response.status == 200, response.body
    with np.load(io.BytesIO(response.body)) as outputs:
        for name, array in inputs.items():
            out = outputs["text_bytes" if name == "text" else f"{name}_out"]
            if name == "text":
                assert out.tolist() == ["café".encode(), b"x"]
            else:
                assert out.dtype == array.dtype
                np.testing.assert_array_equal(out, array)
