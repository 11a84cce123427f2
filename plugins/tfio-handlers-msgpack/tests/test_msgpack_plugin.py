"""tfio-handlers-msgpack: loaded from its entry point as a server loads it, interoperating with
msgpack-numpy itself, bounded on hostile bodies, through a real pipeline, and conformant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import msgpack_numpy  # the [test] extra: the client we interoperate with
import numpy as np
import pytest
from hypothesis import given, settings
from tfio_handlers_msgpack import MEDIA_TYPE, decode_msgpack, encode_msgpack

from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, PayloadTooLarge
from tfio_handlers.media import MediaType
from tfio_handlers.protocol.arrays import PredictArrays, Prediction
from tfio_handlers.pytest_plugin import CodecCase
from tfio_handlers.registry import Registry
from tfio_handlers.testing import arrays, same_bits, signature_for

MSGPACK = MediaType(MEDIA_TYPE)
NUMERIC = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16"]
NUMERIC += ["uint32", "uint64", "bool", "complex64", "complex128"]


def context_for(**inputs: np.ndarray) -> Context:
    return Context(signature_defs={"serving_default": signature_for(inputs)})


@pytest.mark.tfio_codecs("msgpack")
def test_conformance(tfio_codec: CodecCase) -> None:
    tfio_codec.check(examples=100, fuzz_examples=300)


def test_loaded_from_its_entry_point() -> None:
    registry = Registry()
    assert "msgpack" in registry.load_entry_points()
    assert registry.canonical("application/x-msgpack") == MEDIA_TYPE
    assert not registry.is_text(MEDIA_TYPE)


@settings(max_examples=100, deadline=None)
@given(arrays(dtypes=NUMERIC))
def test_msgpack_numpy_bodies_decode(array: np.ndarray) -> None:
    """What msgpack-numpy packs (its own encoder, not ours) decodes to the same array."""
    body = msgpack.packb({"x": array}, default=msgpack_numpy.encode)
    request = decode_msgpack(body, MSGPACK, context_for(x=array))
    assert isinstance(request, PredictArrays)
    assert same_bits(request.inputs["x"], array)


@settings(max_examples=100, deadline=None)
@given(arrays(dtypes=NUMERIC))
def test_msgpack_numpy_reads_our_answers(array: np.ndarray) -> None:
    """What we write, msgpack-numpy's decoder reads back as the array."""
    body = encode_msgpack(Prediction({"y": array}), MSGPACK, Context())
    back = msgpack.unpackb(body, object_hook=msgpack_numpy.decode, raw=False, strict_map_key=False)
    assert same_bits(np.asarray(back["y"]), array)


def test_plain_values_and_scalars() -> None:
    ctx = context_for(x=np.zeros((1, 2), np.float32))
    value = decode_msgpack(msgpack.packb([[1.5, 2.0]]), MSGPACK, ctx)
    assert isinstance(value, PredictArrays)
    np.testing.assert_array_equal(value.inputs["x"], np.array([[1.5, 2.0]], np.float32))
    scalar = msgpack.packb(np.float32(3.0), default=msgpack_numpy.encode)
    value = decode_msgpack(scalar, MSGPACK, ctx)
    assert isinstance(value, PredictArrays) and value.inputs["x"].shape == ()
    with pytest.raises(BadRequest, match=r"fraction|value"):
        decode_msgpack(msgpack.packb([[1.5]]), MSGPACK, context_for(x=np.zeros(1, np.int32)))


def test_fixed_width_strings_from_msgpack_numpy() -> None:
    array = np.array([b"ab", b"c"], dtype="S2")
    body = msgpack.packb({"x": array}, default=msgpack_numpy.encode)
    strings = np.array([b""], dtype=object)
    request = decode_msgpack(body, MSGPACK, context_for(x=strings))
    assert isinstance(request, PredictArrays)
    assert request.inputs["x"].tolist() == [b"ab", b"c"]


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (
            msgpack.packb(
                {"x": np.array([object()], dtype=object)},
                default=lambda o: {
                    b"nd": True,
                    b"type": "|O",
                    b"kind": b"",
                    b"shape": [1],
                    b"data": b"\x80\x04N.",
                },
            ),
            BadRequest,
            "pickle",
        ),
        (
            msgpack.packb(
                {
                    "x": {
                        b"nd": True,
                        b"type": "<f4",
                        b"kind": b"",
                        b"shape": [2**20, 2**20],
                        b"data": b"",
                    }
                }
            ),
            PayloadTooLarge,
            "limit",
        ),
        (
            msgpack.packb(
                {
                    "x": {
                        b"nd": True,
                        b"type": "<f4",
                        b"kind": b"",
                        b"shape": [3],
                        b"data": b"\x00" * 8,
                    }
                }
            ),
            BadRequest,
            "bytes of data",
        ),
        (
            msgpack.packb(
                {
                    "x": {
                        b"nd": True,
                        b"type": "<f16",
                        b"kind": b"",
                        b"shape": [1],
                        b"data": b"\x00" * 16,
                    }
                }
            ),
            BadRequest,
            "counterpart",
        ),
        (b"\xdd\xff\xff\xff\xff", BadRequest, "Malformed"),  # an array claiming 4 billion items
        (b"\x91" * 100_000 + b"\x00", BadRequest, "Malformed|deep"),  # nested 100k deep
        (msgpack.packb({}), BadRequest, "no input"),
    ],
    ids=[
        "pickled-object-array",
        "huge-shape",
        "short-data",
        "float128",
        "huge-array",
        "deep",
        "empty-map",
    ],
)
def test_hostile_bodies(body: bytes, error: type[Exception], match: str) -> None:
    ctx = Context(settings=Settings(limits=Limits(max_elements=2**20)))
    with pytest.raises(error, match=match):
        decode_msgpack(body, MSGPACK, ctx)


@pytest.mark.tensorflow
def test_through_a_real_pipeline(tmp_path: Path) -> None:
    """msgpack-numpy in, msgpack out, through a server's pipeline and a real SavedModel."""
    tf = pytest.importorskip("tensorflow")
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline

    class HalfPlusTwo(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x: Any) -> Any:
            return {"y": x / 2 + 2}

    module = HalfPlusTwo()
    tf.saved_model.save(
        module, str(tmp_path / "m" / "1"), signatures={"serving_default": module.serve}
    )
    settings = Settings.from_env({})
    backend = EmbeddedBackend(tmp_path, default_model="m")
    try:
        pipeline = Pipeline(backend, settings=settings, registry=Registry.from_settings(settings))
        x = np.array([1.0, 2.0, 5.0], np.float32)
        body = msgpack.packb({"x": x}, default=msgpack_numpy.encode)
        answer = pipeline.invoke(
            body, {"Content-Type": "application/x-msgpack", "Accept": MEDIA_TYPE}
        )
        assert answer.status == 200, answer.body
        assert ("content-type", MEDIA_TYPE) in answer.headers
        out = msgpack.unpackb(answer.body, object_hook=msgpack_numpy.decode, strict_map_key=False)
        np.testing.assert_array_equal(out["y"], x / 2 + 2)
        bad = pipeline.invoke(b"\xc1", {"Content-Type": MEDIA_TYPE})
        assert bad.status == 400 and b"Malformed msgpack" in bad.body
    finally:
        backend.close()
