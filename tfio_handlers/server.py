"""Building a pipeline from configuration: the backend, the user's code, the settings.

The CLI and the adapters' ``app_from_env`` factories share this. Worker processes receive their
configuration through the environment, so every worker builds its own pipeline and shares nothing
with the others but the model files.

Environment (besides :class:`~tfio_handlers.config.Settings`' own):

* ``TFIO_HANDLERS_BACKEND``: ``embedded`` (default), ``grpc://host:port`` or ``http://host:port``;
* ``TFIO_HANDLERS_MODEL_DIR``: a SavedModel, a TF Serving base path of versions, or a folder of models;
  ``/opt/ml/model`` when unset and that folder exists;
* ``TFIO_HANDLERS_MODELS``: ``name=path,name=path`` for several named models;
* ``TFIO_HANDLERS_ENTRY_POINT``: the user's code file; else ``SAGEMAKER_PROGRAM`` looked up in the code
  folder (``<model dir>/code``, then ``/opt/ml/code``), else ``<model dir>/code/inference.py`` if present;
* ``SAGEMAKER_REQUIREMENTS``: a requirements file in the code folder, installed at start-up.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import InternalError
from .pipeline import Pipeline

__all__ = ["find_entry_point", "install_requirements", "make_backend", "pipeline_from_env"]

log = logging.getLogger(__name__)

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
SAGEMAKER_CODE_DIR = Path("/opt/ml/code")


def _models_from_env(env: Mapping[str, str]) -> dict[str, str] | str | None:
    spec = env.get("TFIO_HANDLERS_MODELS")
    if spec:
        models: dict[str, str] = {}
        for item in spec.split(","):
            name, eq, path = item.partition("=")
            if not eq or not name.strip() or not path.strip():
                raise InternalError(f"TFIO_HANDLERS_MODELS entry {item!r} is not name=path")
            models[name.strip()] = path.strip()
        return models
    model_dir = env.get("TFIO_HANDLERS_MODEL_DIR")
    if model_dir:
        return model_dir
    if SAGEMAKER_MODEL_DIR.is_dir():
        return str(SAGEMAKER_MODEL_DIR)
    return None


def make_backend(kind: str, models: Mapping[str, str] | str | None, settings: Settings) -> Any:
    """The backend named by ``kind``: ``embedded``, ``grpc://host:port`` or ``http(s)://host:port``."""
    if kind.startswith("grpc://"):
        from .backends.grpc import GrpcBackend

        return GrpcBackend(kind[len("grpc://") :], timeout=settings.request_timeout)
    if kind.startswith(("http://", "https://")):
        from .backends.rest import RestBackend

        return RestBackend(kind, timeout=settings.request_timeout)
    if kind != "embedded":
        raise InternalError(
            f"Unknown backend {kind!r}: use embedded, grpc://host:port or http://host:port"
        )
    if models is None:
        raise InternalError(
            "No model: give --model-dir or --model NAME=PATH (or TFIO_HANDLERS_MODEL_DIR); "
            f"{SAGEMAKER_MODEL_DIR} does not exist"
        )
    from .backends.embedded import EmbeddedBackend

    return EmbeddedBackend(models)


def _code_dirs(models: Mapping[str, str] | str | None) -> list[Path]:
    dirs: list[Path] = []
    if isinstance(models, str):
        dirs.append(Path(models) / "code")
    dirs.append(SAGEMAKER_MODEL_DIR / "code")
    dirs.append(SAGEMAKER_CODE_DIR)
    return dirs


def find_entry_point(env: Mapping[str, str], models: Mapping[str, str] | str | None) -> Path | None:
    """The user's code file, by the rules in the module docstring; ``None`` when there is none."""
    explicit = env.get("TFIO_HANDLERS_ENTRY_POINT")
    if explicit:
        return Path(explicit)
    program = env.get("SAGEMAKER_PROGRAM")
    if program:
        candidate = Path(program)
        if candidate.is_absolute() or candidate.is_file():
            return candidate
        for directory in _code_dirs(models):
            if (directory / program).is_file():
                return directory / program
        raise InternalError(f"SAGEMAKER_PROGRAM={program!r} was not found in the code folder")
    for directory in _code_dirs(models):
        if (directory / "inference.py").is_file():
            return directory / "inference.py"
    return None


def install_requirements(env: Mapping[str, str], entry_point: Path | None) -> None:
    """``pip install -r`` the file ``SAGEMAKER_REQUIREMENTS`` names, beside the user's code."""
    requirements = env.get("SAGEMAKER_REQUIREMENTS")
    if not requirements:
        return
    base = entry_point.parent if entry_point is not None else Path.cwd()
    path = Path(requirements) if Path(requirements).is_absolute() else base / requirements
    if not path.is_file():
        raise InternalError(f"SAGEMAKER_REQUIREMENTS file not found: {path}")
    log.info("Installing %s", path)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(path)], check=True)


def pipeline_from_env(env: Mapping[str, str] | None = None) -> Pipeline:
    """A pipeline configured by the environment (see the module docstring)."""
    from .registry import Registry
    from .usercode import load_user_code

    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    models = _models_from_env(env)
    backend = make_backend(env.get("TFIO_HANDLERS_BACKEND", "embedded"), models, settings)
    registry = Registry()
    if settings.load_plugins:
        registry.load_entry_points(settings.allowed_plugins)
    entry_point = find_entry_point(env, models)
    user_code = load_user_code(entry_point, is_text=registry.is_text) if entry_point else None
    return Pipeline(backend, settings=settings, registry=registry, user_code=user_code)
