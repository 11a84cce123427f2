"""The ASGI application: ``uvicorn 'tfio_handlers.adapters.asgi:app_from_env' --factory``.

Plain ASGI, no framework: mount it in Starlette or FastAPI with ``Mount("/", app=asgi_app)`` (under a
prefix too: ``root_path`` is honoured). The body is read with the limit enforced as it arrives (413
before it is read in full, and at once when ``Content-Length`` is already over it), the model is called
off the event loop, a request that takes longer than ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` is answered
504, and ``lifespan.shutdown`` turns new requests away with 503 while the requests in flight finish.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import HTTPError
from ..pipeline import Pipeline, Response
from .routes import Endpoint, RouteRequest
from .serving import (
    PipelineSource,
    ServingState,
    Target,
    call_handler,
    hand_codec,
    internal_error,
)

if TYPE_CHECKING:
    from ..observability.asgi import ObservabilityMiddleware
    from ..registry import Registry

__all__ = ["ASGIApp", "app_from_env"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


T = TypeVar("T")

_timeout_scope: Callable[[float], Any] | None = getattr(asyncio, "timeout", None)


async def _within(seconds: float | None, work: Awaitable[T]) -> T:
    """``await work``, raising :class:`asyncio.TimeoutError` after ``seconds`` (``None``: no limit)."""
    if seconds is None:
        return await work
    if _timeout_scope is not None:  # Python >= 3.11: no extra task
        async with _timeout_scope(seconds):
            return await work
    return await asyncio.wait_for(work, seconds)


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class ASGIApp:
    """SageMaker's, TF Serving's and the plugins' routes over a :class:`~tfio_handlers.pipeline.Pipeline`.

    ``source`` is a pipeline, or a zero-argument factory that builds one: the model then loads in a
    background thread from ``lifespan.startup`` (or the first request, where no lifespan is run), and
    ``/ping`` answers 503 until it is ready. ``max_body_bytes`` and ``timeout`` override the
    pipeline's settings (``SAGEMAKER_MAX_PAYLOAD_IN_MB``, ``SAGEMAKER_MODEL_SERVER_TIMEOUT``);
    a ``timeout`` of 0 turns the per-request timeout off. ``registry`` is the one the pipeline will
    use, for its routes while the model loads (by default, a pipeline's own; the built-in routes
    alone until a factory's pipeline is built).
    """

    def __init__(
        self,
        source: PipelineSource,
        *,
        max_body_bytes: int | None = None,
        timeout: float | None = None,
        body_timeout: float | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.state = ServingState(source, registry)
        self._max_body = max_body_bytes
        self._timeout = timeout
        self._body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        target = Target.of(
            scope["path"],
            _text(scope.get("raw_path")),
            scope.get("root_path", "") or "",
            _text(scope.get("query_string")) or "",
        )
        self.state.enter()
        try:
            try:
                response = await self._respond(scope, receive, method, target)
            except _Disconnected:
                return  # the client left: nobody to answer
            except Exception:
                response = internal_error("the ASGI adapter")
            response = response.checked()
            hand_codec(response)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers
                    ]
                    + [(b"content-length", str(len(response.body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": response.body})
        finally:
            self.state.leave()

    async def _respond(
        self, scope: Scope, receive: Receive, method: str, target: Target
    ) -> Response:
        found = self.state.routes.match(method, target.path)
        if found is None:
            return ServingState.not_found(method, target.path)
        endpoint, params = found
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if endpoint.work == "health":
            # Probes answer at once, before any body is read, whether or not the model is loaded.
            probe = RouteRequest(method, target.path, target.raw, params, headers, b"", self.state)
            if endpoint.ahandler is not None:
                return await _awaited(endpoint, probe)
            return call_handler(endpoint, probe)
        limit = self.state.max_body(self._max_body)
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            return ServingState.too_large(int(declared), limit)
        try:
            pipeline: Pipeline = self.state.pipeline
        except HTTPError as exc:
            return Response.error(exc)
        body_timeout = self.state.body_timeout(self._body_timeout)
        try:
            body = await _within(body_timeout, _read_body(receive, limit))
        except _TooLarge:
            return ServingState.too_large(None, limit)
        except asyncio.TimeoutError:
            # The declared body did not arrive in time: answer and close (whatever the server).
            return ServingState.body_timed_out(body_timeout or 0.0)
        request = RouteRequest(
            method, target.path, target.raw, params, headers, body, self.state, pipeline
        )
        timeout = self.state.timeout(self._timeout)
        # The work (user code, codecs, model) runs in the pipeline's bounded pool, never on the
        # event loop; a saturated pool answers 503 at once. Status and metadata run beside it.
        work: Awaitable[Response]
        if endpoint.ahandler is not None:
            work = _awaited(endpoint, request)
        elif endpoint.work_for(request) == "model":
            work = _pooled(pipeline, endpoint, request)
        else:
            work = asyncio.to_thread(call_handler, endpoint, request)
        if timeout is None:
            return await work
        try:
            return await _within(timeout, work)
        except asyncio.TimeoutError:
            return ServingState.timed_out(timeout)

    def start(self) -> None:
        """Start loading the model in the background (what ``lifespan.startup`` does).

        Call it from a parent app's lifespan when this app is mounted: Starlette and FastAPI do not
        pass ``lifespan`` events on to mounted apps.
        """
        self.state.start_loading()

    async def drain(self) -> None:
        """Answer new requests 503 and wait for those in flight (what ``lifespan.shutdown`` does)."""
        self.state.draining = True
        while self.state.in_flight:
            await asyncio.sleep(0.01)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.drain()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _awaited(endpoint: Endpoint, request: RouteRequest) -> Response:
    """A route's ``ahandler``, an :class:`HTTPError` it raises answered as for ``handler``."""
    assert endpoint.ahandler is not None
    try:
        return await endpoint.ahandler(request)
    except HTTPError as exc:
        return Response.error(exc, endpoint.name)


async def _pooled(pipeline: Pipeline, endpoint: Endpoint, request: RouteRequest) -> Response:
    """A route's handler in the pipeline's work pool (503 with ``Retry-After`` when it is full)."""
    try:
        return await pipeline.work.run(call_handler, endpoint, request)
    except HTTPError as exc:
        return Response.error(exc, endpoint.name)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def app_from_env() -> ObservabilityMiddleware:
    """The ASGI app configured from the environment (see :func:`tfio_handlers.bootstrap.load_config`),
    observed (request ids, metrics as ``TFIO_HANDLERS_METRICS`` says, the access line: see
    :func:`tfio_handlers.observability.apps.observe_asgi`), as ``tfio-handlers serve`` runs it.

    A factory for ``uvicorn --factory``. The configuration, the user's code included, is read and
    checked here, so a mistake stops the server before it listens (uvicorn prints the message and
    exits); the model loads (or a remote model server is waited for) in the background once the
    server starts, while ``/ping`` answers 503. An :class:`ASGIApp` made directly is bare: it
    writes no access line (wrap it with ``observe_asgi``).
    """
    from ..bootstrap import configure_logging, load_config, pipeline_from_config
    from ..observability.apps import observe_asgi

    configure_logging()
    config = load_config()
    app = ASGIApp(functools.partial(pipeline_from_config, config), registry=config.registry)
    return observe_asgi(app, config.settings)
