"""The ASGI application: ``uvicorn 'tfio_handlers.adapters.asgi:app_from_env' --factory``.

Plain ASGI, no framework: mount it in Starlette or FastAPI with ``app.mount("/", asgi_app)``.
The body is read with the limit enforced as it arrives (413 before it is read in full), the model is
called off the event loop, and ``lifespan.shutdown`` turns new requests away with 503 while the
requests in flight finish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..pipeline import Pipeline, Response
from ..rest_api import ahandle_tfs_rest
from .serving import PipelineSource, Route, ServingState, access_log, route_of

__all__ = ["ASGIApp", "app_from_env"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _TooLarge(Exception):
    pass


class ASGIApp:
    """SageMaker and TF Serving routes over a :class:`~tfio_handlers.pipeline.Pipeline`.

    Pass a pipeline, or a zero-argument factory to load the model in the background after start-up
    (``/ping`` answers 503 until it is ready).
    """

    def __init__(self, source: PipelineSource, *, max_body_bytes: int | None = None) -> None:
        self.state = ServingState(source)
        self._max_body = max_body_bytes

    def _limit(self) -> int:
        if self._max_body is not None:
            return self._max_body
        try:
            return self.state.pipeline.settings.limits.max_body_bytes
        except Exception:
            return 100 * 1024 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        self.state.enter()
        try:
            response = await self._respond(scope, receive, method, path)
        finally:
            self.state.leave()
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
                + [(b"content-length", str(len(response.body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": response.body})
        client = scope.get("client")
        access_log(
            method, path, response, time.perf_counter() - started, client[0] if client else None
        )

    async def _respond(self, scope: Scope, receive: Receive, method: str, path: str) -> Response:
        route = route_of(method, path)
        if route == Route.PING:
            return self.state.ping()
        if route == Route.NOT_FOUND:
            return ServingState.not_found(method, path)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        limit = self._limit()
        declared = next((v for k, v in headers if k.lower() == "content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return ServingState.too_large(int(declared), limit)
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            return ServingState.too_large(None, limit)
        try:
            pipeline: Pipeline = self.state.pipeline
        except Exception as exc:
            from ..errors import HTTPError

            assert isinstance(exc, HTTPError)
            return Response.error(exc)
        if route == Route.INVOCATIONS:
            return await pipeline.ainvoke(body, headers)
        return await ahandle_tfs_rest(pipeline, method, path, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.state.start_loading()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.state.draining = True
                while self.state.in_flight:
                    await asyncio.sleep(0.01)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def app_from_env() -> ASGIApp:
    """The ASGI app configured from the environment (see :func:`tfio_handlers.server.pipeline_from_env`)."""
    from ..server import pipeline_from_env

    return ASGIApp(pipeline_from_env)
