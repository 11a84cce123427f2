"""TF Serving's REST API (``/v1/models/...``) over any backend, with ``tensorflow_model_server``'s semantics.

URL rules, error texts and JSON forms follow TF Serving's HTTP handler (``http_rest_api_util.cc``):
the same regular expressions, matched against the path as received (still percent-encoded, with its
query string, as ``uri_path()`` gives it), case-insensitive but with an exact lower-case verb; model
names and labels percent-decoded after the match (so ``%2F`` may be part of a name); "Malformed request:
<METHOD> <path>" for anything that does not dispatch; ``{"error": ...}`` bodies; status answered as
protobuf JSON, and metadata as ``{"model_spec": ..., "metadata": {"signature_def": <SignatureDefMap>}}``
with proto field names and no ``@type`` (TF Serving writes the two parts separately). User code does not
take part here: these routes are TF Serving's contract, unchanged.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any
from urllib.parse import unquote_to_bytes

from google.protobuf.message import Message

from ..content_coding import decode_content_encoding
from ..errors import BadRequest, HTTPError, InternalError
from ..media import JSON
from ..observability.requests import current as current_request
from ..pipeline import LOOP_BODY_BYTES, Pipeline, Response, SignaturesOf
from ..protocol.responses import check_tfs_json_answer
from ..protocol.tfs_json import (
    classification_result_to_json,
    classify_request_from_json,
    predict_arrays_from_json,
    predict_response_to_json,
    regress_request_from_json,
    regression_result_to_json,
)
from ..protos import (
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    ModelSpec,
    coerce,
    to_json,
    unpack_signature_def_map,
)
from ..steps import Steps, run_steps

__all__ = [
    "TFSRoute",
    "ahandle_tfs_rest",
    "handle_tfs_rest",
    "match_tfs_route",
    "needs_model",
]

_POST = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_GET = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class TFSRoute:
    """A dispatched TF Serving REST request."""

    action: str  # predict | classify | regress | status | metadata
    model: str
    version: int | None
    label: str | None


def _decode_component(text: str) -> str:
    # curl_easy_unescape: %XX decoded, '+' kept as is.
    return unquote_to_bytes(text).decode("utf-8", "replace")


_ROUTE_CACHE_SIZE = 1024
"""Distinct ``(method, path)`` pairs remembered by :func:`match_tfs_route` (then forgotten at
once): a request's path is matched by the route's work chooser, its handler and the metrics."""

_routes: dict[tuple[str, str], TFSRoute] = {}


def match_tfs_route(method: str, path: str) -> TFSRoute:
    """Dispatch ``method path`` as TF Serving does; raises BadRequest with its messages."""
    key = (method, path)
    found = _routes.get(key)
    if found is None:
        found = _match(method, path)
        if len(_routes) >= _ROUTE_CACHE_SIZE:
            _routes.clear()
        _routes[key] = found
    return found


def _match(method: str, path: str) -> TFSRoute:
    if method == "POST":
        match = _POST.fullmatch(path)
        if match is None or match.group(4) not in ("predict", "classify", "regress"):
            raise _malformed(method, path)
        action = match.group(4)
    elif method == "GET":
        match = _GET.fullmatch(path)
        if match is None:
            raise _malformed(method, path)
        if not match.group(1):
            raise BadRequest("Missing model name in request.")
        # The regex ignores case but the dispatch compares exactly: ``/METADATA`` asks for status.
        action = "metadata" if match.group(4) == "metadata" else "status"
    else:
        raise _malformed(method, path)
    version: int | None = None
    if match.group(2) is not None:
        digits = match.group(2)
        if int(digits) > _INT64_MAX:
            raise BadRequest(f"Failed to convert version: {digits} to numeric.")
        version = int(digits)
    label = _decode_component(match.group(3)) if match.group(3) is not None else None
    return TFSRoute(action, _decode_component(match.group(1)), version, label)


def _malformed(method: str, path: str) -> BadRequest:
    return BadRequest(f"Malformed request: {method} {path}")


def _spec(route: TFSRoute) -> ModelSpec:
    spec = ModelSpec(name=route.model)
    if route.version is not None:
        spec.version.value = route.version
    elif route.label is not None:
        spec.version_label = route.label
    return spec


def _proto_text(message: Message) -> str:
    return to_json(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        indent=1,
    )


def _proto_json(message: Message) -> bytes:
    return _proto_text(message).encode("utf-8")


def _metadata_json(response: Message) -> bytes:
    """TF Serving's metadata body: model spec and signature map written apart, then joined."""
    try:
        signature_map = unpack_signature_def_map(response)
    except KeyError:
        raise InternalError(
            "Failed to find 'signature_def' key in the GetModelMetadataResponse metadata map."
        ) from None
    except ValueError:
        raise InternalError("Failed to unpack 'Any' object to 'SignatureDefMap'.") from None
    model_spec = coerce(response, GetModelMetadataResponse).model_spec
    text = (
        '{\n"model_spec":'
        + _proto_text(model_spec)
        + ',\n"metadata": {"signature_def": '
        + _proto_text(signature_map)
        + "}\n}\n"
    )
    return text.encode("utf-8")


def _answer(route: TFSRoute, body: bytes, pipeline: Pipeline) -> Steps[bytes]:
    """The JSON answer to ``route``, yielding its signatures and its model call (see
    :mod:`tfio_handlers.steps`)."""
    backend: Any = pipeline.backend
    spec = _spec(route)
    if route.action == "status":
        response = backend.get_model_status(GetModelStatusRequest(model_spec=spec))
        return _proto_json(response)
    if route.action == "metadata":
        metadata = GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
        return _metadata_json(backend.get_model_metadata(metadata))
    resolved = yield SignaturesOf(route.model, route.version, route.label)
    signatures = resolved.signature_defs
    strict = pipeline.settings.strict_json
    limits = pipeline.settings.limits
    timer = _StageTimer()
    if route.action == "predict":
        request, form = predict_arrays_from_json(body, signatures, model_spec=spec, limits=limits)
        timer.decoded()
        predicted = yield request
        timer.called()
        check_tfs_json_answer(predicted, limits)
        return timer.encoded(predict_response_to_json(predicted, form, strict=strict))
    if route.action == "classify":
        classify = classify_request_from_json(body, signatures, model_spec=spec, limits=limits)
        timer.decoded()
        classified = yield classify
        timer.called()
        check_tfs_json_answer(classified, limits)
        return timer.encoded(classification_result_to_json(classified.result, strict=strict))
    regress = regress_request_from_json(body, signatures, model_spec=spec, limits=limits)
    timer.decoded()
    regressed = yield regress
    timer.called()
    check_tfs_json_answer(regressed, limits)
    return timer.encoded(regression_result_to_json(regressed.result, strict=strict))


class _StageTimer:
    """Decode, model and encode seconds of one TF Serving REST request, on the request's record
    (:data:`~tfio_handlers.observability.requests.current`) as each stage ends, for the stage
    histogram; the pipeline times ``/invocations`` on its ``Context`` instead. A no-op without a
    record (no observability middleware)."""

    __slots__ = ("decode", "model", "record", "started")

    def __init__(self) -> None:
        self.record = current_request.get()
        self.started = perf_counter()
        self.decode: float | None = None
        self.model: float | None = None

    def decoded(self) -> None:
        if self.record is not None:
            now = perf_counter()
            self.decode = now - self.started
            self.started = now
            self.record.stages = (self.decode, None, None)

    def called(self) -> None:
        if self.record is not None:
            now = perf_counter()
            self.model = now - self.started
            self.started = now
            self.record.stages = (self.decode, self.model, None)

    def encoded(self, body: bytes) -> bytes:
        if self.record is not None:
            self.record.stages = (self.decode, self.model, perf_counter() - self.started)
        return body


def handle_tfs_rest(
    pipeline: Pipeline,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Answer one TF Serving REST request; every response is ``application/json``.

    ``headers`` (lower-cased names) matter only for ``Content-Encoding``: a gzip or deflate body is
    inflated, bounded by the body limit, as TF Serving's HTTP server does.
    """
    return run_steps(_handled(pipeline, method, path, body, headers), pipeline.call_backend)


def _handled(
    pipeline: Pipeline,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None,
) -> Steps[Response]:
    """:func:`handle_tfs_rest`, written once for both drivers: yields its model call."""
    try:
        limits = pipeline.settings.limits
        encoding = (headers or {}).get("content-encoding")
        body = decode_content_encoding(body, encoding, limits.max_body_bytes)
        limits.check_body(len(body))
        route = match_tfs_route(method, path)
        payload = yield from _answer(route, body, pipeline)
        return Response(200, payload, [("content-type", JSON)], f"tfs:{route.action}")
    except HTTPError as exc:
        return Response.error(exc, "tfs")
    except Exception as exc:
        import logging

        logging.getLogger(__name__).exception("Unexpected error in the TF Serving REST API")
        return Response.error(InternalError(f"Internal error: {type(exc).__name__}"), "tfs")


def needs_model(method: str, path: str) -> bool:
    """Whether ``method path`` calls the model (``:predict``, ``:classify``, ``:regress``).

    Those run in the pipeline's bounded work pool; model status and metadata, and requests that
    do not dispatch, do not, so they keep answering when the pool is saturated.
    """
    try:
        return match_tfs_route(method, path).action in _MODEL_ACTIONS
    except HTTPError:
        return False


_MODEL_ACTIONS = frozenset({"predict", "classify", "regress"})


async def ahandle_tfs_rest(
    pipeline: Pipeline,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """:func:`handle_tfs_rest` from an event loop, never blocking it for long.

    A model call with a small body (at most :data:`~tfio_handlers.pipeline.LOOP_BODY_BYTES`, no
    ``Content-Encoding``) is decoded and answered on the loop, its model call awaited (see
    :meth:`Pipeline.ainvoke <tfio_handlers.pipeline.Pipeline.ainvoke>`); a bigger one runs whole
    in the pipeline's work pool. Both hold a slot of the pool (503 with ``Retry-After`` when it is
    saturated). Status and metadata run in a worker thread, beside the pool.
    """
    if not needs_model(method, path):
        return await asyncio.to_thread(handle_tfs_rest, pipeline, method, path, body, headers)
    try:
        if len(body) > LOOP_BODY_BYTES or (headers or {}).get("content-encoding"):
            return await pipeline.work.run(handle_tfs_rest, pipeline, method, path, body, headers)
        return await pipeline.arun(_handled(pipeline, method, path, body, headers))
    except HTTPError as exc:
        return Response.error(exc, "tfs")
