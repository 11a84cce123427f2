"""The issue's done-when, on real servers: ``tfio-handlers serve`` under uvicorn, and under gunicorn
with 2 workers, answers known requests; ``GET /metrics`` then shows exactly those counts (every
gunicorn worker's, through prometheus-client's multi-process mode), and a JSON access line parses
and carries the request id the client sent."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import LiveServer, clean_env, serve_cli, start_all

pytest.importorskip("prometheus_client")

PREDICT = b'{"instances": [1.0, 2.0, 5.0]}'
KNOWN = {
    # (method, path, body, content type) -> how many times
    ("POST", "/invocations", PREDICT, "application/json"): 5,
    ("POST", "/invocations", b"not json", "application/json"): 2,
    ("POST", "/invocations", b"1,2", "text/x-unknown"): 1,
    ("POST", "/v1/models/half_plus_two:predict", PREDICT, "application/json"): 3,
    ("GET", "/no/such/route", b"", "application/json"): 2,
}


@pytest.fixture(scope="module")
def servers(
    half_plus_two_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, LiveServer]]:
    tmp = tmp_path_factory.mktemp("metrics")
    args = ["--model-dir", str(half_plus_two_model.parent), "--log-format", "json"]
    running = {
        "uvicorn": serve_cli("metrics-uvicorn", tmp, args),
        "gunicorn": serve_cli(
            "metrics-gunicorn", tmp, [*args, "--server", "gunicorn", "--workers", "2"]
        ),
    }
    start_all(running.values())
    # /ping answered 200 from one worker: wait until each gunicorn worker has loaded the model too.
    loaded = running["gunicorn"].wait_log("Model loaded; ready", timeout=120, count=2)
    assert loaded.count("Model loaded; ready") == 2, loaded[-4000:]
    yield running
    for server in running.values():
        server.stop()


def _samples(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of metric ``name`` in a text exposition, by its label set."""
    found: dict[frozenset[tuple[str, str]], float] = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1)))
            found[labels] = float(match.group(2))
    return found


def _count(samples: dict[frozenset[tuple[str, str]], float], **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for key, value in samples.items() if wanted <= key)


def _settled(text: str) -> bool:
    """Whether every worker's counts of the KNOWN requests are in (the last one's stages too):
    all of them, whichever route (a worker that answered only the last 404s flushes last)."""
    samples = _samples(text, "tfio_handlers_requests_total")
    requests = sum(value for labels, value in samples.items() if ("route", "/ping") not in labels)
    stages = _samples(text, "tfio_handlers_stage_duration_seconds_count")
    in_flight = sum(_samples(text, "tfio_handlers_in_flight_requests").values()) + sum(
        float(v) for v in re.findall(r"^tfio_handlers_in_flight_requests (\S+)$", text, re.M)
    )
    return (
        requests == sum(KNOWN.values()) and _count(stages, stage="encode") == 8 and in_flight == 0
    )


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_metrics_count_exactly_the_requests_sent(servers: dict[str, LiveServer], kind: str) -> None:
    server = servers[kind]
    for (method, path, body, content_type), times in KNOWN.items():
        for _ in range(times):
            server.request(method, path, body or None, {"Content-Type": content_type})
    # Every worker's answers are counted: with 2 gunicorn workers, some went to each. A worker
    # that did not answer the scrape writes its counts within FLUSH_SECONDS: wait for them (a
    # generous deadline, not a speed check).
    deadline = time.monotonic() + 30
    while True:
        scrape = server.get("/metrics")
        assert scrape.status == 200
        text = scrape.body.decode()
        if _settled(text) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert scrape.headers["content-type"].startswith("text/plain")
    requests = _samples(text, "tfio_handlers_requests_total")
    counted = [
        line for line in text.splitlines() if line.startswith("tfio_handlers_requests_total")
    ]
    assert _count(requests, route="/invocations", status="200", model="half_plus_two") == 5, counted
    assert _count(requests, route="/invocations", status="200", accept="application/json") == 5
    assert (
        _count(requests, route="/invocations", status="400", content_type="application/json") == 2
    )
    assert _count(requests, route="/invocations", status="415", content_type="other") == 1
    assert _count(requests, route="/v1/models/{model}:predict", status="200") == 3
    assert _count(requests, route="/v1/models/{model}:predict", model="half_plus_two") == 3
    assert _count(requests, route="unmatched", status="404", method="GET") == 2
    assert _count(requests, route="/ping") >= 1  # readiness polls are requests too
    assert "/no/such/route" not in text  # unknown paths share one label
    # Histograms agree with the counter; the stages ran for the 5 answered /invocations and the
    # 3 answered TF Serving predicts (which time their own stages).
    durations = _samples(text, "tfio_handlers_request_duration_seconds_count")
    assert _count(durations, route="/invocations") == 8
    assert _count(durations, route="/v1/models/{model}:predict") == 3
    stages = _samples(text, "tfio_handlers_stage_duration_seconds_count")
    assert _count(stages, stage="decode", model="half_plus_two") == 5 + 3
    assert _count(stages, stage="model", model="half_plus_two") == 5 + 3
    assert _count(stages, stage="encode", model="half_plus_two") == 5 + 3
    sizes = _samples(text, "tfio_handlers_request_bytes_sum")
    assert _count(sizes, route="/invocations") == 5 * len(PREDICT) + 2 * 8 + 3
    in_flight = _samples(text, "tfio_handlers_in_flight_requests")
    assert sum(in_flight.values()) == 0 or re.search(
        r"^tfio_handlers_in_flight_requests 0\.0$", text, re.M
    )
    states = _samples(text, "tfio_handlers_model_version_state")
    assert (
        states[frozenset({("model", "half_plus_two"), ("version", "1"), ("state", "AVAILABLE")})]
        == 1
    )
    assert (
        states[frozenset({("model", "half_plus_two"), ("version", "1"), ("state", "LOADING")})] == 0
    )
    # A second scrape is not counted as a request.
    again = _samples(server.get("/metrics").body.decode(), "tfio_handlers_requests_total")
    assert _count(again, route="/invocations") == 8


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_json_access_line_carries_the_clients_request_id(
    servers: dict[str, LiveServer], kind: str
) -> None:
    server = servers[kind]
    rid = f"client-chosen-{kind}-42"
    answer = server.post(
        "/invocations", PREDICT, headers={"Content-Type": "application/json", "X-Request-ID": rid}
    )
    assert answer.status == 200
    assert answer.headers["x-request-id"] == rid
    server.wait_log(rid)
    lines = [json.loads(line) for line in server.log().splitlines() if rid in line]
    access = [entry for entry in lines if entry["logger"] == "tfio_handlers.access"]
    assert len(access) == 1, lines  # one access line per request
    entry = access[0]
    assert entry["request_id"] == rid
    assert entry["method"] == "POST"
    assert entry["path"] == "/invocations"
    assert entry["status"] == 200
    assert entry["codec"] == "application/json"
    assert entry["model"] == "half_plus_two"
    assert entry["bytes_in"] == len(PREDICT)
    assert entry["bytes_out"] == len(answer.body)
    assert entry["duration_ms"] >= 0


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_sagemaker_request_id_honoured_and_bad_ids_replaced(
    servers: dict[str, LiveServer], kind: str
) -> None:
    server = servers[kind]
    answer = server.get("/ping", headers={"X-Amzn-RequestId": "sm-7f3a"})
    assert answer.headers["x-request-id"] == "sm-7f3a"
    made = server.get("/ping")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    hostile = server.get("/ping", headers={"X-Request-ID": "a" * 500})
    assert hostile.status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])


@pytest.mark.parametrize(
    "server_args",
    [["--server", "gunicorn", "--workers", "2"], ["--workers", "2"]],
    ids=["gunicorn", "uvicorn-workers"],
)
def test_no_metrics_folder_is_left_behind(
    half_plus_two_model: Path, tmp_path: Path, server_args: list[str]
) -> None:
    """``serve`` makes the multi-process folder in ``TMPDIR``, named with its process id. The uvicorn
    supervisor removes it when it stops; gunicorn's arbiter (``serve`` replaced by ``os.execv``)
    cannot, and the next run that makes one removes it: here a run refused at once for its port."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    model = ["--model-dir", str(half_plus_two_model.parent)]
    server = serve_cli("metrics-folder", tmp_path, [*model, *server_args], {"TMPDIR": str(temp)})
    start_all([server])
    try:
        made = list(temp.glob("tfio-handlers-metrics-*"))
        assert len(made) == 1 and made[0].is_dir(), made
        assert server.process is not None
        assert made[0].name.startswith(f"tfio-handlers-metrics-{server.process.pid}-")
        server.wait_log("Model loaded; ready", timeout=120, count=2)  # both workers
        assert server.request("POST", "/invocations", PREDICT).status == 200
    finally:
        code = server.stop()
    assert code == 0, server.log()[-3000:]
    left = list(temp.iterdir())
    assert left == ([] if "gunicorn" not in server_args else made), left
    with socket.socket() as taken:  # the next run: refused at once, its port held
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = [sys.executable, "-m", "tfio_handlers", "serve", *model, "--workers", "2"]
        again = subprocess.run(
            [*argv, "--host", "127.0.0.1", "--port", port],
            env=clean_env({"TMPDIR": str(temp)}),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert again.returncode != 0, again.stderr[-2000:]
    assert list(temp.iterdir()) == [], again.stderr[-2000:]
