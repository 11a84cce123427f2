"""TF Serving over its REST API: the HTTP transport, through httpx.

Each call is one HTTP exchange with TF Serving's REST API:

* ``Predict`` → ``POST /v1/models/<name>[/versions/<v> | /labels/<l>]:predict``;
* ``Classify`` / ``Regress`` → ``:classify`` / ``:regress``;
* ``GetModelMetadata`` → ``GET .../metadata``; ``GetModelStatus`` → ``GET /v1/models/<name>[...]``.

What goes in the bodies and how the answers become response messages is the client side of TF
Serving's JSON, :mod:`tfio_handlers.protocol.tfs_json.client`: request messages → TF Serving JSON,
and its answers → the messages a gRPC call would have returned, with what REST cannot say (output
filter, input defaults and checks) done there. The signatures it needs come from
``GET .../metadata``, cached by :meth:`Backend.signatures`; the response's ``model_spec`` (absent
from REST answers) is filled here from the request and the metadata.

TF Serving's error answers keep their status and ``{"error"}`` message (the error of each status:
:mod:`.status`). A request that cannot connect is retried with exponential back-off and then
answered 503; a read that runs past ``timeout`` is answered 504. One ``httpx.Client`` (and one
``httpx.AsyncClient`` per event loop) with a connection pool serves all calls. httpx is imported
when a backend is built.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

from google.protobuf.message import Message

from ..errors import BackendTimeout, BackendUnavailable, BadRequest
from ..protocol.tfs_json.client import (
    body_bytes,
    classification_response_from_json,
    error_message,
    examples_to_json,
    metadata_response_from_json,
    parse_answer,
    predict_request_to_json,
    predict_response_from_json,
    regression_response_from_json,
    status_response_from_json,
)
from ..protos import (
    DEFAULT_SIGNATURE,
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    ModelSpec,
    ModelVersionStatus,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    coerce,
)
from .base import Backend, ResolvedModel
from .status import http_error

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["RestBackend", "backoff_delay"]

log = logging.getLogger(__name__)

_BIG = 256 * 1024
"""Bodies larger than this are encoded and parsed in a worker thread by the async twins."""


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``base * 2**attempt``, capped, jittered.

    The jitter (a factor in [0.5, 1]) keeps many workers that lost the same server from retrying in
    lock step.
    """
    delay = min(cap, base * (2.0 ** min(attempt, 30)))
    return float(delay * random.uniform(0.5, 1.0))


Resp = TypeVar("Resp", bound=Message)


@dataclass(frozen=True, slots=True)
class _Exchange(Generic[Resp]):
    """One HTTP exchange: what to send and how to read the 200 answer."""

    method: str
    path: str
    body: bytes | None
    parse: Callable[[Any], Resp]
    """Turns the parsed JSON answer into the response message."""


class RestBackend(Backend):
    """TF Serving's REST API at ``base_url`` (``http://host:8501``), through httpx.

    ``timeout`` bounds each request (504 when a read runs past it); ``connect_timeout`` the TCP
    connect (default ``min(timeout, 10)``). A request that cannot connect (or whose connection drops)
    is tried ``retries`` more times, ``backoff`` seconds apart at first, doubling up to
    ``max_backoff``, then answered 503. Until the server has answered once, and for at most
    ``wait_for_ready_timeout`` seconds after the backend was built, connection failures are retried
    for as long as that window lasts, up to one ``timeout`` per call (the server may still be
    starting; :meth:`wait_until_ready` waits out a longer start). ``headers`` go with every request;
    ``max_connections`` sizes the pool; ``verify`` is httpx's TLS setting; ``default_model`` fills
    requests with no model name.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 60.0,
        connect_timeout: float | None = None,
        retries: int = 3,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        wait_for_ready_timeout: float | None = 300.0,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 100,
        verify: bool | ssl.SSLContext = True,
        default_model: str | None = None,
    ) -> None:
        super().__init__()
        import httpx

        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.wait_for_ready_timeout = wait_for_ready_timeout
        self.default_model = default_model
        self._httpx = httpx
        connect = min(self.timeout, 10.0) if connect_timeout is None else float(connect_timeout)
        self._client_options: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": httpx.Timeout(self.timeout, connect=connect),
            "limits": httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            "headers": {"content-type": "application/json", **dict(headers or {})},
            "verify": verify,
            "follow_redirects": False,
        }
        self._client = httpx.Client(**self._client_options)
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._ready = False
        self._closed = False
        self._retryable: tuple[type[BaseException], ...] = (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.RemoteProtocolError,
            httpx.ReadError,
            httpx.WriteError,
        )

    def __repr__(self) -> str:
        return f"RestBackend({self.base_url!r}, timeout={self.timeout:g})"

    @property
    def ready(self) -> bool:
        """Whether the model server has answered this backend at least once."""
        return self._ready

    # -- sync API ----------------------------------------------------------------------------------

    def predict(self, request: PredictRequest) -> PredictResponse:
        ours = coerce(request, PredictRequest)
        resolved = self._resolve(ours.model_spec, self.signatures)
        return self._exchange(self._predict_exchange(ours, resolved))

    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        ours = coerce(request, ClassificationRequest)
        resolved = self._resolve(ours.model_spec, self.signatures, check_signature=False)
        return self._exchange(self._classify_exchange(ours, resolved))

    def regress(self, request: RegressionRequest) -> RegressionResponse:
        ours = coerce(request, RegressionRequest)
        resolved = self._resolve(ours.model_spec, self.signatures, check_signature=False)
        return self._exchange(self._regress_exchange(ours, resolved))

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        return self._exchange(self._metadata_exchange(coerce(request, GetModelMetadataRequest)))

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        return self._exchange(self._status_exchange(coerce(request, GetModelStatusRequest)))

    def close(self) -> None:
        """Close the connection pools. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            aclient, self._aclient = self._aclient, None
        self._client.close()
        # An AsyncClient can only be closed on its own loop (see aclose); from here its pool is
        # dropped and its sockets close when collected.
        del aclient

    # -- async API ---------------------------------------------------------------------------------

    async def apredict(self, request: PredictRequest) -> PredictResponse:
        ours = coerce(request, PredictRequest)
        resolved = await self._aresolve(ours.model_spec)
        if ours.ByteSize() > _BIG:
            exchange = await asyncio.to_thread(self._predict_exchange, ours, resolved)
        else:
            exchange = self._predict_exchange(ours, resolved)
        return await self._aexchange(exchange)

    async def aclassify(self, request: ClassificationRequest) -> ClassificationResponse:
        ours = coerce(request, ClassificationRequest)
        resolved = await self._aresolve(ours.model_spec, check_signature=False)
        return await self._aexchange(self._classify_exchange(ours, resolved))

    async def aregress(self, request: RegressionRequest) -> RegressionResponse:
        ours = coerce(request, RegressionRequest)
        resolved = await self._aresolve(ours.model_spec, check_signature=False)
        return await self._aexchange(self._regress_exchange(ours, resolved))

    async def aget_model_metadata(
        self, request: GetModelMetadataRequest
    ) -> GetModelMetadataResponse:
        exchange = self._metadata_exchange(coerce(request, GetModelMetadataRequest))
        return await self._aexchange(exchange)

    async def aget_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        return await self._aexchange(self._status_exchange(coerce(request, GetModelStatusRequest)))

    async def aclose(self) -> None:
        """Close the connection pools (the async one of the running loop properly). Idempotent."""
        aclient = None
        with self._lock:
            if self._aloop is asyncio.get_running_loop():
                aclient, self._aclient = self._aclient, None
        if aclient is not None:
            await aclient.aclose()
        self.close()

    # -- readiness ---------------------------------------------------------------------------------

    def wait_until_ready(self, timeout: float | None = None, model_name: str | None = None) -> None:
        """Block until the server answers HTTP and, with a model name, serves it.

        ``model_name`` (default: :attr:`default_model`) is polled with ``GET /v1/models/<name>``
        until one of its versions is AVAILABLE; 404 and 503 mean "not yet". Raises
        :class:`BackendUnavailable` when ``timeout`` (default ``wait_for_ready_timeout``, else 300 s)
        runs out.
        """
        limit = timeout if timeout is not None else (self.wait_for_ready_timeout or 300.0)
        deadline = time.monotonic() + limit
        name = model_name or self.default_model
        path = _model_path(name, None, None) if name else "/v1/models"
        attempt = 0
        detail = "no answer"
        while True:
            try:
                response = self._client.get(path)
            except self._httpx.HTTPError as exc:
                detail = f"{type(exc).__name__}: {exc}"
            else:
                if name is None:
                    self._ready = True
                    return
                if response.status_code == 200:
                    status = status_response_from_json(parse_answer(response.content))
                    available = ModelVersionStatus.State.Value("AVAILABLE")
                    if any(v.state == available for v in status.model_version_status):
                        self._ready = True
                        return
                    detail = "no version is AVAILABLE"
                elif response.status_code in (404, 503):
                    detail = error_message(response.status_code, response.content)
                else:
                    raise http_error(
                        response.status_code,
                        error_message(response.status_code, response.content),
                    )
            left = deadline - time.monotonic()
            if left <= 0:
                what = f"Model {name!r} on {self.base_url}" if name else self.base_url
                raise BackendUnavailable(f"{what} was not ready within {limit:g} s: {detail}")
            time.sleep(min(left, backoff_delay(attempt, self.backoff, self.max_backoff)))
            attempt += 1

    async def await_until_ready(
        self, timeout: float | None = None, model_name: str | None = None
    ) -> None:
        """:meth:`wait_until_ready` without blocking the event loop."""
        await asyncio.to_thread(self.wait_until_ready, timeout, model_name)

    # -- signatures --------------------------------------------------------------------------------

    def _spec_key(self, spec: ModelSpec) -> tuple[str, int | None, str | None]:
        name = spec.name or self.default_model
        if not name:
            raise BadRequest("ModelSpec has no name specified.")
        version = spec.version.value if spec.HasField("version") else None
        return name, version, (spec.version_label or None) if version is None else None

    def _resolve(
        self,
        spec: ModelSpec,
        lookup: Callable[[str, int | None, str | None], ResolvedModel],
        *,
        check_signature: bool = True,
    ) -> ResolvedModel:
        key = self._spec_key(spec)
        resolved = lookup(*key)
        if (
            check_signature
            and (spec.signature_name or DEFAULT_SIGNATURE) not in resolved.signature_defs
        ):
            # The model may have been reloaded with new signatures since we cached them.
            self.invalidate_signatures(key[0])
            resolved = lookup(*key)
        return resolved

    async def _aresolve(self, spec: ModelSpec, *, check_signature: bool = True) -> ResolvedModel:
        key = self._spec_key(spec)
        resolved = await self.asignatures(*key)
        if (
            check_signature
            and (spec.signature_name or DEFAULT_SIGNATURE) not in resolved.signature_defs
        ):
            self.invalidate_signatures(key[0])
            resolved = await self.asignatures(*key)
        return resolved

    def _response_spec(self, spec: ModelSpec, resolved: ResolvedModel) -> ModelSpec:
        """The ``model_spec`` TF Serving's gRPC API answers with: name, version, signature."""
        out = ModelSpec(
            name=resolved.name or spec.name or self.default_model or "",
            signature_name=spec.signature_name or DEFAULT_SIGNATURE,
        )
        if spec.HasField("version"):
            out.version.value = spec.version.value
        elif resolved.version is not None:
            out.version.value = resolved.version
        return out

    # -- building exchanges ------------------------------------------------------------------------

    def _predict_exchange(
        self, request: PredictRequest, resolved: ResolvedModel
    ) -> _Exchange[PredictResponse]:
        spec = request.model_spec
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        signature = resolved.signature_defs.get(signature_name)
        if signature is None:
            raise BadRequest(
                f'Serving signature name: "{signature_name}" not found in signature def'
            )
        body, wanted = predict_request_to_json(request, signature)
        response_spec = self._response_spec(spec, resolved)

        def parse(answer: Any) -> PredictResponse:
            return predict_response_from_json(answer, signature, wanted, response_spec)

        path = _model_path(*self._spec_key(spec)) + ":predict"
        return _Exchange("POST", path, body_bytes(body), parse)

    def _classify_exchange(
        self, request: ClassificationRequest, resolved: ResolvedModel
    ) -> _Exchange[ClassificationResponse]:
        spec = request.model_spec
        body = examples_to_json(request.input, spec.signature_name)
        response_spec = self._response_spec(spec, resolved)

        def parse(answer: Any) -> ClassificationResponse:
            return classification_response_from_json(answer, response_spec)

        path = _model_path(*self._spec_key(spec)) + ":classify"
        return _Exchange("POST", path, body_bytes(body), parse)

    def _regress_exchange(
        self, request: RegressionRequest, resolved: ResolvedModel
    ) -> _Exchange[RegressionResponse]:
        spec = request.model_spec
        body = examples_to_json(request.input, spec.signature_name)
        response_spec = self._response_spec(spec, resolved)

        def parse(answer: Any) -> RegressionResponse:
            return regression_response_from_json(answer, response_spec)

        path = _model_path(*self._spec_key(spec)) + ":regress"
        return _Exchange("POST", path, body_bytes(body), parse)

    def _metadata_exchange(
        self, request: GetModelMetadataRequest
    ) -> _Exchange[GetModelMetadataResponse]:
        path = _model_path(*self._spec_key(request.model_spec)) + "/metadata"
        return _Exchange("GET", path, None, metadata_response_from_json)

    def _status_exchange(self, request: GetModelStatusRequest) -> _Exchange[GetModelStatusResponse]:
        path = _model_path(*self._spec_key(request.model_spec))
        return _Exchange("GET", path, None, status_response_from_json)

    # -- sending -----------------------------------------------------------------------------------

    def _startup_window(self, call_started: float) -> float | None:
        """How much longer a call that began at ``call_started`` may wait for the server to come
        up, or ``None``: what is left of the start-up window, within one ``timeout`` of the call."""
        if self._ready or self.wait_for_ready_timeout is None:
            return None
        now = time.monotonic()
        left = min(self._started + self.wait_for_ready_timeout, call_started + self.timeout) - now
        return left if left > 0 else None

    def _retry_delay(self, attempt: int, call_started: float) -> float | None:
        """Seconds to wait before retrying after a connection failure, or ``None``: give up."""
        if self._closed:
            return None
        delay = backoff_delay(attempt, self.backoff, self.max_backoff)
        window = self._startup_window(call_started)
        if window is not None:
            return min(delay, window)
        return delay if attempt < self.retries else None

    def _unavailable(self, exc: BaseException, attempts: int) -> BackendUnavailable:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return BackendUnavailable(
            f"Model server {self.base_url} is unavailable{tries}: {type(exc).__name__}: {exc}"
        )

    def _timeout(self, exchange: _Exchange[Any]) -> BackendTimeout:
        return BackendTimeout(
            f"Model server {self.base_url} did not answer {exchange.method} {exchange.path} "
            f"within {self.timeout:g} s"
        )

    def _exchange(self, exchange: _Exchange[Resp]) -> Resp:
        httpx = self._httpx
        if self._closed:
            raise BackendUnavailable(f"Backend for {self.base_url} is closed")
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                response = self._client.request(
                    exchange.method, exchange.path, content=exchange.body
                )
            except self._retryable as exc:
                delay = self._retry_delay(attempt, started)
                if delay is None:
                    raise self._unavailable(exc, attempt + 1) from None
                time.sleep(delay)
                attempt += 1
                continue
            except httpx.TimeoutException:
                raise self._timeout(exchange) from None
            except httpx.HTTPError as exc:
                raise self._unavailable(exc, attempt + 1) from None
            self._ready = True
            return _answer(exchange, response.status_code, response.content)

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise BackendUnavailable(f"Backend for {self.base_url} is closed")
            if self._aclient is None or self._aloop is not loop:
                # An AsyncClient's pool belongs to the loop that opened its connections.
                self._aclient = self._httpx.AsyncClient(**self._client_options)
                self._aloop = loop
            return self._aclient

    async def _aexchange(self, exchange: _Exchange[Resp]) -> Resp:
        httpx = self._httpx
        client = self._async_client()
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                response = await client.request(
                    exchange.method, exchange.path, content=exchange.body
                )
            except self._retryable as exc:
                delay = self._retry_delay(attempt, started)
                if delay is None:
                    raise self._unavailable(exc, attempt + 1) from None
                await asyncio.sleep(delay)
                attempt += 1
                continue
            except httpx.TimeoutException:
                raise self._timeout(exchange) from None
            except httpx.HTTPError as exc:
                raise self._unavailable(exc, attempt + 1) from None
            self._ready = True
            if len(response.content) > _BIG:
                return await asyncio.to_thread(
                    _answer, exchange, response.status_code, response.content
                )
            return _answer(exchange, response.status_code, response.content)


# -- paths ---------------------------------------------------------------------------------------


def _model_path(name: str, version: int | None, label: str | None) -> str:
    """``/v1/models/<name>[/versions/<v> | /labels/<l>]``, name and label percent-encoded."""
    path = "/v1/models/" + quote(name, safe="")
    if version is not None:
        path += f"/versions/{version}"
    elif label:
        path += "/labels/" + quote(label, safe="")
    return path


# -- answers -------------------------------------------------------------------------------------


def _answer(exchange: _Exchange[Resp], status: int, content: bytes) -> Resp:
    """A 200 answer parsed by the exchange; any other status as the library error of that status."""
    if status != 200:
        raise http_error(status, error_message(status, content))
    return exchange.parse(parse_answer(content))
