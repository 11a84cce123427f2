"""The progress report: a tqdm bar when asked for (or on a terminal), a log line otherwise."""

from __future__ import annotations

import io
import logging

import pytest

from tfio_handlers.transform.progress import LogProgress, NoProgress, TqdmProgress, make_progress


def test_bar_shows_bytes_records_and_errors() -> None:
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    progress = make_progress("bar", stream=stream)
    assert isinstance(progress, TqdmProgress)
    progress.start(2048)
    progress.advance(10, 1024, 1)
    progress.advance(10, 1024, 0)
    progress.close()
    text = stream.getvalue()
    assert "transform: 100%" in text and "2.00k/2.00k" in text
    assert "20 records" in text and "1 errors" in text


def test_not_a_terminal_logs_a_line(caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(make_progress("auto", stream=io.StringIO()), LogProgress)
    assert isinstance(make_progress("off"), NoProgress)
    progress = LogProgress(interval=0.0)
    progress.start(4000)
    with caplog.at_level(logging.INFO, "tfio_handlers.transform"):
        progress.advance(100, 1000, 2)
    assert "100 records (25% of 3.9 KiB)" in caplog.text and "2 errors, ETA" in caplog.text
