"""Splitting files into records and answers back into outputs (no TensorFlow): Line, RecordIO, None;
JSON lines, CSV and JSON answers; the round trip as a property over arbitrary line contents."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfio_handlers.transform.answers import one_line, split_answer
from tfio_handlers.transform.records import (
    BodyFormat,
    Unreadable,
    frame_recordio,
    read_batches,
    recordio_data,
)


def _items(path: Path, split: str = "Line", max_bytes: int = 1 << 20, max_records: int = 3):
    batches = list(read_batches(path, split, max_bytes=max_bytes, max_records=max_records))  # type: ignore[arg-type]
    items = [item for batch in batches for item in batch.items]
    return batches, items


def test_line_split_keeps_positions_of_blank_lines_and_drops_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"[1]\r\n\n  \n[2]\n[3]\n[4]\n[5]")  # CRLF, blank lines, no final line end
    batches, items = _items(path)
    assert items == [b"[1]", None, None, b"[2]", b"[3]", b"[4]", b"[5]"]
    assert [b.first for b in batches] == [1, 6]  # three records a batch; blank lines ride along
    assert sum(b.nbytes for b in batches) == path.stat().st_size
    assert [b.records for b in batches] == [3, 2]


def test_batches_respect_the_payload_limit(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"".join(b"%d,%d\n" % (i, i) for i in range(100)))
    batches, items = _items(path, max_bytes=40, max_records=1000)
    assert len(items) == 100
    for batch in batches:
        body, _ = BodyFormat("Line", "text/csv").multi([i for i in batch.items if i])
        assert len(body) <= 40


def test_a_line_over_the_limit_is_counted_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"[1]\n[" + b"1," * 5000 + b"1]\n[2]\n")
    batches, items = _items(path, max_bytes=100)
    assert items[0] == b"[1]" and items[2] == b"[2]"
    assert isinstance(items[1], Unreadable) and items[1].status == 413
    assert "10003 bytes" in items[1].message
    assert sum(b.nbytes for b in batches) == path.stat().st_size


def test_split_none_is_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"1,2\n3,4\n")
    assert _items(path, "None")[1] == [b"1,2\n3,4\n"]
    assert isinstance(_items(path, "None", max_bytes=4)[1][0], Unreadable)


def test_recordio_records_single_and_multipart(tmp_path: Path) -> None:
    magic = frame_recordio(b"")[:4]
    # A record whose data holds the magic number is written in parts (cflag 1, then 3).
    head, tail = b"abc", b"defgh"
    part1 = magic + (len(head) | 1 << 29).to_bytes(4, "little") + head + b"\0" * (-len(head) % 4)
    part2 = magic + (len(tail) | 3 << 29).to_bytes(4, "little") + tail + b"\0" * (-len(tail) % 4)
    records = [frame_recordio(b'{"x": 1}'), part1 + part2, frame_recordio(b"12345")]
    path = tmp_path / "in.rec"
    path.write_bytes(b"".join(records))
    _, items = _items(path, "RecordIO")
    assert items == records
    assert [recordio_data(r) for r in records] == [b'{"x": 1}', head + magic + tail, b"12345"]
    body_format = BodyFormat("RecordIO", "application/x-recordio")
    assert body_format.single(records[0]) == (b'{"x": 1}', "application/x-recordio")
    assert body_format.multi(records[:2])[0] == records[0] + records[1]  # framed, padding kept


def test_recordio_broken_frame_ends_the_file_with_an_error(tmp_path: Path) -> None:
    path = tmp_path / "in.rec"
    path.write_bytes(frame_recordio(b"ok") + b"not recordio")
    _, items = _items(path, "RecordIO")
    assert items[0] == frame_recordio(b"ok")
    assert isinstance(items[1], Unreadable) and "magic" in items[1].message


def test_json_records_go_several_to_a_body_as_json_lines() -> None:
    body_format = BodyFormat("Line", "application/json")
    assert body_format.single(b"[1, 2]") == (b"[1, 2]", "application/json")
    assert body_format.multi([b"[1]", b"[2]"]) == (b"[1]\n[2]\n", "application/jsonlines")


def test_json_answers_split_by_element_keep_the_answer_text() -> None:
    answer = b'{"predictions": [[0.1, "a,]"], {"k": [1, 2]}, 3]}'
    parts = split_answer(answer, "application/json", 3)
    assert parts == [
        b'{"predictions": [[0.1, "a,]"]]}',
        b'{"predictions": [{"k": [1, 2]}]}',
        b'{"predictions": [3]}',
    ]
    assert split_answer(answer, "application/json", 2) is None  # never guessed
    assert split_answer(b'{"outputs": {"y": [1, 2]}}', "application/json", 2) is None
    assert split_answer(b"\x93NUMPY", "application/x-npy", 1) is None


def test_one_line() -> None:
    assert one_line(b"[1]\n", "application/jsonlines") == b"[1]"
    assert one_line(b'{\n  "a": 1\n}\n', "application/json") == b'{   "a": 1 }'
    with pytest.raises(ValueError, match="2 lines"):
        one_line(b"1,2\n3,4\n", "text/csv")


_line = st.binary(max_size=40).filter(lambda b: b"\n" not in b and not b.endswith(b"\r"))


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_line, max_size=30), max_records=st.integers(1, 7))
def test_property_line_records_round_trip(lines: list[bytes], max_records: int) -> None:
    """Any lines split into records and batches, then assembled as one output per record, come
    back as they were: records in place, blank lines as blank lines."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        batches = list(read_batches(path, "Line", max_bytes=1 << 20, max_records=max_records))
    items = [item for batch in batches for item in batch.items]
    assert len(items) == len(lines)
    out: list[bytes] = []
    for batch in batches:
        records = [i for i in batch.items if isinstance(i, bytes)]
        assert len(records) <= max_records
        body, _ = (
            BodyFormat("Line", "application/jsonlines").multi(records) if records else (b"", "")
        )
        parts = split_answer(body, "application/jsonlines", len(records)) if records else []
        assert parts == records
        it = iter(parts or [])
        out += [next(it) if isinstance(i, bytes) else b"" for i in batch.items]
    assert out == [line if line.strip() else b"" for line in lines]


_cell = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(_cell, min_size=1, max_size=4), min_size=1, max_size=12),
    ending=st.sampled_from(["\n", "\r\n"]),
)
def test_property_csv_answers_split_into_their_rows(rows: list[list[str]], ending: str) -> None:
    """A CSV answer splits into exactly its rows, quoted line breaks and quotes included.

    Rows are written as RFC 4180 and the CSV encoder write them: a field holding CR or LF is
    quoted, whichever line ending the rows use. (Python's writer with ``lineterminator="\n"``
    leaves a lone CR unquoted, and ``"\r\n"`` is then both "a CR cell, end of row" and "an empty
    row ended by CRLF": no reader can tell, so no splitter can.)"""
    texts = []
    for row in rows:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(row)  # quotes CR and LF alike
        texts.append((buffer.getvalue()[: -len("\r\n")] + ending).encode())
    parts = split_answer(b"".join(texts), "text/csv", len(rows))
    assert parts is not None
    assert [part + ending.encode() for part in parts] == texts


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_json, min_size=1, max_size=8), spaced=st.booleans())
def test_property_json_answers_split_into_their_elements(
    values: list[object], spaced: bool
) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    answer = json.dumps({"predictions": values}, separators=separators).encode()
    parts = split_answer(answer, "application/json", len(values))
    assert parts is not None
    for part, value in zip(parts, values, strict=True):
        assert part == json.dumps({"predictions": [value]}, separators=separators).encode()
