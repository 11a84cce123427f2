"""A third-party codec for image models, written with the public codec kit (:mod:`tfio_handlers.codec`).

In: an image upload (``image/jpeg``, ``image/png``, ``application/x-image``) becomes one ``DT_STRING``
instance, for models that decode images themselves; SageMaker users asked for ``application/x-image``
to work with no ``input_fn`` to write.

Out: ``Accept: image/png`` answers a predict output of ``uint8`` (or ``uint16``) pixels shaped
``[H, W]``, ``[H, W, C]`` or ``[1, H, W, C]`` (C: 1 grey, 2 grey and alpha, 3 RGB, 4 RGBA) as a PNG,
for models that answer an image (segmentation masks, super-resolution, style transfer, generators).
A model with several outputs names one: ``Accept: image/png; output=mask``. The PNG is written with
``zlib`` and ``struct`` alone; no imaging library is needed.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tfio_handlers.codec import (
    PredictArrays,
    Register,
    binary_bytes,
    check_answer,
    conform,
    hookimpl,
    input_specs,
    predict_outputs,
    response_kind,
)
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, NotAcceptable
from tfio_handlers.media import MediaType

__all__ = ["IMAGE_TYPES", "PNG", "decode_image", "encode_png", "png_bytes", "register_codecs"]

IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
PNG = "image/png"

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: grey, grey+alpha, RGB, RGBA
_DEFLATE_BEST_RATIO = 1032  # deflate never shrinks data further: a PNG's floor is its pixels / 1032
_MAX_SIDE = 2**31 - 1  # PNG's limit on the width and the height


def decode_image(
    body: bytes, media_type: MediaType, context: Context
) -> PredictArrays | NDArray[Any]:
    """The whole body is one image: a batch of one encoded string.

    When the signature has one input, the image goes to it (an input that is not ``DT_STRING`` is a
    400 naming it); otherwise the library maps the plain batch as it maps any decoder's value.
    """
    if not body:
        raise BadRequest("Empty image body")
    batch = np.empty(1, dtype=object)
    batch[0] = body
    specs = input_specs(context)
    spec = next(iter(specs.values())) if len(specs) == 1 else None
    batch = conform(batch, spec, context.limits, "image body")
    if spec is None:
        return batch
    return PredictArrays({spec.name: batch})


def encode_png(response: object, media_type: MediaType, context: Context) -> bytes:
    """A predict output of pixels as one PNG image; anything else is a 406 saying what to ask for."""
    if response_kind(response) != "predict":
        raise NotAcceptable(
            f"{PNG} answers a predict signature's image output; ask for application/json"
        )
    outputs = predict_outputs(response)
    name = media_type.params.get("output")
    if name is None:
        if len(outputs) != 1:
            raise NotAcceptable(
                f"The model answers {len(outputs)} outputs ({', '.join(outputs)}); name the image "
                f"with Accept: {PNG}; output=<name>"
            )
        name = next(iter(outputs))
    elif name not in outputs:
        raise NotAcceptable(f"No output {name!r}; the model answers {', '.join(outputs)}")
    array = outputs[name]
    where = f"output {name!r}"
    floor = binary_bytes(array.shape, array.dtype.itemsize) // _DEFLATE_BEST_RATIO
    check_answer([(where, array.shape, floor)], context.limits, PNG)
    return png_bytes(_pixels(array, where))


def _pixels(array: NDArray[Any], where: str) -> NDArray[Any]:
    """``array`` as ``[H, W, C]`` pixels, or a 406 saying why it is not an image."""
    if array.dtype.kind != "u" or array.dtype.itemsize > 2:
        raise NotAcceptable(
            f"{where} holds {array.dtype} values; {PNG} takes uint8 or uint16 pixels: ask for "
            "application/json"
        )
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise NotAcceptable(
                f"{where} holds {array.shape[0]} images and a PNG holds one: send one image per "
                "request or ask for application/json"
            )
        array = array[0]
    elif array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] not in _COLOR_TYPES:
        raise NotAcceptable(
            f"{where} of shape {list(array.shape)} is not an image: {PNG} takes [H, W], [H, W, C] "
            "or [1, H, W, C] with 1 to 4 channels"
        )
    height, width = array.shape[:2]
    if not (0 < height <= _MAX_SIDE and 0 < width <= _MAX_SIDE):
        raise NotAcceptable(
            f"{where} is an image of {height}x{width} pixels, which PNG cannot hold"
        )
    return array


def png_bytes(pixels: NDArray[Any]) -> bytes:
    """``[H, W, C]`` ``uint8`` or ``uint16`` pixels as a PNG file (no filtering, zlib level 6)."""
    height, width, channels = pixels.shape
    big_endian = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder(">"))
    rows = big_endian.view(np.uint8).reshape(height, -1)
    scanlines = np.zeros((height, rows.shape[1] + 1), dtype=np.uint8)  # filter byte 0 per row
    scanlines[:, 1:] = rows
    depth = 8 * pixels.dtype.itemsize
    header = struct.pack(">IIBBBBB", width, height, depth, _COLOR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@hookimpl
def register_codecs(register: Register) -> None:
    """Images in (``application/x-image`` and its aliases), PNG out."""
    register("application/x-image", decode=decode_image, aliases=IMAGE_TYPES[:2], text=False)
    register(PNG, encode=encode_png, text=False)
