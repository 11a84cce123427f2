"""Real servers on 127.0.0.1 for tests: uvicorn in a thread, serving our ASGI app."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from tfio_handlers.config import Settings


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def asgi_call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request through an ASGI app in process, as a server sends it: its status, headers and
    body (the app must answer in one body message)."""
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
    }
    await app(scope, receive, send)
    start, body_message = sent
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], answer_headers, body_message["body"]


class UvicornThread:
    """uvicorn serving ``ASGIApp(Pipeline(backend))`` on 127.0.0.1 in a thread."""

    def __init__(self, backend: Any, port: int | None = None, **settings: Any) -> None:
        import uvicorn

        from tfio_handlers.adapters.asgi import ASGIApp
        from tfio_handlers.pipeline import Pipeline

        self.port = port or free_port()
        pipeline = Pipeline(backend, settings=Settings(load_plugins=False, **settings))
        config = uvicorn.Config(
            ASGIApp(pipeline),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def pid_app() -> Any:
    """An ASGI app factory for worker tests (``servers:pid_app``): every request is answered with
    the serving process's id, as text."""
    import os

    pid = str(os.getpid()).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": pid})

    return app


def slow_app() -> Any:
    """An ASGI app factory for worker tests (``servers:slow_app``): every request is answered
    with the serving process's id after two seconds."""
    import asyncio

    inner = pid_app()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(2)
        await inner(scope, receive, send)

    return app


def loop_blocking_app() -> Any:
    """An ASGI app factory for worker tests (``servers:loop_blocking_app``): every request holds
    the event loop for 0.3 s (``time.sleep`` on it) before :func:`pid_app` answers; a request to
    ``/wedge`` holds it for an hour."""
    import time

    inner = pid_app()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            time.sleep(3600 if scope["path"] == "/wedge" else 0.3)
        await inner(scope, receive, send)

    return app


def slow_start_app() -> Any:
    """An ASGI app factory for worker tests (``servers:slow_start_app``): :func:`pid_app` after
    four seconds of start-up, as a model import might take."""
    import time

    time.sleep(4)
    return pid_app()


def gauge_app() -> Any:
    """``servers:pid_app`` that first sets a ``livesum`` gauge, so that the worker has a file of
    its own in prometheus-client's multi-process folder (``PROMETHEUS_MULTIPROC_DIR``)."""
    from prometheus_client import Gauge

    Gauge("test_worker_alive", "1 in each live worker", multiprocess_mode="livesum").set(1)
    return pid_app()


def dying_app() -> Any:
    """An app factory whose worker dies at once, as a native crash at start-up would."""
    import os

    os._exit(7)


def raising_app() -> Any:
    """An app factory that fails with an error of its own."""
    raise RuntimeError("the model store is unreachable")
