"""Request ids, and the record of one request that the middleware and the pipeline share.

A request id follows a request through every log line written while it is handled and back to the
client. The id a client (or a load balancer) sent in ``X-Request-ID`` is kept, else SageMaker's
``X-Amzn-RequestId``; a request with neither, or with one that is not a short printable token, gets a
new one. The middleware answers it in ``X-Request-ID``.

The middleware opens a :class:`RequestRecord` per request and makes it the :data:`current` one (a
:class:`contextvars.ContextVar`: the pipeline's work pool and ``asyncio.to_thread`` carry it into
their threads). The pipeline hands the record its :class:`~tfio_handlers.context.Context`, where the
model, the version and the stage timings are; the middleware reads them once the answer is written,
for the metrics and the access line. Standard library only: the pipeline imports this module.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..context import Context

__all__ = [
    "INCOMING_HEADERS",
    "MAX_ID_LENGTH",
    "REQUEST_ID_HEADER",
    "RequestRecord",
    "current",
    "new_request_id",
    "request_id_from",
]

REQUEST_ID_HEADER = "x-request-id"
"""The header a request id is read from first, and answered in (lower-case: ASGI's form)."""

INCOMING_HEADERS: tuple[str, ...] = (REQUEST_ID_HEADER, "x-amzn-requestid")
"""Where a request's own id is looked for, in order: ``X-Request-ID``, then SageMaker's."""

MAX_ID_LENGTH = 200
"""The longest id kept; a longer one (or one with spaces or control characters) is replaced, so a
client cannot write arbitrary text into the log or the response headers."""

current: ContextVar[RequestRecord | None] = ContextVar("tfio_handlers_request", default=None)
"""The request being handled in this thread or task, while the middleware handles one."""


def new_request_id() -> str:
    """A new id: 32 hex digits of randomness, as a UUID4 has.

    From :mod:`random`, seeded from the system's entropy and seeded again in each forked worker
    (by :mod:`random` itself), so ids are unique across workers; an id is a label, not a secret.
    ``os.urandom`` was a system call per request, on which the event loop let another thread
    take the GIL and then waited to get it back.
    """
    return f"{random.getrandbits(128):032x}"


def _acceptable(value: str) -> bool:
    """Whether ``value`` may be kept as an id: 1-200 printable ASCII characters, no spaces."""
    return (
        0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def request_id_from(headers: Mapping[str, str]) -> tuple[str, bool]:
    """The request's id from ``headers`` (lower-case names), and whether it was the client's.

    A missing or unacceptable id (see :data:`MAX_ID_LENGTH`) gives a new one.
    """
    for name in INCOMING_HEADERS:
        value = headers.get(name)
        if value is not None:
            value = value.strip()
            if _acceptable(value):
                return value, True
    return new_request_id(), False


@dataclass(slots=True)
class RequestRecord:
    """One request as the middleware and the pipeline see it; written by one thread at a time."""

    request_id: str
    context: Context | None = None
    """The pipeline's context of this request (model, version, stage timings), once it has one."""
    user_code_failed: bool = False
    """Whether the user's code raised while answering it (``UserCodeError``)."""
    stages: tuple[float | None, float | None, float | None] | None = None
    """Decode, model and encode seconds of a request answered without a :class:`Context` (TF
    Serving's REST API times its own); ``None`` when it has a context or was not timed."""
    trace_headers: dict[str, str] | None = None
    """The W3C trace-context headers the client sent (``traceparent``, ``tracestate``), if any."""
    codec: str | None = None
    """What the adapter says handled it (``application/json``, ``tfs:predict``, ``-``), when it
    said (:func:`tfio_handlers.adapters.serving.hand_codec`); else the answer's media type."""
