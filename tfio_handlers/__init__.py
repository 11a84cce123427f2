"""tfio-handlers: the layer between clients and TensorFlow Serving.

Bytes in any media type become TF Serving requests, requests go to a backend (an in-process SavedModel,
TF Serving over gRPC, or TF Serving over REST), and responses go back out in the media type the client
accepts. User code (``input_fn``/``output_fn``, SageMaker's handlers) and third-party plugins take part
through a pluggy registry.

``import tfio_handlers`` is light: it never imports TensorFlow, a server or an HTTP client. The names
below load their modules on first use; ``tfio_handlers.codec`` is the kit for plugin authors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
"""The installed version of tfio-handlers."""

_LAZY = {
    "Context": "tfio_handlers.context",
    "Settings": "tfio_handlers.config",
    "Limits": "tfio_handlers.config",
    "HTTPError": "tfio_handlers.errors",
    "MediaType": "tfio_handlers.media",
    "hookimpl": "tfio_handlers.hookspecs",
    "Registry": "tfio_handlers.registry",
    "Kind": "tfio_handlers.registry",
    "to_tensor_proto": "tfio_handlers.tensors",
    "to_ndarray": "tfio_handlers.tensors",
    "Pipeline": "tfio_handlers.pipeline",
    "Predictor": "tfio_handlers.client",
}
_SUBMODULES = ("codec",)

__all__ = [
    "Context",
    "HTTPError",
    "Kind",
    "Limits",
    "MediaType",
    "Pipeline",
    "Predictor",
    "Registry",
    "Settings",
    "__version__",
    "codec",
    "hookimpl",
    "to_ndarray",
    "to_tensor_proto",
]

if TYPE_CHECKING:
    from . import codec
    from .client import Predictor
    from .config import Limits, Settings
    from .context import Context
    from .errors import HTTPError
    from .hookspecs import hookimpl
    from .media import MediaType
    from .pipeline import Pipeline
    from .registry import Kind, Registry
    from .tensors import to_ndarray, to_tensor_proto


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f"{__name__}.{name}")
    elif module is None:
        raise AttributeError(f"module 'tfio_handlers' has no attribute {name!r}")
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
