"""Issue 11: bounded answers (items 1, 2), bounded pickles (item 3), no 500 for bad bytes (item 4),
and numbers beyond float64 refused by CSV and JSON lines (item 8). Each test fails without its fix."""

from __future__ import annotations

import contextlib
import io
import pickle
import struct
import zipfile
import zlib

import numpy as np
import pytest
from codec_support import CLASSIFY, context, signature
from hypothesis import given
from hypothesis import strategies as st

from tfio_handlers.config import Limits
from tfio_handlers.errors import BadRequest, HTTPError, PayloadTooLarge
from tfio_handlers.formats.csv import decode_csv, encode_csv
from tfio_handlers.formats.json import decode_json, encode_json
from tfio_handlers.formats.jsonlines import decode_jsonlines, encode_jsonlines
from tfio_handlers.formats.npy import decode_npy, decode_npz, encode_npy, encode_npz
from tfio_handlers.formats.pickle import encode_pickle, restricted_loads
from tfio_handlers.formats.protobuf import encode_protobuf
from tfio_handlers.media import parse_media_type
from tfio_handlers.protocol.answer_size import csv_bytes, nested_text_bytes
from tfio_handlers.protocol.requests import build_request
from tfio_handlers.protos import DT_FLOAT, PredictResponse

JSON = parse_media_type("application/json")


def _decode(decode, body: bytes, sig=None, media: str = "application/json"):  # type: ignore[no-untyped-def]
    ctx = context(sig)
    return build_request(decode(body, parse_media_type(media), ctx), ctx)


def _npy_header(header: str) -> bytes:
    text = header.encode("latin-1")
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def _npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def _stored_zip(name: bytes, data: bytes, version: int = 20) -> bytes:
    """A one-member zip written by hand (``zipfile`` refuses an empty name)."""
    crc = zlib.crc32(data)
    local = struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", version, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0
    )
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, version, 0, 0, 0, 0, crc, len(data), len(data),
        len(name), 0, 0, 0, 0, 0, 0,
    )  # fmt: skip
    local += name + data
    central += name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end


def _corrupt_deflate() -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy(np.zeros((64, 64), np.float32)))
    data = bytearray(stream.getvalue())
    start = data.index(b"x.npy") + len(b"x.npy")
    data[start : start + 8] = b"\xff" * 8  # a deflate block of reserved type 3: zlib.error
    return bytes(data)


# -- item 4: nine 500s, and their classes ----------------------------------------------------------

NINE = [
    ("json: invalid UTF-8 in a key", decode_json, b'{"\xff":[1.0]}', signature({"x": (DT_FLOAT, None)})),
    ("json: nested 10**5 deep", decode_json, b'{"a":' * 10**5 + b"1" + b"}" * 10**5, None),
    ("npy: shape (-2, -2)", decode_npy,
     _npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, -2), }") + b"\0" * 16, None),
    ("npy: unterminated shape", decode_npy,
     _npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, "), None),
    ("npy: <U1 beyond U+10FFFF", decode_npy,
     _npy_header("{'descr': '<U1', 'fortran_order': False, 'shape': (1,), }") + b"\xff" * 4, None),
    ("npz: corrupt deflate", decode_npz, _corrupt_deflate(), None),
    ("npz: version 17.3", decode_npz, _stored_zip(b"x.npy", _npy(np.ones(2)), version=173), None),
    ("npz: empty member name", decode_npz, _stored_zip(b"", _npy(np.ones(2))), None),
    ("jsonlines: lone surrogate key to classify", decode_jsonlines, b'{"\\ud800x":2.0}',
     signature({"x": (DT_FLOAT, None)}, CLASSIFY)),
]  # fmt: skip


@pytest.mark.parametrize(("decode", "body", "sig"), [c[1:] for c in NINE], ids=[c[0] for c in NINE])
def test_the_nine_malformed_bodies_answer_400(decode, body, sig) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest):
        _decode(decode, body, sig)


@pytest.mark.parametrize(
    "body",
    [b'{"x": {"y": {"z": 1}}, "\xc3": 2}', b'[{"\xff": 1}]', b'{"\\udc80": [1.0]}'],
)
def test_json_keys_that_are_not_utf8_are_400_everywhere(body: bytes) -> None:
    for sig in (
        None,
        signature({"x": (DT_FLOAT, None)}),
        signature({"x": (DT_FLOAT, None)}, CLASSIFY),
    ):
        with pytest.raises(BadRequest):
            _decode(decode_json, body, sig)


def test_plain_json_depth_is_the_documented_limit() -> None:
    assert _decode(decode_json, b"[" * 64 + b"1" + b"]" * 64).inputs["inputs"].shape == (1,) * 64
    with pytest.raises(BadRequest, match="deeper than the limit of 64"):
        _decode(decode_json, b'{"a":' * 65 + b"1" + b"}" * 65)


@given(st.binary(max_size=200))
def test_any_npy_header_text_is_a_value_or_http_error(text: bytes) -> None:
    body = _npy_header(text.decode("latin-1")) + text
    with contextlib.suppress(HTTPError):
        _decode(decode_npy, body)


def test_pickled_unicode_beyond_the_last_code_point_is_400() -> None:
    array = np.frombuffer(b"\xff\xff\xff\xff", dtype="<U1")
    with pytest.raises(BadRequest, match="U\\+10FFFF"):
        restricted_loads(pickle.dumps(array, protocol=4), Limits())


# -- items 1 and 2: answers bounded before writing -------------------------------------------------


def _response(dims: list[int]) -> PredictResponse:
    response = PredictResponse()
    tensor = response.outputs["y"]
    tensor.dtype = DT_FLOAT
    for size in dims:
        tensor.tensor_shape.dim.add(size=size)
    return response


ENCODERS = [
    ("application/json; format=tfs", encode_json),
    ("text/csv", encode_csv),
    ("application/jsonlines", encode_jsonlines),
]


@pytest.mark.parametrize(("media", "encode"), ENCODERS, ids=[m for m, _ in ENCODERS])
def test_empty_rows_are_refused_before_writing(media: str, encode) -> None:  # type: ignore[no-untyped-def]
    """[1e8, 0] holds nothing, yet these writers would write 1e8 rows (a 400 MB answer)."""
    with pytest.raises(PayloadTooLarge) as info:
        encode(_response([10**8, 0]), parse_media_type(media), _ctx(max_response_bytes=1 << 20))
    assert info.value.status_code == 413
    assert "output 'y' of shape [100000000, 0]" in info.value.message
    assert "limit of 1048576 bytes" in info.value.message


def _ctx(**limits: int):  # type: ignore[no-untyped-def]
    from tfio_handlers.config import Settings
    from tfio_handlers.context import Context

    return Context(settings=Settings(limits=Limits(**limits), enable_pickle=True))


def test_every_encoder_bounds_its_answer_by_its_own_format() -> None:
    """A [1000, 1000] float32 output: 4 MB as npy, at least 2 MB as text; every format refuses it
    under a 1 MB limit and writes a small answer; a 4.1 MB limit lets the npy answer through."""
    big = _response([1000, 1000])
    media = {
        "npy": (encode_npy, "application/x-npy"),
        "npz": (encode_npz, "application/x-npz"),
        "pickle": (encode_pickle, "application/python-pickle"),
        "json": (encode_json, "application/json; format=tfs"),
        "legacy": (encode_json, "application/json; format=legacy"),
        "csv": (encode_csv, "text/csv"),
        "jsonl": (encode_jsonlines, "application/jsonlines"),
    }
    for name, (encode, text) in media.items():
        with pytest.raises(PayloadTooLarge, match="over the limit of 1000000 bytes"):
            encode(big, parse_media_type(text), _ctx(max_response_bytes=1_000_000))
        encode(_response([3, 2]), parse_media_type(text), _ctx(max_response_bytes=1_000_000)), name
    big.outputs["y"].tensor_content = bytes(4_000_000)  # protobuf costs its message's size
    with pytest.raises(PayloadTooLarge, match="over the limit of 1000000 bytes"):
        encode_protobuf(
            big, parse_media_type("application/x-protobuf"), _ctx(max_response_bytes=1_000_000)
        )
    # npy costs nbytes: 4 MB of float32 fits a 4.1 MB limit, which JSON's 2 MB lower bound
    # does too; a legitimate npy answer is not refused for what JSON text would take.
    body = encode_npy(
        big, parse_media_type("application/x-npy"), _ctx(max_response_bytes=4_100_000)
    )
    assert len(body) > 4_000_000


def test_rows_of_a_zero_dimension_count_against_max_elements() -> None:
    with pytest.raises(PayloadTooLarge, match="rows"):
        encode_csv(_response([5000, 0]), parse_media_type("text/csv"), _ctx(max_elements=1000))


@given(st.lists(st.integers(0, 6), max_size=4))
def test_text_lower_bounds_never_exceed_what_is_written(dims: list[int]) -> None:
    response = _response(dims)
    if not dims:
        return
    ctx = _ctx()
    try:
        tfs = encode_json(response, parse_media_type("application/json; format=tfs"), ctx)
        rows = encode_csv(response, parse_media_type("text/csv"), ctx)
    except HTTPError:
        return
    predictions = tfs[tfs.index(b":") + 1 : -1]
    assert nested_text_bytes(dims) <= len(predictions) + 1
    assert csv_bytes(dims) <= len(rows) + 1


def test_npy_rows_for_examples_are_bounded_first() -> None:
    body = _npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 0), }")
    ctx = context(signature({"x": (DT_FLOAT, None)}, CLASSIFY))
    ctx.settings = ctx.settings.__class__(limits=Limits(max_elements=1000))
    with pytest.raises(PayloadTooLarge, match="rows"):
        decode_npy(body, parse_media_type("application/x-npy"), ctx)


@pytest.mark.parametrize(
    ("decode", "media", "body"),
    [
        (decode_npy, "application/x-npy", _npy(np.zeros((20, 0), np.float32))),
        (decode_npz, "application/x-npz", None),
        (decode_jsonlines, "application/jsonlines", b"[]\n" * 20),
        (decode_csv, "text/csv", b"1.0\n" * 20),
        (decode_json, "application/json", b'{"examples": [' + b",".join([b"{}"] * 20) + b"]}"),
        (decode_json, "application/json", b"[" + b",".join([b"[1.0]"] * 20) + b"]"),
    ],
    ids=["npy", "npz", "jsonlines", "csv", "tfs-json", "plain-json"],
)
def test_classify_records_are_counted_before_their_examples_are_built(
    decode, media: str, body: bytes | None
) -> None:  # type: ignore[no-untyped-def]
    """A million empty rows cost a million Examples (2.1 GB measured): max_examples bounds them."""
    from tfio_handlers.config import Settings

    if body is None:
        stream = io.BytesIO()
        np.savez(stream, x=np.zeros((20, 0), np.float32))
        body = stream.getvalue()
    ctx = context(signature({"inputs": (DT_FLOAT, None)}, CLASSIFY))
    ctx.settings = Settings(limits=Limits(max_examples=10))
    with pytest.raises(PayloadTooLarge, match="20 records, over the limit of 10 examples"):
        value = decode(body, parse_media_type(media), ctx)
        build_request(value, ctx)  # plain values are counted where they become examples
    ctx.settings = Settings(limits=Limits(max_examples=20))
    build_request(decode(body, parse_media_type(media), ctx), ctx)


# -- item 3: pickle claims and expansion -----------------------------------------------------------


@pytest.mark.parametrize("opcode", [b"\x96", b"\x8e", b"\x8d", b"\x95"])
def test_pickle_length_claims_are_checked_before_allocating(opcode: bytes) -> None:
    """BYTEARRAY8 would allocate 4 GiB from 12 bytes; BINBYTES8, BINUNICODE8, FRAME claim alike."""
    with pytest.raises(BadRequest, match="claims 4294967296 bytes"):
        restricted_loads(b"\x80\x05" + opcode + struct.pack("<Q", 4 << 30) + b".", Limits())


def test_pickle_calls_on_shared_references_are_bounded_before_the_call() -> None:
    """str([[s] * 10000] * 20000) from a few KB: refused before ``str`` runs."""
    body = bytearray(b"\x80\x02cbuiltins\nstr\n")
    body += b"(]q\x00(X\x0a\x00\x00\x00abcdefghijq\x01" + b"h\x01" * 9999 + b"e"
    body += b"]q\x02(" + b"h\x00" * 20000 + b"et"  # MARK ... TUPLE: args = (L0, L1)
    body = body.replace(b"\x80\x02cbuiltins\nstr\n(", b"\x80\x02cbuiltins\nstr\n(", 1)
    with pytest.raises(BadRequest, match="calls str on a value that expands"):
        restricted_loads(bytes(body) + b"R.", Limits())


def test_pickle_tuple_keys_are_refused_before_hashing() -> None:
    body = bytearray(b"\x80\x04})\x94")
    for i in range(60):  # t(i+1) = (t(i), t(i)): hashing t60 walks 2**60 tuples
        body += b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86\x94"
    body += b"K\x01s."
    with pytest.raises(BadRequest, match="tuple as a dict key"):
        restricted_loads(bytes(body), Limits())


@given(
    st.dictionaries(
        st.text(max_size=5), st.lists(st.floats(width=32, allow_nan=False), max_size=5), max_size=3
    )
)
def test_plain_pickles_still_round_trip(value: dict[str, list[float]]) -> None:
    for protocol in (2, 4, 5):
        assert restricted_loads(pickle.dumps(value, protocol=protocol), Limits()) == value


# -- item 8: numbers beyond float64 ----------------------------------------------------------------

BEYOND = [b"1e999", b"-1e999", b"1" + b"0" * 5000, b"1" + b"0" * 330]


@pytest.mark.parametrize("number", BEYOND, ids=lambda n: n[:8].decode())
@pytest.mark.parametrize(
    "sig", [None, signature({"x": (DT_FLOAT, None)}, CLASSIFY)], ids=["predict", "classify"]
)
def test_csv_and_jsonlines_refuse_finite_text_beyond_float64(number: bytes, sig) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest, match=r"out of range|too big"):
        _decode(decode_csv, number + b",2\n", sig, "text/csv")
    with pytest.raises(BadRequest, match=r"out of range|too big"):
        _decode(decode_jsonlines, b"[" + number + b", 2]\n", sig, "application/jsonlines")


def test_the_documented_non_finite_spellings_stay_allowed() -> None:
    csv_value = decode_csv(b"inf,-Infinity,nan\n", parse_media_type("text/csv"), context())
    assert np.isinf(csv_value[0, :2]).all() and np.isnan(csv_value[0, 2])
    lines = decode_jsonlines(
        b"[Infinity, -Infinity, NaN]\n", parse_media_type("application/jsonlines"), context()
    )
    assert np.isinf(lines[0, :2]).all() and np.isnan(lines[0, 2])
