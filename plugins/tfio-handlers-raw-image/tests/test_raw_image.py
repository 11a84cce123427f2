"""The example plugin as a user installs it: loaded from its entry point, never imported by path.

Without TensorFlow: the decoder against signatures, the PNG encoder read back by a small PNG reader
written here from the PNG specification (chunks, CRCs, IHDR, zlib, filter type 0). With TensorFlow: a
real SavedModel that decodes a PNG upload, flips it and answers pixels, through a real ``Pipeline``,
with TensorFlow's own PNG codec on both sides of the wire.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, NotAcceptable, PayloadTooLarge
from tfio_handlers.media import MediaType
from tfio_handlers.protocol.arrays import PredictArrays, Prediction
from tfio_handlers.protos import (
    DT_FLOAT,
    DT_STRING,
    ClassificationResponse,
    SignatureDef,
    TensorInfo,
)
from tfio_handlers.registry import Registry

pytest.importorskip("tfio_handlers_raw_image", reason="the example plugin is not installed")


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The registry a server builds: built-ins and the installed entry points."""
    registry = Registry.from_settings(Settings.from_env({}))
    assert any(name == "raw-image" for name, _ in registry.plugins())
    return registry


def read_png(data: bytes) -> NDArray[Any]:
    """A PNG without filtering or interlace as ``[H, W, C]`` pixels; every chunk's CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: list[tuple[bytes, bytes]] = []
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        at += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, color, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (compression, filtering, interlace) == (0, 0, 0)
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    dtype = {8: np.dtype(np.uint8), 16: np.dtype(">u2")}[depth]
    raw = np.frombuffer(zlib.decompress(chunks[1][1]), np.uint8).reshape(height, -1)
    assert (raw[:, 0] == 0).all()  # filter type 0 on every scanline
    pixels = np.frombuffer(raw[:, 1:].tobytes(), dtype).reshape(height, width, channels)
    return pixels.astype(dtype.newbyteorder("="))


def signature(**inputs: int) -> dict[str, SignatureDef]:
    sig = SignatureDef(method_name="tensorflow/serving/predict")
    for name, dtype in inputs.items():
        sig.inputs[name].CopyFrom(TensorInfo(name=f"{name}:0", dtype=dtype))
    return {"serving_default": sig}


def encode(registry: Registry, response: Any, accept: str, limits: Limits | None = None) -> bytes:
    media_type = registry.negotiate(accept, "application/json")
    context = Context(settings=Settings(limits=limits or Limits()))
    body, content_type = registry.encode(response, media_type, context)
    assert content_type == "image/png"
    return body


# -- decoding -----------------------------------------------------------------------------------


def test_the_table_shows_images_in_and_png_out(registry: Registry) -> None:
    rows = {(r.media_type, r.direction, r.plugin, r.alias_of) for r in registry.table()}
    assert ("application/x-image", "decode", "raw-image", None) in rows
    assert ("image/jpeg", "decode", "raw-image", "application/x-image") in rows
    assert ("image/png", "encode", "raw-image", None) in rows


def test_an_upload_is_one_string_instance_without_a_signature(registry: Registry) -> None:
    value = registry.decode(b"\xff\xd8jpeg", MediaType("image/jpeg"), Context())
    assert isinstance(value, np.ndarray) and value.dtype == object
    assert value.tolist() == [b"\xff\xd8jpeg"]


def test_an_upload_goes_to_the_signatures_one_string_input(registry: Registry) -> None:
    context = Context(signature_defs=signature(image_bytes=DT_STRING))
    value = registry.decode(b"\x89PNG...", MediaType("application/x-image"), context)
    assert isinstance(value, PredictArrays)
    assert list(value.inputs) == ["image_bytes"]
    assert value.inputs["image_bytes"].tolist() == [b"\x89PNG..."]


def test_an_upload_for_a_numeric_input_is_a_400_naming_it(registry: Registry) -> None:
    context = Context(signature_defs=signature(x=DT_FLOAT))
    with pytest.raises(BadRequest, match=r"image body: input 'x' \(DT_FLOAT\) expects numbers"):
        registry.decode(b"\x89PNG...", MediaType("image/png"), context)


def test_an_empty_upload_is_a_400_and_a_huge_one_a_413(registry: Registry) -> None:
    with pytest.raises(BadRequest, match="Empty image body"):
        registry.decode(b"", MediaType("image/png"), Context())
    small = Context(settings=Settings(limits=Limits(max_string_bytes=4)))
    with pytest.raises(PayloadTooLarge, match="over the limit of 4 bytes"):
        registry.decode(b"12345", MediaType("image/png"), small)


# -- encoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(1, 5, 7, 3), (5, 7, 3), (5, 7), (1, 4, 3, 4), (2, 3, 2), (1, 1, 1, 1)],
    ids=["batch-of-one-rgb", "rgb", "grey", "rgba", "grey-alpha", "one-pixel"],
)
def test_png_answers_the_pixels(registry: Registry, shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    body = encode(registry, Prediction({"image": pixels}), "image/png")
    expected = {4: pixels[0] if pixels.ndim == 4 else None, 3: pixels, 2: pixels[:, :, None]}
    np.testing.assert_array_equal(read_png(body), expected[pixels.ndim])


def test_png_keeps_sixteen_bit_pixels(registry: Registry) -> None:
    pixels = np.array([[0, 1, 256], [65535, 4660, 43981]], dtype=np.uint16)
    np.testing.assert_array_equal(
        read_png(encode(registry, Prediction({"depth": pixels}), "image/png"))[:, :, 0], pixels
    )


def test_accept_names_the_output_of_a_model_with_several(registry: Registry) -> None:
    mask = np.eye(4, dtype=np.uint8) * 255
    answer = Prediction({"mask": mask, "scores": np.zeros(3, np.float32)})
    with pytest.raises(NotAcceptable, match=r"2 outputs \(mask, scores\).*output=<name>"):
        encode(registry, answer, "image/png")
    body = encode(registry, answer, "image/png; output=mask")
    np.testing.assert_array_equal(read_png(body)[:, :, 0], mask)
    with pytest.raises(NotAcceptable, match="No output 'nope'"):
        encode(registry, answer, "image/png; output=nope")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4), np.float32), "float32 values; image/png takes uint8 or uint16"),
        (np.zeros((2, 4, 4, 3), np.uint8), "holds 2 images and a PNG holds one"),
        (np.zeros((4, 4, 5), np.uint8), r"shape \[4, 4, 5\] is not an image"),
        (np.zeros(4, np.uint8), r"shape \[4\] is not an image"),
        (np.zeros((0, 4), np.uint8), "0x4 pixels"),
    ],
    ids=["float", "batch", "channels", "vector", "empty"],
)
def test_what_is_not_an_image_is_a_406_saying_why(
    registry: Registry, array: NDArray[Any], message: str
) -> None:
    with pytest.raises(NotAcceptable, match=message):
        encode(registry, Prediction({"y": array}), "image/png")


def test_classify_answers_are_not_images(registry: Registry) -> None:
    with pytest.raises(NotAcceptable, match="predict signature's image output"):
        encode(registry, ClassificationResponse(), "image/png")


def test_the_answer_is_bounded_before_it_is_written(registry: Registry) -> None:
    huge = np.broadcast_to(np.uint8(0), (1, 4096, 4096, 3))  # 48 MiB of pixels, no memory
    with pytest.raises(PayloadTooLarge, match="output 'y' of shape"):
        encode(registry, Prediction({"y": huge}), "image/png", Limits(max_elements=2**20))
    with pytest.raises(PayloadTooLarge, match="at least 48770 bytes as image/png"):
        encode(registry, Prediction({"y": huge}), "image/png", Limits(max_response_bytes=1000))


# -- through a real model ------------------------------------------------------------------------


def build_flipper(export_dir: Path) -> Path:
    """``serving_default``: ``image`` DT_STRING [-1] (PNG bytes) -> ``flipped`` uint8 [1, H, W, 3],
    the first image decoded by TensorFlow and mirrored left to right."""
    import tensorflow as tf

    class Flipper(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
        def serve(self, image: Any) -> Any:
            pixels = tf.io.decode_png(image[0], channels=3)
            return {"flipped": tf.image.flip_left_right(pixels)[tf.newaxis]}

    module = Flipper()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return export_dir


@pytest.mark.tensorflow
def test_png_in_png_out_through_a_real_pipeline(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline

    build_flipper(tmp_path / "flipper" / "1")
    pixels = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    upload = tf.io.encode_png(pixels).numpy()
    settings = Settings.from_env({})
    backend = EmbeddedBackend(tmp_path, default_model="flipper")
    try:
        pipeline = Pipeline(backend, settings=settings, registry=Registry.from_settings(settings))
        answer = pipeline.invoke(upload, {"Content-Type": "image/png", "Accept": "image/png"})
        assert answer.status == 200, answer.body
        assert ("content-type", "image/png") in answer.headers
        np.testing.assert_array_equal(tf.io.decode_png(answer.body).numpy(), pixels[:, ::-1])
        np.testing.assert_array_equal(read_png(answer.body), pixels[:, ::-1])
        as_json = pipeline.invoke(upload, {"Content-Type": "image/png"})
        assert as_json.status == 200 and b'"flipped"' in as_json.body
    finally:
        backend.close()
