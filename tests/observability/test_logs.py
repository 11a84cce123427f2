"""The access line's record and the formatters' time text (tfio_handlers.observability.logs)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfio_handlers.observability import logs
from tfio_handlers.observability.logs import (
    BATCH_BYTES,
    AccessLine,
    BatchedStreamHandler,
    JsonFormatter,
    TextFormatter,
    log_access,
)

LINE = AccessLine(
    "POST", "/invocations", 200, "application/json", "iris", "1", 43, 68, 1.5, "rid-1", "1.2.3.4", 7
)


def _record_at(created: float) -> logging.LogRecord:
    """A record made at ``created`` (seconds since the epoch), its milliseconds as logging has them."""
    record = logging.makeLogRecord({"msg": "x"})
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


@pytest.mark.property
@given(st.lists(st.floats(min_value=0, max_value=4e9, allow_nan=False), min_size=1, max_size=20))
def test_time_text_is_loggings_own(times: list[float]) -> None:
    """The once-a-second text is what ``logging.Formatter.formatTime`` writes, whatever the order
    of the records' times (a cached second must never leak into another second's record)."""
    reference = logging.Formatter()
    text, json_formatter = TextFormatter(), JsonFormatter()
    for created in times:
        record = _record_at(created)
        expected = reference.formatTime(record)
        assert text.formatTime(record) == expected
        assert json_formatter.formatTime(record) == expected


def test_time_text_with_a_date_format_is_loggings_own() -> None:
    record = _record_at(1_700_000_000.25)
    assert TextFormatter().formatTime(record, "%H:%M") == logging.Formatter().formatTime(
        record, "%H:%M"
    )


@contextmanager
def access_logger_to(handler: logging.Handler) -> Iterator[None]:
    """The access logger writing at INFO to ``handler`` only, for the block."""
    logger = logs.access_logger
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    """The records the access logger hands its handlers."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    with access_logger_to(Keep()):
        yield records


def test_the_access_record_names_its_source_its_line_and_its_request(
    captured: list[logging.LogRecord],
) -> None:
    before = time.time()
    log_access(LINE)
    (record,) = captured
    assert record.name == "tfio_handlers.access"
    assert record.levelno == logging.INFO
    assert record.getMessage() == str(LINE)
    assert record.access is LINE  # type: ignore[attr-defined]
    assert record.request_id == "rid-1"  # type: ignore[attr-defined]
    assert (record.pathname, record.funcName) == (logs.__file__, "log_access")
    assert record.lineno == log_access.__code__.co_firstlineno
    assert before <= record.created <= time.time()


def test_the_access_line_honours_the_loggers_filters_and_switches(
    captured: list[logging.LogRecord],
) -> None:
    logger = logs.access_logger
    refuse = logging.Filter("elsewhere")
    logger.addFilter(refuse)
    try:
        log_access(LINE)
    finally:
        logger.removeFilter(refuse)
    logger.disabled = True
    try:
        log_access(LINE)
    finally:
        logger.disabled = False
    logger.setLevel(logging.WARNING)
    log_access(LINE)
    assert captured == []


def test_an_access_line_as_text_and_as_json() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    with access_logger_to(handler):
        handler.setFormatter(TextFormatter())
        log_access(LINE)
        handler.setFormatter(JsonFormatter())
        log_access(LINE)
    text, as_json = stream.getvalue().splitlines()
    assert text.endswith(f"INFO tfio_handlers.access {LINE}")
    assert "rid=rid-1" in text and text.count("rid=") == 1
    entry = json.loads(as_json)
    assert entry["request_id"] == "rid-1"
    assert entry["message"] == str(LINE)
    assert {k: entry[k] for k in LINE.as_dict()} == LINE.as_dict()


class Recording:
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def batched(interval: float = 60.0) -> tuple[logging.Logger, BatchedStreamHandler, Recording]:
    """A logger of its own writing through a batched handler to a recording stream."""
    stream = Recording()
    handler = BatchedStreamHandler(stream, interval=interval)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"tfio_handlers.test.batched.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler, stream


def test_lines_wait_for_a_batch_and_a_warning_writes_them_at_once_in_order() -> None:
    logger, handler, stream = batched()
    for i in range(3):
        logger.info("line %d", i)
    assert stream.writes == []
    logger.warning("trouble")
    assert stream.writes == ["INFO line 0\nINFO line 1\nINFO line 2\nWARNING trouble\n"]
    logger.info("after")
    handler.close()  # and logging.shutdown flushes at exit
    assert stream.writes[-1] == "INFO after\n"


def test_waiting_lines_are_written_within_the_interval() -> None:
    logger, handler, stream = batched(interval=0.05)
    logger.info("soon")
    deadline = time.monotonic() + 5
    while not stream.writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.writes == ["INFO soon\n"]
    handler._writer_pid = -1  # as in a process forked since: it starts a writer of its own
    logger.info("in the child")
    deadline = time.monotonic() + 5
    while len(stream.writes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.writes[1:] == ["INFO in the child\n"]
    handler.close()


@pytest.mark.property
@given(st.lists(st.text(min_size=0, max_size=900), min_size=1, max_size=60))
def test_a_batch_holds_whole_lines_within_the_pipe_limit(messages: list[str]) -> None:
    logger, handler, stream = batched()
    try:
        for message in messages:
            logger.info("%s", message)
        handler.flush()
    finally:
        handler.close()
    records = [f"INFO {m}\n" for m in messages]
    assert "".join(stream.writes) == "".join(records)
    for text in stream.writes:  # each write: whole records, over the limit only when just one
        taken = held = 0
        while taken < len(text):
            assert text.startswith(records[0], taken)
            taken += len(records.pop(0))
            held += 1
        assert len(text.encode("utf-8", "surrogateescape")) <= BATCH_BYTES or held == 1
