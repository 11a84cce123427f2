"""tfio_handlers.testing's strategies draw what they say: every dtype and shape, the edge values, valid
messages; each read back by the library's own reader."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfio_handlers import tensors as T
from tfio_handlers.protocol.arrays import Prediction
from tfio_handlers.protocol.signatures import check_predict_inputs
from tfio_handlers.protos import (
    DT_BFLOAT16,
    DT_STRING,
    ClassificationRequest,
    ClassificationResponse,
    RegressionResponse,
    TensorProto,
)
from tfio_handlers.testing import (
    ALL_DTYPES,
    FLOAT_EDGE_BITS,
    STRING_EDGES,
    arrays,
    classification_requests,
    predict_requests,
    responses,
    same_bits,
    same_values,
    signatures,
    tensor_protos,
)
from tfio_handlers.testing.compare import describe_difference

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_arrays_are_what_the_reader_returns(data: st.DataObject) -> None:
    dt = data.draw(st.sampled_from(ALL_DTYPES))
    array = data.draw(arrays(dt))
    assert array.dtype == T.numpy_dtype(dt)
    assert array.ndim <= 4 and all(side <= 3 for side in array.shape)
    if dt == DT_STRING:
        assert all(isinstance(x, bytes) for x in array.ravel())
    back = T.to_ndarray(TensorProto.FromString(T.to_tensor_proto(array).SerializeToString()))
    assert same_bits(back, array)


@SETTINGS
@given(tensor_protos())
def test_tensor_protos_read_back(proto: TensorProto) -> None:
    array = T.to_ndarray(proto)
    assert T.to_tensor_proto(array).dtype == proto.dtype


def test_every_edge_value_is_drawn() -> None:
    """Over a few hundred arrays the edges appear: each float32 edge pattern, a signalling NaN in a
    complex64 part, a zero-sized dimension, the empty and the non-UTF-8 strings."""
    seen_f32: set[int] = set()
    seen_complex_snan = False
    seen_zero = False
    seen_strings: set[bytes] = set()

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(arrays("float32"), arrays("complex64", (4,)), arrays("string"))
    def collect(f32: np.ndarray, c64: np.ndarray, strings: np.ndarray) -> None:
        nonlocal seen_complex_snan, seen_zero
        seen_f32.update(f32.view("<u4").ravel().tolist())
        parts = c64.view("<u4").ravel()
        seen_complex_snan |= bool(
            ((parts & 0x7FC00000) == 0x7F800000).any() & (parts & 0x3FFFFF).any()
        )
        seen_zero |= 0 in f32.shape
        seen_strings.update(strings.ravel().tolist())

    collect()
    assert set(FLOAT_EDGE_BITS[32]) <= seen_f32
    assert seen_complex_snan and seen_zero
    assert {b"", b"\xff\xfe", b"a\x00"} <= seen_strings <= seen_strings | set(STRING_EDGES)


@SETTINGS
@given(st.data())
def test_predict_requests_pass_tf_servings_input_checks(data: st.DataObject) -> None:
    signature = data.draw(signatures(dtypes=[d for d in ALL_DTYPES if d != DT_BFLOAT16]))
    request = data.draw(predict_requests(signature))
    check_predict_inputs(request.inputs, signature)
    assert sorted(request.inputs) == sorted(signature.inputs)
    batches = {array.shape[0] for array in request.inputs.values() if array.ndim}
    assert len(batches) <= 1


@SETTINGS
@given(signatures(methods=("classify", "regress")), classification_requests())
def test_examples_signatures_and_requests(
    signature: object, request: ClassificationRequest
) -> None:
    assert ClassificationRequest.FromString(request.SerializeToString()) == request
    assert signature.inputs["inputs"].dtype == DT_STRING  # type: ignore[attr-defined]


@SETTINGS
@given(responses(same_batch=True, min_dims=1))
def test_responses(response: object) -> None:
    if isinstance(response, Prediction):
        assert len({array.shape[0] for array in response.outputs.values()}) == 1
    else:
        assert isinstance(response, (ClassificationResponse, RegressionResponse))


@SETTINGS
@given(arrays(dtypes=["float32"], allow_nan=False, allow_infinity=False, min_dims=1))
def test_finite_arrays(array: np.ndarray) -> None:
    assert np.isfinite(array).all()


def test_same_values_and_bits() -> None:
    quiet, signalling = (
        np.array([np.nan], np.float32),
        np.frombuffer(bytes.fromhex("0100807f"), "<f4"),
    )
    assert same_values(quiet, signalling) and not same_bits(quiet, signalling)
    assert not same_values(np.array([0.0]), np.array([-0.0]))
    assert "bits" in describe_difference(quiet, signalling.copy())
    assert math.isnan(float(signalling[0]))


def test_a_round_trips_signature_is_always_predict() -> None:
    """An answer of one string output named ``inputs`` (drawn in the core-only CI run) decodes
    against a predict signature, not a regressor-shaped one (``inputs`` string → ``outputs`` float),
    which the pickle codec read as a RegressionRequest."""
    from tfio_handlers.protocol.signatures import signature_method
    from tfio_handlers.testing.strategies import signature_for

    for outputs in ({"inputs": np.array([], dtype=object)}, {"inputs": np.array([b"a"], object)}):
        assert signature_method(signature_for(outputs)) == "predict"
