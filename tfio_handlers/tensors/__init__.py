"""NumPy arrays ⇄ TensorFlow ``TensorProto``, exactly, for every dtype numpy can hold.

Writing (:func:`to_tensor_proto`) follows ``tf.make_tensor_proto``: the same dtype inference from
Python and numpy values, the same ``shape`` rules (equal element count → reshape; fewer values →
the shape is kept and readers repeat the last value; more → error). Numeric tensors of more than
one element go to ``tensor_content`` as little-endian bytes; strings go to ``string_val``; a
single element goes to its typed field as TensorFlow does (unless a Python float would change its
bits: a signalling NaN goes to ``tensor_content``), so every bit pattern written reads back.
Reading (:func:`to_ndarray`) accepts every layout TensorFlow reads: ``tensor_content``
(zero-copy), each typed ``*_val`` field, the broadcast of fewer values than the shape holds (the
last value repeated, zeros when there are none) and the varint-prefixed ``tensor_content``
TensorFlow's C++ runtime writes for strings.

Messages from the network are untrusted, so reading checks before it allocates: negative or
overflowing dimensions, unknown dtypes and content of the wrong length raise
:class:`~tfio_handlers.errors.BadRequest`; a dtype numpy cannot hold (quantized, resource,
variant, float8, int4, references, or bfloat16 without ``ml_dtypes``) raises
:class:`~tfio_handlers.errors.Unimplemented`; a shape of more elements than ``max_elements``
(default :data:`DEFAULT_MAX_ELEMENTS`) raises :class:`~tfio_handlers.errors.PayloadTooLarge`; and
every broadcast is charged to the process's :data:`FILL_BUDGET` before it is made (413 over the
whole budget, alone or with its request's other fills; 503 while other requests' fills hold it).

One module per concept, their public names re-exported here:

* :mod:`.dtypes`: DataType enums ⇄ numpy dtypes and names (:func:`numpy_dtype`,
  :func:`data_type_of`, :func:`as_data_type`, :func:`dtype_name`, TensorFlow's ``DataTypeString``
  names used in TF Serving's error messages) and the one table of typed fields
  (:data:`TYPED_FIELDS`, :func:`typed_field`);
* :mod:`.shapes`: dims ⇄ ``TensorShapeProto`` and the shape checks (:func:`make_shape`,
  :func:`shape_of`, :data:`MAX_RANK`);
* :mod:`.writer`: numpy and Python values → ``TensorProto`` (:func:`to_tensor_proto`,
  :func:`encode_varint`);
* :mod:`.reader`: ``TensorProto`` → numpy (:func:`to_ndarray`);
* :mod:`.fill_budget`: the process's bound on broadcasts (:class:`FillBudget`).
"""

from __future__ import annotations

from .dtypes import (
    SUPPORTED_DTYPES,
    TYPED_FIELD_NUMBERS,
    TYPED_FIELDS,
    as_data_type,
    data_type_of,
    dtype_name,
    numpy_dtype,
    typed_field,
)
from .fill_budget import DEFAULT_FILL_BYTES, FillBudget, fills_of_one_request
from .reader import to_ndarray
from .shapes import MAX_RANK, make_shape, shape_of
from .writer import RAW_PACKED_DTYPES, encode_varint, to_tensor_proto

__all__ = [
    "DEFAULT_FILL_BYTES",
    "DEFAULT_MAX_ELEMENTS",
    "FILL_BUDGET",
    "MAX_RANK",
    "RAW_PACKED_DTYPES",
    "SUPPORTED_DTYPES",
    "TYPED_FIELDS",
    "TYPED_FIELD_NUMBERS",
    "FillBudget",
    "as_data_type",
    "data_type_of",
    "dtype_name",
    "encode_varint",
    "fills_of_one_request",
    "make_shape",
    "numpy_dtype",
    "shape_of",
    "to_ndarray",
    "to_tensor_proto",
    "typed_field",
]

DEFAULT_MAX_ELEMENTS: int = 2**28
"""The most elements :func:`to_ndarray` materializes unless told otherwise (268,435,456: 1 GiB
of float32). Reassign it (here, on the package: :func:`to_ndarray` reads it at each call) to
change the default for the whole process; pass ``max_elements`` to change it for one call. It
bounds every read, so a hostile shape with one value cannot make the broadcast allocate more, and
downstream code never meets a bigger array from the network."""


FILL_BUDGET: FillBudget = FillBudget(DEFAULT_FILL_BYTES)
"""The bytes that tensors filled by TensorFlow's broadcast (fewer values than their shape holds)
may hold at once in this process, shared by every request (:mod:`.fill_budget`). Servers set its
``limit_bytes`` from ``TFIO_HANDLERS_MAX_FILL_BYTES`` when they start
(:attr:`tfio_handlers.config.Limits.max_fill_bytes`); set it here to change it for the process."""
