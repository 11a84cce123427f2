"""The mounting snippets of ``docs/server.md``, run as written, in each framework's test client.

Each ``<!-- snippet: NAME -->`` code block is executed with ``TFIO_HANDLERS_MODEL_DIR`` pointing at
``half_plus_two``; the resulting ``app`` must serve its own route and ours (under its prefix), keep TF
Serving's URL rules behind the mount, and load the model in the background (``/ping`` 503, then 200).
FastAPI and Falcon are optional: their tests are skipped where they are not installed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"
_SNIPPET = re.compile(r"<!-- snippet: (\w+) -->\n```python\n(.*?)```", re.DOTALL)


def snippet(name: str) -> str:
    found = dict(_SNIPPET.findall(DOC.read_text()))
    assert name in found, f"docs/server.md has no snippet {name!r}"
    return found[name]


def run_snippet(name: str, monkeypatch: pytest.MonkeyPatch, model: Path) -> dict[str, Any]:
    """Execute a snippet as a module would run; returns its namespace (``app``, ``model_app``)."""
    for key in ("TFIO_HANDLERS_MODELS", "TFIO_HANDLERS_ENTRY_POINT", "SAGEMAKER_PROGRAM"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TFIO_HANDLERS_MODEL_DIR", str(model))
    monkeypatch.setenv("TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD", "1")
    namespace: dict[str, Any] = {"__name__": f"server_md_{name}"}
    exec(compile(snippet(name), f"docs/server.md [{name}]", "exec"), namespace)
    return namespace


def wait_ready(get_status: Callable[[], int], timeout: float = 60.0) -> list[int]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(get_status())
        if seen[-1] == 200:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"never ready: {seen[-5:]}")


def check_asgi(app: Any, model_app: Any) -> None:
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        statuses = wait_ready(lambda: client.get("/model/ping").status_code)
        assert set(statuses) <= {503, 200}
        assert client.get("/hello").json() == {"hello": "world"}
        answer = client.post("/model/invocations", content=b"[1.0, 3.0]")
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"]["y"]["floatVal"] == [2.5, 3.5]
        rest = client.post(
            "/model/v1/models/half_plus_two:predict", content=b'{"instances": [1.0]}'
        )
        assert rest.json() == {"predictions": [2.5]}
        raw = client.post("/model/v1/models/half%2Fx:predict", content=b'{"instances": [1.0]}')
        assert raw.status_code == 404
        assert raw.json() == {"error": "Servable not found for request: Latest(half/x)"}
        query = client.post("/model/v1/models/m:predict?x=1", content=b"{}")
        assert query.json() == {"error": "Malformed request: POST /v1/models/m:predict?x=1"}
        assert client.get("/model/nope").status_code == 404
    assert model_app.state.draining  # the parent's lifespan drained it


def test_starlette_snippet(monkeypatch: pytest.MonkeyPatch, half_plus_two_model: Path) -> None:
    namespace = run_snippet("starlette", monkeypatch, half_plus_two_model)
    check_asgi(namespace["app"], namespace["model_app"])


def test_fastapi_snippet(monkeypatch: pytest.MonkeyPatch, half_plus_two_model: Path) -> None:
    pytest.importorskip("fastapi")
    namespace = run_snippet("fastapi", monkeypatch, half_plus_two_model)
    check_asgi(namespace["app"], namespace["model_app"])


def test_flask_snippet(monkeypatch: pytest.MonkeyPatch, half_plus_two_model: Path) -> None:
    pytest.importorskip("flask")
    namespace = run_snippet("flask", monkeypatch, half_plus_two_model)
    client = namespace["app"].test_client()
    wait_ready(lambda: client.get("/model/ping").status_code)
    assert client.get("/hello").get_json() == {"hello": "world"}
    answer = client.post("/model/invocations", data=b"[1.0]", content_type="application/json")
    assert answer.status_code == 200, answer.data
    assert answer.get_json()["outputs"]["y"]["floatVal"] == [2.5]
    rest = client.post("/model/v1/models/half_plus_two:predict", data=b'{"instances": [1.0]}')
    assert rest.get_json() == {"predictions": [2.5]}
    query = client.post("/model/v1/models/m:predict?x=1", data=b"{}")
    assert query.get_json() == {"error": "Malformed request: POST /v1/models/m:predict?x=1"}


def test_falcon_snippet(monkeypatch: pytest.MonkeyPatch, half_plus_two_model: Path) -> None:
    pytest.importorskip("falcon")
    from falcon import testing

    namespace = run_snippet("falcon", monkeypatch, half_plus_two_model)
    client = testing.TestClient(namespace["app"])
    wait_ready(lambda: client.simulate_get("/ping").status_code)
    assert client.simulate_get("/hello").json == {"hello": "world"}
    answer = client.simulate_post(
        "/invocations", body=b"[1.0]", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json["outputs"]["y"]["floatVal"] == [2.5]
    assert answer.headers["content-type"] == "application/json"
    rest = client.simulate_post("/v1/models/half_plus_two:predict", body=b'{"instances": [1.0]}')
    assert rest.json == {"predictions": [2.5]}
    status = client.simulate_get("/V1/models/half_plus_two")
    assert status.json["model_version_status"][0]["state"] == "AVAILABLE"
    error = client.simulate_post("/v1/models", body=b"{}")
    assert error.status_code == 400
    assert error.json == {"error": "Malformed request: POST /v1/models"}


def test_fastapi_logs_snippet_shows_the_access_log_under_uvicorn(
    half_plus_two_model: Path, tmp_path: Path
) -> None:
    """Mounted in FastAPI and run by the ``uvicorn`` command, the library's access lines show."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import sys

    from live_server import LiveServer, clean_env, free_port

    (tmp_path / "mounted.py").write_text(snippet("fastapi_logs"))
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp_path), "mounted:app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    env = clean_env({"TFIO_HANDLERS_MODEL_DIR": str(half_plus_two_model)})
    server = LiveServer("fastapi-logs", argv, env, port, tmp_path / "server.log").start()
    try:

        def status() -> int:
            try:
                return server.request("GET", "/model/ping", timeout=5).status
            except OSError:
                return 0

        wait_ready(status, timeout=120)
        answer = server.request("POST", "/model/invocations", b"[1.0, 3.0]")
        assert answer.status == 200
    finally:
        server.stop(10)
    assert re.search(r'tfio_handlers.access .*"POST /invocations" 200 ', server.log()), server.log()
