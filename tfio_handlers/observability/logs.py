"""The access log line, and the text and JSON-lines formatters of every log line.

One access line per request, on the ``tfio_handlers.access`` logger at INFO, written by the
observability middleware once the answer is sent (the adapters write none: they hand the codec to
the request's record, :func:`tfio_handlers.adapters.serving.hand_codec`; an app served without the
middleware has no access line): method, path, status, codec, model, version,
bytes in and out, duration, request id (and the client and worker pid). Every other line the
library writes while a request is handled carries that request's id too (:class:`RequestIdFilter`).

``TFIO_HANDLERS_LOG_FORMAT`` (``tfio-handlers serve --log-format``) chooses the form:

* ``text`` (the default): ``2024-05-01 12:00:00,000 INFO tfio_handlers.access 127.0.0.1 "POST
  /invocations" 200 68 1.52ms codec=application/json pid=4242 in=43 model=iris version=- rid=4f...``
  (the bytes before the duration are the answer's);
* ``json``: one JSON object a line, for a log pipeline: ``time``, ``level``, ``logger``,
  ``message``, ``request_id``, the access fields as their own keys, and ``exception`` (the
  traceback, for errors: server-side only, never in an answer).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from ..errors import InternalError
from .requests import current

__all__ = [
    "BATCH_BYTES",
    "LOG_FORMATS",
    "LOG_FORMAT_ENV",
    "AccessLine",
    "BatchedStreamHandler",
    "JsonFormatter",
    "RequestIdFilter",
    "TextFormatter",
    "access_logger",
    "formatter_for",
    "log_access",
]

LOG_FORMAT_ENV = "TFIO_HANDLERS_LOG_FORMAT"
LOG_FORMATS: tuple[str, ...] = ("text", "json")

access_logger = logging.getLogger("tfio_handlers.access")


@dataclass(slots=True)
class AccessLine:
    """What the access line of one request says."""

    method: str
    path: str
    status: int
    codec: str
    """What handled the request: the media type that encoded the answer (or, for an error, was
    being handled), ``tfs:<action>`` for TF Serving's API, ``-`` when nothing did."""
    model: str
    version: str
    bytes_in: int
    bytes_out: int
    duration_ms: float
    request_id: str
    client: str
    pid: int

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (what :func:`dataclasses.asdict` gives, without its deep copies)."""
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "codec": self.codec,
            "model": self.model,
            "version": self.version,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "duration_ms": self.duration_ms,
            "request_id": self.request_id,
            "client": self.client,
            "pid": self.pid,
        }

    def __str__(self) -> str:
        return (
            f'{self.client} "{self.method} {self.path}" {self.status} {self.bytes_out} '
            f"{self.duration_ms:.2f}ms codec={self.codec} pid={self.pid} in={self.bytes_in} "
            f"model={self.model} version={self.version} rid={self.request_id}"
        )


def log_access(line: AccessLine) -> None:
    """Write ``line`` to the access log (formatted only if some handler takes INFO).

    The record is made and handed to the logger's handlers as ``Logger.info`` would, less the
    caller lookup (a walk up the stack): every access line comes from here, so its source is known.
    The record carries its ``request_id``, so :class:`RequestIdFilter` need not look it up.
    """
    if access_logger.isEnabledFor(logging.INFO):
        record = access_logger.makeRecord(
            access_logger.name,
            logging.INFO,
            __file__,
            _ACCESS_LINE_NUMBER,
            "%s",
            (line,),
            None,
            "log_access",
            {"access": line, "request_id": line.request_id},
        )
        access_logger.handle(record)


_ACCESS_LINE_NUMBER: Final = log_access.__code__.co_firstlineno


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request_id``: the request being handled, or ``-`` outside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            handled = current.get()
            record.request_id = handled.request_id if handled is not None else "-"
        return True


class _TimeOncePerSecond(logging.Formatter):
    """``formatTime`` without a ``datefmt``, its text made once a second: the access line writes a
    record a request, and ``time.strftime`` was a third of formatting one. Same text as logging's."""

    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        msec_format = self.default_msec_format
        if datefmt or not msec_format:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second  # one read: another thread may replace it meanwhile
        if cached[0] != second:
            start = time.strftime(self.default_time_format, self.converter(second))
            cached = self._second = (second, start)
        return msec_format % (cached[1], record.msecs)


class TextFormatter(_TimeOncePerSecond):
    """``time LEVEL logger message [rid=...]``: the request id appended to lines of a request
    other than the access line (which names it already)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", "-")
        if rid != "-" and not hasattr(record, "access"):
            first, newline, rest = text.partition("\n")
            text = f"{first} rid={rid}{newline}{rest}"
        return text


class JsonFormatter(_TimeOncePerSecond):
    """One JSON object a line (see the module docstring); never raises on odd values."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        access = getattr(record, "access", None)
        if isinstance(access, AccessLine):
            entry.update(access.as_dict())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that writes its lines in batches: one system call for many access lines.

    Writing each access line at once cost a ``write`` a request, the largest item outside
    TensorFlow in a profile of a served process (6.8% of its samples at concurrency 16). Lines
    below WARNING wait at most :attr:`interval` seconds (a daemon thread writes them); a WARNING
    or worse is written at once, after the lines before it, and so is everything at
    :meth:`flush` (``logging.shutdown`` at exit) and :meth:`close`. A batch holds whole lines and
    at most :data:`BATCH_BYTES` bytes, unless one line is longer, so that workers writing to one
    pipe never interleave inside a line. A process forked after the first line starts a thread
    of its own.
    """

    def __init__(self, stream: Any = None, interval: float = 0.2) -> None:
        super().__init__(stream)
        self.interval = interval
        self._pending: list[str] = []
        self._size = 0
        self._writer_pid = 0

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (``Handler.handle``).
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        size = len(line) if line.isascii() else len(line.encode("utf-8", "surrogateescape"))
        if self._size + size > BATCH_BYTES:
            self._write_pending()
        self._pending.append(line)
        self._size += size
        if record.levelno >= logging.WARNING:
            self._write_pending()
        elif self._writer_pid != os.getpid():
            self._writer_pid = os.getpid()
            threading.Thread(target=self._write_every_interval, daemon=True).start()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()

    def close(self) -> None:
        self.flush()
        super().close()

    def _write_every_interval(self) -> None:
        pid = os.getpid()
        while self._writer_pid == pid:
            time.sleep(self.interval)
            self.flush()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._size = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: logging never raises for it
            pass


BATCH_BYTES: Final = 4096
"""The most bytes (UTF-8) one write of :class:`BatchedStreamHandler` holds (``PIPE_BUF`` on Linux:
a write of at most that many bytes to a pipe is never split by another process's)."""


def formatter_for(name: str | None) -> logging.Formatter:
    """The formatter ``name`` (``text`` or ``json``; ``None`` or blank: :data:`LOG_FORMAT_ENV`,
    else ``text``); anything else raises :class:`~tfio_handlers.errors.InternalError`."""
    chosen = (name or os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if chosen == "json":
        return JsonFormatter()
    if chosen == "text":
        return TextFormatter()
    raise InternalError(f"{LOG_FORMAT_ENV}={chosen!r}: expected 'text' or 'json'")
