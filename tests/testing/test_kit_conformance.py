"""The conformance suite catches broken codecs: a wrong round trip, a crash on bad input, a 500, an
input over the limits, a conflict with a built-in or another plugin, text flags that disagree; and
passes a correct one, including a decoder that answers ``None`` for bodies that are not its own."""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tfio_handlers.codec import (
    PredictArrays,
    Prediction,
    Register,
    hookimpl,
    predict_outputs,
    response_kind,
)
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, InternalError, NotAcceptable
from tfio_handlers.media import MediaType
from tfio_handlers.registry import Registry
from tfio_handlers.testing import ConformanceError, check_codec

pytestmark = pytest.mark.property  # each check_codec call runs Hypothesis properties

THING = "application/x-thing"
FAST = {"examples": 30, "fuzz_examples": 60}


def write_thing(response: Any, media_type: MediaType, context: Context) -> bytes:
    """One float64 output as b"THNG" + count + little-endian doubles (rank 1 only)."""
    if response_kind(response) != "predict":
        raise NotAcceptable("thing answers predict only")
    outputs = predict_outputs(response)
    if len(outputs) != 1:
        raise NotAcceptable("thing holds one output")
    array = next(iter(outputs.values()))
    if array.dtype != np.float64 or array.ndim != 1:
        raise NotAcceptable("thing holds a vector of float64")
    return b"THNG" + struct.pack("<I", array.size) + array.tobytes()


def read_thing(body: bytes, media_type: MediaType, context: Context) -> Any:
    if not body.startswith(b"THNG"):
        return None  # not mine: the next decoder is asked
    if len(body) < 8:
        raise BadRequest("thing body is truncated")
    (count,) = struct.unpack_from("<I", body, 4)
    context.limits.check_elements(count, "thing body")
    if len(body) != 8 + 8 * count:
        raise BadRequest("thing body length does not match its count")
    return np.frombuffer(body, "<f8", count, 8)


def plugin(
    decode: Any = read_thing,
    encode: Any = write_thing,
    media_type: str = THING,
    aliases: tuple[str, ...] = (),
    text: bool | None = False,
    round_trips: Any = ({"names": False, "dtypes": ["float64"], "min_dims": 1, "max_dims": 1},),
    **extra: Any,
) -> Any:
    @hookimpl
    def register_codecs(register: Register) -> None:
        register(media_type, decode=decode, encode=encode, aliases=aliases, text=text)
        for more in extra.get("more", ()):
            register(**more)

    conformance = {media_type: {"round_trips": list(round_trips), **extra.get("declaration", {})}}
    return SimpleNamespace(
        __name__="thing", register_codecs=register_codecs, TFIO_HANDLERS_CONFORMANCE=conformance
    )


def test_a_correct_codec_passes() -> None:
    check_codec(THING, plugin=plugin(), **FAST)


def test_a_wrong_round_trip_is_caught() -> None:
    def lossy(response: Any, media_type: MediaType, context: Context) -> bytes:
        (array,) = predict_outputs(response).values()
        with np.errstate(all="ignore"):
            rounded = array.astype(np.float32).astype(np.float64)  # float32 precision only
        return write_thing(Prediction({"y": rounded}), media_type, context)

    with pytest.raises(ConformanceError, match=r"round trip: output .* came back changed"):
        check_codec(THING, plugin=plugin(encode=lossy), **FAST)


def test_a_crash_on_bad_input_is_caught() -> None:
    def trusting(body: bytes, media_type: MediaType, context: Context) -> Any:
        (count,) = struct.unpack_from("<I", body, 4)  # struct.error on a short body
        return np.frombuffer(body, "<f8", count, 8)  # ValueError on a wrong count

    with pytest.raises(ConformanceError, match="hostile body: raised"):
        check_codec(THING, plugin=plugin(decode=trusting), **FAST)


def test_a_500_on_bad_input_is_caught() -> None:
    def five_hundred(body: bytes, media_type: MediaType, context: Context) -> Any:
        if not body.startswith(b"THNG"):
            raise InternalError("oops")
        return read_thing(body, media_type, context)

    with pytest.raises(ConformanceError, match="hostile body: answered 500"):
        check_codec(THING, plugin=plugin(decode=five_hundred), **FAST)


def test_sizes_read_from_a_body_must_be_bounded() -> None:
    def unbounded(body: bytes, media_type: MediaType, context: Context) -> Any:
        if len(body) < 3:
            raise BadRequest("short")
        return PredictArrays({"x": np.zeros(body[0] * body[1] * body[2] * 8)})  # up to 130M

    with pytest.raises(ConformanceError, match=r"over limits.max_elements"):
        check_codec(THING, plugin=plugin(decode=unbounded, round_trips=()), **FAST)


def test_an_encoder_crashing_on_an_answer_is_caught() -> None:
    def numbers_only(response: Any, media_type: MediaType, context: Context) -> bytes:
        return b"".join(a.astype(np.float64).tobytes() for a in predict_outputs(response).values())

    with pytest.raises(ConformanceError, match="any answer: raised"):
        check_codec(THING, plugin=plugin(decode=None, encode=numbers_only, round_trips=()), **FAST)


def test_claiming_a_builtin_type_is_a_conflict_unless_declared() -> None:
    json_too = plugin(aliases=("application/json",))
    with pytest.raises(ConformanceError, match=r"conflicts: .*application/json .*built-in 'json'"):
        check_codec(THING, plugin=json_too, **FAST)
    meant = plugin(
        aliases=("application/json",),
        encode=None,
        text=True,
        round_trips=(),
        declaration={"overrides": ["application/json"]},
    )
    check_codec(THING, plugin=meant, **FAST)


def test_two_plugins_claiming_a_type_conflict() -> None:
    registry = Registry()
    registry.register(plugin(), name="first")
    with pytest.raises(ConformanceError, match="conflicts: Plugin conflict"):
        check_codec(THING, plugin=plugin(), registry=registry, **FAST)


def test_text_and_binary_at_once_is_caught() -> None:
    mixed = plugin(
        more=[
            {
                "media_type": "application/x-other",
                "encode": write_thing,
                "aliases": (THING,),
                "text": True,
            }
        ]
    )
    with pytest.raises(ConformanceError, match="declared both text and binary"):
        check_codec(THING, plugin=mixed, **FAST)


def test_a_text_codec_must_write_utf8() -> None:
    with pytest.raises(ConformanceError, match="text flag"):
        check_codec(THING, plugin=plugin(text=True), **FAST)


def test_bad_media_type_names_are_caught() -> None:
    with pytest.raises(ConformanceError, match="lower-case type/subtype"):
        check_codec(THING, plugin=plugin(aliases=("application/x-thing; v=1",)), **FAST)


def test_round_trips_need_both_directions() -> None:
    with pytest.raises(ConformanceError, match="no encoder"):
        check_codec(THING, plugin=plugin(encode=None), **FAST)


def test_an_uninstalled_plugin_is_named() -> None:
    with pytest.raises(ConformanceError, match="no plugin 'nope'"):
        check_codec(THING, plugin="nope", registry=Registry())
