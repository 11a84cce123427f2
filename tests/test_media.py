"""Media types and Accept negotiation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfio_handlers.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from tfio_handlers.media import MediaType, negotiate, parse_accept, parse_media_type, text_of

AVAILABLE = ["application/json", "text/csv", "application/x-protobuf", "application/jsonlines"]


def test_content_type_with_parameters_and_case() -> None:
    media = parse_media_type('Application/JSON; Charset="UTF-8"; x=1')
    assert media.essence == "application/json"
    assert media.charset == "utf-8"
    assert media.params["x"] == "1"


def test_malformed_content_type_is_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_media_type("json")
    with pytest.raises(UnsupportedMediaType):
        parse_media_type("application/*")


def test_accept_sorted_by_quality_then_specificity() -> None:
    ranges = parse_accept("text/*;q=0.5, application/json;q=0.5, */*;q=0.1, text/csv")
    assert [r.essence for r in ranges] == ["text/csv", "application/json", "text/*", "*/*"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("text/*", "text/csv"),
        ("text/csv;q=0.4, application/json;q=0.9", "application/json"),
        ("application/jsonlines, text/csv", "application/jsonlines"),
        ("image/png, */*;q=0.1", "application/json"),
        ("application/*", "application/json"),
    ],
)
def test_negotiate(accept: str | None, expected: str) -> None:
    assert negotiate(accept, AVAILABLE, "application/json").essence == expected


def test_negotiate_default_comes_from_settings() -> None:
    assert negotiate("*/*", AVAILABLE, "text/csv").essence == "text/csv"


def test_q_zero_refuses_a_type() -> None:
    assert negotiate("application/json;q=0, */*", AVAILABLE, "application/json").essence != (
        "application/json"
    )


def test_negotiate_keeps_parameters_of_the_chosen_range() -> None:
    chosen = negotiate("text/csv; header=present", AVAILABLE, "application/json")
    assert chosen == MediaType("text/csv", {"header": "present"})


def test_not_acceptable_lists_supported_types() -> None:
    with pytest.raises(NotAcceptable) as info:
        negotiate("image/png", AVAILABLE, "application/json")
    assert info.value.status_code == 406
    assert "text/csv" in info.value.message


def test_text_of_charsets() -> None:
    assert text_of("é".encode("latin-1"), parse_media_type("text/csv; charset=latin-1")) == "é"
    assert text_of(b"\xef\xbb\xbf[1]", parse_media_type("application/json")) == "[1]"
    with pytest.raises(UnsupportedMediaType):
        text_of(b"1", parse_media_type("text/csv; charset=klingon"))
    with pytest.raises(BadRequest):
        text_of(b"\xff", parse_media_type("text/csv; charset=utf-8"))


@given(
    st.lists(st.sampled_from([*AVAILABLE, "*/*", "text/*", "image/png"]), min_size=1),
    st.lists(st.floats(0, 1), min_size=1),
)
def test_negotiate_never_picks_a_refused_or_unknown_type(types: list[str], qs: list[float]) -> None:
    accept = ", ".join(f"{t};q={qs[i % len(qs)]:.3f}" for i, t in enumerate(types))
    try:
        chosen = negotiate(accept, AVAILABLE, "application/json")
    except NotAcceptable:
        return
    assert chosen.essence in AVAILABLE
