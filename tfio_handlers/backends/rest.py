"""TF Serving over its REST API: our request messages in, TF Serving JSON on the wire, messages out.

Each call becomes the TF Serving REST request that means the same thing, and the JSON answer is
parsed back into the response message a gRPC call would have returned:

* ``Predict`` → ``POST /v1/models/<name>[/versions/<v> | /labels/<l>]:predict`` with the columnar
  body ``{"signature_name": ..., "inputs": {alias: nested values}}``. ``DT_STRING`` values are sent as
  JSON strings when every value of the tensor is UTF-8 without NUL bytes, else every value as
  ``{"b64": ...}``: lossless either way, and readable in logs for the common text case. The answer
  ``{"outputs": ...}`` carries no dtypes and, for a single output, no name, so both come from the
  signature (``GET .../metadata``, cached by :meth:`Backend.signatures`). Outputs are written to the
  typed ``*_val`` fields, as TF Serving's gRPC API answers.
* ``Classify`` / ``Regress`` → ``:classify`` / ``:regress`` with ``{"examples": [...], "context": {...}}``
  built from the ``tf.Example`` features; ``{"results": ...}`` becomes the result message.
* ``GetModelMetadata`` → ``GET .../metadata``; ``GetModelStatus`` → ``GET /v1/models/<name>[...]``.

What REST cannot say is handled here, so that the REST backend answers as the gRPC one does: the
``output_filter`` is checked and applied on our side (REST has none); inputs a signature has defaults
for are filled from ``SignatureDef.defaults`` (REST requires every input); a tensor whose dtype is
not the signature's is refused (REST would cast it silently); the response's ``model_spec`` is
filled from the request and the metadata. Dtypes TF Serving's JSON cannot carry (half, bfloat16,
complex, ...) are refused with 501 before anything is sent.

TF Serving's error answers keep their status and ``{"error"}`` message. A request that cannot
connect is retried with exponential back-off and then answered 503; a read that runs past
``timeout`` is answered 504. One ``httpx.Client`` (and one ``httpx.AsyncClient`` per event loop)
with a connection pool serves all calls. httpx is imported when a backend is built.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

import numpy as np
from google.protobuf.message import Message

from ..errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    InternalError,
    Unimplemented,
)
from ..protos import (
    DEFAULT_SIGNATURE,
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT8,
    DT_UINT32,
    DT_UINT64,
    POOL,
    Class,
    ClassificationRequest,
    ClassificationResponse,
    ClassificationResult,
    Example,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    Input,
    ModelSpec,
    ModelVersionStatus,
    PredictRequest,
    PredictResponse,
    Regression,
    RegressionRequest,
    RegressionResponse,
    RegressionResult,
    SignatureDef,
    SignatureDefMap,
    TensorInfo,
    TensorProto,
    coerce,
    pack_signature_def_map,
)
from ..tensors import dtype_name, make_shape, numpy_dtype, to_ndarray, to_tensor_proto
from .base import Backend, ResolvedModel
from .status import http_error

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["RestBackend", "backoff_delay"]

log = logging.getLogger(__name__)

_BIG = 256 * 1024
"""Bodies larger than this are encoded and parsed in a worker thread by the async twins."""

_JSON_DTYPES = frozenset(
    {
        DT_FLOAT,
        DT_DOUBLE,
        DT_INT32,
        DT_INT16,
        DT_INT8,
        DT_UINT8,
        DT_INT64,
        DT_UINT32,
        DT_UINT64,
        DT_BOOL,
        DT_STRING,
    }
)
"""The dtypes TF Serving's JSON reads and writes (``json_tensor.cc``); others are Unimplemented."""


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
                    status = _parse_status(_loads(response.content))
                    available = ModelVersionStatus.State.Value("AVAILABLE")
                    if any(v.state == available for v in status.model_version_status):
                        self._ready = True
                        return
                    detail = "no version is AVAILABLE"
                elif response.status_code in (404, 503):
                    detail = _error_message(response.status_code, response.content)
                else:
                    raise http_error(
                        response.status_code,
                        _error_message(response.status_code, response.content),
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
        _check_inputs(request, signature)
        wanted = _output_aliases(request, signature)
        order = sorted(signature.inputs)
        inputs: dict[str, Any] = {}
        for alias, tensor in request.inputs.items():
            inputs[alias] = _tensor_to_json(
                alias, tensor, signature.inputs[alias], order.index(alias)
            )
        for alias in signature.inputs:
            if alias not in inputs and alias in signature.defaults:
                inputs[alias] = _tensor_to_json(
                    alias, signature.defaults[alias], signature.inputs[alias], order.index(alias)
                )
        body: dict[str, Any] = {"inputs": inputs}
        if spec.signature_name:
            body["signature_name"] = spec.signature_name
        response_spec = self._response_spec(spec, resolved)

        def parse(answer: Any) -> PredictResponse:
            return _predict_response(answer, signature, wanted, response_spec)

        return _Exchange(
            "POST", _model_path(*self._spec_key(spec)) + ":predict", _dumps(body), parse
        )

    def _classify_exchange(
        self, request: ClassificationRequest, resolved: ResolvedModel
    ) -> _Exchange[ClassificationResponse]:
        spec = request.model_spec
        body = _examples_body(request.input, spec.signature_name)
        response_spec = self._response_spec(spec, resolved)

        def parse(answer: Any) -> ClassificationResponse:
            result = ClassificationResult()
            for row in _results(answer, "classify"):
                classifications = result.classifications.add()
                if not isinstance(row, list):
                    raise _bad_answer("a classification result is not a list")
                for pair in row:
                    if not (
                        isinstance(pair, list)
                        and len(pair) == 2
                        and isinstance(pair[0], str)
                        and _is_number(pair[1])
                    ):
                        raise _bad_answer(f"classification {pair!r} is not [label, score]")
                    label = pair[0].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    classifications.classes.append(Class(label=label, score=float(pair[1])))
            return ClassificationResponse(result=result, model_spec=response_spec)

        path = _model_path(*self._spec_key(spec)) + ":classify"
        return _Exchange("POST", path, _dumps(body), parse)

    def _regress_exchange(
        self, request: RegressionRequest, resolved: ResolvedModel
    ) -> _Exchange[RegressionResponse]:
        spec = request.model_spec
        body = _examples_body(request.input, spec.signature_name)
        response_spec = self._response_spec(spec, resolved)

        def parse(answer: Any) -> RegressionResponse:
            result = RegressionResult()
            for value in _results(answer, "regress"):
                if not _is_number(value):
                    raise _bad_answer(f"regression value {value!r} is not a number")
                result.regressions.append(Regression(value=float(value)))
            return RegressionResponse(result=result, model_spec=response_spec)

        path = _model_path(*self._spec_key(spec)) + ":regress"
        return _Exchange("POST", path, _dumps(body), parse)

    def _metadata_exchange(
        self, request: GetModelMetadataRequest
    ) -> _Exchange[GetModelMetadataResponse]:
        path = _model_path(*self._spec_key(request.model_spec)) + "/metadata"
        return _Exchange("GET", path, None, _parse_metadata)

    def _status_exchange(self, request: GetModelStatusRequest) -> _Exchange[GetModelStatusResponse]:
        path = _model_path(*self._spec_key(request.model_spec))
        return _Exchange("GET", path, None, _parse_status)

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


# -- JSON in and out -------------------------------------------------------------------------------


def _dumps(body: Any) -> bytes:
    # NaN and ±Infinity are written as bare tokens, which TF Serving's parser accepts.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode()


def _loads(content: bytes) -> Any:
    # TF Serving writes DT_STRING values as raw bytes, not always valid UTF-8; surrogateescape
    # keeps them so that they can be turned back into the exact bytes.
    try:
        return json.loads(content.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise _bad_answer(f"invalid JSON ({exc})") from None


def _bad_answer(what: str) -> InternalError:
    return InternalError(f"Unexpected answer from the model server: {what}")


def _error_message(status: int, content: bytes) -> str:
    """The ``error`` of TF Serving's ``{"error": ...}`` body, else the body's text."""
    text = content.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return text.strip() or f"HTTP {status}"


def _answer(exchange: _Exchange[Resp], status: int, content: bytes) -> Resp:
    if status != 200:
        raise http_error(status, _error_message(status, content))
    return exchange.parse(_loads(content))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- tensors --------------------------------------------------------------------------------------


def _needs_b64(value: bytes) -> bool:
    if b"\x00" in value:
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _map_leaves(value: Any, leaf: Callable[[Any], Any]) -> Any:
    if isinstance(value, list):
        return [_map_leaves(item, leaf) for item in value]
    return leaf(value)


def _joined(names: Any) -> str:
    return ",".join(sorted(names))


def _check_inputs(request: PredictRequest, signature: SignatureDef) -> None:
    """TF Serving's gRPC input checks, with its messages (REST ignores extra inputs instead)."""
    request_names = set(request.inputs)
    signature_names = set(signature.inputs)
    n_request, n_signature = len(request_names), len(signature_names)
    if n_request > n_signature or (n_request < n_signature and not signature.defaults):
        raise BadRequest(
            f"input size does not match signature: {n_request}!={n_signature} "
            f"len({{{_joined(request_names)}}}) != len({{{_joined(signature_names)}}}). "
            f"Sent extra: {{{_joined(request_names - signature_names)}}}. "
            f"Missing but required: {{{_joined(signature_names - request_names)}}}."
        )
    for alias in sorted(signature_names - request_names):
        if alias not in signature.defaults:
            raise BadRequest(
                f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) not "
                "found in request and no default value provided. Inputs expected to be in "
                f"the request {{{_joined(request_names)}}}, or default input alias set: "
                f"{_joined(signature.defaults)}"
            )
    if request_names - signature_names:
        raise BadRequest(
            f"Inputs contains invalid name. Used request inputs: "
            f"{_joined(request_names & signature_names)}, request input: {_joined(request_names)}"
        )


def _tensor_to_json(alias: str, tensor: TensorProto, info: TensorInfo, index: int) -> Any:
    """A request tensor as TF Serving JSON (nested lists; strings plain or all ``{"b64"}``).

    ``index`` is the input's place in sorted alias order, as TensorFlow's dtype error names it.
    """
    tensor = coerce(tensor, TensorProto)
    dt = tensor.dtype
    if info.dtype != dt:
        raise BadRequest(
            f"Expects arg[{index}] to be {dtype_name(info.dtype)} but {dtype_name(dt)} is provided"
        )
    if dt not in _JSON_DTYPES:
        raise Unimplemented(
            f"TF Serving's REST API cannot carry {dtype_name(dt)} tensors (input {alias!r}); "
            "use the gRPC backend"
        )
    array = to_ndarray(tensor)
    if dt != DT_STRING:
        return array.tolist()
    values = array.reshape(-1).tolist()
    if any(_needs_b64(v) for v in values):

        def leaf(v: bytes) -> Any:
            return {"b64": base64.b64encode(v).decode("ascii")}
    else:

        def leaf(v: bytes) -> Any:
            return v.decode("utf-8")

    return _map_leaves(array.tolist(), leaf)


def _output_aliases(request: PredictRequest, signature: SignatureDef) -> list[str]:
    """The outputs to answer with: ``output_filter`` checked as TF Serving checks it, else all."""
    if not request.output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in request.output_filter:
        if alias not in signature.outputs:
            expected = ",".join(sorted(signature.outputs))
            raise BadRequest(
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {{{expected}}}."
            )
        if alias in seen:
            raise BadRequest(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(request.output_filter)


def _string_leaf(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise _bad_answer("a b64 value does not decode") from None
    raise _bad_answer(f"{value!r} is not a string value")


def _nested_dims(value: Any) -> list[int]:
    dims: list[int] = []
    probe = value
    while isinstance(probe, list):
        dims.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    return dims


def _strings_from_json(value: Any, alias: str) -> tuple[list[bytes], list[int]]:
    dims = _nested_dims(value)
    flat: list[bytes] = []

    def walk(item: Any, level: int) -> None:
        if level < len(dims):
            if not isinstance(item, list) or len(item) != dims[level]:
                raise _bad_answer(f"output {alias!r} is not a rectangular array")
            for sub in item:
                walk(sub, level + 1)
        elif isinstance(item, list):
            raise _bad_answer(f"output {alias!r} is not a rectangular array")
        else:
            flat.append(_string_leaf(item))

    walk(value, 0)
    return flat, dims


def _complete_empty_dims(dims: list[int], info: TensorInfo) -> list[int]:
    """``[]`` hides the inner dimensions of an empty tensor: take them from the signature."""
    shape = info.tensor_shape
    if 0 in dims and not shape.unknown_rank and len(shape.dim) > len(dims):
        dims = dims + [max(d.size, 0) for d in shape.dim[len(dims) :]]
    return dims


def _tensor_from_json(value: Any, info: TensorInfo, alias: str) -> TensorProto:
    """An output tensor from TF Serving JSON, typed by the signature, in the typed ``*_val`` field."""
    dt = info.dtype
    if dt == DT_STRING:
        flat, dims = _strings_from_json(value, alias)
        proto = TensorProto(dtype=DT_STRING, string_val=flat)
        proto.tensor_shape.CopyFrom(make_shape(_complete_empty_dims(dims, info)))
        return proto
    if dt not in _JSON_DTYPES:
        raise _bad_answer(f"output {alias!r} has dtype {dtype_name(dt)}, which JSON cannot carry")
    try:
        array = np.array(value, dtype=numpy_dtype(dt))
    except (ValueError, TypeError, OverflowError) as exc:
        raise _bad_answer(
            f"output {alias!r} is not a rectangular array of {dtype_name(dt)} ({exc})"
        ) from None
    if array.dtype == object:
        raise _bad_answer(f"output {alias!r} is not a rectangular array")
    if array.size == 0:
        array = array.reshape(_complete_empty_dims(list(array.shape), info))
    return to_tensor_proto(array, dt, typed_fields=True)


def _predict_response(
    answer: Any, signature: SignatureDef, wanted: list[str], spec: ModelSpec
) -> PredictResponse:
    if not isinstance(answer, dict) or "outputs" not in answer:
        raise _bad_answer("no 'outputs' in the predict answer")
    outputs = answer["outputs"]
    if len(signature.outputs) == 1:
        # One output is written bare, without its name.
        outputs = {next(iter(signature.outputs)): outputs}
    elif not isinstance(outputs, dict):
        raise _bad_answer("'outputs' is not an object although the signature has several outputs")
    response = PredictResponse(model_spec=spec)
    for alias in wanted:
        if alias not in outputs:
            raise _bad_answer(f"output {alias!r} is missing")
        response.outputs[alias].CopyFrom(
            _tensor_from_json(outputs[alias], signature.outputs[alias], alias)
        )
    return response


# -- examples -------------------------------------------------------------------------------------


def _feature_values(name: str, feature: Any) -> list[Any]:
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        values = list(feature.bytes_list.value)
        if any(_needs_b64(v) for v in values):
            return [{"b64": base64.b64encode(v).decode("ascii")} for v in values]
        return [v.decode("utf-8") for v in values]
    if kind == "float_list":
        # Python's float repr always has "." or an exponent (or is NaN/Infinity), so TF Serving
        # reads these as floats, never as int64.
        return [float(v) for v in feature.float_list.value]
    if kind == "int64_list":
        return [int(v) for v in feature.int64_list.value]
    return []


def _example_json(example: Example) -> dict[str, Any]:
    example = coerce(example, Example)
    return {
        name: _feature_values(name, feature) for name, feature in example.features.feature.items()
    }


def _examples_body(request_input: Input, signature_name: str) -> dict[str, Any]:
    """``{"signature_name", "examples", "context"}`` for a Classify/Regress ``Input``."""
    kind = request_input.WhichOneof("kind")
    context: Example | None = None
    if kind == "example_list":
        examples = request_input.example_list.examples
    elif kind == "example_list_with_context":
        examples = request_input.example_list_with_context.examples
        context = request_input.example_list_with_context.context
    else:
        raise BadRequest("Input is empty.")
    if not examples:
        raise BadRequest("Input is empty.")
    body: dict[str, Any] = {"examples": [_example_json(example) for example in examples]}
    if context is not None:
        body["context"] = _example_json(context)
    if signature_name:
        body["signature_name"] = signature_name
    return body


def _results(answer: Any, method: str) -> list[Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
        raise _bad_answer(f"no 'results' list in the {method} answer")
    results: list[Any] = answer["results"]
    return results


# -- metadata and status ---------------------------------------------------------------------------


def _parse_dict(value: Any, message: Resp) -> Resp:
    from google.protobuf import json_format

    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True, descriptor_pool=POOL)
    except json_format.ParseError as exc:
        raise _bad_answer(str(exc)) from None
    return message


def _parse_status(answer: Any) -> GetModelStatusResponse:
    if not isinstance(answer, dict):
        raise _bad_answer("the model status is not an object")
    return _parse_dict(answer, GetModelStatusResponse())


def _parse_metadata(answer: Any) -> GetModelMetadataResponse:
    """TF Serving's metadata JSON: ``{"model_spec", "metadata": {"signature_def": SignatureDefMap}}``.

    TF Serving writes the ``SignatureDefMap`` without the ``@type`` an ``Any`` has in proto3 JSON;
    both forms are read.
    """
    if not isinstance(answer, dict):
        raise _bad_answer("the model metadata is not an object")
    response = GetModelMetadataResponse()
    if isinstance(answer.get("model_spec"), dict):
        _parse_dict(answer["model_spec"], response.model_spec)
    metadata = answer.get("metadata")
    entry = metadata.get("signature_def") if isinstance(metadata, dict) else None
    if not isinstance(entry, dict):
        raise _bad_answer("no 'metadata.signature_def' in the model metadata")
    entry = {k: v for k, v in entry.items() if k != "@type"}
    return pack_signature_def_map(response, _parse_dict(entry, SignatureDefMap()))
