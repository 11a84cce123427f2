"""TF Serving over gRPC: ``PredictionService`` and ``ModelService`` through grpcio's generic API.

Our message classes live in a private descriptor pool, so there are no generated ``*_pb2_grpc``
stubs: every RPC is a ``channel.unary_unary(path, serializer, deserializer)`` multi-callable, made
once and reused. grpcio is imported when a backend is built, never when this module is imported.

What a call does, in order:

1. **Start-up wait.** Until the model server has answered once, and for at most
   ``wait_for_ready_timeout`` seconds after the backend was built, a call first waits (up to one
   ``timeout``) for the channel to connect (``grpc.channel_ready_future``). The first requests of a
   batch job that starts together with ``tensorflow_model_server`` then wait for it instead of
   failing with "connection refused" (SageMaker's TF Serving container defect #93).
   :meth:`GrpcBackend.wait_until_ready` waits for the whole start-up, optionally until a model is
   AVAILABLE: a server should call it before it accepts traffic, as that container's fix (PR #192)
   waits for TF Serving before it starts gunicorn.
2. **The call**, with a deadline of ``timeout`` seconds; DEADLINE_EXCEEDED becomes
   :class:`~tfio_handlers.errors.BackendTimeout` (504).
3. **Retries** on UNAVAILABLE: ``retries`` more attempts, the n-th after ``backoff * 2**n`` seconds
   (at most ``max_backoff``, with jitter), then :class:`~tfio_handlers.errors.BackendUnavailable`
   (503). The channel reconnects quickly (its reconnect back-off is capped at half a second, or
   ``max_backoff`` if smaller, not gRPC's default two minutes), so a restarted server is found again
   within a second.
4. **Errors** map to TF Serving's own HTTP statuses (:data:`.status.GRPC_TO_HTTP`), keeping the server's
   message: InvalidArgument → 400, NotFound → 404, ... A server that sends the trailing metadata
   ``tfio-http-status`` (our :mod:`tfio_handlers.adapters.grpc` does) has that status used as is, so a
   413 or 415 raised behind a loopback server comes back as 413 or 415.

The async twins use the same channel through grpcio's future API: the call runs on gRPC's own
threads and its completion is handed to the event loop with ``call_soon_threadsafe``. No thread
waits per call, and, unlike ``grpc.aio``, the channel is not tied to one event loop, so one
backend serves sync callers, any number of event loops and forked workers built after the fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from google.protobuf.message import Message

from ..errors import BackendTimeout, BackendUnavailable, HTTPError
from ..protos import (
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    ModelVersionStatus,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    coerce,
)
from .base import Backend, model_spec
from .rest import backoff_delay
from .status import http_error, http_status_for_code

if TYPE_CHECKING:
    import grpc

__all__ = ["HTTP_STATUS_METADATA", "MODEL_SERVICE", "PREDICTION_SERVICE", "GrpcBackend"]

log = logging.getLogger(__name__)

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
"""The full name of TF Serving's prediction service (``/<service>/Predict`` and so on)."""
MODEL_SERVICE = "tensorflow.serving.ModelService"
"""The full name of TF Serving's model service (``GetModelStatus``)."""
HTTP_STATUS_METADATA = "tfio-http-status"
"""Trailing-metadata key carrying the exact HTTP status of an error (set by our gRPC server)."""

_MAX_RECONNECT_MS = 500
"""The longest the channel waits between two attempts to reach a server that went away."""

MAX_MESSAGE_BYTES = 2**31 - 1
"""gRPC's largest message size, SageMaker's legacy container's send and receive limit."""

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


@dataclass(frozen=True, slots=True)
class _Rpc(Generic[Req, Resp]):
    """One RPC: its name (for messages), its request class and its multi-callable."""

    name: str
    request_class: type[Req]
    callable: Any  # grpc.UnaryUnaryMultiCallable


class GrpcBackend(Backend):
    """TF Serving (or any ``PredictionService``) at ``target``, over one shared gRPC channel.

    ``target`` is ``host:port`` (a ``grpc://`` prefix is accepted). ``timeout`` is each attempt's
    deadline in seconds. ``retries`` more attempts follow an UNAVAILABLE answer, ``backoff`` seconds
    apart at first, doubling up to ``max_backoff``. ``wait_for_ready_timeout`` bounds the start-up
    wait (``None``: no wait). ``max_message_bytes`` caps messages both ways (default 2 GiB - 1).
    ``options`` are extra channel arguments (they win over ours); ``credentials`` makes the channel
    secure. ``default_model`` fills requests whose ``model_spec.name`` is empty.

    Thread-safe: one channel and one multi-callable per RPC, shared by every caller.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        wait_for_ready_timeout: float | None = 300.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        options: Sequence[tuple[str, Any]] = (),
        credentials: grpc.ChannelCredentials | None = None,
        default_model: str | None = None,
    ) -> None:
        super().__init__()
        import grpc

        if target.startswith("grpc://"):
            target = target[len("grpc://") :]
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.target = target
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.wait_for_ready_timeout = wait_for_ready_timeout
        self.max_message_bytes = int(max_message_bytes)
        self.default_model = default_model
        self._grpc = grpc
        # A reconnect attempt at least every half second: a restarted server (a sidecar TF Serving
        # the orchestrator brought back) answers within a second of listening again.
        reconnect_ms = max(1, min(int(self.max_backoff * 1000), _MAX_RECONNECT_MS))
        merged: dict[str, Any] = {
            "grpc.max_send_message_length": self.max_message_bytes,
            "grpc.max_receive_message_length": self.max_message_bytes,
            # gRPC's defaults (1 s initial, 120 s max) leave a restarted sidecar unused for minutes.
            "grpc.initial_reconnect_backoff_ms": min(100, reconnect_ms),
            "grpc.min_reconnect_backoff_ms": min(100, reconnect_ms),
            "grpc.max_reconnect_backoff_ms": reconnect_ms,
        }
        merged.update(dict(options))
        channel_options = list(merged.items())
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        self._started = time.monotonic()
        self._ready = False
        self._closed = False
        self._close_lock = threading.Lock()

        def rpc(
            service: str, name: str, request: type[Req], response: type[Resp]
        ) -> _Rpc[Req, Resp]:
            callable_ = self._channel.unary_unary(
                f"/{service}/{name}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
            return _Rpc(name, request, callable_)

        self._predict = rpc(PREDICTION_SERVICE, "Predict", PredictRequest, PredictResponse)
        self._classify = rpc(
            PREDICTION_SERVICE, "Classify", ClassificationRequest, ClassificationResponse
        )
        self._regress = rpc(PREDICTION_SERVICE, "Regress", RegressionRequest, RegressionResponse)
        self._metadata = rpc(
            PREDICTION_SERVICE,
            "GetModelMetadata",
            GetModelMetadataRequest,
            GetModelMetadataResponse,
        )
        self._status = rpc(
            MODEL_SERVICE, "GetModelStatus", GetModelStatusRequest, GetModelStatusResponse
        )

    def __repr__(self) -> str:
        return f"GrpcBackend({self.target!r}, timeout={self.timeout:g})"

    # -- the five RPCs -----------------------------------------------------------------------------

    def predict(self, request: PredictRequest) -> PredictResponse:
        return self._call(self._predict, request)

    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        return self._call(self._classify, request)

    def regress(self, request: RegressionRequest) -> RegressionResponse:
        return self._call(self._regress, request)

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        return self._call(self._metadata, request)

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        return self._call(self._status, request)

    async def apredict(self, request: PredictRequest) -> PredictResponse:
        return await self._acall(self._predict, request)

    async def aclassify(self, request: ClassificationRequest) -> ClassificationResponse:
        return await self._acall(self._classify, request)

    async def aregress(self, request: RegressionRequest) -> RegressionResponse:
        return await self._acall(self._regress, request)

    async def aget_model_metadata(
        self, request: GetModelMetadataRequest
    ) -> GetModelMetadataResponse:
        return await self._acall(self._metadata, request)

    async def aget_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        return await self._acall(self._status, request)

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._channel.close()

    async def aclose(self) -> None:
        self.close()

    # -- readiness ---------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the model server has answered this backend at least once."""
        return self._ready

    def _startup_window(self) -> float | None:
        """How long a call may wait for the server to come up, or ``None``: do not wait.

        What is left of the start-up window, but at most one ``timeout``, so that no call blocks
        a worker for long (a WSGI worker past its own timeout is killed); waiting out a long
        start-up is :meth:`wait_until_ready`'s job.
        """
        if self._ready or self.wait_for_ready_timeout is None:
            return None
        left = self._started + self.wait_for_ready_timeout - time.monotonic()
        return min(left, self.timeout) if left > 0 else None

    def _wait_channel(self, timeout: float) -> bool:
        future = self._grpc.channel_ready_future(self._channel)
        try:
            future.result(timeout=timeout)
        except self._grpc.FutureTimeoutError:
            future.cancel()
            return False
        return True

    async def _await_channel(self, timeout: float) -> bool:
        future = self._grpc.channel_ready_future(self._channel)
        try:
            await asyncio.wait_for(_bridge(future), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def wait_until_ready(self, timeout: float | None = None, model_name: str | None = None) -> None:
        """Block until the server accepts connections and, with a model name, serves it.

        ``model_name`` (default: :attr:`default_model`) is polled with ``GetModelStatus`` until one
        of its versions is AVAILABLE; a NOT_FOUND or UNAVAILABLE answer means "not yet". Raises
        :class:`BackendUnavailable` when ``timeout`` (default ``wait_for_ready_timeout``, else 300 s)
        runs out, and any other error the server answers with.
        """
        limit = timeout if timeout is not None else (self.wait_for_ready_timeout or 300.0)
        deadline = time.monotonic() + limit
        if not self._wait_channel(limit):
            raise BackendUnavailable(
                f"Model server {self.target} did not accept connections within {limit:g} s"
            )
        name = model_name or self.default_model
        attempt = 0
        while True:
            if name is None:
                self._ready = True
                return
            detail = self._model_available(name)
            if detail is None:
                self._ready = True
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendUnavailable(
                    f"Model {name!r} was not available on {self.target} within {limit:g} s: {detail}"
                )
            time.sleep(min(left, backoff_delay(attempt, self.backoff, self.max_backoff)))
            attempt += 1

    async def await_until_ready(
        self, timeout: float | None = None, model_name: str | None = None
    ) -> None:
        """:meth:`wait_until_ready` without blocking the event loop."""
        await asyncio.to_thread(self.wait_until_ready, timeout, model_name)

    def _model_available(self, name: str) -> str | None:
        """``None`` when a version of ``name`` is AVAILABLE, else why not (for the error message)."""
        request = GetModelStatusRequest(model_spec=model_spec(name))
        try:
            response = self._status.callable(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            code = exc.code()
            if code.name in ("NOT_FOUND", "UNAVAILABLE"):
                return str(exc.details() or code.name)
            raise self._error(exc, self._status.name) from None
        available = ModelVersionStatus.State.Value("AVAILABLE")
        states = [status.state for status in response.model_version_status]
        if available in states:
            return None
        names = [ModelVersionStatus.State.Name(state) for state in states]
        return f"version states {names}" if names else "no versions"

    # -- calling -----------------------------------------------------------------------------------

    def _prepare(self, rpc: _Rpc[Req, Resp], request: Message) -> Req:
        if self._closed:
            raise BackendUnavailable(f"Backend for {self.target} is closed")
        ours = coerce(request, rpc.request_class)
        spec = getattr(ours, "model_spec", None)
        if self.default_model and spec is not None and not spec.name:
            copy = rpc.request_class()
            copy.CopyFrom(ours)
            getattr(copy, "model_spec").name = self.default_model  # noqa: B009 - Req is generic
            return copy
        return ours

    def _call(self, rpc: _Rpc[Req, Resp], request: Message) -> Resp:
        message = self._prepare(rpc, request)
        window = self._startup_window()
        if window is not None:
            self._wait_channel(window)
        attempt = 0
        while True:
            try:
                response: Resp = rpc.callable(message, timeout=self.timeout)
            except ValueError:
                if self._closed:  # closed while this call started ("Channel closed!")
                    raise BackendUnavailable(f"Backend for {self.target} is closed") from None
                raise
            except self._grpc.RpcError as exc:
                if not self._should_retry(exc, attempt):
                    raise self._error(exc, rpc.name, attempt + 1) from None
                time.sleep(backoff_delay(attempt, self.backoff, self.max_backoff))
                attempt += 1
                continue
            self._ready = True
            return response

    async def _acall(self, rpc: _Rpc[Req, Resp], request: Message) -> Resp:
        message = self._prepare(rpc, request)
        window = self._startup_window()
        if window is not None:
            await self._await_channel(window)
        attempt = 0
        while True:
            try:
                response: Resp = await _bridge(rpc.callable.future(message, timeout=self.timeout))
            except ValueError:
                if self._closed:  # closed while this call started ("Channel closed!")
                    raise BackendUnavailable(f"Backend for {self.target} is closed") from None
                raise
            except self._grpc.RpcError as exc:
                if not self._should_retry(exc, attempt):
                    raise self._error(exc, rpc.name, attempt + 1) from None
                await asyncio.sleep(backoff_delay(attempt, self.backoff, self.max_backoff))
                attempt += 1
                continue
            self._ready = True
            return response

    def _should_retry(self, exc: grpc.RpcError, attempt: int) -> bool:
        code = exc.code()
        if code is not self._grpc.StatusCode.UNAVAILABLE:
            self._ready = True  # the server answered, even if with an error
            return False
        return attempt < self.retries and not self._closed

    def _error(self, exc: grpc.RpcError, rpc_name: str, attempts: int = 1) -> HTTPError:
        """The library error for a failed RPC, with TF Serving's status and the server's message."""
        code = exc.code()
        details = exc.details() or ""
        status = _status_from_metadata(exc) or http_status_for_code(code.name)
        if code.name == "DEADLINE_EXCEEDED" and details == "Deadline Exceeded":
            return BackendTimeout(
                f"Model server {self.target} did not answer {rpc_name} within {self.timeout:g} s"
            )
        if code.name == "UNAVAILABLE" and _status_from_metadata(exc) is None:
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            return BackendUnavailable(
                f"Model server {self.target} is unavailable{tries}: {details or code.name}"
            )
        if code.name == "CANCELLED" and self._closed:
            return BackendUnavailable(f"Backend for {self.target} is closed")
        return http_error(status, details or code.name.replace("_", " ").capitalize())


def _status_from_metadata(exc: Any) -> int | None:
    """The HTTP status our gRPC server put in the trailing metadata, if any."""
    try:
        metadata = exc.trailing_metadata() or ()
    except Exception:
        return None
    for key, value in metadata:
        if key == HTTP_STATUS_METADATA:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            if text.isdigit() and 100 <= int(text) <= 599:
                return int(text)
    return None


async def _bridge(future: Any) -> Any:
    """Await a ``grpc.Future`` (done on gRPC's threads) from the running event loop.

    Cancelling the awaiting task cancels the RPC.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()

    def transfer(done: Any) -> None:
        if waiter.done():
            return
        if done.cancelled():
            waiter.cancel()
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    def on_done(done: Any) -> None:
        # A closed loop (RuntimeError) means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(transfer, done)

    future.add_done_callback(on_done)
    try:
        return await waiter
    except asyncio.CancelledError:
        future.cancel()
        raise
