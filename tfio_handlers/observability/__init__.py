"""Observability: Prometheus metrics, request ids and access logs, around the served apps.

The adapters stay as they are; a middleware wraps them (:class:`ObservabilityMiddleware` for ASGI,
:class:`WSGIObservabilityMiddleware` for WSGI), and ``tfio-handlers serve`` runs the wrapped apps
(:mod:`.apps`). The pipeline records what only it knows (the model, the stage timings, user code
failures) on the request's :class:`~tfio_handlers.context.Context`, which the middleware reads
through :data:`.requests.current`. One concept a module: :mod:`.requests` (ids, the per-request
record), :mod:`.metrics` (definitions, buckets, exposition, multi-process mode), :mod:`.logs` (the
access line, text and JSON formatters), :mod:`.observer` (what both middlewares do),
:mod:`.asgi`, :mod:`.wsgi`, :mod:`.apps`. Imports nothing beyond the standard library until
metrics are turned on (prometheus-client, the ``metrics`` extra). See ``docs/operations.md``.
"""

from __future__ import annotations

from .asgi import ObservabilityMiddleware
from .observer import Observer
from .requests import RequestRecord, new_request_id, request_id_from
from .wsgi import WSGIObservabilityMiddleware

__all__ = [
    "ObservabilityMiddleware",
    "Observer",
    "RequestRecord",
    "WSGIObservabilityMiddleware",
    "new_request_id",
    "request_id_from",
]
