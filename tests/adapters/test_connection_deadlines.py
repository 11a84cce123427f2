"""Connection deadlines over raw sockets: silent connections, header tricklers, short bodies, idle
keep-alives and the connection cap, under uvicorn (in-process and ``tfio-handlers serve``) and
gunicorn (``tfio-handlers serve --server gunicorn``).

Each slow client must be answered 408 (or 503 for the cap) and closed by its deadline, while a
normal request on another connection is answered. Time bounds are generous no-hang limits: the
deadlines are 1 s, the bounds several times that.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer, serve_cli, start_all

pytest.importorskip("uvicorn")  # the deadline protocols subclass uvicorn's

from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.adapters.uvicorn_protocol import (
    DeadlineH11Protocol,
    DeadlineProtocol,
    protocol_with,
)
from tfio_handlers.adapters.wsgi import WSGIApp
from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.registry import Registry

pytestmark = pytest.mark.tensorflow

BOUND = 8.0
"""No-hang bound for a 1 s deadline: a connection still open after this many seconds failed."""

REQUEST = (
    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 5\r\n\r\n[1.0]"
)
SHORT_BODY = (
    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n[1.0, 2.0"
)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=BOUND)


def until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took (fails past BOUND)."""
    started = time.monotonic()
    received = b""
    sock.settimeout(BOUND)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            pytest.fail(f"connection still open after {BOUND} s; got {received!r}")
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - started


def status_and_json(answer: bytes) -> tuple[int, dict[str, Any], str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = "\n".join(lines[1:]).lower()
    return int(lines[0].split()[1]), json.loads(body), headers


def normal_request_works(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(REQUEST[:-5].replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n"))
        sock.sendall(b"[1.0]")
        answer, _ = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer


def trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    for byte in data:
        if stop.wait(0.2):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


class InProcess:
    """uvicorn in a thread with the deadline protocol, serving the ASGI app on the real model."""

    def __init__(self, backend: Any, settings: Settings, base: Any = None) -> None:
        import uvicorn
        from servers import free_port

        self.port = free_port()
        pipeline = Pipeline(backend, settings=settings, registry=Registry())
        config = uvicorn.Config(
            ASGIApp(pipeline),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            http=protocol_with(settings, base),
            timeout_keep_alive=int(settings.keep_alive_timeout),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive()
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


FAST = Settings.from_env(
    {},
    load_plugins=False,
    header_timeout=1.0,
    body_timeout=1.0,
    keep_alive_timeout=1.0,
)


@pytest.fixture(params=["httptools", "h11"], scope="module")
def uvicorn_server(request: pytest.FixtureRequest, embedded_backend: Any) -> Iterator[InProcess]:
    base = DeadlineProtocol if request.param == "httptools" else DeadlineH11Protocol
    server = InProcess(embedded_backend, FAST, base)
    yield server
    server.stop()


def test_silent_connection_gets_408_and_is_closed(uvicorn_server: InProcess) -> None:
    with connect(uvicorn_server.port) as silent:
        normal_request_works(uvicorn_server.port)
        answer, seconds = until_closed(silent)
    status, body, headers = status_and_json(answer)
    assert status == 408 and "connection: close" in headers
    assert "header timeout of 1 s" in body["error"]
    assert seconds < BOUND


def test_header_trickler_is_cut_off_at_the_deadline(uvicorn_server: InProcess) -> None:
    stop = threading.Event()
    with connect(uvicorn_server.port) as slow:
        feeder = threading.Thread(target=trickle, args=(slow, REQUEST, stop))
        feeder.start()
        try:
            normal_request_works(uvicorn_server.port)
            answer, _ = until_closed(slow)
        finally:
            stop.set()
            feeder.join()
    assert status_and_json(answer)[0] == 408


def test_declared_body_that_does_not_arrive_is_408_json(uvicorn_server: InProcess) -> None:
    with connect(uvicorn_server.port) as short:
        short.sendall(SHORT_BODY)
        normal_request_works(uvicorn_server.port)
        answer, _ = until_closed(short)
    status, body, headers = status_and_json(answer)
    assert status == 408 and "connection: close" in headers
    assert "body timeout of 1 s" in body["error"]


def test_headers_over_the_size_cap_get_431_and_are_closed(uvicorn_server: InProcess) -> None:
    """httptools takes headers of any size; 64 MiB of them took 126 MB of memory."""
    from tfio_handlers.adapters.uvicorn_protocol import MAX_HEADER_BYTES

    with connect(uvicorn_server.port) as big:
        big.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        # Just past the cap, so the whole of it is sent before the server answers and closes.
        big.sendall(b"X-Filler: " + b"a" * MAX_HEADER_BYTES + b"\r\n")
        answer, _ = until_closed(big)
        normal_request_works(uvicorn_server.port)
    status, body, _ = status_and_json(answer)
    assert status == 431 and "over the limit" in body["error"]


def test_idle_keep_alive_connection_is_closed(uvicorn_server: InProcess) -> None:
    with connect(uvicorn_server.port) as idle:
        idle.sendall(REQUEST)
        answer, _ = until_closed(idle)  # one answer, then the idle timeout closes it
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1


def test_second_request_on_a_connection_has_a_header_deadline_too(
    uvicorn_server: InProcess,
) -> None:
    stop = threading.Event()
    with connect(uvicorn_server.port) as sock:
        sock.sendall(REQUEST)
        first = b""
        while b"2.5" not in first:  # the first answer's body
            first += sock.recv(65536)
        # Trickling the next request's headers keeps cancelling uvicorn's keep-alive timer.
        feeder = threading.Thread(target=trickle, args=(sock, REQUEST, stop))
        feeder.start()
        try:
            answer, _ = until_closed(sock)
        finally:
            stop.set()
            feeder.join()
    assert first.startswith(b"HTTP/1.1 200")
    assert status_and_json(answer)[0] == 408


def test_connections_over_the_cap_get_503_and_are_closed(embedded_backend: Any) -> None:
    settings = Settings.from_env({}, load_plugins=False, header_timeout=30.0, max_connections=3)
    server = InProcess(embedded_backend, settings)
    try:
        held = [connect(server.port) for _ in range(3)]
        time.sleep(0.2)
        with connect(server.port) as extra:
            answer, _ = until_closed(extra)
        status, body, headers = status_and_json(answer)
        assert status == 503 and "retry-after: 1" in headers
        assert "over the limit of 3" in body["error"]
        for sock in held:
            sock.close()
        time.sleep(0.2)
        normal_request_works(server.port)
    finally:
        server.stop()


# -- the WSGI adapter, whatever the server -----------------------------------------------------------


def test_wsgi_short_body_is_408(embedded_backend: Any) -> None:
    app = WSGIApp(Pipeline(embedded_backend, settings=FAST, registry=Registry()))
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/invocations",
        "CONTENT_LENGTH": "1000",
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(b"[1.0, 2.0"),
    }
    body = b"".join(app(environ, start_response))
    assert seen["status"].startswith("408") and seen["headers"]["connection"] == "close"
    assert "did not arrive" in json.loads(body)["error"]


# -- tfio-handlers serve: uvicorn and gunicorn --------------------------------------------------------

DEADLINE_ENV = {
    "TFIO_HANDLERS_HEADER_TIMEOUT": "1",
    "TFIO_HANDLERS_BODY_TIMEOUT": "1",
    "TFIO_HANDLERS_KEEP_ALIVE_TIMEOUT": "1",
}


@pytest.fixture(scope="module")
def served(
    half_plus_two_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, LiveServer]]:
    tmp = tmp_path_factory.mktemp("deadlines")
    args = ["--model-dir", str(half_plus_two_model.parent)]
    servers = {
        "uvicorn": serve_cli("deadline-uvicorn", tmp, args, DEADLINE_ENV),
        "gunicorn": serve_cli(
            "deadline-gunicorn",
            tmp,
            [*args, "--server", "gunicorn", "--workers", "2"],
            DEADLINE_ENV,
        ),
    }
    start_all(servers.values())
    yield servers
    for server in servers.values():
        server.stop()


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_serve_closes_silent_and_trickling_connections(
    served: dict[str, LiveServer], name: str
) -> None:
    port = served[name].port
    stop = threading.Event()
    with connect(port) as silent, connect(port) as slow:
        feeder = threading.Thread(target=trickle, args=(slow, REQUEST, stop))
        feeder.start()
        try:
            answers = [until_closed(silent)[0], until_closed(slow)[0]]
        finally:
            stop.set()
            feeder.join()
    for answer in answers:
        assert answer == b"" or status_and_json(answer)[0] == 408, answer
    normal_request_works(port)


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_serve_answers_408_to_a_body_that_does_not_arrive(
    served: dict[str, LiveServer], name: str
) -> None:
    port = served[name].port
    with connect(port) as short:
        short.sendall(SHORT_BODY)
        answer, _ = until_closed(short)
    status, body, _ = status_and_json(answer)
    assert status == 408 and "did not arrive" in body["error"]
    normal_request_works(port)
