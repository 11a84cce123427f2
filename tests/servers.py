"""Real servers on 127.0.0.1 for tests: uvicorn in a thread, serving our ASGI app."""

from __future__ import annotations

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
