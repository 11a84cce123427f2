"""The hooks a plugin implements. Each docstring is the contract; ``docs/plugins.md`` shows them in use.

A plugin is any object or module with functions decorated by :data:`hookimpl`. Three kinds exist, and
the registry calls them in this order, first answer winning:

1. the user's code (``inference.py``: ``input_fn``/``output_fn`` and friends), wrapped as a plugin;
2. third-party plugins, from the ``tfio_handlers`` entry-point group or registered in code;
3. the built-in codecs (JSON, CSV, protobuf, JSON lines, npy, pickle).

Most plugins implement only :func:`register_codecs`: they declare media types with a decoder and an
encoder, and the registry builds one table from all of them, where two plugins of the same kind claiming
one media type are reported as a conflict. :func:`decode` and :func:`encode` are for plugins that want a
look at every request whatever its type (as the user's ``input_fn`` does); they return ``None`` to pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from .context import Context
    from .media import MediaType

__all__ = [
    "PROJECT_NAME",
    "Decoder",
    "Encoder",
    "Register",
    "decode",
    "encode",
    "hookimpl",
    "hookspec",
    "register_codecs",
]

PROJECT_NAME = "tfio_handlers"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Decoder = Callable[[bytes, "MediaType", "Context"], Any]
"""``decoder(body, media_type, context)`` returns a request value, or ``None`` for "not mine"."""

Encoder = Callable[[Any, "MediaType", "Context"], "bytes | str | tuple[bytes | str, str] | None"]
"""``encoder(response, media_type, context)`` returns the body, ``(body, content_type)``, or ``None``
for "not mine"."""


class Register(Protocol):
    """The callback :func:`register_codecs` receives."""

    def __call__(
        self,
        media_type: str,
        *,
        decode: Decoder | None = None,
        encode: Encoder | None = None,
        aliases: tuple[str, ...] | list[str] = (),
        text: bool | None = None,
    ) -> None:
        """Declare a codec for ``media_type`` (an essence such as ``"text/csv"``).

        ``decode`` and ``encode`` are optional: give either or both. ``aliases`` are other media types
        that mean the same thing (``application/x-protobuf`` for ``application/octet-stream``).
        ``text`` says whether a user ``input_fn`` receives this type as ``str`` (decoded by its
        charset) rather than ``bytes``; by default types under ``text/`` and JSON types are text.
        """


@hookspec
def register_codecs(register: Register) -> None:
    """Declare the media types this plugin decodes and encodes, by calling ``register`` once per type.

    Called once when the plugin is registered (and again whenever the plugin set changes). A decoder is
    ``decode(body: bytes, media_type: MediaType, context: Context)`` and returns a request value:
    :class:`~tfio_handlers.protocol.arrays.PredictArrays` (named input arrays), a TF Serving request
    message (``PredictRequest``, ``ClassificationRequest``, ``RegressionRequest``), or a plain value (a
    ``numpy.ndarray``, nested lists, a dict of them, a ``TensorProto``, a list of feature dicts) that the
    library turns into a request using ``context.signature``; ``None`` means the body is not for this
    decoder and the next one is asked. An encoder is ``encode(response, media_type: MediaType, context:
    Context)`` with ``response`` the backend's answer: a :class:`~tfio_handlers.protocol.arrays.Prediction`
    for predict (``response.outputs`` are named numpy arrays; ``response.to_message()`` gives the
    ``PredictResponse``), a ``ClassificationResponse`` or a ``RegressionResponse`` message for classify and
    regress. It returns the body as ``bytes`` (or ``str``, sent as UTF-8), a ``(body, content_type)``
    tuple to answer with another content type, or ``None`` to pass. Either may raise
    :class:`tfio_handlers.errors.HTTPError` to answer with that status.
    """


@hookspec(firstresult=True)
def decode(body: bytes, media_type: MediaType, context: Context) -> Any:
    """Decode a request body of any media type; return ``None`` to let the next plugin try.

    Asked before the codecs registered for the request's media type by plugins of the same or a lower
    priority kind. The return value has the meaning described in :func:`register_codecs`.
    """


@hookspec(firstresult=True)
def encode(response: Any, media_type: MediaType, context: Context) -> bytes | str | None:
    """Encode a response for the negotiated media type, whatever it is; ``None`` passes.

    ``media_type`` is the type chosen from the client's ``Accept`` among the registered encoders. A
    plugin may also return a ``(body, content_type)`` tuple to answer with another content type.
    """
