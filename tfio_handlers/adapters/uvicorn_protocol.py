"""uvicorn's HTTP protocols with the connection deadlines uvicorn lacks: headers, and a connection cap.

uvicorn (0.3x) closes an idle keep-alive connection after ``timeout_keep_alive`` and nothing else: a
connection that sends nothing, or trickles its headers a byte at a time, stays open for ever, and
enough of them exhaust the worker's file descriptors. ``limit_concurrency`` answers 503 only to
requests, so silent connections still pile up. These subclasses add:

* a **header deadline** (``TFIO_HANDLERS_HEADER_TIMEOUT``): from a connection's opening, or from the
  first byte of a request that follows an answer, the request's headers must be in within it; if
  not, 408 ``{"error": ...}`` is written and the connection closed;
* a **connection cap** (``TFIO_HANDLERS_MAX_CONNECTIONS``): a connection over it is answered 503
  ``{"error": ...}`` with ``Retry-After`` and closed at once;
* a **header size cap** (:data:`MAX_HEADER_BYTES`, h11's own default): httptools takes headers of
  any size, so a request whose headers pass it is answered 431 ``{"error": ...}`` and closed, before
  either parser sees the bytes (h11 would answer a plain-text 400).

The body deadline is the ASGI app's (it reads the body with ``TFIO_HANDLERS_BODY_TIMEOUT`` and answers
408), and the keep-alive idle timeout is uvicorn's ``timeout_keep_alive``, which ``tfio-handlers serve``
sets from ``TFIO_HANDLERS_KEEP_ALIVE_TIMEOUT``. Use by hand with
``uvicorn ... --http tfio_handlers.adapters.uvicorn_protocol:DeadlineProtocol``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config import Settings
from ..errors import HTTPError, RequestTimeout, ServerBusy

__all__ = ["MAX_HEADER_BYTES", "DeadlineH11Protocol", "DeadlineProtocol", "protocol_with"]

MAX_HEADER_BYTES = 16 * 1024
"""The most a request's line and headers may take: uvicorn's own limit under h11
(``h11_max_incomplete_event_size``), now under httptools too, and answered as JSON under both."""


@functools.cache
def _settings_from_env() -> Settings:
    return Settings.from_env()


def _raw_answer(error: HTTPError) -> bytes:
    """A complete HTTP/1.1 answer carrying ``error`` as JSON, closing the connection."""
    body = error.to_json()
    reason = {
        408: "Request Timeout",
        431: "Request Header Fields Too Large",
        503: "Service Unavailable",
    }.get(error.status_code, "Error")
    head = [
        f"HTTP/1.1 {error.status_code} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in error.headers if name != "connection"),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Deadlines:
    """The deadline logic, mixed into either of uvicorn's HTTP protocols (same attribute names)."""

    settings: ClassVar[Settings | None] = None
    """The settings to enforce; ``None``: read from the environment once per process."""

    # Provided by uvicorn's protocol classes.
    connections: set[Any]
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    _header_timer: asyncio.TimerHandle | None = None
    _armed_for: Any = None
    _header_bytes = 0
    _header_tail = b""

    def _limits(self) -> Settings:
        return type(self).settings or _settings_from_env()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        settings = self._limits()
        if len(self.connections) > settings.max_connections:
            busy = ServerBusy(
                f"Too many open connections: over the limit of {settings.max_connections} "
                "(TFIO_HANDLERS_MAX_CONNECTIONS); retry later"
            )
            self.transport.write(_raw_answer(busy))
            self.transport.close()
            return
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        in_headers = self.cycle is None or self.cycle.response_complete
        if in_headers and self._headers_too_big(data):
            self._disarm()
            self.transport.write(
                _raw_answer(
                    HTTPError(
                        f"Request headers are over the limit of {MAX_HEADER_BYTES} bytes",
                        status=431,
                    )
                )
            )
            self.transport.close()
            return
        if self._header_timer is None and in_headers:
            self._arm_header_deadline()  # the first byte of a request after an answer
        super().data_received(data)  # type: ignore[misc]
        if self._header_timer is not None and self.cycle is not self._armed_for:
            self._disarm()  # the headers are in: the body deadline is the app's

    def _headers_too_big(self, data: bytes) -> bool:
        """Count the header bytes in ``data`` (up to the blank line that ends them, if it is there)."""
        seen = self._header_tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._header_bytes += len(data)
            self._header_tail = seen[-3:]
            return self._header_bytes > MAX_HEADER_BYTES
        total = self._header_bytes + end + 4 - len(self._header_tail)
        self._header_bytes, self._header_tail = 0, b""
        return total > MAX_HEADER_BYTES

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_header_deadline(self) -> None:
        seconds = self._limits().header_timeout
        if seconds <= 0 or self.transport.is_closing():
            return
        self._armed_for = self.cycle
        self._header_timer = self.loop.call_later(seconds, self._header_deadline_passed)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.cycle is not self._armed_for or self.transport.is_closing():
            return
        seconds = self._limits().header_timeout
        self.transport.write(
            _raw_answer(
                RequestTimeout(
                    f"Request headers did not arrive within the header timeout of {seconds:g} s "
                    "(TFIO_HANDLERS_HEADER_TIMEOUT)"
                )
            )
        )
        self.transport.close()


class DeadlineH11Protocol(_Deadlines, H11Protocol):
    """uvicorn's h11 protocol with the header deadline and the connection cap."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: uvicorn's "auto" is h11
    DeadlineProtocol: type[asyncio.Protocol] = DeadlineH11Protocol
    """What uvicorn's ``--http auto`` picks (httptools, else h11), with the deadlines."""
else:

    class DeadlineHttpToolsProtocol(_Deadlines, HttpToolsProtocol):
        """uvicorn's httptools protocol with the header deadline and the connection cap."""

    DeadlineProtocol = DeadlineHttpToolsProtocol
    __all__ += ["DeadlineHttpToolsProtocol"]


def protocol_with(settings: Settings, base: type[asyncio.Protocol] | None = None) -> type:
    """A deadline protocol class enforcing ``settings`` instead of the environment's (in-process
    servers, tests); ``base`` is :data:`DeadlineProtocol` or :class:`DeadlineH11Protocol`."""
    chosen = base or DeadlineProtocol
    return type(chosen.__name__, (chosen,), {"settings": settings})
