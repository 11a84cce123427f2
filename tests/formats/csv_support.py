"""Helpers the CSV tests share (imported as ``csv_support``; pytest puts this folder on the path)."""

from __future__ import annotations

from typing import Any

from codec_support import context, signature

from tfio_handlers.context import Context
from tfio_handlers.formats import csv as csv_codec
from tfio_handlers.media import parse_media_type
from tfio_handlers.protos import DT_FLOAT, DT_STRING

CSV = parse_media_type("text/csv")
CSV_HEADER = parse_media_type("text/csv; header=present")
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"

CLASSIFIER = signature(
    {"inputs": (DT_STRING, [-1])}, CLASSIFY, {"classes": DT_STRING, "scores": DT_FLOAT}
)


def decode(body: bytes, ctx: Context | None = None, media_type: Any = CSV) -> Any:
    return csv_codec.decode_csv(body, media_type, ctx or context())


def encode(response: Any, media_type: Any = CSV, ctx: Context | None = None) -> bytes:
    return csv_codec.encode_csv(response, media_type, ctx or context())
