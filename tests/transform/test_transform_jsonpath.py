"""SageMaker's JSONPath subset and DataProcessing (filters, join) on JSON records and CSV rows."""

from __future__ import annotations

import pytest

from tfio_handlers.errors import InternalError
from tfio_handlers.transform.join import DataProcessing
from tfio_handlers.transform.jsonpath import JSONPath, JSONPathError
from tfio_handlers.transform.options import TransformOptions

RECORD = {"id": 7, "features": [1.5, 2, 3], "meta": {"a": 1, "b": 2}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", RECORD),
        ("$.features", [1.5, 2, 3]),
        ("$['features']", [1.5, 2, 3]),
        ('$["id"]', 7),
        ("$.features[1:]", [2, 3]),
        ("$.features[-1]", 3),
        ("$.features[0,2:]", [1.5, 3]),
        ("$.features[::2]", [1.5, 3]),
        ("$['id','meta']", {"id": 7, "meta": {"a": 1, "b": 2}}),
        ("$.meta.*", [1, 2]),
        ("$.meta[*]", [1, 2]),
    ],
)
def test_select(path: str, expected: object) -> None:
    assert JSONPath(path).select(RECORD) == expected


def test_segments_after_a_multiple_selection_apply_to_each_element() -> None:
    assert JSONPath("$.rows[*].x").select({"rows": [{"x": 1}, {"x": 2}]}) == [1, 2]


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("$.nope", "no member 'nope'"),
        ("$.features[3]", "out of range for 3 elements"),
        ("$.features[0,7]", "out of range"),
        ("$.id.x", "member 'x' of a JSON int"),
    ],
)
def test_missing_parts_are_errors(path: str, match: str) -> None:
    with pytest.raises(JSONPathError, match=match):
        JSONPath(path).select(RECORD)


@pytest.mark.parametrize("path", ["features", "$..id", "$[?(@.id)]", "$[", "$[0:1:0]", "$[1,'a']"])
def test_unsupported_or_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(JSONPathError):
        JSONPath(path)


def test_json_join_splices_the_output_into_the_input_text() -> None:
    join = DataProcessing("json", join_input=True)
    assert join.output(b'{"id": 1e3, "x": [1]}', b"[0.5]") == (
        b'{"id": 1e3, "x": [1],"SageMakerOutput":[0.5]}'
    )
    assert join.output(b"{ }", b"2") == b'{ "SageMakerOutput":2}'
    assert (
        join.output(b"[1, 2]", b'{"p": 1}')
        == b'{"SageMakerInput":[1, 2],"SageMakerOutput":{"p": 1}}'
    )


def test_csv_filters_and_join() -> None:
    processing = DataProcessing(
        "csv", input_filter="$[1:]", output_filter="$[0,-1]", join_input=True
    )
    assert processing.filter_input(b'id-7,"a,b",3') == b'"a,b",3'
    assert processing.output(b'id-7,"a,b",3', b"0.25,1") == b"id-7,1"
    with pytest.raises(ValueError, match="out of range"):
        DataProcessing("csv", output_filter="$[9]").output(b"1,2", b"3")


def test_json_input_and_output_filters() -> None:
    processing = DataProcessing(
        "json",
        input_filter="$.features",
        output_filter="$['id','SageMakerOutput']",
        join_input=True,
    )
    record = b'{"id": 7, "features": [1.5, 2, 3]}'
    assert processing.filter_input(record) == b"[1.5,2,3]"
    assert processing.output(record, b"[0.9]") == b'{"id":7,"SageMakerOutput":[0.9]}'
    with pytest.raises(ValueError, match="not JSON"):
        processing.filter_input(b"not json")


def test_options_refuse_what_cannot_work() -> None:
    with pytest.raises(InternalError, match="need --split-type Line"):
        TransformOptions(split_type="None", join_source="Input").check()
    with pytest.raises(InternalError, match="same kind"):
        TransformOptions(
            content_type="text/csv", accept="application/json", join_source="Input"
        ).check()
    with pytest.raises(InternalError, match="recursive descent"):
        TransformOptions(input_filter="$..x").check()
    with pytest.raises(InternalError, match="header=present"):
        TransformOptions(content_type="text/csv; header=present").check()
    TransformOptions(content_type="text/csv", input_filter="$[1:]", join_source="Input").check()
