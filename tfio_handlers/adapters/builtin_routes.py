"""The built-in routes, declared through :func:`~tfio_handlers.hookspecs.register_routes` like any
plugin's: SageMaker's (``GET``/``HEAD /ping``, ``POST /invocations``) and TF Serving's REST API
(every method on ``/v1/...``, in any case, as TF Serving's ``(?i)/v1/.*`` dispatcher takes them).

The registry registers them with the lowest priority, so a plugin may replace one; ``/ping`` is a
``"health"`` route (answered before the body is read, never waiting for the work pool),
``/invocations`` runs in the pool, and a TF Serving request runs in the pool when it calls the model
(``:predict``, ``:classify``, ``:regress``) and beside it otherwise (status, metadata, a URL that does
not dispatch). The handlers are the pipeline's own (:meth:`~tfio_handlers.pipeline.Pipeline.invoke`)
and :mod:`.tfs_rest`'s, so the routes behave exactly as those do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hookspecs import hookimpl
from .routes import ANY_METHOD, AddRoute, RouteRequest, Work

if TYPE_CHECKING:
    from ..pipeline import Response

__all__ = ["BUILTIN_ROUTE_PLUGINS", "SageMakerRoutes", "TFServingRoutes"]

PING = "ping"
INVOCATIONS = "invocations"
TFS = "tfs"


def ping(request: RouteRequest) -> Response:
    """``/ping``: the server's readiness."""
    return request.readiness()


def invocations(request: RouteRequest) -> Response:
    """``/invocations``: the pipeline, from body to answer."""
    return request.pipeline.invoke(request.body, request.headers)


async def ainvocations(request: RouteRequest) -> Response:
    """``/invocations`` under ASGI: :meth:`~tfio_handlers.pipeline.Pipeline.ainvoke` (the work pool)."""
    return await request.pipeline.ainvoke(request.body, request.headers)


def tfs_rest(request: RouteRequest) -> Response:
    """A TF Serving REST request, dispatched on the path as received."""
    from .tfs_rest import handle_tfs_rest

    return handle_tfs_rest(
        request.pipeline, request.method, request.target, request.body, request.headers
    )


async def atfs_rest(request: RouteRequest) -> Response:
    """A TF Serving REST request under ASGI: model calls in the pool, the rest in a thread."""
    from .tfs_rest import ahandle_tfs_rest

    return await ahandle_tfs_rest(
        request.pipeline, request.method, request.target, request.body, request.headers
    )


def tfs_work(request: RouteRequest) -> Work:
    """``"model"`` for ``:predict``, ``:classify`` and ``:regress``; ``"light"`` for the rest."""
    from .tfs_rest import needs_model

    return "model" if needs_model(request.method, request.target) else "light"


class SageMakerRoutes:
    """SageMaker's hosting contract: ``/ping`` and ``/invocations``."""

    @hookimpl
    def register_routes(self, add_route: AddRoute) -> None:
        """``GET``/``HEAD /ping`` (health) and ``POST /invocations`` (the work pool)."""
        add_route("GET", "/ping", ping, work="health", name=PING)
        add_route("HEAD", "/ping", ping, work="health", name=PING)
        add_route(
            "POST",
            "/invocations",
            invocations,
            work="model",
            name=INVOCATIONS,
            ahandler=ainvocations,
        )


class TFServingRoutes:
    """TF Serving's REST API: every method on ``/v1/...``, in any case."""

    @hookimpl
    def register_routes(self, add_route: AddRoute) -> None:
        """One route for the whole API: TF Serving dispatches ``/v1/`` paths by its own rules and
        answers what does not dispatch with "Malformed request", never a 404."""
        add_route(
            ANY_METHOD,
            "/v1/{rest:path}",
            tfs_rest,
            work=tfs_work,
            name=TFS,
            ignore_case=True,
            ahandler=atfs_rest,
        )


BUILTIN_ROUTE_PLUGINS: list[tuple[str, object]] = [
    ("sagemaker", SageMakerRoutes()),
    ("tf-serving-rest", TFServingRoutes()),
]
"""The built-in route plugins as ``(name, plugin)``, registered by the registry with the built-in
codecs (:data:`tfio_handlers.formats.BUILTIN_PLUGINS`)."""
