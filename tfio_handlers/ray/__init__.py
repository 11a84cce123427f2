"""tfio-handlers on Ray Serve: ``pip install 'tfio-handlers[ray]'``.

* :func:`app` (and :func:`build_app` for ``serve run tfio_handlers.ray:build_app model_dir=...`` and
  Serve's YAML config): the project's ASGI app, one pipeline per replica.
* Split mode (``app(..., split=True)``): the model in a deployment of its own, called through
  :class:`RayBackend`, so decoding replicas and model replicas scale separately.
* :func:`serve_with_ray`: ``tfio-handlers serve --ray``; :mod:`.transform`: ``tfio-handlers transform --ray``.

See ``docs/ray.md``. Importing this module imports Ray; ``import tfio_handlers`` never does.
"""

from __future__ import annotations

try:
    import ray  # noqa: F401
    from ray import serve  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        "tfio_handlers.ray needs Ray Serve, which is not installed: "
        "pip install 'tfio-handlers[ray]'"
    ) from exc

from .backend import RayBackend, translate_error
from .command import serve_with_ray
from .deployments import (
    DEFAULT_ACTOR_OPTIONS,
    INGRESS_NAME,
    MODEL_NAME,
    Ingress,
    ModelDeployment,
    app,
    build_app,
    call_asgi,
    config_env,
)

__all__ = [
    "DEFAULT_ACTOR_OPTIONS",
    "INGRESS_NAME",
    "MODEL_NAME",
    "Ingress",
    "ModelDeployment",
    "RayBackend",
    "app",
    "build_app",
    "call_asgi",
    "config_env",
    "serve_with_ray",
    "translate_error",
]
