"""Helpers the tensors tests share (imported as ``tensor_support``; pytest puts this folder on the path)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tfio_handlers import protos as P
from tfio_handlers import tensors as T
from tfio_handlers.protos import TensorProto

try:  # bfloat16 needs ml_dtypes, which is not a core dependency
    import ml_dtypes
except ImportError:  # pragma: no cover - it comes with the dev extras
    ml_dtypes = None

needs_ml_dtypes = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes is not installed")
AVAILABLE = sorted(T.SUPPORTED_DTYPES - ({P.DT_BFLOAT16} if ml_dtypes is None else set()))
BFLOAT16 = ml_dtypes.bfloat16 if ml_dtypes is not None else None


def proto(dtype: int, dims: list[int], **fields: Any) -> TensorProto:
    """A TensorProto written field by field, the way a hostile client could."""
    p = TensorProto(dtype=dtype, **fields)  # type: ignore[arg-type]
    for d in dims:
        p.tensor_shape.dim.add(size=d)
    return p


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and values; NaNs compared by bit pattern, strings by value."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return a.tolist() == b.tolist()
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
