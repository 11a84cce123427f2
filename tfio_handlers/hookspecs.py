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

A plugin that speaks another protocol (KServe's and Triton's Open Inference Protocol, say) implements
:func:`register_routes`: it declares HTTP routes, which both adapters (ASGI and WSGI) serve beside the
built-in ones. SageMaker's ``/ping`` and ``/invocations`` and TF Serving's ``/v1/...`` are built-in
route plugins themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import pluggy

if TYPE_CHECKING:
    from .adapters.routes import AddRoute
    from .context import Context
    from .media import MediaType
    from .protocol.arrays import Prediction
    from .protos import ClassificationResponse, RegressionResponse

__all__ = [
    "PROJECT_NAME",
    "Answer",
    "Decoder",
    "Encoded",
    "Encoder",
    "Register",
    "decode",
    "encode",
    "hookimpl",
    "hookspec",
    "register_codecs",
    "register_routes",
]

PROJECT_NAME = "tfio_handlers"
"""The pluggy project name: the markers' name and the entry-point group plugins are found in."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""The marker of the hook specifications below (pluggy's ``HookspecMarker``); plugins never need it."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""The marker of a plugin's hook implementations: ``@hookimpl def register_codecs(register): ...``."""

Answer: TypeAlias = "Prediction | ClassificationResponse | RegressionResponse"
"""What an encoder receives: a :class:`~tfio_handlers.protocol.arrays.Prediction` for predict, the
``ClassificationResponse`` or ``RegressionResponse`` message for classify and regress."""

Encoded: TypeAlias = "bytes | str | tuple[bytes | str, str] | None"
"""What an encoder returns: the body (``bytes`` or any bytes-like object; a ``str`` is sent as UTF-8),
a ``(body, content_type)`` tuple to answer with another content type, or ``None`` to pass."""

Decoder: TypeAlias = Callable[[bytes, "MediaType", "Context"], Any]
"""``decoder(body, media_type, context)`` returns a request value (see :func:`register_codecs`), or
``None`` for "not mine"."""

Encoder: TypeAlias = Callable[["Answer", "MediaType", "Context"], "Encoded"]
"""``encoder(response, media_type, context)`` receives an :data:`Answer` and returns :data:`Encoded`:
the body, ``(body, content_type)``, or ``None`` for "not mine"."""


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

    Called once when the plugin is registered (and again whenever the plugin set changes). The helpers
    a codec needs (input specs, the cast policy, response accessors, answer bounds) are in
    :mod:`tfio_handlers.codec`.

    A **decoder** is ``decode(body: bytes, media_type: MediaType, context: Context)`` (:data:`Decoder`).
    ``media_type`` carries the request's parameters; a decoder registered with ``aliases`` sees the
    type it registered, whichever alias the request named. It returns a request value:

    * :class:`~tfio_handlers.protocol.arrays.PredictArrays` (named input arrays, the form requests take
      inside the library), its model spec completed from ``context``;
    * a TF Serving request message (``PredictRequest``, ``ClassificationRequest``,
      ``RegressionRequest``, ours or TF Serving's class), which also sets the method;
    * a plain value that the library turns into a request using ``context.signature``: a
      ``numpy.ndarray`` or nested lists (already batched: the single input's value), a dict of input
      name to value, a ``TensorProto`` (the single input), or for classify/regress signatures a list
      of feature dicts (one per ``tf.Example``);
    * ``bytes`` or ``str``: a TF Serving REST JSON body, read again by the built-in JSON decoder (as
      SageMaker's ``input_handler`` may answer with the JSON it wants sent to TF Serving);
    * ``None``: the body is not for this decoder, and the next one is asked.

    An **encoder** is ``encode(response: Answer, media_type: MediaType, context: Context)``
    (:data:`Encoder`), ``response`` the backend's answer (:data:`Answer`): a
    :class:`~tfio_handlers.protocol.arrays.Prediction` for predict (``response.outputs`` are named
    numpy arrays in name order; ``response.to_message()`` gives the ``PredictResponse``), a
    ``ClassificationResponse`` or a ``RegressionResponse`` message for classify and regress. It
    returns (:data:`Encoded`) the body as ``bytes`` (any bytes-like object; a ``str`` is sent as
    UTF-8), sent with the negotiated media type's essence as ``Content-Type``; a ``(body,
    content_type)`` tuple to answer with another content type; or ``None`` to pass (when every
    encoder passes, the client gets 406). Any other return value is a 500.

    Either may raise :class:`tfio_handlers.errors.HTTPError` (``BadRequest``, ``NotAcceptable``,
    ``PayloadTooLarge``, ...) to answer with that status and ``{"error": "<message>"}``.
    """


@hookspec(firstresult=True)
def decode(body: bytes, media_type: MediaType, context: Context) -> Any:
    """Decode a request body of any media type; return ``None`` to let the next plugin try.

    Asked before the codecs registered for the request's media type by plugins of the same or a lower
    priority kind, with the request's media type as it came. The return value has the meaning
    described in :func:`register_codecs` (a :data:`Decoder`'s: a request value, ``bytes``/``str`` read
    again as TF Serving JSON, or ``None``).
    """


@hookspec(firstresult=True)
def encode(response: Answer, media_type: MediaType, context: Context) -> Encoded:
    """Encode a response for the negotiated media type, whatever it is; ``None`` passes.

    ``media_type`` is the type chosen from the client's ``Accept`` among the registered encoders; when
    none of them is acceptable, the client's preferred concrete type, for this hook to try (``None``
    then means 406). ``response`` and the return value are an :data:`Encoder`'s: the body, a ``(body,
    content_type)`` tuple to answer with another content type, or ``None``.
    """


@hookspec
def register_routes(add_route: AddRoute) -> None:
    """Declare the HTTP routes this plugin answers, by calling ``add_route`` once per method and path.

    Called when the plugin set changes, like :func:`register_codecs`. The call is::

        add_route(method, path, handler, *, work="model", name=None, ignore_case=False, ahandler=None)

    * ``method``: ``"GET"``, ``"POST"``, ...; ``"*"`` takes every method. A path that some route's
      template matches, but for another method, is a 404 like any unknown path.
    * ``path``: a template. ``{name}`` matches one non-empty segment (no ``/``); a last
      ``{name:path}`` matches the rest of the path. It is matched against the percent-decoded path,
      any mount prefix removed, case-sensitively unless ``ignore_case``.
    * ``handler(request)`` receives a :class:`~tfio_handlers.adapters.routes.RouteRequest` (method,
      path, ``target`` as received, ``params`` from the template, lower-cased ``headers``, ``body``;
      and the pipeline's pieces: ``pipeline``, ``backend``, ``settings``, ``limits``, ``registry``,
      ``user_code``, ``readiness()``) and returns a :class:`~tfio_handlers.pipeline.Response`
      (``status``, ``body``, ``headers``). Raising :class:`~tfio_handlers.errors.HTTPError` answers
      that status with ``{"error": "<message>"}``; anything else is logged and answered 500, so a
      handler whose protocol has its own error body catches its errors itself.
    * ``work``: ``"model"`` (the default) runs the handler in the pipeline's bounded work pool under
      the request timeout, as ``/invocations`` (503 at once when the pool is full, 504 past the
      timeout); ``"light"`` runs it in a thread beside the pool, under the timeout (status and
      metadata: they answer while the pool is full); ``"health"`` runs it at once, before the body
      is read and whether or not the model has loaded (probes: it must not block). A function of
      the request may choose per request (:data:`~tfio_handlers.adapters.routes.WorkChooser`).
    * ``name``: the route's name in logs and in ``tfio-handlers plugins``.
    * ``ahandler``: an ``async`` version for ASGI servers, awaited on the event loop instead of
      running ``handler`` as ``work`` says; it must hand blocking work to
      ``request.pipeline.work.run(...)`` or a thread itself.

    Before a non-health handler runs, the adapter has checked the body against the body limit (413)
    and that the model has loaded (503). Routes are tried user code first, then third-party plugins,
    then the built-ins, so a plugin may replace a built-in route; within one kind, more specific
    templates first. Two plugins of one kind declaring the same method on templates of the same
    shape (``/a/{x}`` and ``/a/{y}``) are a :class:`~tfio_handlers.registry.PluginConflict` at
    start-up.
    """
