"""The Prometheus metrics: their definitions, the process's one set, and the ``/metrics`` text.

prometheus-client (``pip install 'tfio-handlers[metrics]'``) is imported only when a server turns
metrics on (:func:`enable`); this module imports without it, and :func:`active` is ``None`` then, so
the pipeline and the batching scheduler may ask it at no cost.

Every metric is named ``tfio_handlers_*``, with Prometheus' unit suffixes:

=========================================  =========  ==========================================
name                                       type       labels
=========================================  =========  ==========================================
``tfio_handlers_requests_total``           counter    route, model, method, content_type,
                                                      accept, status
``tfio_handlers_request_duration_seconds`` histogram  route, model (:data:`DURATION_BUCKETS`)
``tfio_handlers_stage_duration_seconds``   histogram  stage (decode, model, encode), model
``tfio_handlers_request_bytes``            histogram  route (:data:`BYTES_BUCKETS`)
``tfio_handlers_response_bytes``           histogram  route (:data:`BYTES_BUCKETS`)
``tfio_handlers_in_flight_requests``       gauge      (none)
``tfio_handlers_user_code_errors_total``   counter    model
``tfio_handlers_batch_queue_depth``        gauge      (none): requests waiting for a batch
``tfio_handlers_batch_size``               histogram  (none): requests per batch run
                                                      (:data:`BATCH_SIZE_BUCKETS`)
``tfio_handlers_model_version_state``      gauge      model, version, state: 1 for the state a
                                                      version is in, 0 for the others
=========================================  =========  ==========================================

Under more than one worker process (gunicorn, ``uvicorn --workers``) prometheus-client's
multi-process mode is used when ``PROMETHEUS_MULTIPROC_DIR`` names a folder (``tfio-handlers serve``
makes one): each worker writes its values there and the worker that answers a scrape sums them, so
every worker counts. The gauges are ``livesum``: the sum over the live workers.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..backends.base import Backend

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "BYTES_BUCKETS",
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "MULTIPROC_ENV",
    "STATES",
    "Metrics",
    "active",
    "available",
    "enable",
    "mark_process_dead",
]

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's variable: a folder shared by the worker processes, read when it is imported."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format's media type."""

DURATION_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0
)  # fmt: skip
"""Seconds, for the request and stage histograms: 0.5 ms (a cached small model's whole request) to
60 s (``SAGEMAKER_MODEL_SERVER_TIMEOUT``'s default), about three buckets a decade."""

BYTES_BUCKETS: tuple[float, ...] = (
    100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8
)  # fmt: skip
"""Bytes, for the body histograms: a bucket a decade from 100 B to 100 MB (the default body limit)."""

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Requests in one batch: powers of two up to 512 (``max_batch_size`` defaults to 8)."""

STATES: tuple[str, ...] = ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")
"""TF Serving's model version states, as ``GetModelStatus`` names them."""

_ACTIVE: Metrics | None = None


def available() -> bool:
    """Whether prometheus-client is installed."""
    return importlib.util.find_spec("prometheus_client") is not None


def active() -> Metrics | None:
    """This process's metrics, once :func:`enable` made them; else ``None`` (metrics are off)."""
    return _ACTIVE


def enable() -> Metrics:
    """This process's metrics, made on the first call (raises :class:`ImportError` without
    prometheus-client). One set per process: a worker made by ``fork`` makes its own."""
    global _ACTIVE
    if _ACTIVE is None or _ACTIVE.pid != os.getpid():
        _ACTIVE = Metrics()
    return _ACTIVE


def multiprocess() -> bool:
    """Whether values go to the multi-process folder (:data:`MULTIPROC_ENV` set)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def mark_process_dead(pid: int | None = None) -> None:
    """Drop an exiting worker's gauge values from the multi-process folder (a no-op outside that
    mode), so the ``livesum`` gauges count live workers only."""
    if not multiprocess() or not available():
        return
    from prometheus_client import multiprocess as mp

    mp.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]


class Metrics:
    """The metrics of one process, on a registry of their own (the module docstring's table).

    The observing methods cache each label set's child, so a request costs dictionary look-ups and
    the increments themselves (``benchmarks/metrics_cost.py`` measures it).
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.pid = os.getpid()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tfio_handlers_requests",
            "Requests answered, by route template, model, HTTP method, request content type, "
            "answered content type and status.",
            ("route", "model", "method", "content_type", "accept", "status"),
            registry=r,
        )
        self.duration = Histogram(
            "tfio_handlers_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer.",
            ("route", "model"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.stages = Histogram(
            "tfio_handlers_stage_duration_seconds",
            "Seconds spent decoding the body, calling the model and encoding the answer.",
            ("stage", "model"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.request_bytes = Histogram(
            "tfio_handlers_request_bytes",
            "Request body sizes in bytes, as received.",
            ("route",),
            buckets=BYTES_BUCKETS,
            registry=r,
        )
        self.response_bytes = Histogram(
            "tfio_handlers_response_bytes",
            "Response body sizes in bytes.",
            ("route",),
            buckets=BYTES_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "tfio_handlers_in_flight_requests",
            "Requests being handled now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.user_code_errors = Counter(
            "tfio_handlers_user_code_errors",
            "Requests whose user code (inference.py) raised.",
            ("model",),
            registry=r,
        )
        self.batch_queue_depth = Gauge(
            "tfio_handlers_batch_queue_depth",
            "Requests waiting in the dynamic batching queue for their batch to run.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.batch_size = Histogram(
            "tfio_handlers_batch_size",
            "Requests per batch the dynamic batching scheduler ran.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self._request_children: dict[tuple[str, str, str, str, str, int], Any] = {}
        self._route_children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._stage_children: dict[str, tuple[Any, Any, Any]] = {}

    # -- per request -------------------------------------------------------------------------------

    def observe_request(
        self,
        route: str,
        model: str,
        method: str,
        content_type: str,
        accept: str,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """Count one answered request and observe its latency and body sizes."""
        key = (route, model, method, content_type, accept, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self.requests.labels(route, model, method, content_type, accept, str(status))
            self._request_children[key] = counter
        counter.inc()
        children = self._route_children.get((route, model))
        if children is None:
            children = (
                self.duration.labels(route, model),
                self.request_bytes.labels(route),
                self.response_bytes.labels(route),
            )
            self._route_children[(route, model)] = children
        children[0].observe(seconds)
        children[1].observe(bytes_in)
        children[2].observe(bytes_out)

    def observe_stages(
        self, model: str, decode: float | None, call: float | None, encode: float | None
    ) -> None:
        """Observe the stages a request went through (``None``: not reached)."""
        children = self._stage_children.get(model)
        if children is None:
            children = (
                self.stages.labels("decode", model),
                self.stages.labels("model", model),
                self.stages.labels("encode", model),
            )
            self._stage_children[model] = children
        if decode is not None:
            children[0].observe(decode)
        if call is not None:
            children[1].observe(call)
        if encode is not None:
            children[2].observe(encode)

    # -- exposition --------------------------------------------------------------------------------

    def exposition(self, backend: Backend | None) -> bytes:
        """The ``/metrics`` text: every worker's values (multi-process mode) or this process's, and
        the model version states read from ``backend`` now."""
        from prometheus_client import CollectorRegistry, generate_latest

        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            text = generate_latest(registry)
        else:
            text = generate_latest(self.registry)
        if backend is not None:
            text += generate_latest(_ModelStates(backend))
        return text


class _ModelStates:
    """``tfio_handlers_model_version_state``, read from the backend's model status at scrape time."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "tfio_handlers_model_version_state",
            "1 for the state each model version is in (TF Serving's GetModelStatus), 0 for others.",
            labels=("model", "version", "state"),
        )
        for model, version, state in model_version_states(self.backend):
            for name in STATES:
                family.add_metric((model, str(version), name), 1.0 if name == state else 0.0)
        yield family


def _model_names(backend: Any) -> Sequence[str]:
    """The models a backend serves: the embedded backend lists them (through a batching wrapper
    too); a remote one is asked about its default model only."""
    inner = backend
    while hasattr(inner, "inner"):
        inner = inner.inner
    names = getattr(inner, "model_names", None)
    if callable(names):
        return list(names())
    default = getattr(backend, "default_model", None)
    return [default] if default else []


def model_version_states(backend: Backend) -> list[tuple[str, int, str]]:
    """``(model, version, state)`` for every version the backend reports; a model whose status
    cannot be read (a remote server down) is left out, and logged at debug level."""
    from ..errors import HTTPError
    from ..protos import GetModelStatusRequest, ModelSpec, ModelVersionStatus

    found: list[tuple[str, int, str]] = []
    for name in _model_names(backend):
        try:
            status = backend.get_model_status(
                GetModelStatusRequest(model_spec=ModelSpec(name=name))
            )
        except HTTPError as exc:
            log.debug("No status for model %r: %s", name, exc.message)
            continue
        for version in status.model_version_status:
            state = ModelVersionStatus.State.Name(version.state)
            found.append((name, int(version.version), state))
    return found
