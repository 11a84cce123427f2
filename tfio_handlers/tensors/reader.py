"""``TensorProto`` → numpy, as ``tf.make_ndarray`` reads it, checked before anything is allocated.

:func:`to_ndarray` reads every layout TensorFlow reads: ``tensor_content`` (a zero-copy view), each
typed ``*_val`` field, the broadcast of fewer values than the shape holds (the last value repeated,
zeros when there are none; charged to the process's fill budget, :mod:`.fill_budget`) and the
varint-prefixed string ``tensor_content`` TensorFlow's C++ runtime writes. Messages from the
network are untrusted: the shape, the dtype, the length of the content and the range of every
narrow value are checked, and a shape beyond the element limit
(:data:`tfio_handlers.tensors.DEFAULT_MAX_ELEMENTS`) is refused before any allocation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf.message import Message

# The package itself, for its DEFAULT_MAX_ELEMENTS and FILL_BUDGET, read at each call so that
# reassigning ``tfio_handlers.tensors.DEFAULT_MAX_ELEMENTS`` changes the default (a circular
# import, safe because nothing is read from it while the package is being imported).
import tfio_handlers.tensors as package
from tfio_handlers.errors import BadRequest
from tfio_handlers.protos import DT_BOOL, DT_STRING, TensorProto

from .dtypes import (
    COMPLEX_PARTS,
    HALF_BITS,
    NARROW_INTS,
    NUMPY_DTYPES,
    TYPED_FIELDS,
    dtype_name,
    numpy_dtype,
)
from .shapes import coerce_tensor, concrete_shape

__all__ = ["to_ndarray"]


def to_ndarray(
    proto: TensorProto | Message,
    *,
    max_elements: int | None = None,
    writable: bool = False,
) -> npt.NDArray[Any]:
    """The numpy array a TensorProto holds, as ``tf.make_ndarray`` reads it, checked first.

    Accepts our TensorProto or TensorFlow's. Every layout TensorFlow reads is accepted:
    ``tensor_content``; the typed field of the dtype (``half_val`` bit patterns for
    half/bfloat16, ``int_val`` for int8/16/32 and uint8/16, ``scomplex_val``/``dcomplex_val``
    as (real, imaginary) pairs, ...); fewer values than the shape holds, the last repeated (no
    values: zeros, or ``b""`` for strings); and for strings the varint-length-prefixed
    ``tensor_content`` TensorFlow's C++ runtime writes. Strings come back as ``bytes`` in an
    ``object`` array.

    From ``tensor_content`` the result is a zero-copy, **read-only** view of the message's
    bytes (``np.frombuffer``): no copy for large tensors, and nothing can write into a buffer
    other readers share. Pass ``writable=True`` for an array of your own (one copy). Arrays
    built from typed fields are always new and writable.

    Raises :class:`BadRequest` for malformed messages (negative or overflowing dims, unknown
    dtype, content whose length disagrees with the shape, more values than the shape holds, an
    odd count of complex parts, integers out of range for the dtype, bool bytes other than
    0/1, ...), :class:`Unimplemented` for dtypes numpy cannot hold and
    :class:`PayloadTooLarge` when the shape has more elements than ``max_elements`` (default
    :data:`DEFAULT_MAX_ELEMENTS`).
    """
    if not isinstance(proto, TensorProto):
        proto = coerce_tensor(proto)
    dt = proto.dtype
    np_dtype = NUMPY_DTYPES.get(dt)
    if np_dtype is None:
        np_dtype = numpy_dtype(dt)
    dims, n = concrete_shape(
        proto.tensor_shape, package.DEFAULT_MAX_ELEMENTS if max_elements is None else max_elements
    )
    content = proto.tensor_content
    if content:
        if n == 0:  # TensorFlow's runtime ignores content for an empty shape
            return np.empty(dims, np_dtype)
        if dt == DT_STRING:
            out = np.empty(n, object)
            out[:] = _decode_string_list(content, n)
            return out.reshape(dims)
        if len(content) != n * np_dtype.itemsize:
            raise BadRequest(
                f"tensor_content holds {len(content)} bytes, but a {dtype_name(dt)} tensor of "
                f"shape {list(dims)} takes {n * np_dtype.itemsize}"
            )
        arr = np.frombuffer(content, np_dtype)
        if dt == DT_BOOL and n and int(arr.view(np.uint8).max()) > 1:
            raise BadRequest("bool tensor_content holds bytes other than 0 and 1")
        if writable or not arr.flags.aligned:
            arr = arr.copy()
        return arr.reshape(dims)
    return _from_fields(proto, dt, np_dtype, dims, n)


def _from_fields(
    proto: TensorProto, dt: int, np_dtype: np.dtype[Any], dims: tuple[int, ...], n: int
) -> npt.NDArray[Any]:
    """Read the dtype's typed field, broadcasting its last value as TensorFlow does."""
    field = getattr(proto, TYPED_FIELDS[dt])
    k = len(field)
    if dt == DT_STRING:
        if k > n:
            raise _too_many(k, dims, n)
        if k == n:
            out = np.empty(n, object)
            out[:] = list(field)
            return out.reshape(dims)
        return _filled(dims, n, np.dtype(object), list(field), field[k - 1] if k else b"")
    if dt in COMPLEX_PARTS:
        if k % 2:
            raise BadRequest(
                f"{TYPED_FIELDS[dt]} holds {k} numbers: complex values need (real, imaginary) pairs"
            )
        k //= 2
    if k > n:
        raise _too_many(k, dims, n)
    if k == 0:
        return _filled(dims, n, np_dtype, [], 0)
    if dt in NARROW_INTS or dt in HALF_BITS:
        wide = np.array(field, np.int64)
        low, high = (0, 65535) if dt in HALF_BITS else _int_range(np_dtype)
        if int(wide.min()) < low or int(wide.max()) > high:
            what = "bit patterns" if dt in HALF_BITS else "values"
            raise BadRequest(f"{TYPED_FIELDS[dt]} holds {what} out of range for {dtype_name(dt)}")
        values = wide.astype("<u2").view(np_dtype) if dt in HALF_BITS else wide.astype(np_dtype)
    elif dt in COMPLEX_PARTS:
        values = np.array(field, COMPLEX_PARTS[dt]).view(np_dtype)
    else:
        values = np.array(field, np_dtype)
    if k == n:
        return values.reshape(dims)
    return _filled(dims, n, np_dtype, values, values[-1])


def _filled(
    dims: tuple[int, ...], n: int, np_dtype: np.dtype[Any], head: Any, last: Any
) -> npt.NDArray[Any]:
    """TensorFlow's broadcast: ``head``'s values, then ``last`` repeated up to ``n``, shaped
    ``dims``. Charged to the process's :data:`~tfio_handlers.tensors.FILL_BUDGET` before it is
    allocated (see :mod:`.fill_budget`)."""
    budget = package.FILL_BUDGET
    nbytes = n * np_dtype.itemsize
    if np_dtype.kind == "O":  # references to one bytes: TensorFlow's tensor holds every copy
        nbytes += (n - len(head)) * len(last)
    charged = budget.charge(nbytes, f"A tensor of shape {list(dims)}")
    try:
        out = np.empty(n, np_dtype)
        k = len(head)
        if k:
            out[:k] = head
        out[k:] = last
    except BaseException:
        budget.refund(charged)
        raise
    return budget.hold(out, charged).reshape(dims)


def _int_range(np_dtype: np.dtype[Any]) -> tuple[int, int]:
    """The inclusive range of an integer dtype."""
    info = np.iinfo(np_dtype)
    return int(info.min), int(info.max)


def _too_many(k: int, dims: tuple[int, ...], n: int) -> BadRequest:
    """The error for a tensor holding more values than its shape takes."""
    return BadRequest(f"tensor holds {k} values, more than the {n} its shape {list(dims)} takes")


def _decode_string_list(content: bytes, n: int) -> list[bytes]:
    """TensorFlow's C++ string ``tensor_content``: ``n`` varint32 lengths, then the bytes."""
    if n > len(content):
        raise BadRequest(f"string tensor_content is too short for {n} strings")
    sizes: list[int] = []
    pos = 0
    end = len(content)
    for _ in range(n):
        value = 0
        shift = 0
        while True:
            if pos >= end or shift > 28:
                raise BadRequest("string tensor_content has a malformed length prefix")
            byte = content[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        sizes.append(value)
    if sum(sizes) != end - pos:
        raise BadRequest("string tensor_content lengths do not add up to its size")
    out: list[bytes] = []
    for size in sizes:
        out.append(content[pos : pos + size])
        pos += size
    return out
