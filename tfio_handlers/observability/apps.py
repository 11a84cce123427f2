"""The served apps with observability around them: what ``tfio-handlers serve`` runs.

``uvicorn 'tfio_handlers.observability.apps:asgi_app_from_env' --factory`` and
``gunicorn 'tfio_handlers.observability.apps:wsgi_app_from_env()'`` are the adapters' own
factories (:func:`tfio_handlers.adapters.asgi.app_from_env`,
:func:`tfio_handlers.adapters.wsgi.app_from_env`), which wrap their apps in
:class:`~.asgi.ObservabilityMiddleware` /
:class:`~.wsgi.WSGIObservabilityMiddleware` (:func:`observe_asgi`, :func:`observe_wsgi`), whose
metrics follow ``TFIO_HANDLERS_METRICS`` and whose route labels are the app's route table. An
``ASGIApp``/``WSGIApp`` made directly is bare: no access line (the adapters write none), no metrics,
no request ids, until wrapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import HTTPError
from .asgi import ObservabilityMiddleware
from .observer import Observer
from .wsgi import WSGIObservabilityMiddleware

if TYPE_CHECKING:
    from ..adapters.asgi import ASGIApp
    from ..adapters.serving import ServingState
    from ..adapters.wsgi import WSGIApp
    from ..pipeline import Pipeline

__all__ = ["asgi_app_from_env", "observe_asgi", "observe_wsgi", "observer_for", "wsgi_app_from_env"]


def observer_for(state: ServingState, settings: Settings | None = None) -> Observer:
    """An :class:`Observer` of the app whose :class:`~tfio_handlers.adapters.serving.ServingState`
    is ``state``; metrics as ``settings`` say (default: from the environment)."""
    settings = settings if settings is not None else Settings.from_env()

    def pipeline() -> Pipeline | None:
        if not state.ready:
            return None
        try:
            return state.pipeline
        except HTTPError:  # draining
            return None

    return Observer(metrics=settings.metrics, routes=lambda: state.routes, pipeline=pipeline)


def observe_asgi(app: ASGIApp, settings: Settings | None = None) -> ObservabilityMiddleware:
    """``app`` with request ids, metrics and the access line."""
    return ObservabilityMiddleware(app, observer_for(app.state, settings))


def observe_wsgi(app: WSGIApp, settings: Settings | None = None) -> WSGIObservabilityMiddleware:
    """``app`` with request ids, metrics and the access line."""
    return WSGIObservabilityMiddleware(app, observer_for(app.state, settings))


def asgi_app_from_env() -> ObservabilityMiddleware:
    """The ASGI app from the environment, observed: a factory for ``uvicorn --factory`` (the
    adapter's :func:`~tfio_handlers.adapters.asgi.app_from_env`, which observes it)."""
    from ..adapters.asgi import app_from_env

    return app_from_env()


def wsgi_app_from_env() -> WSGIObservabilityMiddleware:
    """The WSGI app from the environment, observed: for ``gunicorn '...:wsgi_app_from_env()'``."""
    from ..adapters.wsgi import app_from_env

    return app_from_env()
