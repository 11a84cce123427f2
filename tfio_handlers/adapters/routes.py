"""Routes: what a plugin's :func:`~tfio_handlers.hookspecs.register_routes` declares, and how a request
finds one.

A route is an HTTP method, a path template and a handler. The template is a path whose segments may
hold ``{name}`` (one non-empty segment, no ``/``) or end with ``{name:path}`` (the rest of the path,
``/`` included); ``/v2/models/{name}/versions/{version}/infer`` and ``/v1/{rest:path}`` are templates.
The registry collects every plugin's routes into a :class:`RouteTable`; both adapters (ASGI and WSGI)
ask it which route takes a request, then run the route's handler as its :data:`Work` says: in the
pipeline's bounded work pool, in a thread beside it, or at once. SageMaker's and TF Serving's routes
are built-in route plugins (:mod:`.builtin_routes`), found through the same table.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

from ..errors import InternalError

if TYPE_CHECKING:
    from ..config import Limits, Settings
    from ..pipeline import Pipeline, Response
    from ..registry import Kind, Registry
    from ..usercode import UserCode
    from .serving import ServingState

__all__ = [
    "ANY_METHOD",
    "AddRoute",
    "AsyncRouteHandler",
    "Endpoint",
    "RouteHandler",
    "RouteRequest",
    "RouteTable",
    "Work",
    "WorkChooser",
    "compile_template",
]

ANY_METHOD = "*"
"""The method of a route that takes every method (TF Serving's ``/v1/...``, which answers the ones
it does not dispatch with its own "Malformed request")."""

Work: TypeAlias = Literal["model", "light", "health"]
"""Where a route's handler runs, and what it may wait for:

* ``"model"``: in the pipeline's bounded work pool (``TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS``; a
  saturated pool answers 503 with ``Retry-After`` at once), under the request timeout
  (``SAGEMAKER_MODEL_SERVER_TIMEOUT``, 504), as ``/invocations`` does: for anything that calls the
  model or user code;
* ``"light"``: in a thread beside the pool, under the request timeout: for status and metadata,
  which keep answering while the pool is saturated;
* ``"health"``: at once, on the server's event loop or worker thread, before the body is read and
  whether or not the model has loaded: for liveness and readiness probes; the handler must not
  block, and ``request.pipeline`` raises 503 while the model loads.
"""

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What a route's handler receives: the request, and the pipeline's pieces it may need.

    ``path`` is percent-decoded with any mount prefix removed (what templates match); ``target`` is
    the path as received, still percent-encoded, with its query string (TF Serving matches its URL
    rules against it); ``params`` are the template's ``{name}`` parts of ``path``; ``headers`` have
    lower-case names; ``body`` is the whole body, bounded by the body limit (still content-coded:
    :meth:`~tfio_handlers.pipeline.Pipeline.decoded_body` undoes ``Content-Encoding``), empty for
    ``"health"`` routes.
    """

    method: str
    path: str
    target: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    state: ServingState
    loaded: Pipeline | None = None

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline; 503 (``BackendUnavailable``) while it loads or the server drains."""
        if self.loaded is not None:
            return self.loaded
        return self.state.pipeline

    @property
    def backend(self) -> object:
        """The model backend (:class:`~tfio_handlers.backends.base.Backend`)."""
        return self.pipeline.backend

    @property
    def settings(self) -> Settings:
        """The server's settings."""
        return self.pipeline.settings

    @property
    def limits(self) -> Limits:
        """The bounds every request is held to (``settings.limits``)."""
        return self.pipeline.settings.limits

    @property
    def registry(self) -> Registry:
        """The plugin registry (codecs and routes)."""
        return self.pipeline.registry

    @property
    def user_code(self) -> UserCode | None:
        """The user's ``inference.py``, if any."""
        return self.pipeline.user_code

    def readiness(self) -> Response:
        """What ``GET /ping`` answers now: 200 when the model is loaded and every configured model
        has a version available, else 503 saying why (loading, failed, draining, not ready)."""
        return self.state.ping()


RouteHandler: TypeAlias = "Callable[[RouteRequest], Response]"
"""``handler(request)`` answers a :class:`RouteRequest` with a
:class:`~tfio_handlers.pipeline.Response` (status, body, headers)."""

AsyncRouteHandler: TypeAlias = "Callable[[RouteRequest], Awaitable[Response]]"
"""An ASGI server's version of a handler: awaited on the event loop, so it must hand any blocking
work to ``request.pipeline.work.run(...)`` or a thread itself."""

WorkChooser: TypeAlias = "Callable[[RouteRequest], Work]"
"""A function choosing a route's :data:`Work` per request (after its body is read)."""


class AddRoute(Protocol):
    """The callback :func:`~tfio_handlers.hookspecs.register_routes` receives."""

    def __call__(
        self,
        method: str,
        path: str,
        handler: RouteHandler,
        *,
        work: Work | WorkChooser = "model",
        name: str | None = None,
        ignore_case: bool = False,
        ahandler: AsyncRouteHandler | None = None,
    ) -> None:
        """Declare that ``handler`` answers ``method`` (``"GET"``, ``"POST"``, ...; ``"*"``: any)
        on ``path`` (a template: ``/v2/models/{name}/infer``). See the hookspec for the rest."""


def compile_template(template: str, *, ignore_case: bool = False) -> tuple[re.Pattern[str], str]:
    """A template's regular expression and its shape (parameter names blanked: two templates of
    one shape match the same paths, so one method on both is a conflict).

    Raises :class:`~tfio_handlers.errors.InternalError` for a template that is not a path, a
    parameter named twice, or ``{name:path}`` anywhere but at the end.
    """
    if not template.startswith("/"):
        raise InternalError(f"Route path {template!r} must start with '/'")
    pattern: list[str] = []
    shape: list[str] = []
    names: set[str] = set()
    position = 0
    for match in _PARAMETER.finditer(template):
        literal = template[position : match.start()]
        if "{" in literal or "}" in literal:
            raise InternalError(f"Route path {template!r} has a malformed parameter")
        pattern.append(re.escape(literal))
        shape.append(literal.lower() if ignore_case else literal)
        name, rest = match.group(1), match.group(2)
        if name in names:
            raise InternalError(f"Route path {template!r} names {{{name}}} twice")
        names.add(name)
        if rest:
            if match.end() != len(template):
                raise InternalError(f"Route path {template!r}: {{{name}:path}} must end it")
            pattern.append(f"(?P<{name}>.*)")
            shape.append("{:path}")
        else:
            pattern.append(f"(?P<{name}>[^/]+)")
            shape.append("{}")
        position = match.end()
    tail = template[position:]
    if "{" in tail or "}" in tail:
        raise InternalError(f"Route path {template!r} has a malformed parameter")
    pattern.append(re.escape(tail))
    shape.append(tail.lower() if ignore_case else tail)
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile("".join(pattern), flags), "".join(shape)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One declared route: who declared it, what it matches, and how its handler runs."""

    method: str
    template: str
    handler: RouteHandler
    plugin: str
    kind: Kind
    work: Work | WorkChooser
    name: str
    ignore_case: bool
    ahandler: AsyncRouteHandler | None
    pattern: re.Pattern[str]
    shape: str

    @classmethod
    def declare(
        cls,
        method: str,
        template: str,
        handler: RouteHandler,
        *,
        plugin: str,
        kind: Kind,
        work: Work | WorkChooser = "model",
        name: str | None = None,
        ignore_case: bool = False,
        ahandler: AsyncRouteHandler | None = None,
    ) -> Endpoint:
        """An endpoint from an ``add_route(...)`` call, its template checked and compiled."""
        method = method.strip().upper()
        if not method or not (method == ANY_METHOD or method.isalpha()):
            raise InternalError(f"Plugin {plugin!r} declared a route with method {method!r}")
        if not callable(handler):
            raise InternalError(
                f"Plugin {plugin!r}: the handler of {method} {template} is not callable"
            )
        if not callable(work) and work not in ("model", "light", "health"):
            raise InternalError(
                f"Plugin {plugin!r}: work for {method} {template} must be 'model', 'light' or "
                f"'health', not {work!r}"
            )
        pattern, shape = compile_template(template, ignore_case=ignore_case)
        return cls(
            method,
            template,
            handler,
            plugin,
            kind,
            work,
            name or f"{plugin}:{method} {template}",
            ignore_case,
            ahandler,
            pattern,
            shape,
        )

    @property
    def literal(self) -> bool:
        """Whether the template has no parameter (matched by comparing strings)."""
        return self.pattern.groupindex == {} and not self.ignore_case

    def work_for(self, request: RouteRequest) -> Work:
        """This request's :data:`Work`."""
        return self.work(request) if callable(self.work) else self.work

    def work_label(self) -> str:
        """The work column of ``tfio-handlers plugins``."""
        return self.work if isinstance(self.work, str) else "per request"

    def _specificity(self) -> tuple[int, int, int]:
        # Within one priority kind: templates without a {name:path} first, then more literal
        # characters first, so /v2/models/{name}/ready is tried before /v2/models/{name:path}.
        greedy = "{:path}" in self.shape
        literal_chars = len(self.shape.replace("{:path}", "").replace("{}", ""))
        return (int(greedy), -literal_chars, 0 if self.method != ANY_METHOD else 1)


class RouteTable:
    """The routes of every registered plugin, in the order a request tries them.

    User routes come before third-party plugins', which come before the built-ins', so a plugin may
    replace a built-in route; within one kind a more specific template comes first. Two routes of one
    kind with the same method and template shape are a conflict, reported by the registry.
    """

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints: tuple[Endpoint, ...] = tuple(
            sorted(endpoints, key=lambda e: (int(e.kind), *e._specificity()))
        )

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        """The first route taking ``method path`` (``path`` decoded), and its parameters."""
        for endpoint in self.endpoints:
            if endpoint.method != method and endpoint.method != ANY_METHOD:
                continue
            if endpoint.literal:
                if path == endpoint.template:
                    return endpoint, {}
                continue
            found = endpoint.pattern.fullmatch(path)
            if found is not None:
                return endpoint, found.groupdict()
        return None
