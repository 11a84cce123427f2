"""The CSV codec as a whole: its registration, encode → decode properties, and end-to-end runs.

Reading is tested in test_csv_decode.py, writing in test_csv_encode.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from codec_support import context, predict_response, signature
from csv_support import (
    CSV,
    CSV_HEADER,
    decode,
    encode,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfio_handlers.config import Settings
from tfio_handlers.formats import csv as csv_codec
from tfio_handlers.media import parse_media_type
from tfio_handlers.protos import (
    DT_STRING,
)
from tfio_handlers.registry import Kind, Registry
from tfio_handlers.tensors import data_type_of


def test_registered_with_aliases() -> None:
    registry = Registry(builtins=False)
    registry.register(csv_codec, name="csv", kind=Kind.BUILTIN)
    for alias in ("text/csv", "application/csv", "text/comma-separated-values"):
        value = registry.decode(b"1,2\n", parse_media_type(alias), context())
        assert value.shape == (1, 2)
    body, content_type = registry.encode(predict_response(y=np.ones(1, np.float32)), CSV, context())
    assert (body, content_type) == (b"1.0\n", "text/csv")
    assert registry.is_text("text/csv")


# -- properties --------------------------------------------------------------------------------

NUMERIC = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
]


@st.composite
def tables(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(NUMERIC)))
    shape = draw(st.tuples(st.integers(0, 4), st.integers(1, 5)))
    elements = None
    if dtype.kind == "f":
        elements = st.floats(width=dtype.itemsize * 8, allow_nan=True, allow_infinity=True)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_encode_then_decode_gives_back_the_tensor(array: np.ndarray) -> None:
    dt = data_type_of(array.dtype)
    sig = signature({"x": (dt, [-1, array.shape[1]])})
    body = encode(predict_response(x=array), CSV_HEADER)
    back = decode(body, context(sig), CSV_HEADER)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


text_cells = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 2).flatmap(
        lambda width: st.lists(
            st.lists(text_cells, min_size=width, max_size=width), min_size=1, max_size=4
        )
    )
)
def test_strings_round_trip(rows: list[list[str]]) -> None:
    width = len(rows[0])
    array = np.empty((len(rows), width), object)
    array[:] = [[cell.encode() for cell in row] for row in rows]
    for media_type in (CSV, CSV_HEADER):
        body = encode(predict_response(s=array), media_type)
        back = decode(body, context(signature({"s": (DT_STRING, [-1, width])})), media_type)
        assert back.tolist() == array.tolist()


# -- end to end, with real SavedModels ---------------------------------------------------------


@pytest.mark.tensorflow
def test_end_to_end_multi_input_and_regression(embedded_backend: Any) -> None:
    from tfio_handlers.pipeline import Pipeline

    pipeline = Pipeline(embedded_backend, settings=Settings.from_env({}), registry=Registry())
    headers = {
        "X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=multi_input",
        "Content-Type": "text/csv; header=present",
        "Accept": "text/csv; header=present",
    }
    response = pipeline.invoke(b'a,a,b,c\n1.5,2,3,"x,y"\n0,1,-4,\n', headers)
    assert response.status == 200, response.body
    assert response.body == (b'b_doubled,c_bytes,c_length,total\n6,"x,y",3,6.5\n-8,"",0,-3.0\n')
    regression = {
        "X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=regression",
        "Content-Type": "text/csv; header=present",
        "Accept": "text/csv",
    }
    response = pipeline.invoke(b"x,k\n1.5,2\n2.0,\n", regression)
    assert response.status == 200, response.body
    assert response.body == b"5.0\n4.0\n"
