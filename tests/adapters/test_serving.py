"""The adapters' mechanics in-process, with a stand-in pipeline: routing, mount prefixes and raw paths,
background loading, draining, body limits, chunked bodies, timeouts, client disconnects, bugs.

Everything that needs a model and a real server is in ``test_asgi_server.py``/``test_wsgi_server.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest

from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.adapters.serving import Route, ServingState, Target, route_of, strip_mount
from tfio_handlers.adapters.wsgi import WSGIApp, _target
from tfio_handlers.config import Limits, Settings
from tfio_handlers.pipeline import Response
from tfio_handlers.workpool import WorkPool


class FakePipeline:
    """Answers ``/invocations`` with the body it got, after ``delay`` seconds; ``/ping`` with 200."""

    def __init__(self, *, delay: float = 0.0, timeout: float = 60.0, limit: int = 1024) -> None:
        self.settings = Settings.from_env(
            {}, request_timeout=timeout, limits=Limits(max_body_bytes=limit)
        )
        self.user_code = None
        self.work = WorkPool(4)
        self.delay = delay
        self.seen: list[tuple[bytes, dict[str, str]]] = []

    def invoke(self, body: bytes, headers: Any) -> Response:
        time.sleep(self.delay)
        self.seen.append((body, dict(headers)))
        return Response(200, body, [("content-type", "text/plain")], "text/plain")

    async def ainvoke(self, body: bytes, headers: Any) -> Response:
        await asyncio.sleep(self.delay)
        if body == b"bug":
            raise RuntimeError("a bug in the pipeline")
        self.seen.append((body, dict(headers)))
        return Response(200, body, [("content-type", "text/plain")], "text/plain")

    def ping(self) -> Response:
        return Response(200, b"", [("content-type", "application/json")])


# -- routing and paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/ping", Route.PING),
        ("HEAD", "/ping", Route.PING),
        ("POST", "/ping", Route.NOT_FOUND),
        ("POST", "/invocations", Route.INVOCATIONS),
        ("GET", "/invocations", Route.NOT_FOUND),
        ("POST", "/v1/models/m:predict", Route.TFS),
        ("DELETE", "/V1/whatever", Route.TFS),
        ("GET", "/v2/models", Route.NOT_FOUND),
        ("GET", "/", Route.NOT_FOUND),
    ],
)
def test_route_of(method: str, path: str, route: str) -> None:
    assert route_of(method, path) == route


def test_strip_mount() -> None:
    assert strip_mount("/v1/a%2Fb", "") == "/v1/a%2Fb"
    assert strip_mount("/model/v1/a%2Fb", "/model") == "/v1/a%2Fb"
    assert strip_mount("/mo%64el/v1/x", "/model") == "/v1/x"  # the prefix itself was encoded
    assert strip_mount("/a%2Fb/ping", "/a/b") == "/ping"
    assert strip_mount("/model", "/model") == "/"
    assert strip_mount("/other/v1", "/model") is None


def test_target_keeps_the_raw_path_and_query_behind_a_mount() -> None:
    target = Target.of(
        "/model/v1/models/a/b:predict", "/model/v1/models/a%2Fb:predict", "/model", "x=1"
    )
    assert target == Target("/v1/models/a/b:predict", "/v1/models/a%2Fb:predict?x=1")
    # A raw path that does not decode to the path is not trusted.
    assert Target.of("/v1/x", "/v1/y", "", "") == Target("/v1/x", "/v1/x")
    assert Target.of("/ping", None, "", "") == Target("/ping", "/ping")
    # A path outside the prefix (some servers keep it) stays whole.
    assert Target.of("/ping", "/ping", "/model", "") == Target("/ping", "/ping")


# -- loading, readiness, draining -------------------------------------------------------------------------


def test_state_loads_in_the_background_and_reports_failures() -> None:
    gate = threading.Event()
    fake = FakePipeline()

    def slow_factory() -> Any:
        gate.wait(10)
        return fake

    state = ServingState(slow_factory)
    assert not state.ready
    assert state.ping().status == 503
    assert json.loads(state.ping().body) == {"error": "Model is loading"}
    gate.set()
    state.wait_loaded(10)
    assert state.ready and state.ping().status == 200
    state.draining = True
    assert json.loads(state.ping().body) == {"error": "Server is shutting down"}

    def broken() -> Any:
        raise RuntimeError("no such model")

    failed = ServingState(broken)
    failed.wait_loaded(10)
    assert failed.ping().status == 503
    assert json.loads(failed.ping().body) == {
        "error": "Model failed to load: RuntimeError: no such model"
    }


def test_state_loads_again_in_a_forked_child() -> None:
    loads = []
    state = ServingState(lambda: loads.append(1) or FakePipeline())  # type: ignore[func-returns-value]
    state._loading_pid = -1  # as if created before a fork: the thread in hand is the parent's
    state._loading = threading.Thread(target=lambda: None)
    state.start_loading()
    state.wait_loaded(10)
    assert loads == [1] and state.ready


# -- ASGI ------------------------------------------------------------------------------------------------


def asgi_call(
    app: ASGIApp,
    method: str,
    path: str,
    body: bytes | list[bytes] = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    root_path: str = "",
    raw_path: bytes | None = None,
    disconnect: bool = False,
) -> list[dict[str, Any]]:
    chunks = body if isinstance(body, list) else [body]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        messages = [*messages[:1], {"type": "http.disconnect"}]
        messages[0]["more_body"] = True
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": list(headers),
        "client": ("127.0.0.1", 1234),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def status_body(sent: list[dict[str, Any]]) -> tuple[int, bytes]:
    return sent[0]["status"], sent[1]["body"]


def loaded_asgi(fake: FakePipeline, **kwargs: Any) -> ASGIApp:
    app = ASGIApp(lambda: fake, **kwargs)  # type: ignore[arg-type,return-value]
    app.state.wait_loaded(10)
    return app


def test_asgi_lifespan_starts_loading_and_drains() -> None:
    fake = FakePipeline()
    app = ASGIApp(lambda: fake)  # type: ignore[arg-type,return-value]
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return events.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert app.state.draining
    assert status_body(asgi_call(app, "GET", "/ping"))[0] == 503
    assert status_body(asgi_call(app, "POST", "/invocations", b"[1]"))[0] == 503


def test_asgi_body_limit_declared_and_streamed() -> None:
    app = loaded_asgi(FakePipeline(limit=10))
    declared = asgi_call(app, "POST", "/invocations", b"x", [(b"content-length", b"11")])
    assert declared[0]["status"] == 413
    assert b"Request body of 11 bytes is over the limit of 10 bytes" in declared[1]["body"]
    streamed = asgi_call(app, "POST", "/invocations", [b"12345", b"67890", b"1"])
    assert streamed[0]["status"] == 413
    assert status_body(asgi_call(app, "POST", "/invocations", [b"12345", b"67890"])) == (
        200,
        b"1234567890",
    )
    override = loaded_asgi(FakePipeline(limit=10), max_body_bytes=3)
    assert asgi_call(override, "POST", "/invocations", b"1234")[0]["status"] == 413


def test_asgi_timeout_is_504() -> None:
    app = loaded_asgi(FakePipeline(delay=1.0, timeout=0.05))
    status, body = status_body(asgi_call(app, "POST", "/invocations", b"[1]"))
    assert status == 504
    assert json.loads(body) == {"error": "Request took longer than the server's timeout of 0.05 s"}
    no_limit = loaded_asgi(FakePipeline(delay=0.1, timeout=0.05), timeout=0)
    assert status_body(asgi_call(no_limit, "POST", "/invocations", b"[1]"))[0] == 200


def test_asgi_client_disconnect_sends_nothing() -> None:
    fake = FakePipeline()
    app = loaded_asgi(fake)
    assert asgi_call(app, "POST", "/invocations", [b"12", b"34"], disconnect=True) == []
    assert fake.seen == [] and app.state.in_flight == 0


def test_asgi_bug_is_500_without_details(caplog: pytest.LogCaptureFixture) -> None:
    app = loaded_asgi(FakePipeline())
    with caplog.at_level(logging.ERROR):
        status, body = status_body(asgi_call(app, "POST", "/invocations", b"bug"))
    assert status == 500 and json.loads(body) == {"error": "Internal error"}
    assert "a bug in the pipeline" in caplog.text and "Traceback" in caplog.text


def test_asgi_under_a_mount_prefix() -> None:
    fake = FakePipeline()
    app = loaded_asgi(fake)
    sent = asgi_call(
        app,
        "POST",
        "/model/invocations",
        b"hi",
        [(b"content-type", b"text/plain")],
        root_path="/model",
    )
    assert status_body(sent) == (200, b"hi")
    assert fake.seen[-1][1]["content-type"] == "text/plain"
    assert asgi_call(app, "GET", "/model/ping", root_path="/model")[0]["status"] == 200
    assert asgi_call(app, "GET", "/ping", root_path="/model")[0]["status"] == 200


# -- WSGI ------------------------------------------------------------------------------------------------


def wsgi_call(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def environ(method: str, path: str, body: bytes = b"", **extra: Any) -> dict[str, Any]:
    base = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "REMOTE_ADDR": "127.0.0.1",
    }
    base.update(extra)
    return base


def loaded_wsgi(fake: FakePipeline, **kwargs: Any) -> WSGIApp:
    app = WSGIApp(lambda: fake, **kwargs)  # type: ignore[arg-type,return-value]
    app.state.wait_loaded(10)
    return app


def test_wsgi_bodies_by_length_chunked_and_absent() -> None:
    fake = FakePipeline(limit=10)
    app = loaded_wsgi(fake)
    status, headers, body = wsgi_call(app, environ("POST", "/invocations", b"hello"))
    assert (status, body) == (200, b"hello") and headers["Content-Length"] == "5"
    over = environ("POST", "/invocations", b"x", CONTENT_LENGTH="11")
    assert wsgi_call(app, over)[0] == 413
    chunked = environ("POST", "/invocations", b"chunked!", CONTENT_LENGTH="")
    chunked["wsgi.input_terminated"] = True
    assert wsgi_call(app, chunked)[2] == b"chunked!"
    long_chunked = environ("POST", "/invocations", b"x" * 11, CONTENT_LENGTH="")
    long_chunked["wsgi.input_terminated"] = True
    assert wsgi_call(app, long_chunked)[0] == 413
    unknown = environ("POST", "/invocations", b"ignored", CONTENT_LENGTH="")
    assert wsgi_call(app, unknown)[2] == b""
    typed = environ("POST", "/invocations", b"1", CONTENT_TYPE="text/csv", HTTP_ACCEPT="a/b")
    wsgi_call(app, typed)
    assert fake.seen[-1][1] == {"content-type": "text/csv", "accept": "a/b", "content-length": "1"}


def test_wsgi_timeout_is_504_and_the_worker_goes_on() -> None:
    app = loaded_wsgi(FakePipeline(delay=0.5, timeout=0.05))
    status, _, body = wsgi_call(app, environ("POST", "/invocations", b"[1]"))
    assert status == 504
    assert b"timeout of 0.05 s" in body
    fast = loaded_wsgi(FakePipeline(timeout=5))
    assert wsgi_call(fast, environ("POST", "/invocations", b"[1]"))[0] == 200


def test_wsgi_raw_uri_and_script_name() -> None:
    app = loaded_wsgi(FakePipeline())
    under = environ(
        "GET",
        "/ping",
        SCRIPT_NAME="/model",
        RAW_URI="/model/ping",
    )
    assert wsgi_call(app, under)[0] == 200
    mounted = _target(
        environ(
            "POST",
            "/v1/models/a/b:predict",
            SCRIPT_NAME="/model",
            RAW_URI="/model/v1/models/a%2Fb:predict?x=1",
            QUERY_STRING="x=1",
        )
    )
    assert mounted == Target("/v1/models/a/b:predict", "/v1/models/a%2Fb:predict?x=1")
    absolute = _target(environ("GET", "/v1/models/m", REQUEST_URI="http://host:80/v1/models/m"))
    assert absolute == Target("/v1/models/m", "/v1/models/m")
    # PEP 3333: PATH_INFO is the latin-1 text of the UTF-8 bytes.
    utf8 = _target(environ("GET", "/v1/models/caf\u00c3\u00a9", RAW_URI="/v1/models/caf%C3%A9"))
    assert utf8 == Target("/v1/models/caf\u00e9", "/v1/models/caf%C3%A9")
