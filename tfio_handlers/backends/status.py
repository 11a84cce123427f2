"""TF Serving's status codes and HTTP statuses: one table, both directions, and the error of each status.

TF Serving carries errors as ``absl::Status`` codes (the gRPC codes) and its REST handler answers each
with an HTTP status (``http_server.cc``). The three backends meet the same errors in three forms: the
embedded backend as a code number on TensorFlow's ``OpError``, the gRPC backend as a code name, the
REST backend as the HTTP status itself. Each turns it into the library error of that status here, so
a client sees the same status whichever backend answered.
"""

from __future__ import annotations

from ..errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    HTTPError,
    InternalError,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    Unimplemented,
    UnsupportedMediaType,
)

__all__ = [
    "GRPC_TO_HTTP",
    "code_number",
    "grpc_code_for_status",
    "grpc_code_of",
    "http_error",
    "http_status_for_code",
    "status_error",
]

_CODES: tuple[tuple[str, int], ...] = (
    ("OK", 200),
    ("CANCELLED", 499),
    ("UNKNOWN", 500),
    ("INVALID_ARGUMENT", 400),
    ("DEADLINE_EXCEEDED", 504),
    ("NOT_FOUND", 404),
    ("ALREADY_EXISTS", 409),
    ("PERMISSION_DENIED", 403),
    ("RESOURCE_EXHAUSTED", 429),
    ("FAILED_PRECONDITION", 400),
    ("ABORTED", 409),
    ("OUT_OF_RANGE", 400),
    ("UNIMPLEMENTED", 501),
    ("INTERNAL", 500),
    ("UNAVAILABLE", 503),
    ("DATA_LOSS", 500),
    ("UNAUTHENTICATED", 401),
)
"""Each status code (its number is its position) with the HTTP status TF Serving answers for it."""

GRPC_TO_HTTP: dict[str, int] = dict(_CODES)
"""Status code name → HTTP status, as TF Serving's REST handler maps ``absl::Status`` codes."""

_HTTP_TO_GRPC: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_STATUS_CLASSES: dict[int, type[HTTPError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        NotFound,
        NotAcceptable,
        PayloadTooLarge,
        UnsupportedMediaType,
        InternalError,
        Unimplemented,
        BackendUnavailable,
        BackendTimeout,
    )
}
"""The error class of each status that has one, keyed by the status the class declares itself."""


def http_status_for_code(code: str | int) -> int:
    """The HTTP status TF Serving answers for a status code, by name (``"NOT_FOUND"``) or number (5).

    An unknown code is 500, as TF Serving treats it.
    """
    if isinstance(code, int):
        return _CODES[code][1] if 0 <= code < len(_CODES) else 500
    return GRPC_TO_HTTP.get(code, 500)


def grpc_code_for_status(status: int) -> str:
    """The gRPC status code name for an HTTP status: the inverse of :data:`GRPC_TO_HTTP`.

    Where several codes share a status the most common is chosen (400 → INVALID_ARGUMENT);
    statuses with no code of their own go by class: other 4xx → INVALID_ARGUMENT (406, 415, ...),
    other 5xx → INTERNAL.
    """
    code = _HTTP_TO_GRPC.get(status)
    if code is not None:
        return code
    return "INVALID_ARGUMENT" if 400 <= status < 500 else "INTERNAL"


def http_error(status: int, message: str) -> HTTPError:
    """The library error for an HTTP ``status``: its own class where one exists, else ``HTTPError``."""
    cls = _STATUS_CLASSES.get(status)
    return cls(message) if cls is not None else HTTPError(message, status=status)


def status_error(code: str, message: str) -> HTTPError:
    """The library error for TF Serving's status ``code`` (by name), remembering the code itself.

    Several codes share an HTTP status (``FAILED_PRECONDITION`` and ``INVALID_ARGUMENT`` are both
    400); the gRPC adapter answers with the remembered code (:func:`grpc_code_of`), as
    ``tensorflow_model_server`` would.
    """
    error = http_error(http_status_for_code(code), message)
    error.grpc_code = code  # type: ignore[attr-defined]
    return error


def grpc_code_of(error: HTTPError) -> str:
    """The gRPC code name of ``error``: the one :func:`status_error` gave it, else by its status."""
    code = getattr(error, "grpc_code", None)
    return code if isinstance(code, str) else grpc_code_for_status(error.status_code)


def code_number(code: str) -> int:
    """The number of TF Serving's status code ``code`` (``"NOT_FOUND"`` → 5; unknown → 2)."""
    for number, (name, _) in enumerate(_CODES):
        if name == code:
            return number
    return 2
