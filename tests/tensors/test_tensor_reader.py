"""tfio_handlers.tensors.reader: TensorProto → numpy, every layout TensorFlow reads, and hostile messages."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensor_support import BFLOAT16, needs_ml_dtypes, proto, same_bits

from tfio_handlers import protos as P
from tfio_handlers import tensors as T
from tfio_handlers.errors import BadRequest, PayloadTooLarge, Unimplemented
from tfio_handlers.protos import TensorProto, TensorShapeProto


def test_read_is_zero_copy_and_read_only_unless_writable() -> None:
    p = T.to_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3))
    view = T.to_ndarray(p)
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1
    own = T.to_ndarray(p, writable=True)
    own[0, 0] = 42
    assert own.flags.writeable and T.to_ndarray(p)[0, 0] == 0
    typed = T.to_ndarray(T.to_tensor_proto(np.arange(3.0), typed_fields=True))
    assert typed.flags.writeable


@pytest.mark.parametrize(
    ("dt", "fields", "expected"),
    [
        (P.DT_FLOAT, {"float_val": [1.5]}, np.array([1.5, 1.5, 1.5], np.float32)),
        (P.DT_DOUBLE, {"double_val": [1.0, 2.0]}, np.array([1.0, 2.0, 2.0])),
        (P.DT_INT32, {"int_val": [-7]}, np.array([-7, -7, -7], np.int32)),
        (P.DT_INT8, {"int_val": [-128, 127]}, np.array([-128, 127, 127], np.int8)),
        (P.DT_INT16, {"int_val": [-5]}, np.full(3, -5, np.int16)),
        (P.DT_UINT8, {"int_val": [255]}, np.full(3, 255, np.uint8)),
        (P.DT_UINT16, {"int_val": [65535, 1]}, np.array([65535, 1, 1], np.uint16)),
        (P.DT_UINT32, {"uint32_val": [2**32 - 1]}, np.full(3, 2**32 - 1, np.uint32)),
        (P.DT_UINT64, {"uint64_val": [2**64 - 1]}, np.full(3, 2**64 - 1, np.uint64)),
        (P.DT_INT64, {"int64_val": [-(2**63)]}, np.full(3, -(2**63), np.int64)),
        (P.DT_BOOL, {"bool_val": [True, False]}, np.array([True, False, False])),
        (P.DT_HALF, {"half_val": [0x3E00]}, np.full(3, 1.5, np.float16)),
        pytest.param(
            P.DT_BFLOAT16,
            {"half_val": [0x3FC0]},
            np.full(3, 1.5, BFLOAT16) if BFLOAT16 is not None else None,
            marks=needs_ml_dtypes,
        ),
        (P.DT_COMPLEX64, {"scomplex_val": [1, 2]}, np.full(3, 1 + 2j, np.complex64)),
        (P.DT_COMPLEX128, {"dcomplex_val": [1, 2, 3, 4]}, np.array([1 + 2j, 3 + 4j, 3 + 4j])),
        (P.DT_STRING, {"string_val": [b"a", b"b"]}, np.array([b"a", b"b", b"b"], object)),
        (P.DT_FLOAT, {}, np.zeros(3, np.float32)),
        (P.DT_BOOL, {}, np.zeros(3, bool)),
        (P.DT_STRING, {}, np.array([b"", b"", b""], object)),
        (P.DT_FLOAT, {"int_val": [1, 2, 3]}, np.zeros(3, np.float32)),  # other fields: ignored
    ],
)
def test_read_typed_fields_and_broadcast(dt: int, fields: dict[str, Any], expected: Any) -> None:
    got = T.to_ndarray(proto(dt, [3], **fields))
    assert same_bits(got, expected)


def test_read_scalar_and_empty_layouts() -> None:
    assert T.to_ndarray(proto(P.DT_FLOAT, [], float_val=[3.0])).shape == ()
    assert T.to_ndarray(proto(P.DT_FLOAT, [], tensor_content=b"\0\0\x80?")) == 1.0
    # content is ignored for an empty shape, as TensorFlow's runtime does
    assert T.to_ndarray(proto(P.DT_FLOAT, [0, 4], tensor_content=b"\0" * 4)).shape == (0, 4)
    assert T.to_ndarray(proto(P.DT_STRING, [2, 0])).shape == (2, 0)
    huge_but_empty = T.to_ndarray(proto(P.DT_FLOAT, [0, 2**40]))
    assert huge_but_empty.shape == (0, 2**40)


def encode_string_list(items: list[bytes]) -> bytes:
    """TensorFlow's C++ string tensor_content: varint32 lengths, then the bytes."""
    out = bytearray()
    for item in items:
        n = len(item)
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                break
    return bytes(out) + b"".join(items)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_read_string_tensor_content(items: list[bytes]) -> None:
    p = proto(P.DT_STRING, [len(items)], tensor_content=encode_string_list(items))
    assert T.to_ndarray(p).tolist() == items


@pytest.mark.parametrize(
    ("message", "error", "words"),
    [
        (proto(1, [3], tensor_content=b"\0" * 8), BadRequest, "takes 12"),
        (proto(1, [1], tensor_content=b"\0" * 8), BadRequest, "takes 4"),
        (proto(1, [3], tensor_content=b"\0" * 13), BadRequest, "13 bytes"),
        (proto(1, [-1], float_val=[1.0]), BadRequest, "negative dimension -1"),
        (proto(1, [2, -5]), BadRequest, "negative dimension -5"),
        (proto(1, [2**62, 2**62]), BadRequest, "overflows"),
        (proto(1, [0, 2**62, 2**62]), BadRequest, "overflows"),
        (proto(1, [2**50]), PayloadTooLarge, "more than the limit"),
        (proto(1, [2**62]), BadRequest, "overflows"),
        (proto(1, [2**28 + 1], float_val=[1.0]), PayloadTooLarge, "more than the limit"),
        (proto(1, [1] * 65), BadRequest, "rank 65"),
        (proto(0, [1], float_val=[1.0]), BadRequest, "DT_INVALID"),
        (proto(77, [1]), BadRequest, "unknown tensor dtype enum (77)"),
        (proto(-3, [1]), BadRequest, "unknown tensor dtype enum (-3)"),
        (proto(99, [1]), BadRequest, "unknown"),
        (proto(1000, [1]), BadRequest, "unknown"),
        (proto(20, [1]), Unimplemented, "resource"),
        (proto(21, [1]), Unimplemented, "variant"),
        (proto(11, [1], int_val=[1]), Unimplemented, "qint8"),
        (proto(12, [1]), Unimplemented, "quint8"),
        (proto(13, [1]), Unimplemented, "qint32"),
        (proto(24, [1]), Unimplemented, "float8_e5m2"),
        (proto(29, [1]), Unimplemented, "int4"),
        (proto(33, [1]), Unimplemented, "float4_e2m1fn"),
        (proto(101, [1], float_val=[1.0]), Unimplemented, "float_ref"),
        (proto(1, [2], float_val=[1, 2, 3]), BadRequest, "3 values, more than the 2"),
        (proto(7, [1], string_val=[b"a", b"b"]), BadRequest, "more than the 1"),
        (proto(8, [1], scomplex_val=[1, 2, 3]), BadRequest, "pairs"),
        (proto(18, [2], dcomplex_val=[1]), BadRequest, "pairs"),
        (proto(8, [1], scomplex_val=[1, 2, 3, 4]), BadRequest, "more than the 1"),
        (proto(6, [1], int_val=[128]), BadRequest, "out of range for int8"),
        (proto(5, [1], int_val=[-32769]), BadRequest, "out of range for int16"),
        (proto(4, [1], int_val=[-1]), BadRequest, "out of range for uint8"),
        (proto(17, [1], int_val=[65536]), BadRequest, "out of range for uint16"),
        (proto(19, [1], half_val=[-1]), BadRequest, "bit patterns out of range for half"),
        pytest.param(
            proto(14, [1], half_val=[70000]),
            BadRequest,
            "out of range for bfloat16",
            marks=needs_ml_dtypes,
        ),
        (proto(10, [2], tensor_content=b"\x01\x02"), BadRequest, "other than 0 and 1"),
        (proto(7, [3], tensor_content=b"\x01a"), BadRequest, "too short"),
        (proto(7, [1], tensor_content=b"\x05ab"), BadRequest, "do not add up"),
        (proto(7, [1], tensor_content=b"\x01ab"), BadRequest, "do not add up"),
        (proto(7, [1], tensor_content=b"\xff\xff\xff\xff\xff\xff"), BadRequest, "malformed"),
        (proto(7, [1], tensor_content=b"\x80\x80"), BadRequest, "malformed"),
    ],
)
def test_hostile_messages(message: TensorProto, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        T.to_ndarray(message)
    assert words in str(info.value)


def test_unknown_rank_is_rejected() -> None:
    p = proto(1, [2], float_val=[1.0])
    p.tensor_shape.unknown_rank = True
    with pytest.raises(BadRequest, match="unknown rank"):
        T.to_ndarray(p)


def test_element_limit_is_configurable() -> None:
    p = proto(1, [11], float_val=[1.0])
    with pytest.raises(PayloadTooLarge, match="11 elements, more than the limit of 10"):
        T.to_ndarray(p, max_elements=10)
    assert T.to_ndarray(p, max_elements=11).shape == (11,)
    content = T.to_tensor_proto(np.zeros(11, np.float32))
    with pytest.raises(PayloadTooLarge):
        T.to_ndarray(content, max_elements=10)  # the limit holds for every layout


def test_element_limit_default_can_be_reassigned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(T, "DEFAULT_MAX_ELEMENTS", 4)
    with pytest.raises(PayloadTooLarge):
        T.to_ndarray(proto(1, [5], float_val=[1.0]))
    assert T.to_ndarray(proto(1, [5], float_val=[1.0]), max_elements=5).size == 5


def test_broadcast_within_limit_allocates_only_what_it_returns() -> None:
    out = T.to_ndarray(proto(P.DT_UINT8, [1 << 20], int_val=[7]))
    assert out.nbytes == 1 << 20 and int(out[-1]) == 7


def test_not_a_tensor_proto() -> None:
    with pytest.raises(BadRequest, match=re.escape("tensorflow.TensorProto")):
        T.to_ndarray(TensorShapeProto())  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        T.to_ndarray(b"\x08\x01")  # type: ignore[arg-type]


def test_rows_of_no_elements_count_against_the_limit() -> None:
    """``[N, 0]`` holds nothing, but writers of nested lists write N rows: N is what is bounded."""
    hollow = proto(P.DT_FLOAT, [10**6, 0])
    with pytest.raises(PayloadTooLarge, match="rows of no elements"):
        T.to_ndarray(hollow, max_elements=1000)
    assert T.to_ndarray(hollow, max_elements=10**6).shape == (10**6, 0)
    assert T.to_ndarray(proto(P.DT_FLOAT, [0, 10**6]), max_elements=1000).shape == (0, 10**6)
