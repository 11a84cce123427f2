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
every worker counts. The gauges are ``livesum``: the sum over the live workers. A worker counts its
requests into its files at most :data:`FLUSH_SECONDS` after answering them (:class:`Metrics`).
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import logging
import os
import threading
import weakref
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
    "FLUSH_AT",
    "FLUSH_SECONDS",
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
    if (pid is None or pid == os.getpid()) and _ACTIVE is not None and _ACTIVE.pid == os.getpid():
        _ACTIVE.flush()  # its last requests are counted before its gauges leave
    from prometheus_client import multiprocess as mp

    mp.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]


class Metrics:
    """The metrics of one process, on a registry of their own (the module docstring's table).

    What the middleware records per request (:meth:`begin`, :meth:`finish`) goes one of two ways:

    * accumulated (the default): a tuple per answered request appended to a list (no lock), counted
      into prometheus-client's metrics many at once by :meth:`flush`; the in-flight gauge is
      requests begun minus ended minus flushed, from two ``itertools.count``. A request costs an
      append and two ``next`` calls instead of nine prometheus-client updates, each under its own
      lock (in multi-process mode, each a write to a memory-mapped file). Flushes happen when the
      registry is read (a collector registered first), when :data:`FLUSH_AT` requests wait and, in
      multi-process mode, where a scrape is answered by any one worker reading every worker's
      files, from a daemon thread of each process every :data:`FLUSH_SECONDS` when anything
      changed, and at exit (:func:`mark_process_dead`, ``atexit``). A worker's counts and its
      in-flight gauge there may lag by up to :data:`FLUSH_SECONDS`;
    * ``direct=True``: straight into prometheus-client's metrics at every request, through each
      label set's cached child.

    The exposition is the same either way (a test compares them). ``benchmarks/metrics_cost.py``
    (``--multiprocess``) measures the cost.
    """

    def __init__(self, direct: bool | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.pid = os.getpid()
        self.direct = bool(direct)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        if not self.direct:
            r.register(_Flush(self))  # first: the pending counts land before anything is read
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
        # Direct: each label set's children, made once.
        self._request_children: dict[tuple[str, str, str, str, str, int], Any] = {}
        self._route_children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._stage_children: dict[str, tuple[Any, Any, Any]] = {}
        # Accumulated: the requests answered since the last flush, one tuple each (a list's
        # ``append`` and ``del lst[:n]`` are each atomic, so no lock), and the in-flight counts.
        self._pending: list[tuple[Any, ...]] = []
        self._begun = itertools.count()
        self._ended = itertools.count()  # left without an answer
        self._finished = 0  # flushed answered requests
        self._in_flight_set = 0  # the in-flight gauge's value, as the last flush set it
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        if not self.direct and multiprocess():
            _TIMED.add(self)
            self._start_timer()

    # -- per request -------------------------------------------------------------------------------

    def begin(self) -> None:
        """A request arrived: one more in flight."""
        if self.direct:
            self.in_flight.inc()
        else:
            next(self._begun)

    def end(self) -> None:
        """A request is over without an answer to count (its client left): one fewer in flight."""
        if self.direct:
            self.in_flight.dec()
        else:
            next(self._ended)

    def finish(
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
        decode: float | None = None,
        call: float | None = None,
        encode: float | None = None,
        stages: bool = False,
    ) -> None:
        """A request was answered: one fewer in flight, :meth:`observe_request`, and, when
        ``stages``, :meth:`observe_stages`. In one process, a tuple appended to a list: the
        counting happens in :meth:`flush`, for many requests at once."""
        if self.direct:
            self.in_flight.dec()
            self.observe_request(
                route, model, method, content_type, accept, status, seconds, bytes_in, bytes_out
            )
            if stages:
                self.observe_stages(model, decode, call, encode)
            return
        pending = self._pending
        pending.append(
            (route, model, method, content_type, accept, status, seconds, bytes_in, bytes_out,
             decode, call, encode, stages)
        )  # fmt: skip
        if len(pending) >= FLUSH_AT:
            self.flush()

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
        """Count one answered request and observe its latency and body sizes, in
        prometheus-client's metrics at once (:meth:`finish` is the per-request path)."""
        self._request_child(route, model, method, content_type, accept, status).inc()
        children = self._route_child(route, model)
        children[0].observe(seconds)
        children[1].observe(bytes_in)
        children[2].observe(bytes_out)

    def observe_stages(
        self, model: str, decode: float | None, call: float | None, encode: float | None
    ) -> None:
        """Observe the stages a request went through (``None``: not reached), in
        prometheus-client's metrics at once."""
        children = self._stage_child(model)
        if decode is not None:
            children[0].observe(decode)
        if call is not None:
            children[1].observe(call)
        if encode is not None:
            children[2].observe(encode)

    def _request_child(
        self, route: str, model: str, method: str, content_type: str, accept: str, status: int
    ) -> Any:
        key = (route, model, method, content_type, accept, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self.requests.labels(route, model, method, content_type, accept, str(status))
            self._request_children[key] = counter
        return counter

    def _route_child(self, route: str, model: str) -> tuple[Any, Any, Any]:
        children = self._route_children.get((route, model))
        if children is None:
            children = (
                self.duration.labels(route, model),
                self.request_bytes.labels(route),
                self.response_bytes.labels(route),
            )
            self._route_children[(route, model)] = children
        return children

    def _stage_child(self, model: str) -> tuple[Any, Any, Any]:
        children = self._stage_children.get(model)
        if children is None:
            children = (
                self.stages.labels("decode", model),
                self.stages.labels("model", model),
                self.stages.labels("encode", model),
            )
            self._stage_children[model] = children
        return children

    # -- the timer (multi-process mode) ---------------------------------------------------------

    def _start_timer(self) -> None:
        """A daemon thread of this process flushing every :data:`FLUSH_SECONDS` when requests
        wait or the in-flight count changed (a fork's child starts its own: :func:`_forked`)."""
        self._stop = threading.Event()
        thread = threading.Thread(
            target=_tick,
            args=(weakref.ref(self), self._stop),
            name="tfio-handlers-metrics-flush",
            daemon=True,
        )
        thread.start()

    def _changed(self) -> bool:
        """Whether a flush has anything to write: requests waiting, or another in-flight count."""
        return bool(self._pending) or (
            _count(self._begun) - _count(self._ended) - self._finished != self._in_flight_set
        )

    def _forked(self) -> None:
        """In a fork's child: the parent's waiting requests and in-flight counts are the parent's
        to flush (prometheus-client's values start again from this process's own files)."""
        self.pid = os.getpid()
        self._pending = []
        self._begun = itertools.count()
        self._ended = itertools.count()
        self._finished = 0
        self._in_flight_set = 0
        self._flushing = threading.Lock()
        self._start_timer()

    def close(self) -> None:
        """Flush, and stop the timer thread (multi-process mode)."""
        self._stop.set()
        _TIMED.discard(self)
        self.flush()

    def flush(self) -> None:
        """Count the requests answered since the last flush into prometheus-client's metrics (a
        no-op when direct). Every read of :attr:`registry` does it first, :meth:`finish` when
        :data:`FLUSH_AT` requests wait, and in multi-process mode a timer thread every
        :data:`FLUSH_SECONDS` and the process's exit."""
        if self.direct:
            return
        import numpy as np

        with self._flushing:
            pending = self._pending
            taken = len(pending)
            items = pending[:taken]
            del pending[:taken]  # what was appended meanwhile stays for the next flush
            self._finished += taken
            groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
            for item in items:
                key = item[:6]
                group = groups.get(key)
                if group is None:
                    groups[key] = [item]
                else:
                    group.append(item)
            by_route: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
            by_model: dict[str, list[tuple[Any, ...]]] = {}
            for key, group in groups.items():
                self._request_child(*key).inc(len(group))
                by_route.setdefault(key[:2], []).extend(group)
                by_model.setdefault(key[1], []).extend(item for item in group if item[12])
            for (route, model), group in by_route.items():
                children = self._route_child(route, model)
                columns = list(zip(*group, strict=True))
                _add(np, children[0], DURATION_BUCKETS, columns[6])
                _add(np, children[1], BYTES_BUCKETS, columns[7])
                _add(np, children[2], BYTES_BUCKETS, columns[8])
            for model, group in by_model.items():
                if not group:
                    continue
                children = self._stage_child(model)
                columns = list(zip(*group, strict=True))
                for child, column in zip(children, columns[9:12], strict=True):
                    _add(np, child, DURATION_BUCKETS, [v for v in column if v is not None])
            in_flight = _count(self._begun) - _count(self._ended) - self._finished
            self.in_flight.set(in_flight)
            self._in_flight_set = in_flight

    # -- exposition --------------------------------------------------------------------------------

    def exposition(self, backend: Backend | None) -> bytes:
        """The ``/metrics`` text: every worker's values (multi-process mode) or this process's, and
        the model version states read from ``backend`` now."""
        from prometheus_client import CollectorRegistry, generate_latest

        if multiprocess():
            from prometheus_client import multiprocess as mp

            self.flush()  # this worker's counts now; the others' within FLUSH_SECONDS
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            text = generate_latest(registry)
        else:
            text = generate_latest(self.registry)
        if backend is not None:
            text += generate_latest(_ModelStates(backend))
        return text


FLUSH_AT = 1024
"""Answered requests that wait before the request that makes them this many counts them all (a
scrape, or in multi-process mode the timer, counts them sooner)."""

FLUSH_SECONDS = 1.0
"""In multi-process mode, how often each process's timer thread flushes (when anything changed):
the most a worker's counts in the shared folder lag behind its answers."""

_TIMED: weakref.WeakSet[Metrics] = weakref.WeakSet()
"""The accumulated metrics with a timer thread (multi-process mode), to restart after a fork and
flush at exit."""


def _tick(ref: weakref.ref[Metrics], stop: threading.Event) -> None:
    """The timer thread: flush ``ref``'s metrics every :data:`FLUSH_SECONDS` when anything changed,
    until ``stop`` is set or they are gone."""
    while not stop.wait(FLUSH_SECONDS):
        metrics = ref()
        if metrics is None:
            return
        try:
            if metrics._changed():
                metrics.flush()
        except Exception:
            log.exception("Flushing the metrics failed")
        del metrics


def _forked() -> None:
    """After a fork, in the child: each timed set of metrics starts again (threads do not survive
    a fork)."""
    for metrics in list(_TIMED):
        metrics._forked()


def _at_exit() -> None:
    """At interpreter exit: the waiting requests are counted (multi-process mode)."""
    for metrics in list(_TIMED):
        if metrics.pid == os.getpid():
            try:
                metrics.flush()
            except Exception:
                log.debug("Flushing the metrics at exit failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
atexit.register(_at_exit)


def _count(counter: itertools.count[int]) -> int:
    """How many times ``next`` was called on ``counter`` (its repr is ``count(N)``)."""
    return int(repr(counter)[6:-1])


def _add(np: Any, child: Any, bounds: Sequence[float], values: Sequence[float]) -> None:
    """Observe ``values`` on a histogram child at once: as its ``observe`` would one by one, each
    in the first bucket whose bound is ``>=`` it (+Inf last), and their sum."""
    if not values:
        return
    # prometheus-client has no public way to add many observations; its child keeps one value
    # per bucket (not cumulative) and the sum: tests/observability compares the exposition with
    # prometheus-client's own observe.
    counts = np.bincount(
        np.searchsorted(bounds, np.asarray(values, dtype=np.float64), side="left"),
        minlength=len(bounds) + 1,
    )
    buckets = child._buckets
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
    child._sum.inc(float(sum(values)))


class _Flush:
    """A collector yielding nothing, registered first: reading the registry flushes the counts."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        self.metrics.flush()
        return iter(())

    def describe(self) -> Iterator[Metric]:
        return iter(())


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
