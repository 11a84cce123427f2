"""tfio_handlers.tensors without TensorFlow: every dtype and layout written, then read back bit for bit.

The comparisons with TensorFlow itself are in test_tensors_tf.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensor_support import AVAILABLE, BFLOAT16, needs_ml_dtypes, same_bits

from tfio_handlers import protos as P
from tfio_handlers import tensors as T
from tfio_handlers import testing
from tfio_handlers.protos import TensorProto


def arrays(dt: int) -> st.SearchStrategy[np.ndarray]:
    """Arrays of every bit pattern of a dtype (NaN payloads, subnormals, -0.0 included)."""
    return testing.arrays(dt, max_dims=6)


@pytest.mark.parametrize("dt", AVAILABLE, ids=T.dtype_name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_every_dtype(dt: int, data: st.DataObject) -> None:
    arr = data.draw(arrays(dt))
    for typed in (False, True):
        p = T.to_tensor_proto(arr, typed_fields=typed)
        assert p.dtype == dt
        assert T.shape_of(p) == arr.shape
        back = T.to_ndarray(TensorProto.FromString(p.SerializeToString()))
        assert same_bits(back, arr)  # every bit pattern, NaN payloads included, in every layout
        if typed or dt == P.DT_STRING:
            assert p.tensor_content == b""
        elif arr.size <= 1 and dt in (P.DT_HALF, P.DT_BFLOAT16):
            # one element: half_val holds its bit pattern, which no Python float passes through
            assert p.tensor_content == b""
        elif arr.size <= 1:
            # one element: its typed field, unless a Python float would change its bits
            through_python = np.array(arr.tolist(), arr.dtype).reshape(arr.shape)
            assert bool(p.tensor_content) == (not same_bits(through_python, arr))
        else:
            assert p.tensor_content == arr.astype(arr.dtype.newbyteorder("<")).tobytes()


SIGNALLING_NAN_32 = bytes.fromhex("8080807f")  # float32 0x7f808080: quiet bit clear, payload set


@pytest.mark.parametrize("shape", [(), (1,), (3,)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.complex64], ids=lambda d: d.__name__)
def test_signalling_nan_bits_read_back_as_written(dtype: type, shape: tuple[int, ...]) -> None:
    """A Python float quiets a float32 signalling NaN; the writer must not pass one through it."""
    n = math.prod(shape)
    parts = SIGNALLING_NAN_32 * (n * (2 if dtype is np.complex64 else 1))
    arr = np.frombuffer(parts, dtype).reshape(shape)
    back = T.to_ndarray(T.to_tensor_proto(arr))
    assert back.tobytes() == arr.tobytes()
    # Typed fields carry the same bits on the wire (what a C++ reader sees).
    typed = T.to_tensor_proto(arr, typed_fields=True)
    assert not typed.tensor_content
    assert parts in typed.SerializeToString()
    assert T.to_ndarray(typed).tobytes() == arr.tobytes()


@needs_ml_dtypes
def test_bfloat16_signalling_nan_goes_to_half_val_bit_for_bit() -> None:
    """A Python float would quiet it (ml_dtypes does), but half_val carries the bits themselves."""
    arr = np.array(0x7F81, np.uint16).view(BFLOAT16)
    for typed in (False, True):
        p = T.to_tensor_proto(arr, typed_fields=typed)
        assert list(p.half_val) == [0x7F81] and p.tensor_content == b""
        assert T.to_ndarray(p).view(np.uint16) == 0x7F81
