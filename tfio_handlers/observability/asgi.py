"""The ASGI middleware: request ids, metrics, ``/metrics`` and the access line around any ASGI app.

Plain ASGI, like Starlette's middleware: ``ObservabilityMiddleware(app)`` wraps the library's
:class:`~tfio_handlers.adapters.asgi.ASGIApp` (``tfio-handlers serve`` does, through
:func:`~tfio_handlers.observability.apps.asgi_app_from_env`) or a whole Starlette/FastAPI app
(``app.add_middleware(ObservabilityMiddleware)``; routes outside the library's are ``unmatched``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import InternalError
from .metrics import mark_process_dead
from .observer import Observer
from .requests import REQUEST_ID_HEADER, RequestRecord, current, request_id_from

__all__ = ["ObservabilityMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

_ID_HEADER = REQUEST_ID_HEADER.encode("latin-1")


class ObservabilityMiddleware:
    """``app`` with request ids, metrics, ``GET /metrics`` and one access line per request.

    ``observer`` holds the metrics settings and the app's routes (default: metrics on, no route
    table). An exception escaping ``app`` is logged once, with its traceback, and answered 500
    ``{"error": "Internal error"}`` if no answer was started.
    """

    def __init__(self, app: ASGI, observer: Observer | None = None) -> None:
        self.app = app
        self.observer = observer if observer is not None else Observer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observer = self.observer
        method: str = scope["method"]
        path: str = scope["path"]
        prefix: str = scope.get("root_path") or ""
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        if observer.serves(method, path):
            await self._scrape(method, send)
            return
        headers: dict[str, str] = {}
        trace_headers: dict[str, str] | None = None
        for name, value in scope["headers"]:
            if name in (b"x-request-id", b"x-amzn-requestid", b"content-type"):
                headers[name.decode("latin-1")] = value.decode("latin-1")
            elif name in (b"traceparent", b"tracestate"):
                trace_headers = trace_headers or {}
                trace_headers[name.decode("latin-1")] = value.decode("latin-1")
        request_id, _ = request_id_from(headers)
        record = RequestRecord(request_id, trace_headers=trace_headers)
        token = current.set(record)
        state = _Exchange(request_id)
        observer.begin()

        async def counted_receive() -> Message:
            message = await receive()
            state.bytes_in += len(message.get("body", b""))
            return message

        async def marked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.status = message["status"]
                given = list(message.get("headers", ()))
                for name, value in given:
                    if name.lower() == b"content-type":
                        state.response_type = value.decode("latin-1")
                given.append((_ID_HEADER, state.id_bytes))
                message = {**message, "headers": given}
                state.started = True
            elif message["type"] == "http.response.body":
                state.bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counted_receive, marked_send)
        except Exception:
            log.exception("Unexpected error in the ASGI app")
            if not state.started:
                await _answer_error(marked_send, 500, InternalError("Internal error").to_json())
        finally:
            current.reset(token)
        if state.status is None:  # the client left before an answer: nothing was sent
            observer.end()
            return
        query = scope.get("query_string") or b""
        target = f"{path}?{query.decode('latin-1')}" if query else path
        client = scope.get("client")
        observer.finish(
            record,
            method,
            path,
            target,
            state.status,
            headers.get("content-type"),
            state.response_type,
            state.bytes_in,
            state.bytes_out,
            time.perf_counter() - started,
            client[0] if client else None,
        )

    async def _scrape(self, method: str, send: Send) -> None:
        # Off the event loop: a remote backend's model status is a network call.
        status, content_type, body = await asyncio.to_thread(self.observer.scrape)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    @staticmethod
    def _lifespan_send(send: Send) -> Send:
        """``send`` for the lifespan: after shutdown completes, this worker's gauges leave the
        multi-process folder (``uvicorn --workers``)."""

        async def lifespan_send(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.shutdown.complete":
                mark_process_dead()

        return lifespan_send


class _Exchange:
    """What the middleware saw of one request's messages."""

    __slots__ = ("bytes_in", "bytes_out", "id_bytes", "response_type", "started", "status")

    def __init__(self, request_id: str) -> None:
        self.id_bytes = request_id.encode("latin-1")
        self.status: int | None = None
        self.response_type: str | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.started = False


async def _answer_error(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
