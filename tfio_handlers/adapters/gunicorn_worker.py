"""gunicorn's sync worker with deadlines on reading a request: ``--worker-class`` for the WSGI app.

gunicorn's sync worker reads a request with blocking ``recv`` calls and no timeout: a client that
sends nothing, trickles its headers or sends less body than it declares holds the worker until the
arbiter kills it (``--timeout``), and every request queued behind it waits. :class:`DeadlineWorker`
gives each connection

* a **header deadline** (``TFIO_HANDLERS_HEADER_TIMEOUT``) from its acceptance: headers not in by then
  get 408 ``{"error": ...}`` and the connection is closed;
* a **body deadline** (``TFIO_HANDLERS_BODY_TIMEOUT``) from the headers: the WSGI app sees its read
  fail and answers 408 (see :meth:`tfio_handlers.adapters.wsgi.WSGIApp`).

Each is a deadline for the whole phase, not per ``recv``: a byte every few seconds does not extend it.
The sync worker serves one connection at a time and closes it after the answer (no keep-alive), so a
connection cap is the listen backlog's. ``tfio-handlers serve --server gunicorn`` uses this worker;
by hand: ``gunicorn --worker-class tfio_handlers.adapters.gunicorn_worker.DeadlineWorker ...``.
"""

from __future__ import annotations

import functools
import socket
import time
from typing import Any

from gunicorn.workers.sync import SyncWorker

from ..config import Settings
from ..errors import RequestTimeout

__all__ = ["DeadlineSocket", "DeadlineWorker"]


@functools.cache
def _settings() -> Settings:
    return Settings.from_env()


class DeadlineSocket:
    """A client socket whose reads share one deadline; everything else is the socket's.

    In the header phase an expired deadline writes 408 and reads as end-of-stream (gunicorn then
    closes quietly); in the body phase it raises :class:`TimeoutError`, which the WSGI app answers
    408. ``deadline`` (a :func:`time.monotonic` time, or ``None``) tells the app that reads are
    bounded here already.
    """

    def __init__(self, sock: socket.socket, header_seconds: float) -> None:
        self._sock = sock
        self.deadline: float | None = None
        self._in_body = False
        self._seconds = header_seconds
        if header_seconds > 0:
            self.deadline = time.monotonic() + header_seconds

    def start_body(self, seconds: float) -> None:
        """The headers are in: the body must arrive within ``seconds`` (0: no deadline)."""
        self._in_body = True
        self._seconds = seconds
        self.deadline = time.monotonic() + seconds if seconds > 0 else None
        if self.deadline is None:
            self._sock.settimeout(None)

    def recv(self, size: int, *flags: int) -> bytes:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return self._expired()
            self._sock.settimeout(remaining)
        try:
            return self._sock.recv(size, *flags)
        except TimeoutError:
            return self._expired()

    def _expired(self) -> bytes:
        if self._in_body:
            raise TimeoutError(f"request body deadline of {self._seconds:g} s passed")
        error = RequestTimeout(
            f"Request headers did not arrive within the header timeout of {self._seconds:g} s "
            "(TFIO_HANDLERS_HEADER_TIMEOUT)"
        )
        body = error.to_json()
        head = (
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        try:
            self._sock.settimeout(1.0)
            self._sock.sendall(head.encode("latin-1") + body)
        except OSError:
            pass
        return b""

    def sendall(self, data: Any, *flags: int) -> None:
        # Writing the answer is not bounded by the read deadline (gunicorn's --timeout is).
        self._sock.settimeout(None)
        self._sock.sendall(data, *flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class DeadlineWorker(SyncWorker):  # type: ignore[misc]
    """:class:`gunicorn.workers.sync.SyncWorker` whose connections have header and body deadlines."""

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        if self.cfg.is_ssl:  # the TLS wrapper needs the real socket: deadlines per read only
            client.settimeout(_settings().header_timeout or None)
            super().handle(listener, client, addr)
            return
        super().handle(listener, DeadlineSocket(client, _settings().header_timeout), addr)

    def run(self) -> None:
        try:
            super().run()
        finally:
            # Its in-flight gauge leaves the metrics' multi-process folder with it (a no-op
            # without metrics): the scrape sums live workers only.
            from ..observability.metrics import mark_process_dead

            mark_process_dead()

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> Any:
        if isinstance(client, DeadlineSocket):
            client.start_body(_settings().body_timeout)
        return super().handle_request(listener, req, client, addr)
