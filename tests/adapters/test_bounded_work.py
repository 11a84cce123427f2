"""Bounded work, a free event loop, JSON for every error, and Content-Encoding, over real sockets.

The ASGI app runs under a real uvicorn on 127.0.0.1 (in a thread of the test process, so the tests
can hold the user code's gates); the WSGI app is called as a WSGI server calls it, from threads.
The model is the real ``half_plus_two`` on the embedded backend. Bounds on time are generous
no-hang limits, never speed checks.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.adapters.wsgi import WSGIApp
from tfio_handlers.config import Limits, Settings
from tfio_handlers.content_coding import decode_content_encoding
from tfio_handlers.hookspecs import hookimpl
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.registry import Registry
from tfio_handlers.usercode import UserCode, load_user_code

pytestmark = pytest.mark.tensorflow

JSON = {"Content-Type": "application/json"}

BLOCKING = """
import sys
import threading

GATE = threading.Event()
ENTERED = threading.Semaphore(0)


def input_fn(data, content_type):
    if data == "[99.0]":
        ENTERED.release()
        GATE.wait(60)
    if data == "[42.0]":
        sys.exit(3)
    if data == "[43.0]":
        raise KeyboardInterrupt
    return None


def output_fn(prediction, accept):
    if accept == "application/x-unicode":
        return "{}", "application/\\u2192json"
    if accept == "application/x-crlf":
        return "{}", "application/json\\r\\nX-Injected: yes"
    if accept == "application/x-teapot":
        from tfio_handlers.errors import HTTPError

        raise HTTPError("not an error status", status=99)
    return None
"""


class SlowEncoder:
    """A codec plugin whose encoder takes 3 s of blocking work (a stand-in for a huge answer)."""

    @hookimpl
    def register_codecs(self, register: Any) -> None:
        register("application/x-slow", encode=self.encode)

    @staticmethod
    def encode(response: Any, media_type: Any, context: Any) -> bytes:
        time.sleep(3)
        return b"slow"


def user_code(tmp_path: Path) -> UserCode:
    path = tmp_path / "inference.py"
    path.write_text(BLOCKING)
    return load_user_code(path)


def pipeline_for(backend: Any, code: UserCode | None = None, **settings: Any) -> Pipeline:
    registry = Registry()
    registry.register(SlowEncoder(), name="slow")
    return Pipeline(
        backend,
        settings=Settings.from_env({}, load_plugins=False, **settings),
        registry=registry,
        user_code=code,
    )


class Uvicorn:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn
        from servers import free_port

        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            headers_out = {k.lower(): v for k, v in response.getheaders()}
            return response.status, headers_out, response.read()
        finally:
            connection.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def blocking(tmp_path: Path) -> Iterator[UserCode]:
    code = user_code(tmp_path)
    yield code
    code.module.GATE.set()


def wait_entered(code: UserCode, count: int) -> None:
    for _ in range(count):
        assert code.module.ENTERED.acquire(timeout=30), "input_fn was not entered"


# -- 1. the bounded work pool ------------------------------------------------------------------------


def test_asgi_saturated_pool_answers_503_at_once_and_health_routes_keep_answering(
    embedded_backend: Any, blocking: UserCode
) -> None:
    pipeline = pipeline_for(embedded_backend, blocking, max_concurrent_requests=2)
    server = Uvicorn(ASGIApp(pipeline))
    try:
        with ThreadPoolExecutor(2) as clients:
            stuck = [
                clients.submit(server.request, "POST", "/invocations", b"[99.0]", JSON)
                for _ in range(2)
            ]
            wait_entered(blocking, 2)
            for path in ("/invocations", "/v1/models/half_plus_two:predict"):
                body = b"[1.0]" if path == "/invocations" else b'{"instances": [1.0]}'
                status, headers, answer = server.request("POST", path, body, JSON, timeout=20)
                assert status == 503, answer
                assert headers["retry-after"] == "1"
                assert headers["content-type"] == "application/json"
                assert "busy" in json.loads(answer)["error"]
            assert server.request("GET", "/ping", timeout=20)[0] == 200
            status, _, answer = server.request("GET", "/v1/models/half_plus_two", timeout=20)
            assert status == 200 and b"AVAILABLE" in answer
            status, _, answer = server.request(
                "GET", "/v1/models/half_plus_two/metadata", timeout=20
            )
            assert status == 200 and b"signature_def" in answer
            blocking.module.GATE.set()
            assert [f.result(30)[0] for f in stuck] == [200, 200]
        status, _, answer = server.request("POST", "/invocations", b"[1.0]", JSON)
        assert status == 200, answer
    finally:
        server.stop()


def test_asgi_timed_out_work_keeps_its_slot_until_it_ends(
    embedded_backend: Any, blocking: UserCode
) -> None:
    pipeline = pipeline_for(
        embedded_backend, blocking, max_concurrent_requests=1, request_timeout=0.5
    )
    server = Uvicorn(ASGIApp(pipeline))
    try:
        status, _, answer = server.request("POST", "/invocations", b"[99.0]", JSON)
        assert status == 504, answer
        # The input_fn still runs: its slot is still taken, so the next request is refused.
        status, headers, _ = server.request("POST", "/invocations", b"[1.0]", JSON)
        assert status == 503 and headers["retry-after"] == "1"
        blocking.module.GATE.set()
        deadline = time.monotonic() + 30
        while pipeline.work.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.request("POST", "/invocations", b"[1.0]", JSON)[0] == 200
    finally:
        server.stop()


def wsgi_call(
    app: WSGIApp, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body),
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        seen["status"] = int(status.split()[0])
        seen["headers"] = {k.lower(): v for k, v in response_headers}

    answer = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], answer


@pytest.mark.parametrize("timeout", [5.0, 0.0])
def test_wsgi_saturated_pool_answers_503_and_status_keeps_answering(
    embedded_backend: Any, blocking: UserCode, timeout: float
) -> None:
    app = WSGIApp(
        pipeline_for(embedded_backend, blocking, max_concurrent_requests=2), timeout=timeout
    )
    with ThreadPoolExecutor(2) as clients:
        stuck = [clients.submit(wsgi_call, app, "POST", "/invocations", b"[99.0]") for _ in "ab"]
        wait_entered(blocking, 2)
        status, headers, answer = wsgi_call(app, "POST", "/invocations", b"[1.0]")
        assert (status, headers["retry-after"]) == (503, "1")
        assert "busy" in json.loads(answer)["error"]
        status, _, _ = wsgi_call(
            app, "POST", "/v1/models/half_plus_two:predict", b'{"instances": [1.0]}'
        )
        assert status == 503
        assert wsgi_call(app, "GET", "/v1/models/half_plus_two")[0] == 200
        assert wsgi_call(app, "GET", "/ping")[0] == 200
        blocking.module.GATE.set()
        assert [f.result(30)[0] for f in stuck] == [200, 200]
    assert wsgi_call(app, "POST", "/invocations", b"[1.0]")[0] == 200


# -- 2. the event loop stays free; the answer's writing is inside the timeout ----------------------------


def test_asgi_slow_encoding_runs_off_the_loop_and_inside_the_timeout(
    embedded_backend: Any,
) -> None:
    server = Uvicorn(ASGIApp(pipeline_for(embedded_backend, request_timeout=1)))
    try:
        with ThreadPoolExecutor(1) as clients:
            started = time.monotonic()
            slow = clients.submit(
                server.request,
                "POST",
                "/invocations",
                b"[1.0]",
                {**JSON, "Accept": "application/x-slow"},
            )
            time.sleep(0.3)
            pinged = time.monotonic()
            assert server.request("GET", "/ping", timeout=20)[0] == 200
            ping_took = time.monotonic() - pinged
            status, _, answer = slow.result(30)
            slow_took = time.monotonic() - started
        assert status == 504, answer
        assert "timeout of 1 s" in json.loads(answer)["error"]
        # No-hang bounds: the encoder sleeps 3 s; neither /ping nor the 504 waited for it.
        assert ping_took < 2.5
        assert slow_took < 2.9
    finally:
        server.stop()


# -- 4. every error answers JSON -------------------------------------------------------------------------


ERROR_CASES = [
    (b"[42.0]", "application/json", "input_fn failed: SystemExit: 3"),
    (b"[43.0]", "application/json", "input_fn failed: KeyboardInterrupt"),
    (b"[1.0]", "application/x-unicode", "not latin-1"),
    (b"[1.0]", "application/x-crlf", "control character"),
    (b"[1.0]", "application/x-teapot", "status 99"),
]


@pytest.mark.parametrize(("body", "accept", "message"), ERROR_CASES)
def test_asgi_user_code_failures_of_every_kind_answer_500_json(
    embedded_backend: Any, tmp_path: Path, body: bytes, accept: str, message: str
) -> None:
    server = Uvicorn(ASGIApp(pipeline_for(embedded_backend, user_code(tmp_path))))
    try:
        status, headers, answer = server.request(
            "POST", "/invocations", body, {**JSON, "Accept": accept}
        )
        assert status == 500
        assert headers["content-type"] == "application/json"
        assert message in json.loads(answer)["error"]
        assert "x-injected" not in headers
        # The server lives on.
        assert server.request("POST", "/invocations", b"[1.0]", JSON)[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize(("body", "accept", "message"), ERROR_CASES)
def test_wsgi_user_code_failures_of_every_kind_answer_500_json(
    embedded_backend: Any, tmp_path: Path, body: bytes, accept: str, message: str
) -> None:
    app = WSGIApp(pipeline_for(embedded_backend, user_code(tmp_path)))
    status, headers, answer = wsgi_call(app, "POST", "/invocations", body, {"Accept": accept})
    assert status == 500
    assert headers["content-type"] == "application/json"
    assert message in json.loads(answer)["error"]


# -- 5. Content-Encoding ---------------------------------------------------------------------------------


def test_content_encoding_is_decoded_bounded_or_refused(embedded_backend: Any) -> None:
    pipeline = pipeline_for(embedded_backend, limits=Limits(max_body_bytes=64 * 1024))
    app = WSGIApp(pipeline)
    server = Uvicorn(ASGIApp(pipeline))
    body = b"[1.0, 2.0]"
    deflated = zlib.compress(body)
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = raw_deflate.compress(body) + raw_deflate.flush()
    bomb = gzip.compress(b"0" * (10 * 1024 * 1024))
    try:
        for path, payload in (
            ("/invocations", body),
            ("/v1/models/half_plus_two:predict", b'{"instances": [1.0, 2.0]}'),
        ):
            for encoding, data in (
                ("gzip", gzip.compress(payload)),
                ("x-gzip", gzip.compress(payload)),
                ("deflate", zlib.compress(payload) if payload != body else deflated),
                ("deflate", raw if payload == body else zlib.compress(payload)),
                ("identity", payload),
                ("gzip, identity", gzip.compress(payload)),
            ):
                headers = {**JSON, "Content-Encoding": encoding}
                for status, _, answer in (
                    server.request("POST", path, data, headers),
                    wsgi_call(app, "POST", path, data, headers),
                ):
                    assert status == 200, (path, encoding, answer)
                    assert b"2.5" in answer and b"3.0" in answer
            for encoding, refused, expected, message in (
                ("gzip", bomb, 413, "over the limit of 65536 bytes once gzip-decoded"),
                ("br", payload, 415, "use one of: gzip, deflate, identity"),
                ("compress", payload, 415, "'compress' is not supported"),
                ("gzip", b"not gzip at all", 400, "not valid gzip data"),
                ("gzip", gzip.compress(payload)[:-12], 400, "not complete gzip data"),
            ):
                headers = {**JSON, "Content-Encoding": encoding}
                for status, out_headers, answer in (
                    server.request("POST", path, refused, headers),
                    wsgi_call(app, "POST", path, refused, headers),
                ):
                    assert status == expected, (path, encoding, answer)
                    assert out_headers["content-type"] == "application/json"
                    assert message in json.loads(answer)["error"]
    finally:
        server.stop()


def test_a_gzip_bomb_never_holds_more_than_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))
    assert len(bomb) < 100 * 1024
    with pytest.raises(Exception, match="over the limit of 1000 bytes"):
        decode_content_encoding(bomb, "gzip", 1000)
    # Refused before anything of its size is allocated: a bomb costs a few MiB, not the limit.
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(Exception, match="over the limit"):
            decode_content_encoding(bomb, "gzip", 32 * 1024 * 1024)
        assert tracemalloc.get_traced_memory()[1] < 8 * 1024 * 1024
    finally:
        tracemalloc.stop()
    two_members = gzip.compress(b"ab") + gzip.compress(b"cd")
    assert decode_content_encoding(two_members, "gzip", 1000) == b"abcd"
    assert decode_content_encoding(b"as is", None, 1000) == b"as is"
