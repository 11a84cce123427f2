"""What the ASGI and WSGI middlewares do around each request, whatever the server.

:class:`Observer` turns a finished request into its metrics and its access line, with labels of
bounded cardinality: the route is the matched route's template (an unknown path is
:data:`UNMATCHED`), the model is named only once the backend knew it, and the content types are
those the registry's codecs claim (anything else is ``other``). It also answers ``GET /metrics``,
before the app sees the request, so no plugin route can take that path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import HTTPError, InternalError, Unimplemented
from . import metrics as metrics_module
from . import tracing
from .logs import AccessLine, log_access
from .requests import RequestRecord

if TYPE_CHECKING:
    from ..adapters.routes import RouteTable
    from ..pipeline import Pipeline

__all__ = ["METRICS_PATH", "OTHER", "UNMATCHED", "Observer"]

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
"""The route label of a request no route took (a 404): one label for every unknown path."""
OTHER = "other"
"""The content type label of a type no codec claims."""
NONE = "-"

_TFS_TEMPLATES = {
    "predict": "/v1/models/{model}:predict",
    "classify": "/v1/models/{model}:classify",
    "regress": "/v1/models/{model}:regress",
    "status": "/v1/models/{model}",
    "metadata": "/v1/models/{model}/metadata",
}
"""TF Serving's one ``/v1/{rest:path}`` route, told apart by what it did (versions and labels in
the URL share their model's label)."""


_NOTHING: frozenset[str] = frozenset()


_ESSENCES: dict[str, str] = {}
_CACHED = 256
"""Entries kept by each of the observer's small caches (media types, routes by path): emptied
when full, so whatever clients send, they stay small."""


def _essence(value: str | None) -> str:
    """``value``'s media type without parameters, lower-case (``-`` when absent)."""
    if not value:
        return NONE
    found = _ESSENCES.get(value)
    if found is None:
        found = value.partition(";")[0].strip().lower() or NONE
        if len(_ESSENCES) >= _CACHED:
            _ESSENCES.clear()
        _ESSENCES[value] = found
    return found


class Observer:
    """Metrics and access lines for the requests of one app.

    ``routes`` gives the app's route table (``None``: every request is :data:`UNMATCHED`);
    ``pipeline`` the app's pipeline once it is built (``None`` before), for the codecs' media types
    and the backend's model states. ``metrics`` turns the metrics on (``TFIO_HANDLERS_METRICS``);
    on without prometheus-client, ``/metrics`` answers 501 and nothing is counted.
    """

    def __init__(
        self,
        *,
        metrics: bool = True,
        routes: Callable[[], RouteTable] | None = None,
        pipeline: Callable[[], Pipeline | None] | None = None,
    ) -> None:
        self.metrics_on = metrics
        self.metrics = metrics_module.enable() if metrics and metrics_module.available() else None
        self._routes = routes
        self._pipeline = pipeline
        self._known: tuple[object, frozenset[str], frozenset[str]] | None = None
        self._table: object = None
        self._templates: dict[tuple[str, str], str] = {}
        self.pid = os.getpid()

    # -- /metrics ------------------------------------------------------------------------------------

    def serves(self, method: str, path: str) -> bool:
        """Whether this request is a scrape the middleware answers itself."""
        return self.metrics_on and path == METRICS_PATH and method in ("GET", "HEAD")

    def scrape(self) -> tuple[int, str, bytes]:
        """``(status, content type, body)`` of ``GET /metrics``: the text format, or 501 JSON
        when prometheus-client is not installed."""
        if self.metrics is None:
            error = Unimplemented(
                "Metrics need prometheus-client: pip install 'tfio-handlers[metrics]' "
                "(or turn them off with TFIO_HANDLERS_METRICS=0)"
            )
            return error.status_code, "application/json", error.to_json()
        pipeline = self._pipeline() if self._pipeline is not None else None
        try:
            body = self.metrics.exposition(pipeline.backend if pipeline is not None else None)
        except Exception:
            log.exception("Writing the metrics failed")
            return 500, "application/json", InternalError("Internal error").to_json()
        return 200, metrics_module.CONTENT_TYPE, body

    # -- per request -----------------------------------------------------------------------------------

    def begin(self) -> None:
        """A request arrived."""
        if self.metrics is not None:
            self.metrics.begin()

    def route_of(self, method: str, path: str) -> str:
        """The template of the route that takes ``method path``, or :data:`UNMATCHED`."""
        if self._routes is None:
            return UNMATCHED
        table = self._routes()
        templates = self._templates
        if table is not self._table:  # a new table (the pipeline was built): forget the old one's
            templates.clear()
            self._table = table
        key = (method, path)
        template = templates.get(key)
        if template is None:
            found = table.match(method, path)
            template = found[0].template if found is not None else UNMATCHED
            if len(templates) >= _CACHED:
                templates.clear()
            templates[key] = template
        return template

    def _media_types(self) -> tuple[frozenset[str], frozenset[str]]:
        """The media types the codecs decode and encode (empty until the pipeline is built)."""
        pipeline = self._pipeline() if self._pipeline is not None else None
        if pipeline is None:
            return _NOTHING, _NOTHING
        known = self._known
        if known is None or known[0] is not pipeline.registry:
            registry = pipeline.registry
            known = (registry, frozenset(registry.decodable()), frozenset(registry.encodable()))
            self._known = known
        return known[1], known[2]

    def finish(
        self,
        record: RequestRecord,
        method: str,
        path: str,
        target: str,
        status: int,
        request_type: str | None,
        response_type: str | None,
        bytes_in: int,
        bytes_out: int,
        seconds: float,
        client: str | None,
    ) -> None:
        """A request was answered: count it and write its access line. ``target`` is the path as
        logged (with its query); ``request_type``/``response_type`` the Content-Type headers."""
        metrics = self.metrics
        # The route's template is a label only: no table look-up when metrics are off.
        route = self.route_of(method, path) if metrics is not None else UNMATCHED
        context = record.context
        model = NONE
        version = NONE
        if context is not None:
            if context.signature_defs and context.model_name:
                model = context.model_name  # the backend knew it: a bounded label
            if context.model_version is not None:
                version = str(context.model_version)
            elif context.version_label:
                version = context.version_label
        elif path[:4].lower() == "/v1/":
            route, model, version = self._tfs_labels(method, path, status, route)
        codec = _essence(response_type)
        if metrics is not None:
            decodable, encodable = self._media_types()
            content_type = _essence(request_type)
            if content_type != NONE and content_type not in decodable:
                content_type = OTHER
            accept = codec if status < 400 else NONE
            if accept != NONE and accept not in encodable:
                accept = OTHER
            if context is not None:
                metrics.finish(
                    route, model, method, content_type, accept, status, seconds, bytes_in,
                    bytes_out, context.decode_seconds, context.model_seconds,
                    context.encode_seconds, True,
                )  # fmt: skip
            elif record.stages is not None:  # TF Serving's REST API timed its own stages
                metrics.finish(
                    route, model, method, content_type, accept, status, seconds, bytes_in,
                    bytes_out, *record.stages, True,
                )  # fmt: skip
            else:
                metrics.finish(
                    route, model, method, content_type, accept, status, seconds, bytes_in,
                    bytes_out,
                )  # fmt: skip
            if record.user_code_failed:
                metrics.user_code_errors.labels(model).inc()
        if tracing.enabled():
            stages = (
                (context.decode_seconds, context.model_seconds, context.encode_seconds)
                if context is not None
                else record.stages or (None, None, None)
            )
            attributes: dict[str, str | int | float] = {
                "http.request.method": method,
                "http.route": route if metrics is not None else self.route_of(method, path),
                "http.response.status_code": status,
                "tfio_handlers.model": model,
                "tfio_handlers.version": version,
                "tfio_handlers.request_id": record.request_id,
            }
            for stage, taken in zip(("decode", "model", "encode"), stages, strict=True):
                if taken is not None:
                    attributes[f"tfio_handlers.stage.{stage}_seconds"] = taken
            name = f"{method} {attributes['http.route']}"
            tracing.record_span(name, seconds, status, record.trace_headers, attributes)
        log_access(
            AccessLine(
                method,
                target,
                status,
                record.codec or codec,
                (context.model_name or NONE) if context is not None else model,
                version,
                bytes_in,
                bytes_out,
                round(seconds * 1000.0, 3),
                record.request_id,
                client or NONE,
                self.pid,
            )
        )

    def end(self) -> None:
        """A request is over (answered, or its client left)."""
        if self.metrics is not None:
            self.metrics.end()

    @staticmethod
    def _tfs_labels(method: str, path: str, status: int, route: str) -> tuple[str, str, str]:
        """Route, model and version labels of a TF Serving REST request, from its URL: the model
        only when it answered (so it exists), the route by what it did."""
        from ..adapters.tfs_rest import match_tfs_route

        try:
            found = match_tfs_route(method, path)
        except HTTPError:
            return route, NONE, NONE
        template = _TFS_TEMPLATES.get(found.action, route)
        model = found.model if status < 400 and found.model else NONE
        version = str(found.version) if found.version is not None else (found.label or NONE)
        return template, model, version
