"""Multi-process mode accumulates too: real worker processes (prometheus-client imported with
``PROMETHEUS_MULTIPROC_DIR`` set) count requests through :class:`Metrics`' default path, then go
idle; their timer threads flush, so a scrape from another process sees every request within
:data:`FLUSH_SECONDS`, and the in-flight gauge follows a request in flight back to 0.

The end-to-end check over HTTP with 2 gunicorn workers is test_metrics_live.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tfio_handlers.observability import metrics as metrics_module

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 30.0  # seconds: generous, never a speed check (the flush is every FLUSH_SECONDS)

# A worker: its commands on stdin, one a line; it answers "ok" after each. Nothing flushes it but
# its own timer thread (no scrape, no FLUSH_AT: fewer requests than that, no exit).
WORKER = textwrap.dedent(
    """
    import os
    import sys
    import time
    from tfio_handlers.observability.metrics import Metrics, enable

    metrics = enable()
    assert not metrics.direct


    def answer(n, status=200):
        for _ in range(n):
            metrics.begin()
            metrics.finish(
                "/invocations", "iris", "POST", "application/json", "application/json",
                status, 0.003, 100, 1000, 0.0001, 0.002, 0.0001, True,
            )


    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "answer":  # "answer N [STATUS]": N requests answered, with their stages
            answer(*map(int, arg.split()))
        elif command == "fork":  # a child answers N requests with 202, idles, exits without atexit
            if os.fork() == 0:
                answer(int(arg), 202)
                time.sleep(5)
                os._exit(0)
        elif command == "begin":  # one request arrives and stays in flight
            metrics.begin()
        elif command == "finish":  # the request in flight is answered (a 500, no stages)
            metrics.finish(
                "/invocations", "iris", "POST", "application/json", "application/json",
                500, 0.02, 100, 50,
            )
        print("ok", flush=True)
    """
)


class Worker:
    def __init__(self, folder: Path) -> None:
        env = {**os.environ, metrics_module.MULTIPROC_ENV: str(folder)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def send(self, command: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer == "ok\n", (command, answer, self.process.poll())

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def workers(folder: Path) -> Iterator[list[Worker]]:
    started = [Worker(folder), Worker(folder)]
    yield started
    for worker in started:
        worker.stop()


def _scrape(folder: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every worker's values, summed as a scrape answered by another process would."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, key), v in samples.items() if n == name and wanted <= key)


def _until(check: Callable[[], object], what: str) -> None:
    """Poll ``check`` (an assertion) until it passes; past :data:`DEADLINE`, its failure."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {DEADLINE} s: {what}") from None
            time.sleep(0.1)


def test_idle_workers_are_counted_by_their_timer(folder: Path, workers: list[Worker]) -> None:
    first, second = workers
    first.send("answer 7")
    second.send("answer 5")
    second.send("begin")  # stays in flight in the second worker
    # Both workers are idle now: only their timer threads can write what they counted.

    def counted() -> None:
        s = _scrape(folder)
        assert _value(s, "tfio_handlers_requests_total", status="200") == 12, s
        assert _value(s, "tfio_handlers_request_duration_seconds_count") == 12
        assert _value(s, "tfio_handlers_request_duration_seconds_bucket", le="0.005") == 12
        assert _value(s, "tfio_handlers_request_duration_seconds_bucket", le="0.0025") == 0
        assert _value(s, "tfio_handlers_request_bytes_sum") == 12 * 100
        assert _value(s, "tfio_handlers_response_bytes_count") == 12
        assert _value(s, "tfio_handlers_stage_duration_seconds_count", stage="model") == 12
        assert _value(s, "tfio_handlers_stage_duration_seconds_count", stage="decode") == 12
        assert _value(s, "tfio_handlers_in_flight_requests") == 1

    _until(counted, "12 answered requests and 1 in flight")

    second.send("finish")

    def finished() -> None:
        s = _scrape(folder)
        assert _value(s, "tfio_handlers_requests_total", status="200") == 12, s
        assert _value(s, "tfio_handlers_requests_total", status="500") == 1
        assert _value(s, "tfio_handlers_request_duration_seconds_count") == 13
        assert _value(s, "tfio_handlers_request_duration_seconds_bucket", le="0.025") == 13
        assert _value(s, "tfio_handlers_stage_duration_seconds_count", stage="model") == 12
        assert _value(s, "tfio_handlers_in_flight_requests") == 0

    _until(finished, "13 answered requests and none in flight")


def test_more_requests_than_flush_at_and_exit(folder: Path, workers: list[Worker]) -> None:
    """Past :data:`FLUSH_AT` the answering request flushes; the rest wait for the timer, or the
    exit (a worker stopped right after its requests loses none)."""
    first, second = workers
    n = metrics_module.FLUSH_AT + 10
    first.send(f"answer {n}")
    # The request that made FLUSH_AT wait counted them before it returned.
    s = _scrape(folder)
    assert _value(s, "tfio_handlers_requests_total", status="200") >= metrics_module.FLUSH_AT
    second.send("answer 3 201")
    second.stop()  # exits at once: atexit counts its 3, before it is gone
    s = _scrape(folder)
    assert _value(s, "tfio_handlers_requests_total", status="201") == 3, s
    assert _value(s, "tfio_handlers_request_duration_seconds_count", route="/invocations") >= 3

    def counted() -> None:
        s = _scrape(folder)
        assert _value(s, "tfio_handlers_requests_total") == n + 3, s
        assert _value(s, "tfio_handlers_stage_duration_seconds_count", stage="encode") == n + 3

    _until(counted, f"{n + 3} answered requests")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_has_its_own_timer_and_not_its_parents_requests(
    folder: Path, workers: list[Worker]
) -> None:
    first, _ = workers
    first.send("answer 4")  # waiting in the parent when it forks
    first.send("fork 6")  # the child answers 6, idles (its own timer must flush), then exits

    def counted() -> None:
        s = _scrape(folder)
        assert _value(s, "tfio_handlers_requests_total", status="202") == 6, s
        assert _value(s, "tfio_handlers_requests_total", status="200") == 4, s
        assert _value(s, "tfio_handlers_in_flight_requests") == 0

    _until(counted, "the child's 6 and the parent's 4, each once")
    time.sleep(2 * metrics_module.FLUSH_SECONDS)  # a double count would show by now
    counted()
