"""What both adapters share: the pipeline's lifecycle, readiness, routing by path, and the access log."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..errors import BackendUnavailable, HTTPError, NotFound, PayloadTooLarge
from ..pipeline import Pipeline, Response

__all__ = ["Route", "ServingState", "access_log", "route_of"]

access_logger = logging.getLogger("tfio_handlers.access")
log = logging.getLogger(__name__)

PipelineSource = Pipeline | Callable[[], Pipeline]


class Route:
    PING = "ping"
    INVOCATIONS = "invocations"
    TFS = "tfs"
    NOT_FOUND = "not-found"


def route_of(method: str, path: str) -> str:
    """Which handler takes ``method path``."""
    if path == "/ping" and method in ("GET", "HEAD"):
        return Route.PING
    if path == "/invocations" and method == "POST":
        return Route.INVOCATIONS
    if path[:4].lower() == "/v1/":
        return Route.TFS
    return Route.NOT_FOUND


class ServingState:
    """The pipeline, built now or in the background, and whether the server is draining.

    Given a factory, the pipeline (and so the model) loads in a background thread, and ``/ping``
    answers 503 until it is ready, so a load balancer waits instead of sending work to a cold server.
    """

    def __init__(self, source: PipelineSource) -> None:
        self._pipeline: Pipeline | None = source if isinstance(source, Pipeline) else None
        self._factory = None if isinstance(source, Pipeline) else source
        self._error: BaseException | None = None
        self._loading: threading.Thread | None = None
        self.draining = False
        self.in_flight = 0
        self._lock = threading.Lock()

    def start_loading(self) -> None:
        """Build the pipeline in a background thread (idempotent)."""
        if self._pipeline is not None or self._factory is None or self._loading is not None:
            return
        factory = self._factory

        def load() -> None:
            try:
                self._pipeline = factory()
            except BaseException as exc:
                log.exception("Loading the model failed")
                self._error = exc

        self._loading = threading.Thread(target=load, name="tfio-load", daemon=True)
        self._loading.start()

    def wait_loaded(self, timeout: float | None = None) -> None:
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
                raise BackendUnavailable(f"Model failed to load: {self._error}")
            raise BackendUnavailable("Model is loading")
        return self._pipeline

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def ping(self) -> Response:
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


def access_log(method: str, path: str, response: Response, seconds: float, client: Any) -> None:
    """One line per request: method, path, status, bytes, latency and the codec used."""
    if access_logger.isEnabledFor(logging.INFO):
        access_logger.info(
            '%s "%s %s" %d %d %.2fms codec=%s',
            client or "-",
            method,
            path,
            response.status,
            len(response.body),
            seconds * 1000.0,
            response.codec,
        )
