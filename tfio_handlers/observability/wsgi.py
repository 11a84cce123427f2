"""The WSGI middleware: request ids, metrics, ``/metrics`` and the access line around a WSGI app.

``WSGIObservabilityMiddleware(app)`` wraps the library's
:class:`~tfio_handlers.adapters.wsgi.WSGIApp` (``tfio-handlers serve --server gunicorn`` does,
through :func:`~tfio_handlers.observability.apps.wsgi_app_from_env`) or any WSGI app. The request
body's size is its ``Content-Length`` (a chunked body counts 0).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import InternalError
from .observer import Observer
from .requests import REQUEST_ID_HEADER, RequestRecord, current, request_id_from

__all__ = ["WSGIObservabilityMiddleware"]

StartResponse = Callable[..., Any]
WSGI = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

log = logging.getLogger(__name__)

_REASONS = {200: "OK", 500: "Internal Server Error", 501: "Not Implemented"}


def _path(environ: dict[str, Any]) -> str:
    path: str = environ.get("PATH_INFO") or "/"
    try:  # PEP 3333: latin-1 text of the decoded bytes
        return path.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return path


class WSGIObservabilityMiddleware:
    """``app`` with request ids, metrics, ``GET /metrics`` and one access line per request (see
    :class:`~tfio_handlers.observability.asgi.ObservabilityMiddleware`)."""

    def __init__(self, app: WSGI, observer: Observer | None = None) -> None:
        self.app = app
        self.observer = observer if observer is not None else Observer()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        observer = self.observer
        method: str = environ["REQUEST_METHOD"]
        path = _path(environ)
        if observer.serves(method, path):
            status, content_type, body = observer.scrape()
            start_response(
                f"{status} {_REASONS.get(status, 'Error')}",
                [("Content-Type", content_type), ("Content-Length", str(len(body)))],
            )
            return [b"" if method == "HEAD" else body]
        request_id, _ = request_id_from(
            {
                name: environ[key]
                for name, key in (
                    ("x-request-id", "HTTP_X_REQUEST_ID"),
                    ("x-amzn-requestid", "HTTP_X_AMZN_REQUESTID"),
                )
                if key in environ
            }
        )
        trace_headers = {
            name: environ[key]
            for name, key in (
                ("traceparent", "HTTP_TRACEPARENT"),
                ("tracestate", "HTTP_TRACESTATE"),
            )
            if key in environ
        }
        record = RequestRecord(request_id, trace_headers=trace_headers or None)
        seen: list[Any] = [None, None]  # status, response content type

        def marked_start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            seen[0] = int(status.split(" ", 1)[0])
            for name, value in headers:
                if name.lower() == "content-type":
                    seen[1] = value
            return start_response(status, [*headers, (REQUEST_ID_HEADER, request_id)], *exc)

        token = current.set(record)
        observer.begin()
        try:
            result = self.app(environ, marked_start_response)
        except Exception:
            log.exception("Unexpected error in the WSGI app")
            body = InternalError("Internal error").to_json()
            marked_start_response(
                "500 Internal Server Error",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                sys.exc_info(),
            )
            result = [body]
        finally:
            current.reset(token)

        def done(bytes_out: int) -> None:
            length = (environ.get("CONTENT_LENGTH") or "").strip()
            query = environ.get("QUERY_STRING") or ""
            observer.finish(
                record,
                method,
                path,
                f"{path}?{query}" if query else path,
                seen[0] if seen[0] is not None else 500,
                environ.get("CONTENT_TYPE"),
                seen[1],
                int(length) if length.isdigit() else 0,
                bytes_out,
                time.perf_counter() - started,
                environ.get("REMOTE_ADDR"),
            )

        if isinstance(result, (list, tuple)):
            done(sum(len(chunk) for chunk in result))
            return result
        return _Counted(result, done)


class _Counted:
    """An app's iterable answer, counted as the server sends it; finished when it is closed."""

    def __init__(self, chunks: Iterable[bytes], done: Callable[[int], None]) -> None:
        self._chunks = chunks
        self._done = done
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._sent)
