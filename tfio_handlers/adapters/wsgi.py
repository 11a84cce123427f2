"""The WSGI application: ``gunicorn 'tfio_handlers.adapters.wsgi:app_from_env()'``.

A plain WSGI callable: mount it in Flask with ``werkzeug.middleware.dispatcher.DispatcherMiddleware``,
or in Falcon as a sink, or serve it with any WSGI server. The body limit is checked against
``Content-Length`` before the body is read, and a chunked body is read only up to the limit. The work
runs in a small thread pool so that a request that takes longer than ``SAGEMAKER_MODEL_SERVER_TIMEOUT``
is answered 504 instead of holding the worker until the server kills it.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from ..errors import HTTPError
from ..pipeline import Response
from .routes import RouteRequest
from .serving import (
    PipelineSource,
    ServingState,
    Target,
    call_handler,
    hand_codec,
    internal_error,
)

if TYPE_CHECKING:
    from ..observability.wsgi import WSGIObservabilityMiddleware
    from ..registry import Registry

__all__ = ["WSGIApp", "app_from_env"]

StartResponse = Callable[..., Any]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    406: "Not Acceptable",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    499: "Client Closed Request",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_POOL_THREADS = 32


class _TooLarge(Exception):
    pass


class _ShortBody(Exception):
    pass


class WSGIApp:
    """SageMaker's, TF Serving's and the plugins' routes over a pipeline, for gunicorn, waitress or
    any WSGI server.

    ``source``, ``max_body_bytes``, ``timeout`` and ``registry`` are as for
    :class:`~tfio_handlers.adapters.asgi.ASGIApp`. Given a factory, call ``app.state.start_loading()``
    once the process is up (``app_from_env`` does), or the first request starts the load.
    """

    def __init__(
        self,
        source: PipelineSource,
        *,
        max_body_bytes: int | None = None,
        timeout: float | None = None,
        body_timeout: float | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.state = ServingState(source, registry)
        self._max_body = max_body_bytes
        self._timeout = timeout
        self._body_timeout = body_timeout
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        target = _target(environ)
        self.state.enter()
        try:
            response = self._respond(environ, method, target)
        except Exception:
            response = internal_error("the WSGI adapter")
        finally:
            self.state.leave()
        response = response.checked()
        hand_codec(response)
        status = f"{response.status} {_REASONS.get(response.status, 'Unknown')}"
        start_response(status, [*response.headers, ("Content-Length", str(len(response.body)))])
        return [response.body]

    def _respond(self, environ: dict[str, Any], method: str, target: Target) -> Response:
        found = self.state.routes.match(method, target.path)
        if found is None:
            return ServingState.not_found(method, target.path)
        endpoint, params = found
        if endpoint.work == "health":
            # Probes answer at once, before any body is read, whether or not the model is loaded.
            probe = RouteRequest(
                method, target.path, target.raw, params, _headers(environ), b"", self.state
            )
            return call_handler(endpoint, probe)
        limit = self.state.max_body(self._max_body)
        length_text = (environ.get("CONTENT_LENGTH") or "").strip()
        length = int(length_text) if length_text.isdigit() else None
        if length is not None and length > limit:
            return ServingState.too_large(length, limit)
        try:
            pipeline = self.state.pipeline
        except HTTPError as exc:
            return Response.error(exc)
        try:
            body = self._read_body(environ, length, limit)
        except _TooLarge:
            return ServingState.too_large(None, limit)
        except (OSError, _ShortBody):
            # The declared body did not arrive (in time: see _read_body): answer and close.
            return ServingState.body_timed_out(self.state.body_timeout(self._body_timeout) or 0.0)
        headers = _headers(environ)
        headers["content-length"] = str(len(body))
        request = RouteRequest(
            method, target.path, target.raw, params, headers, body, self.state, pipeline
        )
        work = functools.partial(call_handler, endpoint, request)

        # User code and model calls run in the pipeline's bounded pool (503 at once when it is
        # saturated); status and metadata in this adapter's own pool, so they keep answering.
        bounded = endpoint.work_for(request) == "model"
        timeout = self.state.timeout(self._timeout)
        try:
            if timeout is None:
                if not bounded:
                    return work()
                with pipeline.work.slot():
                    return work()
            future = pipeline.work.submit(work) if bounded else self._executor().submit(work)
        except HTTPError as exc:
            return Response.error(exc)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            return ServingState.timed_out(timeout)

    def _read_body(self, environ: dict[str, Any], length: int | None, limit: int) -> bytes:
        """The request body, all ``length`` bytes of it, or :class:`_ShortBody`.

        Under gunicorn, whose socket the environ carries, every read waits at most
        ``TFIO_HANDLERS_BODY_TIMEOUT`` (a silent client raises :class:`OSError`); under
        :class:`~tfio_handlers.adapters.gunicorn.DeadlineWorker` (``tfio-handlers serve --server
        gunicorn``) the whole body has that deadline. Other servers read the body with their own
        timeouts.
        """
        stream = environ["wsgi.input"]
        sock = environ.get("gunicorn.socket")
        seconds = self.state.body_timeout(self._body_timeout)
        if sock is not None and seconds is not None and not hasattr(sock, "deadline"):
            sock.settimeout(seconds)
        if length is not None:
            body: bytes = stream.read(length) if length else b""
            if len(body) < length:
                raise _ShortBody
            return body
        if environ.get("wsgi.input_terminated"):
            # A chunked body (no Content-Length): read it to its end, but never past the limit.
            body = stream.read(limit + 1)
            if len(body) > limit:
                raise _TooLarge
            return body
        return b""

    def _executor(self) -> ThreadPoolExecutor:
        """This process's pool (made after a ``fork``, never inherited from the parent)."""
        pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            return pool
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(_POOL_THREADS, thread_name_prefix="tfio-wsgi")
                self._pool_pid = os.getpid()
            return self._pool


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers, names lower-cased (``Content-Type`` included)."""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _target(environ: dict[str, Any]) -> Target:
    """The request's paths: PEP 3333 gives ``PATH_INFO`` as latin-1 text of the decoded bytes."""
    path = _pep3333(environ.get("PATH_INFO", "") or "/")
    prefix = _pep3333(environ.get("SCRIPT_NAME", "") or "")
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    raw_path: str | None = None
    if raw:
        raw_path = raw.partition("?")[0].partition("#")[0]
        if "://" in raw_path:  # absolute-form request target
            raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
    query = environ.get("QUERY_STRING", "") or ""
    full = prefix + path if prefix else path
    return Target.of(full, raw_path, prefix, query)


def _pep3333(text: str) -> str:
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def app_from_env() -> WSGIObservabilityMiddleware:
    """The WSGI app configured from the environment, the model loading in the background, observed
    (request ids, metrics as ``TFIO_HANDLERS_METRICS`` says, the access line: see
    :func:`tfio_handlers.observability.apps.observe_wsgi`), as ``tfio-handlers serve`` runs it.

    For ``gunicorn 'tfio_handlers.adapters.wsgi:app_from_env()'``: each worker builds its own app
    and loads the model itself. The configuration, the user's code included, is read and checked
    here first (see :func:`tfio_handlers.bootstrap.load_config`), so a mistake fails the worker's boot
    and gunicorn stops instead of serving 503 for ever. A :class:`WSGIApp` made directly is bare:
    it writes no access line (wrap it with ``observe_wsgi``).
    """
    from ..bootstrap import configure_logging, load_config, pipeline_from_config
    from ..observability.apps import observe_wsgi

    configure_logging()
    config = load_config()
    app = WSGIApp(functools.partial(pipeline_from_config, config), registry=config.registry)
    app.state.start_loading()
    return observe_wsgi(app, config.settings)
