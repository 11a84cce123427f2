"""One process counts requests in plain Python and feeds prometheus-client at scrape time
(:meth:`Metrics.flush`); multi-process mode updates prometheus-client at once. Both must expose the
same text for the same requests: names, labels, buckets and values (``_created`` timestamps aside).
"""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import generate_latest

from tfio_handlers.observability import metrics as metrics_module
from tfio_handlers.observability.metrics import (
    FLUSH_AT,
    Metrics,
)

# Dyadic seconds (exact in binary, so a sum's order cannot change it), on and between the bounds,
# beyond the last one, and 0.
SECONDS = (0.0, 0.0009765625, 0.001953125, 0.0078125, 0.5, 1.0, 2.0, 64.0, 128.0)
SIZES = (0, 1, 100, 101, 1000, 10**8, 10**8 + 1, 10**9)


def _text(metrics: Metrics) -> list[str]:
    lines = generate_latest(metrics.registry).decode().splitlines()
    return [line for line in lines if "_created" not in line]


def _feed(metrics: Metrics, rounds: int = 1) -> None:
    for r in range(rounds):
        for i, seconds in enumerate(SECONDS):
            size = SIZES[i % len(SIZES)]
            route = "/invocations" if i % 3 else "/v1/models/{model}:predict"
            model = ("iris", "echo", "-")[i % 3]
            status = 200 if i % 4 else 500
            metrics.begin()
            metrics.finish(
                route, model, "POST", "application/json", "application/json", status,
                seconds, size, SIZES[-1 - i % len(SIZES)],
                seconds if i % 2 else None, seconds / 2, None if i % 5 == 0 else seconds,
                bool((i + r) % 3),
            )  # fmt: skip
        metrics.begin()  # still in flight
        metrics.begin()
        metrics.end()  # left without an answer


def test_accumulated_exposition_equals_direct() -> None:
    direct, accumulated = Metrics(direct=True), Metrics(direct=False)
    for metrics in (direct, accumulated):
        _feed(metrics)
    first = _text(direct)
    assert _text(accumulated) == first
    assert "tfio_handlers_in_flight_requests 1.0" in first
    # Counted again after a scrape: the flushed counts are not counted twice.
    for metrics in (direct, accumulated):
        _feed(metrics, rounds=3)
    assert _text(accumulated) == _text(direct)
    assert "tfio_handlers_in_flight_requests 4.0" in _text(accumulated)


def test_many_threads_count_every_request() -> None:
    metrics = Metrics(direct=False)
    per_thread = FLUSH_AT * 2 + 7

    def work() -> None:
        for _ in range(per_thread):
            metrics.begin()
            metrics.finish(
                "/invocations", "iris", "POST", "application/json", "application/json", 200,
                0.001, 10, 20, 0.0001, 0.0005, 0.0001, True,
            )  # fmt: skip

    def scrape() -> None:
        for _ in range(50):
            generate_latest(metrics.registry)

    threads = [threading.Thread(target=work) for _ in range(4)] + [threading.Thread(target=scrape)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labels = {
        "route": "/invocations",
        "model": "iris",
        "method": "POST",
        "content_type": "application/json",
        "accept": "application/json",
        "status": "200",
    }
    registry = metrics.registry
    assert registry.get_sample_value("tfio_handlers_requests_total", labels) == 4 * per_thread
    assert (
        registry.get_sample_value(
            "tfio_handlers_stage_duration_seconds_count", {"stage": "model", "model": "iris"}
        )
        == 4 * per_thread
    )
    assert registry.get_sample_value("tfio_handlers_in_flight_requests") == 0


def test_accumulated_in_multiprocess_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """Under several workers too the default accumulates (a timer thread flushes each worker:
    test_metrics_multiprocess_flush.py); ``direct=True`` still writes every request at once."""
    monkeypatch.setenv(metrics_module.MULTIPROC_ENV, str(tmp_path))
    timed = Metrics()
    assert not timed.direct
    timed.close()
    assert Metrics(direct=True).direct
    monkeypatch.delenv(metrics_module.MULTIPROC_ENV)
    assert not Metrics().direct
