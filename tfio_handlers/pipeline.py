"""The pipeline: decode → request → backend → encode, from ``(body, headers)`` to ``(status, headers, body)``.

No web framework is involved: the adapters (ASGI, WSGI) only move bytes and headers in and out, and a
serving container can call :meth:`Pipeline.invoke` itself. Every failure becomes a JSON error body with
the status its :class:`~tfio_handlers.errors.HTTPError` carries; anything else is logged with its
traceback and answered 500 without one.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from google.protobuf.message import Message

from .backends.model_calls import sole_request
from .config import Settings
from .content_coding import decode_content_encoding
from .context import Context, parse_custom_attributes
from .errors import (
    BadRequest,
    HTTPError,
    InternalError,
    NotAcceptable,
    NotFound,
    UserCodeError,
    error_body,
)
from .hookspecs import Answer
from .media import ANY, JSON, MediaType, parse_accept, parse_media_type
from .observability.requests import REQUEST_ID_HEADER
from .observability.requests import current as current_request
from .protocol.arrays import PredictArrays, Prediction, as_response_message
from .protos import (
    ClassificationRequest,
    PredictRequest,
    RegressionRequest,
)
from .registry import Kind, Registry
from .steps import Steps, arun_steps, run_steps
from .usercode import USER_FAILURES, UserCode, call_user, user_answer
from .workpool import Held, WorkPool

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["Pipeline", "Response", "SignaturesOf"]

log = logging.getLogger(__name__)

_METHODS: frozenset[str] = frozenset({"predict", "classify", "regress"})

OCTET_STREAM = "application/octet-stream"

T = TypeVar("T")

Request: TypeAlias = PredictArrays | PredictRequest | ClassificationRequest | RegressionRequest
"""What a decoded body becomes before the backend call."""


@dataclass(slots=True)
class Response:
    """An HTTP answer, framework-neutral."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    codec: str = "-"
    """The media type that encoded (or, for an error, was being handled): for the access log."""

    @classmethod
    def error(cls, exc: HTTPError, codec: str = "-") -> Response:
        """``{"error": ...}`` with the error's status and headers.

        An error status is 400-599; an :class:`HTTPError` carrying anything else (user code's
        ``HTTPError("...", status=99)``, or 200) answers 500 naming the status it tried.
        """
        if not 400 <= exc.status_code <= 599:
            log.error("HTTPError with status %r is not an error status", exc.status_code)
            exc = InternalError(
                f"An error was raised with status {exc.status_code}, which is not an HTTP error "
                f"status (400-599): {exc.message}"
            )
        return cls(exc.status_code, exc.to_json(), [("content-type", JSON), *exc.headers], codec)

    def problem(self) -> str | None:
        """Why this answer cannot be sent as it is (a status or header no server may write), or None.

        User code chooses content types and statuses; a header value outside latin-1 or holding a
        control character (CR/LF would split the header) and a status outside 100-599 are refused
        here, so the adapters answer 500 JSON instead of a dropped connection.
        """
        if not 100 <= self.status <= 599:
            return f"status {self.status} is not an HTTP status"
        for name, value in self.headers:
            try:
                name.encode("ascii")
                value.encode("latin-1")
            except UnicodeEncodeError:
                return f"header {name!r} has the value {value!r}, which is not latin-1 text"
            if _CONTROL_CHARACTER.search(name) or _CONTROL_CHARACTER.search(value):
                return f"header {name!r} has the value {value!r}, which holds a control character"
        return None

    def checked(self) -> Response:
        """This answer, or a 500 JSON one saying why it cannot be sent (see :meth:`problem`)."""
        problem = self.problem()
        if problem is None:
            return self
        log.error("Refusing to send an answer: %s", problem)
        return Response.error(InternalError(f"The answer cannot be sent: {problem}"), self.codec)


_CONTROL_CHARACTER = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
"""What no header may hold: a control character (CR and LF would split it), tab excepted."""


def _lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; from a mapping or from ``(name, value)`` pairs (ASGI)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k).lower(): str(v) for k, v in items}


LOOP_BODY_BYTES = 4 * 1024
"""The largest body an ASGI request may have to be decoded and answered on the event loop (see
:meth:`Pipeline.answers_on_loop`); bigger ones are worked in the pool's threads.

The bound is what a hostile body may cost the loop, not what a typical one does: bodies that leave
the codecs' fast paths (a ``NaN`` sends TF Serving's JSON to the exact reader, whose instances are
converted one by one; empty rows; a body cut short at its end) cost 2-4 µs a byte in Python,
130-230 ms for 64 KiB as served, while the loop answers nothing else; 4 KiB keeps it to about
15 ms. In the pool's threads the same work shares the GIL with the loop, which keeps answering."""

LOOP_ANSWER_BYTES = 256 * 1024
"""Answers whose arrays hold more bytes than this are written in the pool's threads, not on the
event loop, even for a small request."""


LOOP_HEADER_BYTES = 1024
"""The most ``Accept`` and ``Content-Type`` may hold together for a request to be answered on the
event loop: a header of tens of KiB (thousands of media ranges), new on each request so that no
cache helps, costs tens of milliseconds to parse and negotiate."""


@dataclass(frozen=True, slots=True)
class SignaturesOf:
    """What a request handler yields for a model version's signatures: the backend caches them,
    but a remote backend may have to ask its model server first, which must not block the event
    loop (see :meth:`Pipeline.acall_backend`)."""

    model_name: str | None
    version: int | None
    label: str | None


def _small_answer(answer: Any) -> bool:
    """Whether the handler may go on on the event loop after ``answer``: at most
    :data:`LOOP_ANSWER_BYTES` of output (a message's serialized size; arrays' bytes, a string
    counted by its length), judged without copying anything."""
    if isinstance(answer, Message):
        return answer.ByteSize() <= LOOP_ANSWER_BYTES
    if not isinstance(answer, Prediction):
        return True  # a model's signatures: nothing is written from them
    message = answer.message
    if message is not None:
        return message.ByteSize() <= LOOP_ANSWER_BYTES
    total = 0
    for array in answer.outputs.values():
        if array.dtype.kind != "O":
            total += array.nbytes
        elif array.size > LOOP_ANSWER_BYTES // 8:
            return False
        else:
            total += sum(len(v) if isinstance(v, (bytes, str)) else 8 for v in array.flat)
        if total > LOOP_ANSWER_BYTES:
            return False
    return True


def _add_model_seconds(context: Context, seconds: float) -> None:
    previous = context.model_seconds
    context.model_seconds = seconds if previous is None else previous + seconds


class Pipeline:
    """Decode, predict, encode. Build one per process and call it from any number of threads/tasks."""

    def __init__(
        self,
        backend: Backend,
        *,
        settings: Settings | None = None,
        registry: Registry | None = None,
        user_code: UserCode | None = None,
        default_model: str | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.registry = registry if registry is not None else Registry.from_settings(self.settings)
        self.user_code = user_code
        if user_code is not None and not self.registry.pm.is_registered(user_code):
            self.registry.register(user_code, name="user-code", kind=Kind.USER)
        from .formats.pickle import switched_off

        self.registry.switch_off(switched_off(self.settings))
        self.registry.check()
        self.backend = backend
        self.work = WorkPool(self.settings.max_concurrent_requests)
        """Where user code and model calls run (``TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS`` slots)."""
        self.default_model = (
            default_model or self.settings.default_model_name or backend.default_model
        )

    # -- context -----------------------------------------------------------------------------------

    def context_for(
        self, body: bytes, headers: Mapping[str, str] | Any
    ) -> tuple[Context, MediaType]:
        """The request's :class:`Context` and parsed media type, from headers and custom attributes."""
        lowered = _lower_headers(headers)
        self.settings.limits.check_body(len(body))
        content_type = lowered.get("content-type") or lowered.get("contenttype") or JSON
        media_type = parse_media_type(content_type)
        raw_attributes = lowered.get("x-amzn-sagemaker-custom-attributes", "")
        attributes = parse_custom_attributes(raw_attributes)
        record = current_request.get()
        context = Context(
            settings=self.settings,
            request_content_type=content_type,
            accept_header=lowered.get("accept") or self.settings.default_accept,
            content_length=len(body),
            custom_attributes=raw_attributes,
            attributes=attributes,
            headers=lowered,
            request_id=record.request_id if record is not None else lowered.get(REQUEST_ID_HEADER),
        )
        if record is not None:
            record.context = context  # the middleware reads model, version and timings there
        context.model_name = attributes.get("tfs-model-name") or self.default_model
        version = attributes.get("tfs-model-version")
        if version:
            try:
                context.model_version = int(version)
            except ValueError:
                raise BadRequest(f"tfs-model-version must be a number, got {version!r}") from None
        method = attributes.get("tfs-method")
        if method:
            if method not in _METHODS:
                raise BadRequest(f"tfs-method must be predict, classify or regress, got {method!r}")
            context.method = method  # type: ignore[assignment]
        context.signature_name = attributes.get("tfs-signature") or None
        context.extras["backend"] = self.backend
        context.extras["predict"] = lambda value: self.predict_value(value, context)
        return context, media_type

    def _load_signatures(self, context: Context) -> None:
        resolved = self.backend.signatures(
            context.model_name, context.model_version, context.version_label
        )
        self._use_signatures(context, resolved)

    @staticmethod
    def _use_signatures(context: Context, resolved: Any) -> None:
        context.signature_defs = resolved.signature_defs
        if context.model_name is None:
            context.model_name = resolved.name
        name = context.signature_name
        if name is not None and name not in context.signature_defs:
            raise NotFound(
                f"tfs-signature {name!r} is not a signature of model {context.model_name!r}; "
                "it has: " + ", ".join(sorted(context.signature_defs))
            )

    # -- /invocations --------------------------------------------------------------------------------

    def invoke(self, body: bytes, headers: Mapping[str, str] | Any) -> Response:
        """Answer a SageMaker ``/invocations`` request (sync: for WSGI servers and plain code).

        Runs in the calling thread; the WSGI adapter calls it in :attr:`work`, and :meth:`ainvoke`
        does for the requests it does not answer on the event loop.
        """
        return run_steps(self._invocation(body, headers), self.call_backend)

    def _invocation(self, body: bytes, headers: Mapping[str, str] | Any) -> Steps[Response]:
        """``/invocations``, written once for both drivers (:mod:`tfio_handlers.steps`): yields the
        backend request, is sent its answer."""
        codec = "-"
        try:
            headers = _lower_headers(headers)
            body = self.decoded_body(body, headers)
            context, media_type = self.context_for(body, headers)
            codec = media_type.essence
            if self.user_code is not None and self.user_code.replaces_pipeline:
                self._load_signatures(context)
                return self._run_user_pipeline(body, media_type, context)
            accept = self.registry.negotiate(context.accept_header, self.settings.default_accept)
            if self.user_code is not None and self.user_code.output_handler is not None:
                return self._invoke_with_output_handler(body, media_type, accept, context)
            resolved = yield SignaturesOf(
                context.model_name, context.model_version, context.version_label
            )
            self._use_signatures(context, resolved)
            request = self._decode(body, media_type, context)
            started = perf_counter()
            response = yield request
            _add_model_seconds(context, perf_counter() - started)
            return self._encode(response, accept, context)
        except HTTPError as exc:
            if isinstance(exc, UserCodeError):
                record = current_request.get()
                if record is not None:
                    record.user_code_failed = True
            return Response.error(exc, codec)
        except USER_FAILURES as exc:  # a bug: log it, never show it
            log.exception("Unexpected error while handling a request")
            return Response.error(InternalError(f"Internal error: {type(exc).__name__}"), codec)

    def decoded_body(self, body: bytes, headers: Mapping[str, str]) -> bytes:
        """``body`` with its ``Content-Encoding`` (lower-cased ``headers``) undone, bounded by the
        body limit: see :func:`~tfio_handlers.content_coding.decode_content_encoding`."""
        return decode_content_encoding(
            body, headers.get("content-encoding"), self.settings.limits.max_body_bytes
        )

    def _invoke_with_output_handler(
        self, body: bytes, media_type: MediaType, accept: MediaType, context: Context
    ) -> Response:
        """``/invocations`` with an ``output_handler``: it answers the model server's errors too.

        As in SageMaker's TF Serving container, where ``output_handler`` gets TF Serving's HTTP
        response whatever its status: the model's side (finding the model and signature, turning
        the decoded value into a request for them, the model call) answers through it. Decoding
        the client's body (``input_handler`` or the built-in codecs) does not: those errors answer
        as they are.
        """
        try:
            self._load_signatures(context)
        except HTTPError as exc:
            return self._answer_error(exc, accept, context, media_type.essence)
        started = perf_counter()
        value = self.registry.decode(body, media_type, context)
        context.decode_seconds = perf_counter() - started
        try:
            response = self._call(self._to_request(value, context), context)
        except HTTPError as exc:
            return self._answer_error(exc, accept, context, media_type.essence)
        return self._encode(response, accept, context)

    def _answer_error(
        self, error: HTTPError, accept: MediaType, context: Context, codec: str
    ) -> Response:
        """The answer ``output_handler`` gives to ``error``; the error itself when it gives none."""
        assert self.user_code is not None
        answer = self.user_code.answer_error(error, context)
        if answer is None:
            return Response.error(error, codec)
        body, content_type = answer
        chosen = self.concrete_type(content_type or str(accept))
        return Response(
            error.status_code, body, [("content-type", chosen), ("vary", "Accept")], codec
        )

    def concrete_type(self, content_type: str) -> str:
        """``content_type`` as a user function returned it, made a single concrete media type.

        A user function that answers with the client's ``Accept`` value (the seed document's
        ``return data, accept``) may hand back a range (``*/*``, ``application/*``) or a list; the
        answer then carries what the registry negotiates for that value (``*/*`` is
        ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``), or ``application/octet-stream`` when no encoder
        matches it. A concrete type passes through as given, parameters and all.
        """
        ranges = parse_accept(content_type)
        if len(ranges) == 1 and ranges[0].specificity == 2:
            return content_type
        if not ranges:
            return content_type or OCTET_STREAM
        try:
            return str(self.registry.negotiate(content_type, self.settings.default_accept))
        except NotAcceptable:
            return OCTET_STREAM

    async def ainvoke(self, body: bytes, headers: Mapping[str, str] | Any) -> Response:
        """Answer ``/invocations`` from an event loop, never blocking it for long.

        A small request that only the built-in codecs handle, without user code (see
        :meth:`answers_on_loop`), is decoded and answered on the loop and only its model call
        leaves it (:meth:`acall_backend`): no thread hop for its own work, and the model calls of
        concurrent requests can be batched. Any other request runs whole in :attr:`work`, so
        however big it is and whatever user code does, the loop stays free for ``/ping`` and
        other requests. Either way the request holds one of :attr:`work`'s slots, and a saturated
        pool answers 503 with ``Retry-After`` at once.
        """
        try:
            if not self.answers_on_loop(body, headers):
                return await self.work.run(self.invoke, body, headers)
            return await self.arun(self._invocation(body, headers))
        except HTTPError as exc:
            return Response.error(exc)

    def answers_on_loop(self, body: bytes, headers: Mapping[str, str] | Any) -> bool:
        """Whether ``/invocations`` may decode and encode this request on the event loop.

        Only when its work is small and known: no user code, a body of at most
        :data:`LOOP_BODY_BYTES` with no ``Content-Encoding`` to inflate, ``Accept`` and
        ``Content-Type`` of at most :data:`LOOP_HEADER_BYTES`, and a content type and negotiated
        answer type that only the built-in codecs handle (a plugin's codec may do anything, as
        user code may). Unparseable headers say no: the pool path answers them.
        """
        if self.user_code is not None or len(body) > LOOP_BODY_BYTES:
            return False
        lowered = _lower_headers(headers)
        if lowered.get("content-encoding"):
            return False
        accept_header = lowered.get("accept") or ""
        content_type = lowered.get("content-type") or lowered.get("contenttype") or JSON
        if len(accept_header) + len(content_type) > LOOP_HEADER_BYTES:
            return False
        try:
            essence = parse_media_type(content_type).essence
            accept = self.registry.negotiate(
                accept_header or self.settings.default_accept, self.settings.default_accept
            )
        except HTTPError:
            return False
        return self.registry.built_in(essence, decode=True) and self.registry.built_in(
            accept.essence, decode=False
        )

    async def arun(self, steps: Steps[T]) -> T:
        """Drive a request handler on the event loop under a slot of :attr:`work` (503 when none
        is free): its backend calls awaited, the reading of a protobuf request and an answer of
        more than :data:`LOOP_ANSWER_BYTES` in the pool's threads. The slot is held until the
        thread work ends, even past a 504, as on the pool path."""
        held = self.work.hold()
        try:
            return await arun_steps(
                steps, functools.partial(self.acall_backend, held=held), held.run, _small_answer
            )
        finally:
            held.release()

    def call_backend(self, request: Request | SignaturesOf) -> Any:
        """A handler's backend call (see :mod:`tfio_handlers.steps`): a model version's signatures
        (:class:`SignaturesOf`, cached by the backend), or a decoded request: predict on arrays
        (a ``PredictRequest`` is read into arrays first, sharing its buffers), classify and
        regress on their messages."""
        if isinstance(request, SignaturesOf):
            return self.backend.signatures(request.model_name, request.version, request.label)
        if isinstance(request, PredictArrays):
            return self.backend.predict_arrays(request)
        if isinstance(request, PredictRequest):
            return self.backend.predict_arrays(PredictArrays.from_message(request))
        if isinstance(request, ClassificationRequest):
            return self.backend.classify(request)
        return self.backend.regress(request)

    async def acall_backend(self, request: Request | SignaturesOf, held: Held | None = None) -> Any:
        """:meth:`call_backend`, awaited: the backend's async twins (cached signatures at once;
        the embedded backend's model threads, the batching queue, a remote server's I/O), so
        nothing blocks the event loop. ``held``: the slot the request holds (:meth:`arun`), under
        which a protobuf request is read in a thread; without one, that read takes a slot."""
        if isinstance(request, SignaturesOf):
            return await self.backend.asignatures(
                request.model_name, request.version, request.label
            )
        # The only request in progress may have its model call run inline (backends.model_calls).
        # Requests that arrived with this one have tasks that have not run yet: one turn of the
        # loop lets them start (and take their slots) before this one counts itself alone.
        alone = self.work.busy <= 1
        if alone:
            await asyncio.sleep(0)
            alone = self.work.busy <= 1
        token = sole_request.set(alone)
        try:
            return await self._acall_model(request, held)
        finally:
            sole_request.reset(token)

    async def _acall_model(self, request: Request, held: Held | None) -> Any:
        if isinstance(request, PredictArrays):
            return await self.backend.apredict_arrays(request)
        if isinstance(request, PredictRequest):
            # Read in a thread: a few bytes of message may declare a tensor of up to the element
            # limit that one value fills (TensorFlow's broadcast), seconds of work off the loop.
            read = await (
                held.run(PredictArrays.from_message, request)
                if held is not None
                else self.work.run(PredictArrays.from_message, request)
            )
            return await self.backend.apredict_arrays(read)
        if isinstance(request, ClassificationRequest):
            return await self.backend.aclassify(request)
        return await self.backend.aregress(request)

    # -- steps ---------------------------------------------------------------------------------------

    def _decode(self, body: bytes, media_type: MediaType, context: Context) -> Request:
        started = perf_counter()
        request = self._to_request(self.registry.decode(body, media_type, context), context)
        context.decode_seconds = perf_counter() - started
        return request

    @staticmethod
    def _to_request(value: Any, context: Context) -> Request:
        """A decoded value as a TF Serving request for the context's model and signature."""
        from .protocol.requests import build_request

        if isinstance(value, (bytes, str)):
            # An input_handler answers with a TF Serving REST body, as in SageMaker's container.
            from .formats.json import decode_json

            raw = value.encode("utf-8") if isinstance(value, str) else value
            value = decode_json(raw, MediaType(JSON), context)
        return build_request(value, context)

    def _call(self, request: Request, context: Context) -> Answer:
        """:meth:`call_backend`, its time added to ``context.model_seconds`` (for user code's
        calls: ``output_handler``'s pipeline, ``transform_fn``'s ``predict``)."""
        started = perf_counter()
        answer: Answer = self.call_backend(request)
        _add_model_seconds(context, perf_counter() - started)
        return answer

    def _encode(self, response: Answer, accept: MediaType, context: Context) -> Response:
        started = perf_counter()
        body, content_type = self.registry.encode(response, accept, context)
        context.encode_seconds = perf_counter() - started
        if self.user_code is not None:
            content_type = self.concrete_type(content_type)
        return Response(
            200, body, [("content-type", content_type), ("vary", "Accept")], accept.essence
        )

    def _run_user_pipeline(self, body: bytes, media_type: MediaType, context: Context) -> Response:
        """``transform_fn`` or ``handler``: the user's function answers the whole request."""
        user = self.user_code
        assert user is not None
        if user.transform_fn is not None:
            hook = user.transform_fn
            args: tuple[Any, ...] = (
                user.data_for(body, media_type),
                media_type.essence,
                self._transform_accept(context.accept_header),
            )
            if hook.takes_context:
                args += (context,)
            name = "transform_fn"
            result = call_user(name, hook.function, *args)
            default_type = args[2]
        else:
            assert user.handler is not None
            name = "handler"
            result = call_user(name, user.handler.function, io.BytesIO(body), context)
            default_type = JSON
        answer = user_answer(name, result)
        if answer is None:
            raise UserCodeError(
                f"{name} returned None; expected bytes, str or (body, content_type)"
            )
        answer_body, content_type = answer
        chosen = self.concrete_type(content_type or default_type)
        return Response(200, answer_body, [("content-type", chosen)], media_type.essence)

    def _transform_accept(self, accept_header: str) -> str:
        """The ``accept`` that ``transform_fn`` receives: the header, ``*/*`` meaning the default.

        As the inference toolkit does, an ``Accept`` of only ``*/*`` becomes
        ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``; anything else is passed on as the client sent it.
        """
        ranges = parse_accept(accept_header)
        if ranges and all(r.essence == ANY and r.quality > 0 for r in ranges):
            return self.settings.default_accept
        return accept_header

    # -- predict from code -----------------------------------------------------------------------------

    def predict_value(self, value: Any, context: Context) -> Message:
        """Run a decoded value through the backend: for ``transform_fn``/``handler`` authors, who
        get the TF Serving response message."""
        if not context.signature_defs:
            self._load_signatures(context)
        return as_response_message(self._call(self._to_request(value, context), context))

    # -- health ------------------------------------------------------------------------------------------

    def ping(self) -> Response:
        """200 when the default model answers its status as AVAILABLE and every configured model
        has a version available (``Backend.models_not_ready``), else 503: loading, failed, or a
        model still waiting for its first version. ``/ping``, Ray Serve's health check and the
        route hook's ``readiness()`` all ask this."""
        try:
            self.backend.signatures(self.default_model, None, None)
            not_ready = self.backend.models_not_ready()
        except HTTPError as exc:
            return Response(
                503, error_body(f"Model not ready: {exc.message}"), [("content-type", JSON)]
            )
        if not_ready:
            reasons = "; ".join(f"{name}: {why}" for name, why in not_ready.items())
            return Response(
                503, error_body(f"Model not ready: {reasons}"), [("content-type", JSON)]
            )
        return Response(200, b"", [("content-type", JSON)])
