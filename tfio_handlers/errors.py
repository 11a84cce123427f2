"""One error family for the whole library; every error knows the HTTP status it answers with.

Codecs, protocol mapping, backends and user code all raise these; the adapters turn any of them into
``{"error": "<message>"}`` with the carried status, the body shape TensorFlow Serving uses. A user's
``input_fn`` may raise :class:`HTTPError` with a status of its own choosing.
"""

from __future__ import annotations

import json
from typing import ClassVar

__all__ = [
    "BackendTimeout",
    "BackendUnavailable",
    "BadRequest",
    "HTTPError",
    "InternalError",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServerBusy",
    "Unimplemented",
    "UnsupportedMediaType",
    "UserCodeError",
    "error_body",
]


class HTTPError(Exception):
    """An error that carries the HTTP status a client should see and a message safe to show it.

    ``HTTPError("model is warming up", status=503)`` works for any status; the subclasses fix the
    status for the common cases so that ``except BadRequest`` reads well.
    """

    status: ClassVar[int] = 500
    """The default status of this class; an instance may override it (see :attr:`status_code`)."""
    headers: ClassVar[tuple[tuple[str, str], ...]] = ()
    """Headers the answer carries besides ``Content-Type`` (``Retry-After``, ``Connection``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code: int = self.status if status is None else int(status)

    def to_json(self) -> bytes:
        """The response body: ``{"error": "<message>"}``."""
        return error_body(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status_code})"


class BadRequest(HTTPError):
    """400: the payload is malformed or does not fit the model's signature."""

    status = 400


class NotFound(HTTPError):
    """404: unknown model, version, label or signature."""

    status = 404


class NotAcceptable(HTTPError):
    """406: no registered encoder produces any media type the client accepts."""

    status = 406


class PayloadTooLarge(HTTPError):
    """413: the body, or what it claims to hold, is over a configured limit."""

    status = 413


class RequestTimeout(HTTPError):
    """408: the request's body did not arrive within the body deadline; the connection is closed."""

    status = 408
    headers = (("connection", "close"),)


class UnsupportedMediaType(HTTPError):
    """415: no registered decoder takes the request's media type (or it is disabled, as pickle is)."""

    status = 415


class InternalError(HTTPError):
    """500: a failure inside the library or the backend."""

    status = 500


class UserCodeError(HTTPError):
    """500: the user's ``input_fn``/``output_fn``/handler raised; the traceback is logged server-side only."""

    status = 500


class Unimplemented(HTTPError):
    """501: the format cannot carry this dtype (e.g. half floats in TF Serving JSON)."""

    status = 501


class BackendUnavailable(HTTPError):
    """503: the model server cannot be reached, or this server is not ready or is shutting down."""

    status = 503


class ServerBusy(BackendUnavailable):
    """503 with ``Retry-After``: the worker is saturated, every slot for user code and model work
    taken or its budget for filled tensors held by other requests; try again soon.

    Answered at once, before the work it would wait for starts, so a saturated worker sheds load
    instead of queueing it behind requests that may never finish.
    """

    headers = (("retry-after", "1"),)


class BackendTimeout(HTTPError):
    """504: the model call ran past its deadline."""

    status = 504


MAX_MESSAGE_CHARS = 4096
"""The longest error message sent: a message that quotes the request (TF Serving's "JSON Value: ..."
texts do) must not make a 50 MB answer out of a 50 MB request."""


def error_body(message: str) -> bytes:
    """Encode ``{"error": message}`` as JSON bytes (non-ASCII kept readable, always valid UTF-8).

    A message over :data:`MAX_MESSAGE_CHARS` is cut there, saying how much was left out.
    """
    if len(message) > MAX_MESSAGE_CHARS:
        left_out = len(message) - MAX_MESSAGE_CHARS
        message = f"{message[:MAX_MESSAGE_CHARS]}... ({left_out} more characters)"
    return json.dumps({"error": message}, ensure_ascii=False).encode("utf-8", "replace")
