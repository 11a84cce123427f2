"""What both adapters share: the pipeline's lifecycle, readiness, routing by path, and the codec
handed to the access line.

The adapters differ only in how bytes and headers arrive (ASGI messages, a WSGI ``environ``); every
decision about a request is made here or in the pipeline, so both behave the same under any server.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..errors import (
    BackendUnavailable,
    HTTPError,
    InternalError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
)
from ..observability.requests import current as current_request
from ..pipeline import Pipeline, Response
from .routes import Endpoint, RouteRequest, RouteTable

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = [
    "DEFAULT_MAX_BODY",
    "PipelineSource",
    "Route",
    "ServingState",
    "Target",
    "builtin_routes",
    "call_handler",
    "hand_codec",
    "internal_error",
    "route_of",
    "strip_mount",
]

log = logging.getLogger(__name__)

PipelineSource = Pipeline | Callable[[], Pipeline]
"""A ready pipeline, or a zero-argument factory that builds one (loading the model)."""

DEFAULT_MAX_BODY = 100 * 1024 * 1024
"""The body limit while the pipeline (and so its settings) is still loading."""


class Route:
    """The names of the built-in routes (:mod:`.builtin_routes`), and of no route at all."""

    PING = "ping"
    INVOCATIONS = "invocations"
    TFS = "tfs"
    NOT_FOUND = "not-found"


@cache
def builtin_routes() -> RouteTable:
    """The built-in routes alone: what a server routes on before its pipeline (and so its
    registry) exists, when it was given neither."""
    from ..registry import Registry

    return Registry().routes()


def route_of(method: str, path: str) -> str:
    """Which built-in route takes ``method path`` (``path`` percent-decoded, mount prefix removed):
    its name (:class:`Route`).

    Any ``/v1/...`` path, in any case, goes to TF Serving's REST API, as TF Serving's dispatcher
    takes ``(?i)/v1/.*``; that API answers everything it cannot dispatch with "Malformed request".
    """
    found = builtin_routes().match(method, path)
    return found[0].name if found is not None else Route.NOT_FOUND


def strip_mount(raw_path: str, prefix: str) -> str | None:
    """``raw_path`` (still percent-encoded) without the leading segments that decode to ``prefix``.

    A server or a parent app that mounts us under ``/prefix`` passes the prefix decoded (ASGI
    ``root_path``, WSGI ``SCRIPT_NAME``) but the raw path whole; the prefix's encoded length is not
    known, so this finds the ``/`` boundary whose decoded head equals it. ``None`` when none does.
    """
    if not prefix:
        return raw_path
    position = 0
    while True:
        position = raw_path.find("/", position + 1)
        head = raw_path if position < 0 else raw_path[:position]
        if unquote(head) == prefix:
            return "/" if position < 0 else raw_path[position:]
        if position < 0:
            return None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: the decoded path for routing, the raw one for TF Serving's URL rules.

    TF Serving matches its regular expressions against the path as received, query and all, and
    percent-decodes only the model name and the label afterwards; so ``%2F`` may appear in a model
    name, and a query string makes a predict URL malformed, exactly as on ``tensorflow_model_server``.
    """

    path: str
    raw: str

    @classmethod
    def of(cls, path: str, raw_path: str | None, prefix: str, query: str) -> Target:
        """From a decoded path, the raw path if the server gives one, the mount prefix and the query."""
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        raw = strip_mount(raw_path, prefix) if raw_path else None
        if raw is None or unquote(raw) != path:
            raw = path  # no trustworthy raw path: the decoded one is the best left
        if query:
            raw = f"{raw}?{query}"
        return cls(path, raw)


def call_handler(endpoint: Endpoint, request: RouteRequest) -> Response:
    """Run a route's handler: an :class:`HTTPError` it raises is its status with ``{"error": ...}``;
    anything else goes on up to the adapter, which logs it and answers 500."""
    try:
        return endpoint.handler(request)
    except HTTPError as exc:
        return Response.error(exc, endpoint.name)


def internal_error(where: str) -> Response:
    """A 500 for a bug in the serving layer: the traceback goes to the log, never to the client."""
    log.exception("Unexpected error in %s", where)
    return Response.error(InternalError("Internal error"))


def freeze_heap() -> None:
    """Collect once, then hand every object alive to the collector's permanent generation
    (``gc.freeze()``): TensorFlow and the loaded models are alive for the whole process, and
    walking them made each full collection a pause of every request in flight (see
    :attr:`~tfio_handlers.config.Settings.gc_freeze`)."""
    gc.collect()
    gc.freeze()


class ServingState:
    """The pipeline, built now or in the background, and whether the server is draining.

    Given a factory, the pipeline (and so the model) loads in a background thread, and ``/ping``
    answers 503 until it is ready, so a load balancer waits instead of sending work to a cold server.
    Loading starts at most once per process: a state created before a ``fork`` (gunicorn
    ``--preload``) starts again in the child, whose copy of the loading thread does not run.
    """

    def __init__(self, source: PipelineSource, registry: Registry | None = None) -> None:
        self._registry = registry
        self._pipeline: Pipeline | None = source if isinstance(source, Pipeline) else None
        self._factory = None if isinstance(source, Pipeline) else source
        self._error: BaseException | None = None
        self._loading: threading.Thread | None = None
        self._loading_pid = 0
        self.draining = False
        self.in_flight = 0
        self._lock = threading.Lock()

    @property
    def routes(self) -> RouteTable:
        """The routes this server answers: its registry's (given, or the pipeline's once built);
        the built-in ones while a pipeline from a factory given no registry is loading."""
        registry = self._registry
        if registry is None:
            pipeline = self._pipeline
            if not isinstance(pipeline, Pipeline):
                return builtin_routes()
            registry = pipeline.registry
        return registry.routes()

    @property
    def ready(self) -> bool:
        """Whether the pipeline is built."""
        return self._pipeline is not None

    def start_loading(self) -> None:
        """Build the pipeline in a background thread (once per process; idempotent)."""
        if self._pipeline is not None or self._factory is None:
            return
        with self._lock:
            if self._loading is not None and self._loading_pid == os.getpid():
                return
            factory = self._factory

            def load() -> None:
                try:
                    pipeline = factory()
                    if pipeline.settings.gc_freeze:
                        freeze_heap()
                    self._pipeline = pipeline
                except BaseException as exc:
                    log.exception("Loading the model failed")
                    self._error = exc
                else:
                    log.info("Model loaded; ready")

            self._error = None
            self._loading_pid = os.getpid()
            self._loading = threading.Thread(target=load, name="tfio-load", daemon=True)
            self._loading.start()

    def wait_loaded(self, timeout: float | None = None) -> None:
        """Block until the background load has finished (or ``timeout`` seconds passed)."""
        self.start_loading()
        if self._loading is not None:
            self._loading.join(timeout)

    @property
    def pipeline(self) -> Pipeline:
        """The ready pipeline; 503 while loading or draining (with the load error, if it failed)."""
        if self.draining:
            raise BackendUnavailable("Server is shutting down")
        if self._pipeline is None:
            self.start_loading()
            if self._error is not None:
                raise BackendUnavailable(
                    f"Model failed to load: {type(self._error).__name__}: {self._error}"
                )
            raise BackendUnavailable("Model is loading")
        return self._pipeline

    def max_body(self, override: int | None) -> int:
        """The body limit: the adapter's own, else the settings' (``SAGEMAKER_MAX_PAYLOAD_IN_MB``)."""
        if override is not None:
            return override
        pipeline = self._pipeline
        return pipeline.settings.limits.max_body_bytes if pipeline else DEFAULT_MAX_BODY

    def timeout(self, override: float | None) -> float | None:
        """Seconds a request may take (``SAGEMAKER_MODEL_SERVER_TIMEOUT``); ``None`` for no limit."""
        if override is not None:
            return override if override > 0 else None
        pipeline = self._pipeline
        seconds = pipeline.settings.request_timeout if pipeline else None
        return seconds if seconds and seconds > 0 else None

    def body_timeout(self, override: float | None) -> float | None:
        """Seconds the request body may take to arrive (``TFIO_HANDLERS_BODY_TIMEOUT``); ``None``: no
        limit. Before the pipeline is built no body is read, so only a ready pipeline's counts."""
        if override is not None:
            return override if override > 0 else None
        pipeline = self._pipeline
        seconds = pipeline.settings.body_timeout if pipeline else None
        return seconds if seconds and seconds > 0 else None

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def ping(self) -> Response:
        """The pipeline's :meth:`~tfio_handlers.pipeline.Pipeline.ping`; 503 while it loads or
        when it failed to."""
        try:
            pipeline = self.pipeline
        except HTTPError as exc:
            return Response.error(exc)
        return pipeline.ping()

    @staticmethod
    def not_found(method: str, path: str) -> Response:
        return Response.error(NotFound(f"No route for {method} {path}"))

    @staticmethod
    def too_large(size: int | None, limit: int) -> Response:
        what = f"of {size} bytes " if size is not None else ""
        return Response.error(
            PayloadTooLarge(f"Request body {what}is over the limit of {limit} bytes")
        )

    @staticmethod
    def body_timed_out(seconds: float) -> Response:
        """408 (and ``Connection: close``): the declared body did not arrive within ``seconds``."""
        return Response.error(
            RequestTimeout(
                f"Request body did not arrive within the body timeout of {seconds:g} s "
                "(TFIO_HANDLERS_BODY_TIMEOUT)"
            )
        )

    @staticmethod
    def timed_out(seconds: float) -> Response:
        from ..errors import BackendTimeout

        return Response.error(
            BackendTimeout(f"Request took longer than the server's timeout of {seconds:g} s")
        )


def hand_codec(response: Response) -> None:
    """Tell the observability middleware what handled this request (``response.codec``: the media
    type, ``tfs:<action>``, ``-`` for no route), for its access line: the one line a request gets.

    The adapters write no access line of their own; an app served without the middleware
    (:func:`tfio_handlers.observability.apps.observe_asgi`, ``tfio-handlers serve``) has none.
    """
    record = current_request.get()
    if record is not None:
        record.codec = response.codec
