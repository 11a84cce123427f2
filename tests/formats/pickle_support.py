"""Helpers the pickle tests share (imported as ``pickle_support``; pytest puts this folder on the path)."""

from __future__ import annotations

import pickle
from typing import Any

from codec_support import context as shared_context

from tfio_handlers.context import Context
from tfio_handlers.formats import pickle as pickle_codec
from tfio_handlers.media import parse_media_type
from tfio_handlers.protos import SignatureDef


def payload(function: Any, *args: Any, protocol: int = 4) -> bytes:
    """A pickle that calls ``function(*args)`` when plain ``pickle.loads`` reads it."""

    class Evil:
        def __reduce__(self) -> Any:
            return (function, args)

    return pickle.dumps(Evil(), protocol=protocol)


PICKLE = parse_media_type("application/python-pickle")

PREDICT = "tensorflow/serving/predict"

CLASSIFY = "tensorflow/serving/classify"


def context(sig: SignatureDef | None = None, **settings_: Any) -> Context:
    """The shared context, with pickle enabled unless a test says otherwise."""
    settings_.setdefault("enable_pickle", True)
    return shared_context(sig, **settings_)


def decode(body: bytes, ctx: Context | None = None) -> Any:
    return pickle_codec.decode_pickle(body, PICKLE, ctx or context())
