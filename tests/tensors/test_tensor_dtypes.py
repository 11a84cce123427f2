"""tfio_handlers.tensors.dtypes: DataType names, spellings and the numpy dtype tables."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from tensor_support import AVAILABLE, BFLOAT16, ml_dtypes, needs_ml_dtypes, proto

from tfio_handlers import protos as P
from tfio_handlers import tensors as T
from tfio_handlers.errors import BadRequest, Unimplemented
from tfio_handlers.tensors import dtypes


def test_dtype_names() -> None:
    expected = {
        1: "float",
        2: "double",
        3: "int32",
        4: "uint8",
        5: "int16",
        6: "int8",
        7: "string",
        8: "complex64",
        9: "int64",
        10: "bool",
        14: "bfloat16",
        17: "uint16",
        18: "complex128",
        19: "half",
        20: "resource",
        21: "variant",
        22: "uint32",
        23: "uint64",
        101: "float_ref",
        119: "half_ref",
    }
    for dt, name in expected.items():
        assert T.dtype_name(dt) == name
    assert T.dtype_name(0) == "INVALID"
    assert T.dtype_name(77) == "unknown dtype enum (77)"
    assert T.dtype_name(100) == "unknown dtype enum (100)"


@pytest.mark.parametrize(
    ("spelling", "dt"),
    [
        (1, P.DT_FLOAT),
        (np.int64(3), P.DT_INT32),
        ("float", P.DT_FLOAT),
        ("float32", P.DT_FLOAT),
        ("DT_FLOAT", P.DT_FLOAT),
        ("dt_float", P.DT_FLOAT),
        ("double", P.DT_DOUBLE),
        ("float64", P.DT_DOUBLE),
        ("half", P.DT_HALF),
        ("float16", P.DT_HALF),
        ("DT_HALF", P.DT_HALF),
        ("bfloat16", P.DT_BFLOAT16),
        ("string", P.DT_STRING),
        ("DT_STRING", P.DT_STRING),
        ("bool", P.DT_BOOL),
        ("uint64", P.DT_UINT64),
        ("<f4", P.DT_FLOAT),
        ("f8", P.DT_DOUBLE),
        (np.float32, P.DT_FLOAT),
        (np.dtype(">i2"), P.DT_INT16),
        (np.dtype("U5"), P.DT_STRING),
        (object, P.DT_STRING),
        (float, P.DT_FLOAT),
        (bool, P.DT_BOOL),
        (int, P.DT_INT64),
        (str, P.DT_STRING),
        (np.complex64, P.DT_COMPLEX64),
        pytest.param(BFLOAT16, P.DT_BFLOAT16, marks=needs_ml_dtypes),
    ],
)
def test_as_data_type(spelling: object, dt: int) -> None:
    assert T.as_data_type(spelling) == dt


def test_as_data_type_duck_types_tf_dtypes() -> None:
    class FakeDType:
        as_datatype_enum = 9

    assert T.as_data_type(FakeDType()) == P.DT_INT64


@pytest.mark.parametrize(
    ("spelling", "error"),
    [
        ("floaty", BadRequest),
        (77, BadRequest),
        (0, BadRequest),
        (True, BadRequest),
        ([1], BadRequest),
        ("qint8", Unimplemented),
        ("DT_RESOURCE", Unimplemented),
        (20, Unimplemented),
        ("datetime64[s]", Unimplemented),
        (np.float128 if hasattr(np, "float128") else np.dtype("M8[s]"), Unimplemented),
    ],
)
def test_as_data_type_errors(spelling: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        T.as_data_type(spelling)


def test_numpy_dtype_and_data_type_of_agree() -> None:
    for dt in AVAILABLE:
        np_dtype = T.numpy_dtype(dt)
        assert T.data_type_of(np_dtype) == dt
        assert np_dtype.byteorder in "<|="
    assert T.data_type_of(np.dtype(">f8")) == P.DT_DOUBLE
    assert T.data_type_of(np.dtype("S3")) == P.DT_STRING
    with pytest.raises(Unimplemented):
        T.data_type_of(np.dtype([("a", "i4")]))
    if ml_dtypes is not None:
        with pytest.raises(Unimplemented):
            T.data_type_of(ml_dtypes.float8_e5m2)
    with pytest.raises(BadRequest):
        T.numpy_dtype(0)
    with pytest.raises(Unimplemented):
        T.numpy_dtype(P.DT_QINT8)


def test_bfloat16_without_ml_dtypes(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if no bfloat16 tensor had been met yet: the table the writer and the reader share has none.
    monkeypatch.setattr(dtypes, "_BFLOAT16", [])
    monkeypatch.delitem(dtypes.NUMPY_DTYPES, P.DT_BFLOAT16, raising=False)
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # makes `import ml_dtypes` fail
    p = proto(P.DT_BFLOAT16, [1], half_val=[0x3F80])
    with pytest.raises(Unimplemented, match="ml_dtypes") as info:
        T.to_ndarray(p)
    assert info.value.status_code == 501
    with pytest.raises(Unimplemented, match="ml_dtypes"):
        T.to_tensor_proto([1.0], dtype="bfloat16")
    # the other dtypes do not need it
    assert T.to_ndarray(proto(P.DT_FLOAT, [1], float_val=[1.0]))[0] == 1.0
