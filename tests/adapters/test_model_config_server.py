"""Issue 14's "done when": ``tfio-handlers serve --model-config-file`` on a real server.

One uvicorn server (``tfio-handlers serve`` in a subprocess on 127.0.0.1) with a TF Serving config file
of two models: ``half`` under ``latest {num_versions: 2}`` with labels ``stable`` → 1 and ``canary`` → 2,
and ``iris`` under the default policy. It answers on every route (TF Serving's REST routes by name,
version and label; ``/invocations``; ``/ping``), and picks up a third version of ``half`` dropped into
its base path within the poll interval while threads keep sending requests, none of which fails.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import saved_models
from live_server import Answer, LiveServer, serve_cli, start_all

pytestmark = pytest.mark.tensorflow

X = {"instances": [1.0, 2.0, 5.0]}
POLL_SECONDS = 1.0
"""The server's --file-system-poll-wait-seconds (TF Serving's default)."""


def config_text(half: Path, iris: Path) -> str:
    return f"""
model_config_list {{
  config {{
    name: "half"
    base_path: "{half}"
    model_platform: "tensorflow"
    model_version_policy {{ latest {{ num_versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{
    name: "iris"
    base_path: "{iris}"
    model_platform: "tensorflow"
  }}
}}
"""


@pytest.fixture(scope="module")
def third_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A version 3 of ``half`` (y = x/2 + 4), built aside, to be dropped in later."""
    return saved_models.build_half_plus_two(tmp_path_factory.mktemp("staging") / "3", offset=4.0)


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("model_config_server")
    half = tmp / "half"
    shutil.copytree(model_root / "versioned", half)  # 1: x/2 + 2, 2: x/2 + 3
    (tmp / "models.config").write_text(config_text(half, model_root / "iris"))
    live = serve_cli(
        "model-config",
        tmp,
        [
            "--model-config-file",
            str(tmp / "models.config"),
            "--file-system-poll-wait-seconds",
            str(POLL_SECONDS),
            "--model-config-file-poll-wait-seconds",
            str(POLL_SECONDS),
        ],
    )
    start_all([live])
    yield live
    live.stop()


def ys(answer: Answer) -> list[float]:
    assert answer.status == 200, answer.body
    predictions: list[float] = answer.json()["predictions"]
    return predictions


def status_of(server: LiveServer, path: str = "/v1/models/half") -> dict[str, str]:
    answer = server.get(path)
    assert answer.status == 200, answer.body
    return {s["version"]: s["state"] for s in answer.json()["model_version_status"]}


def test_every_route_answers_and_a_third_version_is_picked_up_under_load(
    server: LiveServer, third_version: Path
) -> None:
    # -- every route, by name, version and label ---------------------------------------------
    assert server.get("/ping").status == 200
    assert status_of(server) == {"2": "AVAILABLE", "1": "AVAILABLE"}
    assert status_of(server, "/v1/models/half/versions/1") == {"1": "AVAILABLE"}
    assert status_of(server, "/v1/models/half/labels/stable") == status_of(server)  # as TF Serving
    assert status_of(server, "/v1/models/iris") == {"1": "AVAILABLE"}
    body = json.dumps(X)
    # Version 1 is x/2 + 2, version 2 x/2 + 3, version 3 (later) x/2 + 4.
    assert ys(server.post("/v1/models/half:predict", body)) == [3.5, 4.0, 5.5]  # latest: 2
    assert ys(server.post("/v1/models/half/versions/1:predict", body)) == [2.5, 3.0, 4.5]
    assert ys(server.post("/v1/models/half/labels/stable:predict", body)) == [2.5, 3.0, 4.5]
    assert ys(server.post("/v1/models/half/labels/canary:predict", body)) == [3.5, 4.0, 5.5]
    regress = json.dumps({"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]})
    answer = server.post("/v1/models/half/labels/stable:regress", regress)
    assert answer.status == 200 and answer.json() == {"results": [2.5]}
    classify = json.dumps({"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}]})
    answer = server.post("/v1/models/half/labels/canary:classify", classify)
    assert answer.status == 200, answer.body
    for path in (
        "/v1/models/half/metadata",
        "/v1/models/half/versions/1/metadata",
        "/v1/models/half/labels/canary/metadata",
    ):
        answer = server.get(path)
        assert answer.status == 200, answer.body
        assert answer.json()["model_spec"]["name"] == "half"
    assert (
        server.get("/v1/models/half/labels/canary/metadata").json()["model_spec"]["version"] == "2"
    )
    answer = server.post("/v1/models/half/labels/beta:predict", body)
    assert answer.status == 400
    assert answer.json() == {"error": "Unrecognized servable version label: beta"}
    iris = json.dumps({"examples": [{"inputs": [6.4, 3.2, 4.5, 1.5]}]})
    assert server.post("/v1/models/iris:classify", iris).status == 200
    answer = server.post("/invocations", json.dumps([[1.0], [2.0]]))  # the first model: half
    assert answer.status == 200, answer.body
    attributes = {"X-Amzn-SageMaker-Custom-Attributes": "tfs-model-name=iris"}
    answer = server.post("/invocations", json.dumps([6.4, 3.2, 4.5, 1.5]), headers=attributes)
    assert answer.status == 200, answer.body

    # -- a load of requests while version 3 arrives ------------------------------------------
    stop = threading.Event()
    failures: list[str] = []
    latest_seen: list[float] = []

    def send(path: str, payload: str) -> None:
        while not stop.is_set():
            try:
                answer = server.post(path, payload, timeout=30)
            except OSError as exc:
                failures.append(f"{path}: {exc}")
                continue
            if answer.status != 200:
                failures.append(f"{path}: {answer.status} {answer.body[:200]!r}")
            elif path == "/v1/models/half:predict":
                latest_seen.append(answer.json()["predictions"][0])

    load = [
        threading.Thread(target=send, args=(path, payload), daemon=True)
        for path, payload in (
            ("/v1/models/half:predict", body),
            ("/v1/models/half:predict", body),
            ("/v1/models/half/labels/canary:predict", body),
            ("/invocations", json.dumps([[1.0]])),
        )
    ]
    for thread in load:
        thread.start()
    try:
        time.sleep(0.5)
        staging = server_base(server) / ".incoming-3"
        shutil.copytree(third_version, staging)
        os.rename(staging, server_base(server) / "3")  # appears whole, as a deployment should
        dropped = time.monotonic()
        while time.monotonic() - dropped < 60:
            if status_of(server).get("3") == "AVAILABLE":
                break
            time.sleep(0.1)
        picked_up = time.monotonic() - dropped
        assert status_of(server).get("3") == "AVAILABLE", server.log()[-3000:]
        time.sleep(1.0)  # keep the load on across the unloading of version 1
    finally:
        stop.set()
        for thread in load:
            thread.join(30)
    assert failures == []
    # Found within the poll interval; loading a SavedModel takes its own time on top.
    assert "Loading model half version 3" in server.log()
    assert picked_up < POLL_SECONDS + 30
    assert set(latest_seen) == {3.5, 4.5}  # version 2, then version 3, answered the latest
    assert latest_seen[-1] == 4.5

    # -- after: 3 and 2 serve, 1 was unloaded; labels keep their versions --------------------
    assert status_of(server) == {"3": "AVAILABLE", "2": "AVAILABLE", "1": "END"}
    assert ys(server.post("/v1/models/half:predict", body)) == [4.5, 5.0, 6.5]
    assert ys(server.post("/v1/models/half/labels/canary:predict", body)) == [3.5, 4.0, 5.5]
    answer = server.post("/v1/models/half/labels/stable:predict", body)
    assert answer.status == 404
    assert answer.json() == {"error": "Servable not found for request: Specific(half, 1)"}
    assert server.get("/ping").status == 200


def server_base(server: LiveServer) -> Path:
    """The base path of ``half`` (beside the server's log)."""
    return server.log_path.parent / "half"


def test_the_config_file_is_reloaded_when_it_changes(server: LiveServer) -> None:
    """Runs after the test above (version 3 is in): moving ``stable`` to 3 in the file is seen
    within the config poll interval; a broken file is logged and changes nothing."""
    config_file = server.log_path.parent / "models.config"
    text = config_file.read_text()
    config_file.write_text("model_config_list { config { name: ")  # half-written: refused
    time.sleep(POLL_SECONDS * 2)
    assert "PollFilesystemAndReloadConfig failed to ReloadConfig" in server.log()
    body = json.dumps(X)
    assert server.post("/v1/models/half/labels/canary:predict", body).status == 200
    config_file.write_text(text.replace('key: "stable" value: 1', 'key: "stable" value: 3'))
    deadline = time.monotonic() + 30
    answer = server.post("/v1/models/half/labels/stable:predict", body)
    while answer.status != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = server.post("/v1/models/half/labels/stable:predict", body)
    assert ys(answer) == [4.5, 5.0, 6.5]
