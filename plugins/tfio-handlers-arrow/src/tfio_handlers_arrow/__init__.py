"""A tfio-handlers codec for Apache Arrow IPC: ``application/vnd.apache.arrow.stream`` (the streaming
format) and ``application/vnd.apache.arrow.file`` (the file format), in and out.

The mapping (TF Serving's columnar form, one row per instance):

* each **column** is one named input (an answer: one output), named by the field;
* each **row** is one instance: a column's length is the batch dimension, and a row's value is one
  instance of the tensor: a number (the input is ``[N]``), or a ``fixed_size_list`` (nested for
  higher ranks: ``fixed_size_list<fixed_size_list<float, 3>, 2>`` is ``[N, 2, 3]``). A ``list``
  column is read when every row has the same length (TF Serving has no ragged tensors);
* types: ``int8`` … ``uint64``, ``float16/32/64``, ``bool``, and ``binary``/``string`` (and their
  ``large_`` forms) for ``DT_STRING``; nulls are refused (a tensor has none); answers of complex
  dtypes are a 406 (Arrow has no complex type), bfloat16 is written as ``float32``;
* a single column for a single-input signature goes to that input whatever its name.

Record batches are concatenated. Numbers without nulls are read **zero-copy**: the numpy array is a
read-only view of the request body when the column is one chunk (a stream of one record batch);
several chunks, booleans (bit-packed in Arrow) and strings are copied.

Bounds: the body against ``max_body_bytes``; the table is validated in full (offsets, sizes) before
any value is read, and every column's shape is checked against ``max_elements`` first.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
from numpy.typing import NDArray

from tfio_handlers.codec import (
    PredictArrays,
    Register,
    binary_bytes,
    check_response,
    conform,
    hookimpl,
    input_specs,
    response_arrays,
)
from tfio_handlers.config import Limits
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, NotAcceptable
from tfio_handlers.media import MediaType

if TYPE_CHECKING:
    from tfio_handlers.testing import CodecDeclaration

__all__ = [
    "FILE",
    "STREAM",
    "TFIO_HANDLERS_CONFORMANCE",
    "column_array",
    "decode_arrow",
    "encode_arrow",
    "read_table",
    "register_codecs",
    "table_of",
]

STREAM = "application/vnd.apache.arrow.stream"
FILE = "application/vnd.apache.arrow.file"

Array = NDArray[Any]

_ROUND_TRIP_DTYPES = (
    "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool", "string",
)  # fmt: skip

TFIO_HANDLERS_CONFORMANCE: dict[str, CodecDeclaration] = {
    media_type: {
        "round_trips": [
            # a table: every output has rows (rank >= 1), the same number of them
            {"max_outputs": 3, "min_dims": 1, "same_batch": True, "dtypes": _ROUND_TRIP_DTYPES},
            {
                "max_outputs": 2,
                "min_dims": 1,
                "same_batch": True,
                "dtypes": ("bfloat16",),
                "bits": False,
            },
        ],
    }
    for media_type in (STREAM, FILE)
}


# -- reading -----------------------------------------------------------------------------------------


def _check_type(arrow_type: pa.DataType, limits: Limits, where: str, depth: int = 0) -> None:
    """Refuse, before a value is read, types no tensor holds and fixed-size lists of size 0
    (which pyarrow cannot read without dividing by zero)."""
    if depth > limits.max_depth:
        raise BadRequest(f"{where} is nested deeper than {limits.max_depth}")
    if pa.types.is_fixed_size_list(arrow_type):
        if arrow_type.list_size <= 0:
            raise BadRequest(f"{where} is a fixed_size_list of size {arrow_type.list_size}")
        _check_type(arrow_type.value_type, limits, where, depth + 1)
    elif pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        _check_type(arrow_type.value_type, limits, where, depth + 1)
    elif not (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_boolean(arrow_type)
        or _is_text(arrow_type)
    ):
        raise BadRequest(f"{where} is of Arrow type {arrow_type}, which no TF dtype holds")


def _is_text(arrow_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
    )


def read_table(body: bytes, media_type: MediaType, limits: Limits) -> pa.Table:
    """The body as one validated table (a 400 for anything Arrow refuses), its schema checked
    before any record batch is read."""
    limits.check_body(len(body))
    buffer = pa.py_buffer(body)
    try:
        if media_type.essence == FILE:
            reader: Any = pa.ipc.open_file(buffer)
        else:
            reader = pa.ipc.open_stream(buffer)
        for field in reader.schema:
            _check_type(field.type, limits, f"column {field.name!r}")
        table = reader.read_all()
        table.validate(full=True)
    except (pa.ArrowException, ValueError, OSError, IndexError) as exc:
        raise BadRequest(f"Malformed Arrow body: {exc}") from None
    return table


def column_array(column: pa.ChunkedArray, limits: Limits, where: str) -> Array:
    """One column as a numpy array ``[rows, ...]``: zero-copy for one chunk of numbers."""
    chunks = column.chunks
    values: Any = chunks[0] if len(chunks) == 1 else column.combine_chunks()
    if len(chunks) == 0:
        values = pa.array([], type=column.type)
    dims = [len(values)]
    while isinstance(values, (pa.FixedSizeListArray, pa.ListArray, pa.LargeListArray)):
        if values.null_count:
            raise BadRequest(f"{where} holds nulls; a tensor has none")
        if isinstance(values, pa.FixedSizeListArray):
            size = values.type.list_size
        else:
            sizes = values.value_lengths().to_numpy(zero_copy_only=False)
            size = int(sizes[0]) if sizes.size else 0
            if sizes.size and (sizes != size).any():
                raise BadRequest(f"{where} has rows of different lengths; tensors are rectangular")
        dims.append(size)
        limits.check_shape(dims, where)
        values = values.flatten()
    limits.check_shape(dims, where)
    if values.null_count:
        raise BadRequest(f"{where} holds nulls; a tensor has none")
    if _is_text(values.type):
        strings = np.empty(len(values), dtype=object)
        strings[:] = [s.encode() if isinstance(s, str) else s for s in values.to_pylist()]
        array: Array = strings
    else:
        array = values.to_numpy(zero_copy_only=not pa.types.is_boolean(values.type))
    if array.size != math.prod(dims):
        raise BadRequest(f"{where}: {array.size} values for shape {dims}")
    return array.reshape(dims)


def decode_arrow(body: bytes, media_type: MediaType, context: Context) -> PredictArrays:
    """An Arrow IPC body: each column one named input, each row one instance."""
    limits = context.limits
    table = read_table(body, media_type, limits)
    if table.num_columns == 0:
        raise BadRequest("The Arrow body has no column")
    specs = input_specs(context)
    names = [str(name) for name in table.column_names]
    if len(set(names)) != len(names):
        raise BadRequest(f"The Arrow body names a column twice: {names}")
    if len(names) == 1 and len(specs) == 1:
        spec = next(iter(specs.values()))
        return PredictArrays(
            {
                spec.name: conform(
                    column_array(table.column(0), limits, f"column {names[0]!r}"),
                    spec,
                    limits,
                    f"column {names[0]!r}",
                )
            }
        )
    inputs = {
        name: conform(
            column_array(table.column(i), limits, f"column {name!r}"),
            specs.get(name),
            limits,
            f"column {name!r}",
        )
        for i, name in enumerate(names)
    }
    return PredictArrays(inputs)


# -- writing -----------------------------------------------------------------------------------------


def _column(array: Array, name: str) -> pa.Array:
    if array.ndim == 0:
        raise NotAcceptable(
            f"Output {name!r} is a scalar, and an Arrow column holds one value per instance: ask "
            "for application/json"
        )
    if array.dtype == object or array.dtype.kind in "SU":
        flat: pa.Array = pa.array(
            [x if isinstance(x, bytes) else str(x).encode() for x in array.ravel().tolist()],
            type=pa.large_binary(),
        )
    elif array.dtype.kind == "c":
        raise NotAcceptable(f"Output {name!r} is {array.dtype}, which Arrow has no type for")
    else:
        if array.dtype.kind not in "biuf":  # bfloat16
            array = array.astype(np.float32)
        flat = pa.array(np.ascontiguousarray(array).ravel())
    for level in range(array.ndim - 1, 0, -1):
        size, rows = array.shape[level], math.prod(array.shape[:level])
        if size:
            flat = pa.FixedSizeListArray.from_arrays(flat, size)
        else:  # pyarrow has no fixed-size list of size 0: a list of empty rows
            flat = pa.ListArray.from_arrays(pa.array(np.zeros(rows + 1, np.int32)), flat)
    return flat


def table_of(arrays: dict[str, Array]) -> pa.Table:
    """Named arrays as a table (one column each); their first dimensions must agree (406)."""
    rows = {name: (array.shape[0] if array.ndim else None) for name, array in arrays.items()}
    if len({r for r in rows.values() if r is not None}) > 1:
        raise NotAcceptable(
            "The outputs have different numbers of rows ("
            + ", ".join(f"{n}: {r}" for n, r in rows.items())
            + "), and an Arrow table's columns have one: ask for application/json"
        )
    columns = [_column(array, name) for name, array in arrays.items()]
    return pa.Table.from_arrays(columns, names=list(arrays))


def encode_arrow(response: Any, media_type: MediaType, context: Context) -> bytes:
    """Every output (classify: ``classes``/``scores``; regress: ``outputs``) as one column."""
    check_response(response, context.limits, media_type.essence, binary_bytes, overhead=512)
    table = table_of(response_arrays(response))
    sink = pa.BufferOutputStream()
    writer = (
        pa.ipc.new_file(sink, table.schema)
        if media_type.essence == FILE
        else pa.ipc.new_stream(sink, table.schema)
    )
    with writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@hookimpl
def register_codecs(register: Register) -> None:
    """The Arrow IPC stream and file formats, binary types."""
    register(STREAM, decode=decode_arrow, encode=encode_arrow, text=False)
    register(FILE, decode=decode_arrow, encode=encode_arrow, text=False)
