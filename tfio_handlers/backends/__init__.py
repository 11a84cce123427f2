"""Backends: where requests are answered. See :class:`Backend` for the interface.

``Backend`` and ``ResolvedModel`` are light; ``EmbeddedBackend`` is loaded on first use (it imports
TensorFlow only when one is built). The other backends live in their own modules
(``tfio_handlers.backends.grpc``, ``tfio_handlers.backends.rest``) with their own dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Backend, ResolvedModel, model_spec

if TYPE_CHECKING:
    from .embedded import EmbeddedBackend
    from .model_repository import ModelSource, discover_models, resolve_models

_LAZY = {
    "EmbeddedBackend": "tfio_handlers.backends.embedded",
    "ModelSource": "tfio_handlers.backends.model_repository",
    "discover_models": "tfio_handlers.backends.model_repository",
    "resolve_models": "tfio_handlers.backends.model_repository",
}

__all__ = [
    "Backend",
    "EmbeddedBackend",
    "ModelSource",
    "ResolvedModel",
    "discover_models",
    "model_spec",
    "resolve_models",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfio_handlers.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
