"""Building a pipeline from configuration: the backend, the user's code, the settings.

The CLI and the adapters' ``app_from_env`` factories share this. Worker processes receive their
configuration through the environment, so every worker builds its own pipeline and shares nothing
with the others but the model files.

Environment (besides :class:`~tfio_handlers.config.Settings`' own):

* ``TFIO_HANDLERS_BACKEND``: ``embedded`` (default), ``grpc://host:port`` or ``http://host:port``;
* ``TFIO_HANDLERS_MODEL_DIR``: a SavedModel, a TF Serving base path of versions, or a folder of models;
  ``/opt/ml/model`` when unset and that folder exists;
* ``TFIO_HANDLERS_MODELS``: ``name=path,name=path`` for several named models;
* ``TFIO_HANDLERS_MODEL_LABELS``: version labels, ``model:label=version,...`` (e.g.
  ``half:stable=1,half:canary=2``), for TF Serving's ``/v1/models/<m>/labels/<l>`` URLs (embedded);
* ``TFIO_HANDLERS_MODEL_CONFIG_FILE``: TF Serving's ``--model_config_file`` (a text-format
  ``ModelServerConfig``: models, version policies, labels), instead of the model variables above;
* ``TFIO_HANDLERS_FILE_SYSTEM_POLL_WAIT_SECONDS``, ``TFIO_HANDLERS_MODEL_CONFIG_FILE_POLL_WAIT_SECONDS``,
  ``TFIO_HANDLERS_ALLOW_VERSION_LABELS_FOR_UNAVAILABLE_MODELS``: TF Serving's flags of those names
  (:class:`ModelManagement`; ``tfio-handlers serve`` sets the first to TF Serving's 1 s by default);
* ``SAGEMAKER_TFS_DEFAULT_MODEL_NAME``: the model that requests naming none go to (embedded: also
  the one ``/ping`` checks); else the first model found;
* ``TFIO_HANDLERS_ENTRY_POINT``: the user's code file; else ``SAGEMAKER_PROGRAM`` looked up in the code
  folder (``<model dir>/code``, then ``/opt/ml/code``), else ``<model dir>/code/inference.py`` if present;
* ``SAGEMAKER_REQUIREMENTS``: a requirements file in the code folder, installed at start-up by
  ``tfio-handlers serve`` (once, before the workers start);
* ``TFIO_HANDLERS_LOG_LEVEL``: the level of the library's own log (access lines are INFO) when the
  server has not configured logging itself (default ``INFO``); ``TFIO_HANDLERS_LOG_FORMAT``: its
  form, ``text`` (default) or ``json`` lines (:mod:`tfio_handlers.observability.logs`);
* ``SAGEMAKER_TFS_ENABLE_BATCHING`` (with ``SAGEMAKER_TFS_MAX_BATCH_SIZE``,
  ``SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS``): dynamic batching in front of the embedded backend.

Building happens in two steps. :func:`load_config` reads and checks everything that cannot get better
by waiting (the settings, the model paths on disk, the backend's address, the user's code, imported and
its contract checked, the plugins) without loading TensorFlow or calling a model server, so a mistake
stops the server at start-up with a message that names the file and the problem. :func:`pipeline_from_config`
then builds the backend: it loads the SavedModel, or waits for a remote model server (gRPC or REST) that
is still starting; the adapters run that step in the background while ``/ping`` answers 503.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings, env_seconds
from .errors import InternalError
from .pipeline import Pipeline

if TYPE_CHECKING:
    from .registry import Registry
    from .usercode import UserCode

__all__ = [
    "ModelManagement",
    "ServeConfig",
    "apply_process_limits",
    "check_backend",
    "configure_logging",
    "find_entry_point",
    "install_requirements",
    "labels_from_env",
    "load_config",
    "make_backend",
    "models_from_env",
    "pipeline_from_config",
    "pipeline_from_env",
]

log = logging.getLogger(__name__)

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
SAGEMAKER_CODE_DIR = Path("/opt/ml/code")

_REMOTE_SCHEMES = ("grpc://", "http://", "https://")


def models_from_env(env: Mapping[str, str]) -> dict[str, str] | str | None:
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


def labels_from_env(env: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """``TFIO_HANDLERS_MODEL_LABELS`` (``model:label=version,...``) as ``{model: {label: version}}``."""
    spec = env.get("TFIO_HANDLERS_MODEL_LABELS", "")
    labels: dict[str, dict[str, int]] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        model, colon, rest = item.strip().rpartition(":")
        label, eq, version = rest.partition("=")
        if not colon or not model or not eq or not label or not version.strip().isdigit():
            raise InternalError(
                f"TFIO_HANDLERS_MODEL_LABELS entry {item!r} is not model:label=version"
            )
        labels.setdefault(model, {})[label] = int(version)
    return labels


@dataclass(frozen=True, slots=True)
class ModelManagement:
    """How the embedded backend manages model versions: TF Serving's flags of the same names.

    The defaults are a library's (no config file, no background polling); ``tfio-handlers serve``
    and ``grpc-serve`` poll the base paths every second by default, as ``tensorflow_model_server``.
    """

    model_config_file: str | None = None
    """TF Serving's ``--model_config_file``: a text-format ``ModelServerConfig``."""
    file_system_poll_wait_seconds: float = 0.0
    """Seconds between looks for new and removed versions (0: none after start-up)."""
    model_config_file_poll_wait_seconds: float = 0.0
    """Seconds between re-reads of :attr:`model_config_file` (0: read once)."""
    allow_version_labels_for_unavailable_models: bool = False
    """A new label may point at a version that is not available (yet)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModelManagement:
        """From the ``TFIO_HANDLERS_*`` variables named after TF Serving's flags (module docstring)."""
        allow = env.get("TFIO_HANDLERS_ALLOW_VERSION_LABELS_FOR_UNAVAILABLE_MODELS", "").strip()
        if allow.lower() not in ("", "0", "1", "true", "false"):
            raise InternalError(
                "TFIO_HANDLERS_ALLOW_VERSION_LABELS_FOR_UNAVAILABLE_MODELS must be true or false, "
                f"not {allow!r}"
            )
        config_file = env.get("TFIO_HANDLERS_MODEL_CONFIG_FILE") or None
        return cls(
            model_config_file=os.path.abspath(config_file) if config_file else None,
            file_system_poll_wait_seconds=env_seconds(
                env, "TFIO_HANDLERS_FILE_SYSTEM_POLL_WAIT_SECONDS", 0.0
            ),
            model_config_file_poll_wait_seconds=env_seconds(
                env, "TFIO_HANDLERS_MODEL_CONFIG_FILE_POLL_WAIT_SECONDS", 0.0
            ),
            allow_version_labels_for_unavailable_models=allow.lower() in ("1", "true"),
        )


def make_backend(
    kind: str,
    models: Mapping[str, str] | str | None,
    settings: Settings,
    *,
    labels: Mapping[str, Mapping[str, int]] | None = None,
    management: ModelManagement | None = None,
) -> Any:
    """The backend named by ``kind``: ``embedded``, ``grpc://host:port`` or ``http(s)://host:port``.

    ``labels`` (embedded only) maps model name to ``{label: version}``; ``management`` (embedded
    only) is the model config file and the polling (default: neither).
    """
    if kind.startswith("grpc://"):
        from .backends.grpc import GrpcBackend

        return GrpcBackend(
            kind[len("grpc://") :],
            timeout=settings.request_timeout,
            default_model=settings.default_model_name,
        )
    if kind.startswith(("http://", "https://")):
        from .backends.rest import RestBackend

        return RestBackend(
            kind, timeout=settings.request_timeout, default_model=settings.default_model_name
        )
    management = management or ModelManagement()
    problem = _backend_problem(kind, models, management.model_config_file)
    if problem is not None:
        raise InternalError(problem)
    from .backends.embedded import EmbeddedBackend

    return EmbeddedBackend(
        None if management.model_config_file else models,
        model_config_file=management.model_config_file,
        default_model=settings.default_model_name,
        labels=labels,
        file_system_poll_wait_seconds=management.file_system_poll_wait_seconds,
        model_config_file_poll_wait_seconds=management.model_config_file_poll_wait_seconds,
        allow_version_labels_for_unavailable_models=(
            management.allow_version_labels_for_unavailable_models
        ),
    )


def _backend_problem(
    kind: str, models: Mapping[str, str] | str | None, model_config_file: str | None = None
) -> str | None:
    """Why ``kind`` with ``models`` can never serve, judged from the text alone; ``None`` if it may."""
    if kind.startswith(_REMOTE_SCHEMES):
        address = kind.split("://", 1)[1].rstrip("/")
        host, colon, port = address.rpartition(":")
        if not colon or not host or not port.isdigit():
            return f"Backend {kind!r} has no host:port (e.g. grpc://localhost:8500)"
        return None
    if kind != "embedded":
        return f"Unknown backend {kind!r}: use embedded, grpc://host:port or http://host:port"
    if model_config_file is not None:
        return None
    if models is None:
        return (
            "No model: give --model-dir, --model NAME=PATH or --model-config-file (or "
            f"TFIO_HANDLERS_MODEL_DIR); {SAGEMAKER_MODEL_DIR} does not exist"
        )
    return None


def check_backend(
    kind: str,
    models: Mapping[str, str] | str | None,
    management: ModelManagement | None = None,
    labels: Mapping[str, Mapping[str, int]] | None = None,
) -> None:
    """Refuse a backend that can never serve, without loading TensorFlow or calling a model server.

    ``embedded`` needs models, and each path must be a SavedModel or a TF Serving base path of
    versions (or a folder of them), or a model config file TF Serving would accept whose base
    paths exist: only the file system is read. A remote backend needs a ``host:port``; whether its
    server is up yet is not a configuration error (it is waited for).
    """
    config_file = management.model_config_file if management is not None else None
    problem = _backend_problem(kind, models, config_file)
    if problem is not None:
        raise InternalError(problem)
    if kind != "embedded":
        return  # a remote backend: its models are the model server's business
    from .backends.model_config import serving_config

    # BackendUnavailable naming the path or file when nothing servable is there.
    serving_config(None if config_file else models, config_file, labels if config_file else None)


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
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(path)])
    if result.returncode != 0:
        raise InternalError(f"pip install -r {path} failed with status {result.returncode}")


@dataclass(frozen=True)
class ServeConfig:
    """Everything serving needs but the backend, read from the environment and checked."""

    settings: Settings
    kind: str
    """``embedded``, ``grpc://host:port`` or ``http(s)://host:port``."""
    models: Mapping[str, str] | str | None
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    management: ModelManagement = field(default_factory=ModelManagement)
    """The model config file and polling (embedded)."""
    entry_point: Path | None = None
    user_code: UserCode | None = None
    registry: Registry | None = None
    """The plugins (entry points loaded when the settings say so); the user's code is not in it yet."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The environment it was read from (the backend reads its batching variables there)."""


def apply_process_limits(settings: Settings) -> None:
    """Apply the limits of ``settings`` that hold for the whole process, not per request: the
    budget of filled tensors (``TFIO_HANDLERS_MAX_FILL_BYTES``, :data:`tfio_handlers.tensors.FILL_BUDGET`).
    :func:`load_config` applies them, and so does ``grpc-serve``."""
    from .tensors import FILL_BUDGET

    FILL_BUDGET.limit_bytes = settings.limits.max_fill_bytes


def load_config(env: Mapping[str, str] | None = None) -> ServeConfig:
    """Read and check the configuration (see the module docstring); import the user's code.

    Raises an :class:`~tfio_handlers.errors.HTTPError` whose message names the setting or file at
    fault: malformed variables, a missing or empty model path, an unknown backend, a code file that
    is missing or fails to import, user functions with the wrong arity or of mixed contracts, and
    conflicting plugins. Neither TensorFlow (unless the user's code imports it) nor the network is
    touched, so the CLI runs it before it starts any worker.
    """
    from .registry import Registry
    from .usercode import load_user_code

    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    apply_process_limits(settings)
    management = ModelManagement.from_env(env)
    kind = env.get("TFIO_HANDLERS_BACKEND", "embedded")
    if management.model_config_file and kind == "embedded":
        if env.get("TFIO_HANDLERS_MODELS") or env.get("TFIO_HANDLERS_MODEL_DIR"):
            raise InternalError(
                "Give a model config file or model paths (--model-dir, --model), not both"
            )
        models = None
    else:
        models = models_from_env(env)
    labels = labels_from_env(env)
    check_backend(kind, models, management, labels)
    if kind.startswith(("http://", "https://")) and not (settings.default_model_name or models):
        # TF Serving's REST API cannot list its models: without a name, /ping would wait for ever.
        raise InternalError(
            "The TF Serving REST backend needs the model's name: set "
            "SAGEMAKER_TFS_DEFAULT_MODEL_NAME (TF Serving's REST API cannot list its models)"
        )
    registry = Registry.from_settings(settings)
    registry.check()
    entry_point = find_entry_point(env, models)
    user_code = load_user_code(entry_point, is_text=registry.is_text) if entry_point else None
    return ServeConfig(
        settings, kind, models, labels, management, entry_point, user_code, registry, env
    )


def pipeline_from_config(config: ServeConfig) -> Pipeline:
    """Build the backend (load the model, or wait for a remote model server) and the pipeline.

    Slow, and the only step that may wait: the adapters run it in the background while ``/ping``
    answers 503.
    """
    backend = make_backend(
        config.kind,
        config.models,
        config.settings,
        labels=config.labels,
        management=config.management,
    )
    if config.kind == "embedded":
        from .backends.batching import from_env as with_batching

        backend = with_batching(backend, config.env)  # SAGEMAKER_TFS_ENABLE_BATCHING
    else:
        # This runs while /ping answers 503: wait out a model server that is still starting
        # (the SageMaker container's "connection refused during batch" defect).
        backend.wait_until_ready(model_name=config.settings.default_model_name)
    return Pipeline(
        backend, settings=config.settings, registry=config.registry, user_code=config.user_code
    )


def pipeline_from_env(env: Mapping[str, str] | None = None) -> Pipeline:
    """A pipeline configured by the environment: :func:`load_config`, then :func:`pipeline_from_config`."""
    return pipeline_from_config(load_config(env))


def configure_logging(env: Mapping[str, str] | None = None) -> None:
    """Show the library's log (the access line per request, errors with tracebacks) on stderr,
    in batches (:class:`~tfio_handlers.observability.logs.BatchedStreamHandler`).

    Only when nothing has configured logging yet: neither the root logger nor ``tfio_handlers`` has
    a handler (``uvicorn``/``gunicorn`` run as commands set up only their own loggers). A server that
    configures logging itself keeps full control.
    """
    from .observability.logs import (
        LOG_FORMAT_ENV,
        BatchedStreamHandler,
        RequestIdFilter,
        formatter_for,
    )

    env = os.environ if env is None else env
    formatter = formatter_for(env.get(LOG_FORMAT_ENV) or "text")  # a bad value stops start-up
    package = logging.getLogger("tfio_handlers")
    if logging.getLogger().handlers or package.handlers:
        return
    handler = BatchedStreamHandler(sys.stderr)  # lines below WARNING within 0.2 s, in batches
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())  # every line of a request names its id
    package.addHandler(handler)
    package.setLevel((env.get("TFIO_HANDLERS_LOG_LEVEL") or "INFO").upper())
    package.propagate = False
