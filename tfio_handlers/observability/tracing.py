"""OpenTelemetry: one server span per answered request, when ``opentelemetry-api`` is installed.

The span is written once the answer is out, with the request's real start and end times, as a child
of the W3C trace context the client sent (``traceparent``/``tracestate``), named after the route
template (``POST /invocations``), with the attributes a trace backend groups by:
``http.request.method``, ``http.route``, ``http.response.status_code``, ``tfio_handlers.model``,
``tfio_handlers.version``, ``tfio_handlers.request_id`` and the decode, model and encode seconds
(``tfio_handlers.stage.decode_seconds`` ...). A 5xx answer marks the span as an error.

The stages are attributes, not child spans: the pipeline measures their durations, not their start
times, and a span with made-up times would mislead more than it helps.

Without ``opentelemetry-api`` nothing is imported and this costs one check per process. With the API
but no tracer provider set, no span is built (one ``isinstance`` per request). Export is the
application's business: configure a ``TracerProvider`` (``opentelemetry-sdk``, or
``opentelemetry-instrument``) as for any Python service.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["TRACE_HEADERS", "enabled", "record_span", "tracer"]

TRACE_HEADERS = ("traceparent", "tracestate")
"""The W3C trace-context headers a span's parent is read from (lower-case)."""


@functools.cache
def _api() -> Any | None:
    """``opentelemetry.trace``, or ``None`` without ``opentelemetry-api``."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


@functools.cache
def tracer() -> Any | None:
    """The library's tracer, or ``None`` without ``opentelemetry-api``."""
    trace = _api()
    return None if trace is None else trace.get_tracer("tfio_handlers")


def enabled() -> bool:
    """Whether a span would go anywhere: the API is installed and the application set a tracer
    provider. Checked per request, so a provider set after start-up counts; until then a request
    builds no span (the API's default provider would drop it)."""
    trace = _api()
    if trace is None:
        return False
    return not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )


def record_span(
    name: str,
    seconds: float,
    status: int,
    trace_headers: Mapping[str, str] | None,
    attributes: Mapping[str, str | int | float],
) -> None:
    """Write the span of a request that took ``seconds`` and just ended (no-op without the API)."""
    spans = tracer()
    if spans is None:
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind, Status, StatusCode

    end = time.time_ns()
    parent = propagate.extract(dict(trace_headers)) if trace_headers else None
    span = spans.start_span(
        name,
        context=parent,
        kind=SpanKind.SERVER,
        start_time=end - int(seconds * 1e9),
        attributes=dict(attributes),
    )
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end)
