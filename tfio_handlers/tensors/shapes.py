"""Tensor shapes: dims ⇄ ``TensorShapeProto``, and the checks every shape from the network passes.

A shape is checked before anything of its size is allocated: a known rank of at most
:data:`MAX_RANK`, no negative dimension, a product that cannot overflow and, when reading a tensor,
no more elements than the caller's limit. Validated shapes are remembered (by their serialized
bytes) so that the checks cost little on the hot path.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any, Final, SupportsIndex

from google.protobuf.message import Message

from tfio_handlers.config import shape_extent
from tfio_handlers.errors import BadRequest, PayloadTooLarge
from tfio_handlers.protos import TensorProto, TensorShapeProto, coerce

__all__ = [
    "MAX_RANK",
    "checked_dims",
    "coerce_tensor",
    "concrete_shape",
    "element_count",
    "make_shape",
    "shape_of",
    "shape_proto",
]

MAX_RANK: Final = 64
"""The largest rank accepted: numpy's limit (TensorFlow's own is 254)."""

_MAX_NONZERO_PRODUCT: Final = (2**63 - 1) // 16
"""Bound on the product of a shape's non-zero dimensions (times the widest item, 16 bytes, it
still fits the int64 arithmetic of TensorFlow and numpy), so a shape with a zero dimension cannot
smuggle absurd sizes either."""

_SHAPE_CACHE: dict[tuple[int, ...], TensorShapeProto] = {}
_SHAPE_CACHE_SIZE: Final = 1024


def shape_proto(dims: tuple[int, ...]) -> TensorShapeProto:
    """A shared, never-mutated TensorShapeProto for concrete dims (callers ``CopyFrom`` it): writing
    a tensor's shape is one copy of a cached message instead of a message built dim by dim."""
    sp = _SHAPE_CACHE.get(dims)
    if sp is None:
        sp = TensorShapeProto(dim=[TensorShapeProto.Dim(size=d) for d in dims])
        if len(_SHAPE_CACHE) >= _SHAPE_CACHE_SIZE:
            _SHAPE_CACHE.clear()
        _SHAPE_CACHE[dims] = sp
    return sp


def make_shape(dims: Iterable[SupportsIndex] | None) -> TensorShapeProto:
    """A TensorShapeProto for ``dims``; ``-1`` marks an unknown dimension, ``None`` an unknown rank.

    The partial forms are for signatures and metadata; a tensor's shape must be concrete.
    Raises :class:`BadRequest` for dims below -1, non-integers or more than :data:`MAX_RANK`.
    """
    if dims is None:
        return TensorShapeProto(unknown_rank=True)
    sizes = checked_dims(dims, allow_unknown=True)
    return TensorShapeProto(dim=[TensorShapeProto.Dim(size=d) for d in sizes])


def checked_dims(
    dims: Iterable[SupportsIndex] | TensorShapeProto, *, allow_unknown: bool
) -> tuple[int, ...]:
    """Validate a caller's dims: integers (``operator.index``), >= 0 (or -1 when allowed), at most
    :data:`MAX_RANK` of them; a TensorShapeProto is read with :func:`shape_of`."""
    if isinstance(dims, (str, bytes)):
        raise BadRequest(f"shape must be a sequence of integers, got {dims!r}")
    if isinstance(dims, TensorShapeProto):
        return shape_of(dims)
    try:
        sizes = tuple(map(operator.index, dims))
    except TypeError:
        raise BadRequest(f"shape must be a sequence of integers, got {dims!r}") from None
    low = -1 if allow_unknown else 0
    for d in sizes:
        if d < low:
            raise BadRequest(f"shape {list(sizes)} has a negative dimension {d}")
    if len(sizes) > MAX_RANK:
        raise BadRequest(f"shape has rank {len(sizes)}, more than the {MAX_RANK} supported")
    return sizes


def shape_of(proto: TensorShapeProto | TensorProto | Message) -> tuple[int, ...]:
    """The concrete dims of a TensorShapeProto (or of a TensorProto's shape), validated.

    Raises :class:`BadRequest` for an unknown rank, a negative (unknown) dimension, a rank above
    :data:`MAX_RANK` or dims whose product overflows; no element limit applies here.
    """
    if isinstance(proto, TensorProto):
        sp: Any = proto.tensor_shape
    elif isinstance(proto, TensorShapeProto):
        sp = proto
    elif isinstance(proto, Message) and proto.DESCRIPTOR.full_name == "tensorflow.TensorProto":
        sp = coerce_tensor(proto).tensor_shape
    else:
        try:
            sp = coerce(proto, TensorShapeProto)
        except TypeError as e:
            raise BadRequest(str(e)) from None
    dims, _ = concrete_shape(sp, None)
    return dims


def coerce_tensor(message: object) -> TensorProto:
    """TensorFlow's TensorProto → ours; anything else is a :class:`BadRequest`.

    Here because a foreign tensor's shape is the first thing read from it (:func:`shape_of`); the
    writer and the reader take foreign tensors through it too."""
    try:
        return coerce(message, TensorProto)
    except TypeError as e:
        raise BadRequest(str(e)) from None


_CONCRETE_CACHE: dict[bytes, tuple[tuple[int, ...], int]] = {}


def concrete_shape(sp: Any, limit: int | None) -> tuple[tuple[int, ...], int]:
    """Validate a tensor's shape proto and count its elements, before anything is allocated: the
    dims and the count, or :class:`BadRequest`; :class:`PayloadTooLarge` beyond ``limit`` elements
    (``None``: no limit).

    Iterating ``dim`` builds a Python object per dimension (about 1 µs for two), so validated
    shapes are remembered by their serialized bytes (0.3 µs), in a bounded cache.
    """
    key = sp.SerializeToString()
    found = _CONCRETE_CACHE.get(key)
    if found is None:
        found = _check_shape(sp)
        if len(_CONCRETE_CACHE) >= _SHAPE_CACHE_SIZE:
            _CONCRETE_CACHE.clear()
        _CONCRETE_CACHE[key] = found
    if limit is not None and found[1] > limit:
        raise PayloadTooLarge(
            f"tensor shape {list(found[0])} has {found[1]} elements, more than the limit of {limit}"
        )
    if limit is not None and not found[1] and shape_extent(found[0]) > limit:
        raise PayloadTooLarge(
            f"tensor shape {list(found[0])} has {shape_extent(found[0])} rows of no elements, "
            f"more than the limit of {limit}"
        )
    return found


def _check_shape(sp: Any) -> tuple[tuple[int, ...], int]:
    """The dims and element count of a tensor's shape proto, or :class:`BadRequest`."""
    if sp.unknown_rank:
        raise BadRequest("tensor shape has unknown rank; a tensor's shape must be fully known")
    dims = tuple([d.size for d in sp.dim])
    if len(dims) > MAX_RANK:
        raise BadRequest(f"tensor shape has rank {len(dims)}, more than the {MAX_RANK} supported")
    for d in dims:
        if d < 0:
            raise BadRequest(f"tensor shape {list(dims)} has a negative dimension {d}")
    return dims, element_count(dims)


def element_count(dims: tuple[int, ...]) -> int:
    """The element count of valid dims; :class:`BadRequest` when absurdly large (see
    :data:`_MAX_NONZERO_PRODUCT`)."""
    n = 1
    nonzero = 1
    for d in dims:
        n *= d
        if d:
            nonzero *= d
    if nonzero > _MAX_NONZERO_PRODUCT:
        raise BadRequest(f"tensor shape {list(dims)} overflows: too many elements")
    return n
