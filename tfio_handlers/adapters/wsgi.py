"""The WSGI application: ``gunicorn 'tfio_handlers.adapters.wsgi:app_from_env()'``.

Mount it in Flask with ``werkzeug.middleware.dispatcher.DispatcherMiddleware`` or call it from Falcon
as a sink; it is a plain WSGI callable. The body limit is checked against ``Content-Length`` before the
body is read, and the read stops at the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import HTTPError
from ..pipeline import Response
from ..rest_api import handle_tfs_rest
from .serving import PipelineSource, Route, ServingState, access_log, route_of

__all__ = ["WSGIApp", "app_from_env"]

StartResponse = Callable[..., Any]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class WSGIApp:
    """SageMaker and TF Serving routes over a pipeline, for gunicorn, waitress or any WSGI server."""

    def __init__(self, source: PipelineSource, *, max_body_bytes: int | None = None) -> None:
        self.state = ServingState(source)
        self._max_body = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "") or "/"
        self.state.enter()
        try:
            response = self._respond(environ, method, path)
        finally:
            self.state.leave()
        status = f"{response.status} {_REASONS.get(response.status, 'Unknown')}"
        start_response(status, [*response.headers, ("content-length", str(len(response.body)))])
        access_log(
            method, path, response, time.perf_counter() - started, environ.get("REMOTE_ADDR")
        )
        return [response.body]

    def _respond(self, environ: dict[str, Any], method: str, path: str) -> Response:
        route = route_of(method, path)
        if route == Route.PING:
            return self.state.ping()
        if route == Route.NOT_FOUND:
            return ServingState.not_found(method, path)
        try:
            pipeline = self.state.pipeline
        except HTTPError as exc:
            return Response.error(exc)
        limit = self._max_body or pipeline.settings.limits.max_body_bytes
        length_text = environ.get("CONTENT_LENGTH") or "0"
        length = int(length_text) if length_text.isdigit() else 0
        if length > limit:
            return ServingState.too_large(length, limit)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        if route == Route.INVOCATIONS:
            return pipeline.invoke(body, headers)
        return handle_tfs_rest(pipeline, method, path, body)


def app_from_env() -> WSGIApp:
    """The WSGI app configured from the environment, the model loading in the background."""
    from ..server import pipeline_from_env

    app = WSGIApp(pipeline_from_env)
    app.state.start_loading()
    return app
