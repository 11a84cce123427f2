"""tfio_handlers.tensors.shapes: dims ⇄ TensorShapeProto, and the extent of shapes of no elements."""

from __future__ import annotations

import numpy as np
import pytest

from tfio_handlers import tensors as T
from tfio_handlers.errors import BadRequest, PayloadTooLarge


def test_make_shape_and_shape_of() -> None:
    sp = T.make_shape([2, 3])
    assert [d.size for d in sp.dim] == [2, 3] and not sp.unknown_rank
    assert T.shape_of(sp) == (2, 3)
    assert T.shape_of(T.make_shape([])) == ()
    partial = T.make_shape([-1, 4])
    assert [d.size for d in partial.dim] == [-1, 4]
    assert T.make_shape(None).unknown_rank
    assert T.shape_of(T.to_tensor_proto(np.zeros((1, 2, 0)))) == (1, 2, 0)
    with pytest.raises(BadRequest, match="negative dimension"):
        T.shape_of(partial)
    with pytest.raises(BadRequest, match="unknown rank"):
        T.shape_of(T.make_shape(None))
    with pytest.raises(BadRequest, match="negative dimension -2"):
        T.make_shape([-2])
    with pytest.raises(BadRequest, match="sequence of integers"):
        T.make_shape("12")
    with pytest.raises(BadRequest, match="rank 65"):
        T.make_shape([1] * 65)
    with pytest.raises(BadRequest):
        T.shape_of(b"")  # type: ignore[arg-type]


def test_shape_extent() -> None:
    from tfio_handlers.config import Limits, shape_extent

    assert [shape_extent(d) for d in ([], [3], [2, 3], [5, 0], [5, 0, 7], [0, 9])] == [
        1,
        3,
        6,
        5,
        5,
        1,
    ]
    with pytest.raises(PayloadTooLarge, match="rows"):
        Limits(max_elements=4).check_shape([5, 0], "output 'y'")
    Limits(max_elements=4).check_shape([0, 5])
