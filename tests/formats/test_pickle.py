"""The pickle codec (tfio_handlers.formats.pickle): off by default; when on, plain data in and out.

The hostile payloads the restricted unpickler refuses are in test_pickle_restricted.py.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from codec_support import predict_response, signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pickle_support import CLASSIFY, PICKLE, context, decode, payload

from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from tfio_handlers.formats import pickle as pickle_codec
from tfio_handlers.media import parse_media_type
from tfio_handlers.protos import (
    DT_FLOAT,
    DT_INT64,
    DT_STRING,
    ClassificationResponse,
    PredictRequest,
)
from tfio_handlers.registry import Kind, Registry
from tfio_handlers.tensors import data_type_of

# -- off by default ----------------------------------------------------------------------------


def test_disabled_by_default_with_a_hint() -> None:
    off = Context()
    with pytest.raises(UnsupportedMediaType, match="TFIO_HANDLERS_ENABLE_PICKLE=1") as info:
        pickle_codec.decode_pickle(pickle.dumps([1.0]), PICKLE, off)
    assert info.value.status_code == 415
    with pytest.raises(NotAcceptable, match="TFIO_HANDLERS_ENABLE_PICKLE=1"):
        pickle_codec.encode_pickle(predict_response(y=np.ones(1)), PICKLE, off)


def test_registered_with_its_alias_as_binary() -> None:
    registry = Registry(builtins=False)
    registry.register(pickle_codec, name="pickle", kind=Kind.BUILTIN)
    body = pickle.dumps(np.arange(3.0))
    alias = parse_media_type("application/x-pickle")
    assert registry.decode(body, alias, context()).tolist() == [0.0, 1.0, 2.0]
    assert not registry.is_text("application/python-pickle")
    with pytest.raises(UnsupportedMediaType):
        registry.decode(body, PICKLE, Context())


# -- plain data --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_arrays_and_plain_values_in_every_protocol(protocol: int) -> None:
    value = {
        "f": np.arange(6, dtype=np.float32).reshape(2, 3),
        "big": np.arange(3, dtype=">i8"),
        "fortran": np.asfortranarray(np.arange(4.0).reshape(2, 2)),
        "words": np.array(["café", "b"]),
        "raw": np.array([b"x", b"yz"]),
        "objects": np.array([b"a", "b"], dtype=object),
        "c": np.array([1 + 2j], np.complex64),
        "flags": np.array([True, False]),
        "nested": [[1, 2], [3, 4]],
        "scalar": [np.float32(1.5), np.int64(2)],
        "bytes": [b"q", bytearray(b"r")],
        "text": ["s", "t"],
    }
    decoded = decode(pickle.dumps(value, protocol=protocol))
    assert decoded["f"].dtype == np.float32 and decoded["f"].tolist() == value["f"].tolist()
    assert decoded["big"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(decoded["fortran"], value["fortran"])
    assert decoded["words"].tolist() == ["café".encode(), b"b"]
    assert decoded["raw"].tolist() == [b"x", b"yz"]
    assert decoded["objects"].tolist() == [b"a", b"b"]
    assert decoded["c"].tolist() == [1 + 2j]
    assert decoded["flags"].tolist() == [True, False]
    assert decoded["nested"].dtype == np.float32 and decoded["nested"].shape == (2, 2)
    assert decoded["scalar"].tolist() == [1.5, 2.0]
    assert decoded["bytes"].tolist() == [b"q", b"r"]
    assert decoded["text"].tolist() == [b"s", b"t"]


def test_values_are_read_like_json_bodies() -> None:
    sig = signature({"x": (DT_INT64, [-1, 2])})
    assert decode(pickle.dumps([[1, 2], [3, 4]]), context(sig)).dtype == np.int64
    assert decode(pickle.dumps(np.ones((1, 2))), context(sig)).tolist() == [[1, 1]]
    with pytest.raises(BadRequest, match="has a fraction"):
        decode(pickle.dumps(np.full((1, 2), 0.5)), context(sig))
    two = signature({"a": (DT_FLOAT, [-1]), "b": (DT_STRING, [-1])})
    rows = decode(pickle.dumps([{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]), context(two))
    assert rows["a"].tolist() == [1.0, 2.0] and rows["b"].tolist() == [b"x", b"y"]
    with pytest.raises(BadRequest, match="pickle a dict naming each input"):
        decode(pickle.dumps([1.0]), context(two))
    with pytest.raises(BadRequest, match="'c', which is not an input"):
        decode(pickle.dumps({"a": [1.0], "c": [2.0]}), context(two))
    with pytest.raises(BadRequest, match="expected an array, a list, or a dict"):
        decode(pickle.dumps(b"raw"))
    with pytest.raises(BadRequest, match="a set, which has no order"):
        decode(pickle.dumps({"a": {1, 2}}))
    with pytest.raises(BadRequest, match="dict key of type int"):
        decode(pickle.dumps({1: [1.0]}))


def test_classify_values_are_examples() -> None:
    classifier = signature(
        {"inputs": (DT_STRING, [-1])}, CLASSIFY, {"classes": DT_STRING, "scores": DT_FLOAT}
    )
    ctx = context(classifier)
    assert decode(pickle.dumps({"age": 35, "city": "Paris"}), ctx) == [
        {"age": [35], "city": [b"Paris"]}
    ]
    assert decode(pickle.dumps([{"x": [1.0]}, {"x": np.array([2.0, 3.0])}]), ctx) == [
        {"x": [1.0]},
        {"x": [2.0, 3.0]},
    ]
    assert decode(pickle.dumps(np.array([[1.0, 2.0]])), ctx) == [{"inputs": [1.0, 2.0]}]
    assert decode(pickle.dumps([[1.0], [2.0]]), ctx) == [{"inputs": [1.0]}, {"inputs": [2.0]}]


def test_unsafe_pickle_is_plain_pickle() -> None:
    request = PredictRequest()
    request.model_spec.name = "m"
    ctx = Context(settings=Settings(unsafe_pickle=True))
    assert pickle_codec.decode_pickle(pickle.dumps(request), PICKLE, ctx) == request
    assert pickle_codec.decode_pickle(pickle.dumps([1.0]), PICKLE, ctx).tolist() == [1.0]


# -- encoding ----------------------------------------------------------------------------------


def test_the_response_is_pickled_as_plain_data() -> None:
    response = predict_response(a=np.arange(3, dtype=np.int32), b=np.array([b"x"], object))
    body = pickle_codec.encode_pickle(response, PICKLE, context())
    value = pickle.loads(body)
    assert type(value) is dict and set(value) == {"a", "b"}
    assert value["a"].tolist() == [0, 1, 2] and value["b"].tolist() == [b"x"]
    assert b"tensorflow" not in body and b"protobuf" not in body
    classification = ClassificationResponse()
    classification.result.classifications.add().classes.add(label="cat", score=0.5)
    value = pickle_codec.restricted_loads(
        pickle_codec.encode_pickle(classification, PICKLE, context()), Limits()
    )
    assert value["classes"].tolist() == [["cat"]] and value["scores"].tolist() == [[0.5]]


def pickle_modules(body: bytes) -> set[str]:
    """The modules a pickle imports classes and functions from."""
    modules: set[str] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            modules.add(module)
            return super().find_class(module, name)

    Recording(io.BytesIO(body)).load()
    return modules


def test_every_response_pickles_with_numpy_and_builtins_only(tmp_path: Path) -> None:
    """A client with numpy alone (no tfio-handlers, no ml_dtypes) loads every pickled answer."""
    pytest.importorskip("ml_dtypes")
    import ml_dtypes

    outputs = {
        "f": np.array([1.5, 2.0], np.float32),
        "bf": np.array([1.5, 2.0], ml_dtypes.bfloat16),
        "s": np.array([b"x", b"\xff"], object),
        "i": np.array([[1, 2]], np.int64),
        "b": np.array([True]),
        "h": np.array([0.5], np.float16),
        "c": np.array([1 + 2j], np.complex64),
    }
    classification = ClassificationResponse()
    classification.result.classifications.add().classes.add(label="cat", score=0.5)
    bodies = [
        pickle_codec.encode_pickle(predict_response(**outputs), PICKLE, context()),
        pickle_codec.encode_pickle(classification, PICKLE, context()),
    ]
    for body in bodies:
        assert {m.split(".")[0] for m in pickle_modules(body)} <= {"numpy", "builtins", "_codecs"}
    script = (
        "import pickle, sys\n"
        "sys.modules['tfio_handlers'] = sys.modules['ml_dtypes'] = None\n"
        "for path in sys.argv[1:]:\n"
        "    value = pickle.load(open(path, 'rb'))\n"
        "    print(sorted(value))\n"
    )
    paths = []
    for i, body in enumerate(bodies):
        paths.append(tmp_path / f"{i}.pickle")
        paths[-1].write_bytes(body)
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "'bf'" in result.stdout and "'scores'" in result.stdout


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
                st.binary(max_size=6), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
            )
        )
        array = np.empty(len(items), object)
        array[:] = items
        return array.reshape(shape)
    return draw(hnp.arrays(np.dtype(draw(st.sampled_from(DTYPES))), shape))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors(), st.sampled_from([2, 3, 4, 5]))
def test_round_trip(array: np.ndarray, protocol: int) -> None:
    body = pickle_codec.encode_pickle(predict_response(x=array), PICKLE, context())
    sig = signature({"x": (data_type_of(array.dtype), None)})
    back = decode(body, context(sig))["x"]
    assert back.shape == array.shape
    if array.dtype == object:
        assert back.tolist() == array.tolist()
    else:
        assert back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)
    again = decode(pickle.dumps({"x": array}, protocol=protocol), context(sig))["x"]
    assert again.tolist() == back.tolist() or np.array_equal(again, back, equal_nan=True)


# -- end to end, with real SavedModels ---------------------------------------------------------


@pytest.mark.tensorflow
def test_end_to_end_when_enabled(embedded_backend: Any) -> None:
    from tfio_handlers.pipeline import Pipeline

    headers = {
        "X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=multi_input",
        "Content-Type": "application/python-pickle",
        "Accept": "application/python-pickle",
    }
    body = pickle.dumps({"a": np.ones((2, 2), np.float32), "b": [1, 2], "c": ["x", "yz"]})
    off = Pipeline(embedded_backend, settings=Settings.from_env({}), registry=Registry())
    assert off.invoke(body, headers).status == 415
    on = Pipeline(
        embedded_backend,
        settings=Settings.from_env({"TFIO_HANDLERS_ENABLE_PICKLE": "1"}),
        registry=Registry(),
    )
    response = on.invoke(body, headers)
    assert response.status == 200, response.body
    outputs = pickle_codec.restricted_loads(response.body, Limits())
    assert outputs["total"].tolist() == [3.0, 4.0]
    assert outputs["c_length"].tolist() == [1, 2]
    assert on.invoke(payload(os.system, "true"), headers).status == 400


def test_switched_off_pickle_is_never_offered() -> None:
    """415/406 "supported types" leave pickle out while it is off; naming it still explains why."""
    registry = Registry()
    registry.switch_off(pickle_codec.switched_off(Settings()))
    with pytest.raises(UnsupportedMediaType) as unsupported:
        registry.decode(b"x", parse_media_type("application/x-foo"), context(enable_pickle=False))
    assert "pickle" not in unsupported.value.message
    with pytest.raises(NotAcceptable) as unacceptable:
        registry.negotiate("application/x-foo", "application/json")
    assert "pickle" not in unacceptable.value.message
    # A client that prefers pickle but takes JSON gets JSON.
    chosen = registry.negotiate("application/python-pickle, application/json;q=0.5", "x")
    assert chosen.essence == "application/json"
    # One that takes only pickle reaches the codec, which says how to turn it on.
    chosen = registry.negotiate("application/x-pickle", "application/json")
    with pytest.raises(NotAcceptable, match="TFIO_HANDLERS_ENABLE_PICKLE"):
        registry.encode(predict_response(a=np.ones(1)), chosen, context(enable_pickle=False))
    with pytest.raises(UnsupportedMediaType, match="TFIO_HANDLERS_ENABLE_PICKLE"):
        registry.decode(b"x", PICKLE, context(enable_pickle=False))
    # Turned on, pickle is a supported type like any other.
    assert pickle_codec.switched_off(Settings(enable_pickle=True)) == ()
    registry.switch_off(())
    assert "application/python-pickle" in registry.decodable()
