"""tfio-handlers-arrow: columns are named inputs, rows instances; zero-copy reads; hostile bodies
refused; conformant (tfio_handlers.testing) in both IPC formats."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from tfio_handlers_arrow import FILE, STREAM, decode_arrow, encode_arrow

from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, NotAcceptable
from tfio_handlers.media import MediaType
from tfio_handlers.protocol.arrays import PredictArrays, Prediction
from tfio_handlers.pytest_plugin import CodecCase
from tfio_handlers.testing import signature_for

pytestmark = pytest.mark.property


def stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.tfio_codecs("arrow")
def test_conformance(tfio_codec: CodecCase) -> None:
    tfio_codec.check(examples=100, fuzz_examples=300)


def test_columns_are_inputs_and_rows_instances() -> None:
    table = pa.table(
        {
            "x": pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 3),
            "k": pa.array([1, 2], pa.int64()),
            "s": pa.array(["a", "é"]),
        }
    )
    context = Context(
        signature_defs={
            "serving_default": signature_for(
                {
                    "x": np.zeros(1, np.float32),
                    "k": np.zeros(1, np.int64),
                    "s": np.array([b""], object),
                }
            )
        }
    )
    request = decode_arrow(stream(table), MediaType(STREAM), context)
    assert isinstance(request, PredictArrays)
    np.testing.assert_array_equal(request.inputs["x"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert request.inputs["k"].tolist() == [1, 2]
    assert request.inputs["s"].tolist() == [b"a", "é".encode()]


def test_numbers_are_read_zero_copy() -> None:
    body = stream(pa.table({"x": pa.array(np.arange(4, dtype=np.float64))}))
    request = decode_arrow(body, MediaType(STREAM), Context())
    array = request.inputs["x"]
    assert not array.flags.writeable and not array.flags.owndata


def test_ragged_lists_nulls_and_other_types_are_400s() -> None:
    for table, match in [
        (pa.table({"x": pa.array([[1.0], [1.0, 2.0]])}), "different lengths"),
        (pa.table({"x": pa.array([1.0, None])}), "nulls"),
        (pa.table({"x": pa.array([{"a": 1}])}), "no TF dtype"),
    ]:
        with pytest.raises(BadRequest, match=match):
            decode_arrow(stream(table), MediaType(STREAM), Context())
    with pytest.raises(BadRequest, match="Malformed"):
        decode_arrow(b"ARROW1\x00\x00garbage", MediaType(FILE), Context())


def test_answers_that_are_not_a_table_are_406s() -> None:
    for outputs in [
        {"a": np.zeros(2), "b": np.zeros(3)},
        {"a": np.float32(1.0).reshape(())},
        {"c": np.zeros(2, np.complex64)},
    ]:
        with pytest.raises(NotAcceptable):
            encode_arrow(Prediction(outputs), MediaType(STREAM), Context())


def test_answers_read_with_pyarrow() -> None:
    body = encode_arrow(
        Prediction({"y": np.arange(6, dtype=np.int32).reshape(3, 2)}), MediaType(FILE), Context()
    )
    table = pa.ipc.open_file(pa.py_buffer(body)).read_all()
    assert table.column("y").to_pylist() == [[0, 1], [2, 3], [4, 5]]
