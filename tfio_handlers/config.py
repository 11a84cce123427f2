"""Settings, from arguments or from the environment.

SageMaker's variables keep their names and meanings (``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``,
``SAGEMAKER_MAX_PAYLOAD_IN_MB``, ...); the project's own are prefixed ``TFIO_HANDLERS_``. Every field
is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from .errors import BadRequest, HTTPError, PayloadTooLarge

__all__ = ["JsonResponseStyle", "Limits", "Settings", "env_int", "env_seconds"]

JsonResponseStyle = Literal["legacy", "tfs"]
"""How a plain JSON body (a list, a dict of lists, a TensorProto) is answered.

``legacy``: the proto3 JSON form of the TF Serving response, as SageMaker's legacy Python container and
the seed document show (``{"result": {"classifications": ...}}``). ``tfs``: TF Serving's REST form, as
SageMaker's newer TF Serving container answers (``{"predictions": ...}``).
"""

MIB = 1024 * 1024

DEFAULT_FILL_BYTES = 2 * 1024 * MIB
"""The default of :attr:`Limits.max_fill_bytes`: 2 GiB, room for the largest fill one request may
make under the default element limit (2**27 complex128 values) or for four 512 MiB float32 fills
at once."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds every codec enforces before it allocates, so hostile input costs nothing.

    The defaults allow a 100 MiB body holding up to 2**27 values (a 512 MiB float32 tensor), JSON nested
    up to 64 levels (a rank-63 tensor), strings of up to 64 MiB each, and answers of up to 100 MiB
    (as large as a request may be).
    """

    max_body_bytes: int = 100 * MIB
    max_elements: int = 2**27
    max_depth: int = 64
    max_string_bytes: int = 64 * MIB
    max_response_bytes: int = 100 * MIB
    """What one answer may write, checked before writing from the outputs' shapes and a lower
    bound of what the chosen format takes per element and per row (so an npy answer is not
    refused for what JSON would cost); see :meth:`check_response`."""
    max_examples: int = 2**17
    """How many ``tf.Example`` records one classify or regress request may build (131,072): each
    costs a message and a parse in the model, whatever its size, so a body of empty rows (an npy
    of shape ``[10**6, 0]``, a million ``[]`` lines) is refused before its examples are made."""

    max_fill_bytes: int = DEFAULT_FILL_BYTES
    """``TFIO_HANDLERS_MAX_FILL_BYTES``: the bytes that tensors filled by TensorFlow's broadcast (a
    ``TensorProto`` with fewer values than its shape holds) may take at once in the whole process,
    over every request in progress; unlike the other limits, per process, not per request
    (:mod:`tfio_handlers.tensors.fill_budget`). A server applies it when it starts
    (:func:`tfio_handlers.bootstrap.apply_process_limits`)."""

    def check_body(self, size: int) -> None:
        if size > self.max_body_bytes:
            raise PayloadTooLarge(
                f"Request body of {size} bytes is over the limit of {self.max_body_bytes} bytes"
            )

    def check_elements(self, count: int, what: str = "tensor") -> None:
        if count > self.max_elements:
            raise PayloadTooLarge(
                f"{what} holds {count} elements, over the limit of {self.max_elements}"
            )

    def check_shape(self, dims: Sequence[int], what: str = "tensor") -> None:
        """Bound a shape by :func:`shape_extent`: its elements, and the rows a zero dimension hides."""
        extent = shape_extent(dims)
        if extent > self.max_elements:
            raise PayloadTooLarge(
                f"{what} of shape {list(dims)} takes {extent} "
                f"{'elements' if 0 not in dims else 'rows'} to write, over the limit of "
                f"{self.max_elements}"
            )

    def check_examples(self, count: int, what: str = "request") -> None:
        """Refuse (413) a classify or regress request of more than ``max_examples`` records."""
        if count > self.max_examples:
            raise PayloadTooLarge(
                f"The {what} holds {count} records, over the limit of {self.max_examples} examples "
                "a classify or regress request may build (TFIO_HANDLERS_MAX_EXAMPLES)"
            )

    def check_response(
        self, estimate: int, what: str, dims: Sequence[int] | None, media_type: str
    ) -> None:
        """Refuse an answer that would write more than ``max_response_bytes`` (413), before it is
        written. ``estimate`` is a lower bound of its bytes in ``media_type``; ``what`` names the
        output that costs most (``dims`` its shape) so the client knows what to ask for instead."""
        if estimate > self.max_response_bytes:
            shape = f" of shape {list(dims)}" if dims is not None else ""
            raise PayloadTooLarge(
                f"The answer would take at least {estimate} bytes as {media_type} ({what}{shape}), "
                f"over the limit of {self.max_response_bytes} bytes on an answer "
                "(TFIO_HANDLERS_MAX_RESPONSE_BYTES)"
            )


def shape_extent(dims: Sequence[int]) -> int:
    """How much a shape costs to write: its element count, or, with a zero dimension, the rows before it.

    A tensor of shape ``[N, 0]`` holds no elements, yet every writer of nested lists (TF Serving
    JSON, CSV, JSON lines) writes its ``N`` empty rows and every reader that walks rows (a classify
    request's examples) makes ``N`` of something: so ``N`` is what the limits bound.
    """
    extent = 1
    for d in dims:
        if d == 0:
            return extent
        extent *= d
    return extent


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(
    env: Mapping[str, str],
    name: str,
    default: int | None,
    *,
    error: type[HTTPError] = BadRequest,
) -> int | None:
    """The integer an environment variable holds (``default`` when unset or blank); anything else
    raises ``error`` naming the variable (backends raise 503: a server so configured cannot serve).
    """
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise error(f"Environment variable {name}={value!r} is not an integer") from None


def env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A duration in seconds from an environment variable (``default`` when unset or blank; 0 turns
    the deadline off); anything else, negative numbers included, raises BadRequest naming it."""
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise BadRequest(f"Environment variable {name}={value!r} is not a number of seconds")
    return seconds


def _limit(env: Mapping[str, str], name: str, default: int) -> int:
    """A limit from the variable ``name``: unset, blank or 0 keeps ``default``; a negative value
    stops start-up (it would refuse every request)."""
    value = env_int(env, name, default)
    if value is None or value == 0:
        return default
    if value < 0:
        raise BadRequest(
            f"Environment variable {name}={value} is negative: give a positive limit "
            f"(0 or unset: the default, {default})"
        )
    return value


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise BadRequest(f"Environment variable {name}={value!r} must be at least 1")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a pipeline needs to know that is not in the request."""

    default_accept: str = "application/json"
    """``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``: the response type for a missing or ``*/*`` Accept."""
    limits: Limits = field(default_factory=Limits)
    """``SAGEMAKER_MAX_PAYLOAD_IN_MB`` sets ``limits.max_body_bytes``; ``TFIO_HANDLERS_MAX_ELEMENTS``,
    ``TFIO_HANDLERS_MAX_DEPTH``, ``TFIO_HANDLERS_MAX_STRING_BYTES``,
    ``TFIO_HANDLERS_MAX_RESPONSE_BYTES``, ``TFIO_HANDLERS_MAX_EXAMPLES`` and
    ``TFIO_HANDLERS_MAX_FILL_BYTES`` the others."""
    json_response_style: JsonResponseStyle = "legacy"
    """``TFIO_HANDLERS_JSON_RESPONSE``: ``legacy`` or ``tfs``, see :data:`JsonResponseStyle`."""
    strict_json: bool = False
    """``TFIO_HANDLERS_STRICT_JSON``: write only RFC 8259 JSON (non-finite floats become ``null``)."""
    enable_pickle: bool = False
    """``TFIO_HANDLERS_ENABLE_PICKLE``: accept ``application/python-pickle`` through a restricted
    unpickler that loads only numpy arrays and plain builtin containers and scalars."""
    unsafe_pickle: bool = False
    """``TFIO_HANDLERS_UNSAFE_PICKLE``: full, unrestricted pickle. Runs arbitrary code; never for
    endpoints that untrusted clients reach."""
    load_plugins: bool = True
    """``TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD=1`` turns off loading of entry-point plugins."""
    allowed_plugins: frozenset[str] | None = None
    """``TFIO_HANDLERS_PLUGINS``: a comma-separated allow-list of entry-point plugin names."""
    program: str = "inference.py"
    """``SAGEMAKER_PROGRAM``: the user's code file, relative to the code directory."""
    default_model_name: str | None = None
    """``SAGEMAKER_TFS_DEFAULT_MODEL_NAME``: the model ``/invocations`` serves when the request names
    none (no ``tfs-model-name``)."""
    request_timeout: float = 60.0
    """``SAGEMAKER_MODEL_SERVER_TIMEOUT``: seconds before a request is answered 504."""
    max_concurrent_requests: int = 64
    """``TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS``: requests whose user code or model work may run at
    once in one worker process (the size of its work pool); past it, 503 with ``Retry-After`` at
    once. Work that outlived its timeout keeps its slot until it really ends. The default takes 64
    keep-alive clients even when the kernel hands all their connections to one worker."""
    header_timeout: float = 10.0
    """``TFIO_HANDLERS_HEADER_TIMEOUT``: seconds from a connection's first byte (or its opening, or
    the previous answer) until the request's headers are in; then 408 and the connection closed."""
    body_timeout: float = 60.0
    """``TFIO_HANDLERS_BODY_TIMEOUT``: seconds from the headers until the declared body is in; then
    408 and the connection closed."""
    keep_alive_timeout: float = 5.0
    """``TFIO_HANDLERS_KEEP_ALIVE_TIMEOUT``: seconds an idle keep-alive connection stays open."""
    max_connections: int = 1000
    """``TFIO_HANDLERS_MAX_CONNECTIONS``: open connections per worker process; past it a new
    connection gets 503 and is closed."""
    metrics: bool = True
    """``TFIO_HANDLERS_METRICS``: count requests and answer ``GET /metrics`` (Prometheus; needs the
    ``metrics`` extra, else ``/metrics`` answers 501). ``0`` turns both off."""
    gc_freeze: bool = True
    """``TFIO_HANDLERS_GC_FREEZE``: once a served app's pipeline is built (TensorFlow imported,
    the models loaded), move every object alive to the garbage collector's permanent generation
    (``gc.freeze()``), so that its full collections stop walking TensorFlow's millions of objects:
    each took tens to hundreds of milliseconds, every request in flight waiting (p99 at
    concurrency 64: 170-300 ms, 45 ms frozen). ``0`` leaves the collector alone."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the settings from ``env`` (``os.environ`` by default); keyword arguments win."""
        env = os.environ if env is None else env
        base = cls()  # the defaults, named once: in the fields above
        limits = base.limits
        payload_mb = env_int(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", None)
        if payload_mb is not None and payload_mb < 0:
            raise BadRequest(
                f"Environment variable SAGEMAKER_MAX_PAYLOAD_IN_MB={payload_mb} is negative"
            )
        limits = replace(
            limits,
            max_body_bytes=payload_mb * MIB if payload_mb is not None else limits.max_body_bytes,
            max_elements=_limit(env, "TFIO_HANDLERS_MAX_ELEMENTS", limits.max_elements),
            max_depth=_limit(env, "TFIO_HANDLERS_MAX_DEPTH", limits.max_depth),
            max_string_bytes=_limit(env, "TFIO_HANDLERS_MAX_STRING_BYTES", limits.max_string_bytes),
            max_response_bytes=_limit(
                env, "TFIO_HANDLERS_MAX_RESPONSE_BYTES", limits.max_response_bytes
            ),
            max_examples=_limit(env, "TFIO_HANDLERS_MAX_EXAMPLES", limits.max_examples),
            max_fill_bytes=_limit(env, "TFIO_HANDLERS_MAX_FILL_BYTES", limits.max_fill_bytes),
        )
        style = env.get("TFIO_HANDLERS_JSON_RESPONSE", "legacy").strip().lower() or "legacy"
        if style not in ("legacy", "tfs"):
            raise BadRequest(f"TFIO_HANDLERS_JSON_RESPONSE={style!r}: expected 'legacy' or 'tfs'")
        allowed = env.get("TFIO_HANDLERS_PLUGINS")
        timeout = env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT")
        settings = cls(
            default_accept=(env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "application/json"),
            limits=limits,
            json_response_style=style,  # type: ignore[arg-type]
            strict_json=_flag(env, "TFIO_HANDLERS_STRICT_JSON"),
            enable_pickle=_flag(env, "TFIO_HANDLERS_ENABLE_PICKLE"),
            unsafe_pickle=_flag(env, "TFIO_HANDLERS_UNSAFE_PICKLE"),
            load_plugins=not _flag(env, "TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD"),
            allowed_plugins=(
                frozenset(p.strip() for p in allowed.split(",") if p.strip())
                if allowed is not None
                else None
            ),
            program=env.get("SAGEMAKER_PROGRAM") or base.program,
            default_model_name=env.get("SAGEMAKER_TFS_DEFAULT_MODEL_NAME") or None,
            request_timeout=float(timeout) if timeout else base.request_timeout,
            max_concurrent_requests=_positive(
                env_int(env, "TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS", base.max_concurrent_requests)
                or 0,
                "TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS",
            ),
            header_timeout=env_seconds(env, "TFIO_HANDLERS_HEADER_TIMEOUT", base.header_timeout),
            body_timeout=env_seconds(env, "TFIO_HANDLERS_BODY_TIMEOUT", base.body_timeout),
            keep_alive_timeout=env_seconds(
                env, "TFIO_HANDLERS_KEEP_ALIVE_TIMEOUT", base.keep_alive_timeout
            ),
            max_connections=_positive(
                env_int(env, "TFIO_HANDLERS_MAX_CONNECTIONS", base.max_connections) or 0,
                "TFIO_HANDLERS_MAX_CONNECTIONS",
            ),
            metrics=_flag(env, "TFIO_HANDLERS_METRICS", default=base.metrics),
            gc_freeze=_flag(env, "TFIO_HANDLERS_GC_FREEZE", default=base.gc_freeze),
        )
        return replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]
