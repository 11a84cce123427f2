"""Input files split into records (SageMaker's ``SplitType``), and records put into request bodies.

Files are read incrementally: a batch of records is at most ``max_bytes`` of records (and at most
``max_records`` of them), and a line longer than ``max_bytes`` is counted, not kept, so memory stays
bounded whatever the size of a file or of a line.

``SplitType``:

- ``Line``: a record is a line; the line end (LF, or CRLF) is not part of it. A blank or whitespace-only
  line is not a record: it is not sent, and gets a blank line in the output, which stays aligned.
  A CSV field holding a line break is two records, as in SageMaker.
- ``RecordIO``: MXNet RecordIO framing (a magic number, a length word whose top three bits flag the parts
  of a record split where its data held the magic number, the data, padding to four bytes). A record
  sent alone is its data, without framing or padding; a MultiRecord body is the records as framed in the
  file (padding kept), as SageMaker sends them.
- ``None``: the whole file is one record.

Bodies (:class:`BodyFormat`): one record is sent as it is, with the job's ``Content-Type``; several are
sent as lines ending in LF (RecordIO: framed). Records of ``application/json`` are sent several to a body
as ``application/jsonlines``, one JSON value per line, which is how SageMaker's TF Serving container
reads a body of JSON lines (``/invocations`` with ``application/json`` answers a single JSON value).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, TypeAlias

from ..media import JSON, parse_media_type

__all__ = [
    "RECORDIO_MAGIC",
    "Batch",
    "BodyFormat",
    "Item",
    "SplitType",
    "Unreadable",
    "frame_recordio",
    "read_batches",
    "recordio_data",
]

SplitType = Literal["Line", "RecordIO", "None"]

JSON_LINES = "application/jsonlines"

RECORDIO_MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
_LENGTH_MASK = (1 << 29) - 1
_MAX_ITEMS = 65536
"""A batch holds at most this many lines, blank ones included."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that cannot be sent: too large, or a broken RecordIO frame (then the file ends there)."""

    status: int
    message: str


Item: TypeAlias = "bytes | Unreadable | None"
"""A record's bytes, an :class:`Unreadable` record, or ``None`` for a blank line (no record)."""


@dataclass(slots=True)
class Batch:
    """Consecutive items of one file: the unit of work the job hands to a thread."""

    first: int
    """The 1-based number of ``items[0]``: its line number (``Line``), its record number (``RecordIO``)."""
    items: list[Item]
    nbytes: int
    """Bytes of the file these items span (for progress)."""

    @property
    def records(self) -> int:
        return sum(1 for item in self.items if item is not None)


def read_batches(
    path: Path, split_type: SplitType, *, max_bytes: int, max_records: int
) -> Iterator[Batch]:
    """The file's records in batches of at most ``max_bytes`` (0: no limit) and ``max_records``."""
    if split_type == "None":
        yield _whole_file(path, max_bytes)
        return
    with path.open("rb") as stream:
        reader = _lines(stream, max_bytes) if split_type == "Line" else _recordio(stream, max_bytes)
        yield from _batched(reader, max_bytes, max_records)


def _whole_file(path: Path, max_bytes: int) -> Batch:
    size = path.stat().st_size
    if max_bytes and size > max_bytes:
        return Batch(1, [_too_large(size, max_bytes)], size)
    return Batch(1, [path.read_bytes()], size)


def _too_large(size: int, max_bytes: int) -> Unreadable:
    return Unreadable(
        413,
        f"The record is {size} bytes, over the payload limit of {max_bytes} bytes "
        "(--max-payload-mb, and the server's body limit)",
    )


def _batched(
    reader: Iterator[tuple[Item, int]], max_bytes: int, max_records: int
) -> Iterator[Batch]:
    items: list[Item] = []
    first = 1
    size = records = nbytes = 0
    for item, consumed in reader:
        if (
            isinstance(item, bytes)
            and records
            and (records >= max_records or (max_bytes and size + len(item) + 1 > max_bytes))
        ):
            yield Batch(first, items, nbytes)
            first += len(items)
            items, size, records, nbytes = [], 0, 0, 0
        items.append(item)
        nbytes += consumed
        if isinstance(item, bytes):
            size += len(item) + 1
            records += 1
        if len(items) >= _MAX_ITEMS:
            yield Batch(first, items, nbytes)
            first += len(items)
            items, size, records, nbytes = [], 0, 0, 0
    if items:
        yield Batch(first, items, nbytes)


def _lines(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[Item, int]]:
    """``(item, bytes consumed)`` per line; a line over ``max_bytes`` is skipped over, not kept."""
    limit = max_bytes + 2 if max_bytes else -1  # room for the line end
    readline = stream.readline
    while True:
        raw = readline(limit)
        if not raw:
            return
        if max_bytes and len(raw) == limit and not raw.endswith(b"\n"):
            consumed = len(raw)
            while True:  # the rest of an over-long line, in bounded pieces
                more = readline(limit)
                consumed += len(more)
                if not more or more.endswith(b"\n"):
                    break
            length = consumed - (1 if more.endswith(b"\n") else 0)
            yield _too_large(length, max_bytes), consumed
            continue
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            yield None, len(raw)
        elif max_bytes and len(line) > max_bytes:
            yield _too_large(len(line), max_bytes), len(raw)
        else:
            yield line, len(raw)


def _recordio(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[Item, int]]:
    """``(framed record, bytes consumed)`` per RecordIO record, its parts and padding included."""
    while True:
        framed: list[bytes] = []
        consumed = size = 0
        while True:
            header = stream.read(8)
            if not header:
                if consumed:
                    yield Unreadable(400, "RecordIO: the file ends inside a record"), consumed
                return
            if len(header) < 8:
                yield Unreadable(400, "RecordIO: the file ends inside a record header"), consumed
                return
            magic, word = struct.unpack("<II", header)
            if magic != RECORDIO_MAGIC:
                message = f"RecordIO: bad magic number 0x{magic:08x} (is the file RecordIO?)"
                yield Unreadable(400, message), consumed
                return
            flag, length = word >> 29, word & _LENGTH_MASK
            padded = length + (-length % 4)
            size += length
            if max_bytes and size > max_bytes:
                framed = []  # counted, not kept
                stream.seek(padded, 1)
                data = b""
            else:
                data = stream.read(padded)
                if len(data) < padded:
                    yield Unreadable(400, "RecordIO: the file ends inside a record"), consumed
                    return
                framed.append(header + data)
            consumed += 8 + padded
            if flag in (0, 3):  # a whole record, or the last part of one
                break
        if max_bytes and size > max_bytes:
            yield _too_large(size, max_bytes), consumed
        else:
            yield b"".join(framed), consumed


def recordio_data(framed: bytes) -> bytes:
    """A framed record's data: its parts joined by the magic number, without headers and padding."""
    parts: list[bytes] = []
    offset = 0
    while offset < len(framed):
        _, word = struct.unpack_from("<II", framed, offset)
        length = word & _LENGTH_MASK
        parts.append(framed[offset + 8 : offset + 8 + length])
        offset += 8 + length + (-length % 4)
    return _MAGIC_BYTES.join(parts)


def frame_recordio(data: bytes) -> bytes:
    """``data`` as one RecordIO record (a single part), padded to four bytes."""
    if len(data) > _LENGTH_MASK:
        raise ValueError("a RecordIO record holds at most 2**29 - 1 bytes")
    return struct.pack("<II", RECORDIO_MAGIC, len(data)) + data + b"\0" * (-len(data) % 4)


class BodyFormat:
    """How records become request bodies, for a split type and the job's ``Content-Type``."""

    def __init__(self, split_type: SplitType, content_type: str) -> None:
        self.split_type = split_type
        self.content_type = content_type
        self.json_records = (
            split_type != "RecordIO" and parse_media_type(content_type).essence == JSON
        )

    def single(self, record: bytes) -> tuple[bytes, str]:
        """The body and its ``Content-Type`` for one record."""
        if self.split_type == "RecordIO":
            return recordio_data(record), self.content_type
        return record, self.content_type

    def multi(self, records: Sequence[bytes]) -> tuple[bytes, str]:
        """The body and its ``Content-Type`` for several records (MultiRecord)."""
        if self.split_type == "RecordIO":
            return b"".join(records), self.content_type
        body = b"\n".join(records) + b"\n"
        return body, JSON_LINES if self.json_records else self.content_type
