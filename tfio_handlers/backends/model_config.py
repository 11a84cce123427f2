"""TF Serving's model server configuration: the ``--model_config_file`` text format, its checks, and
version policies.

No TensorFlow here: the messages are the project's own (:mod:`tfio_handlers.protos`), parsed with
protobuf's ``text_format`` exactly as ``tensorflow_model_server`` parses the file::

    model_config_list {
      config {
        name: "half"
        base_path: "/models/half"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 2 } }
        version_labels { key: "stable" value: 1 }
        version_labels { key: "canary" value: 2 }
      }
    }

:func:`check_model_config` refuses what ``ServerCore::ReloadConfig`` refuses, with its texts (a
model listed twice, a relative base path, no or another platform, a platform change on reload, a
``custom_model_config``). :func:`aspired_versions` is ``FileSystemStoragePathSource``'s choice of
versions under a policy: ``latest`` (the default, at least one), ``all``, ``specific``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from google.protobuf import text_format

from ..errors import BackendUnavailable
from ..protos import FileSystemStoragePathSourceConfig, ModelConfig, ModelServerConfig
from .model_repository import ModelSource, PathLike, resolve_models
from .status import status_error

__all__ = [
    "ONLY_MODEL_CONFIG_LIST",
    "PLATFORM",
    "ServableVersionPolicy",
    "aspired_versions",
    "check_model_config",
    "config_for_models",
    "read_model_config",
    "serving_config",
]

PLATFORM = "tensorflow"
"""The one ``model_platform`` served (TF Serving's ``kTensorFlowModelPlatform``)."""

ServableVersionPolicy = FileSystemStoragePathSourceConfig.ServableVersionPolicy
"""``ModelConfig.model_version_policy``'s type."""

ONLY_MODEL_CONFIG_LIST = (
    "ServerModelConfig type not supported by HandleReloadConfigRequest. "
    "Only ModelConfigList is currently supported"
)
"""TF Serving's refusal of a config that is not a ``model_config_list``."""

_TENSORFLOW_MODEL_TYPE = 1  # ModelType.TENSORFLOW, deprecated in favour of model_platform


def read_model_config(path: PathLike) -> ModelServerConfig:
    """Parse the text-format ``ModelServerConfig`` at ``path`` and check it (:func:`check_model_config`).

    An unreadable or unparsable file raises :class:`~tfio_handlers.errors.BackendUnavailable` naming
    the file and, for a parse error, the line and column; a config TF Serving would refuse raises
    that error with TF Serving's message, prefixed by the file name.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BackendUnavailable(f"Cannot read model config file {file}: {exc}") from None
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise BackendUnavailable(
            f"Model config file {file} is not a ModelServerConfig in text format: {exc}"
        ) from None
    try:
        check_model_config(config)
    except BackendUnavailable:
        raise
    except Exception as exc:
        message = getattr(exc, "message", str(exc))
        raise BackendUnavailable(f"Model config file {file}: {message}") from None
    return config


def _platform(model: ModelConfig) -> str:
    """TF Serving's ``GetPlatform``: ``model_platform``, or the deprecated ``model_type``."""
    if model.model_type != 0:
        if model.model_platform:
            raise status_error(
                "INVALID_ARGUMENT",
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                f"ModelServerConfig::model_platform, model name is {model.name}",
            )
        if model.model_type != _TENSORFLOW_MODEL_TYPE:
            raise status_error(
                "INVALID_ARGUMENT",
                f"ModelServerConfig::model_type choice {model.model_type} not supported.",
            )
        return PLATFORM
    if not model.model_platform:
        raise status_error(
            "INVALID_ARGUMENT",
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform, model name is {model.name}",
        )
    return model.model_platform


def _is_relative(base_path: str) -> bool:
    """TF Serving's ``UriIsRelativePath``: no scheme and not absolute."""
    return "://" not in base_path and not PurePosixPath(base_path).is_absolute()


def check_model_config(
    config: ModelServerConfig, previous: ModelServerConfig | None = None
) -> None:
    """Refuse ``config`` as ``ServerCore::ReloadConfig`` would, coming from ``previous``.

    Raises the library error of TF Serving's status code, with its message: only a
    ``model_config_list`` is served (``custom_model_config`` needs TF Serving's C++ loader); each
    name once; absolute base paths; ``model_platform`` ``"tensorflow"``; and on reload no model
    changing its platform. An empty config is accepted (nothing to serve).
    """
    choice = config.WhichOneof("config")
    if choice == "custom_model_config":
        raise status_error("INVALID_ARGUMENT", ONLY_MODEL_CONFIG_LIST)
    if previous is not None and previous.WhichOneof("config") == "custom_model_config":
        raise status_error(
            "FAILED_PRECONDITION",
            "Cannot transition to requested config. It is only legal to transition from one "
            "ModelConfigList to another.",
        )
    models = config.model_config_list.config
    names: set[str] = set()
    for model in models:
        if model.name in names:
            raise status_error(
                "INVALID_ARGUMENT",
                f"Illegal to list model {model.name} multiple times in config list",
            )
        names.add(model.name)
    for model in models:
        if _is_relative(model.base_path):
            raise status_error(
                "INVALID_ARGUMENT",
                f"Expected model {model.name} to have an absolute path or URI; got "
                f"base_path()={model.base_path}",
            )
    if previous is not None:
        old = {model.name: _platform(model) for model in previous.model_config_list.config}
        for model in models:
            if model.name in old and _platform(model) != old[model.name]:
                raise status_error(
                    "INVALID_ARGUMENT",
                    f"Illegal to change a model's platform. For model {model.name} platform was "
                    f"{old[model.name]} and new platform requested is {_platform(model)}",
                )
    for model in models:
        platform = _platform(model)
        if platform != PLATFORM:
            raise status_error(
                "INVALID_ARGUMENT", f"Model {model.name} requests unsupported platform {platform}"
            )
        if "://" in model.base_path:
            raise status_error(
                "INVALID_ARGUMENT",
                f"Model {model.name}: base_path {model.base_path} is a URI; tfio-handlers reads "
                "models from local directories only",
            )


def config_for_models(sources: Mapping[str, ModelSource], policy: str = "all") -> ModelServerConfig:
    """The ``ModelServerConfig`` that serves ``sources`` (found by :mod:`.model_repository`).

    ``policy`` ``"all"`` (what ``--model-dir`` has always served: every version found) or
    ``"latest"`` (TF Serving's default for ``--model_base_path``: the newest).
    """
    config = ModelServerConfig()
    for name, source in sources.items():
        model = config.model_config_list.config.add(
            name=name, base_path=str(source.base_path), model_platform=PLATFORM
        )
        if policy == "all":
            model.model_version_policy.all.SetInParent()
        else:
            model.model_version_policy.latest.num_versions = 1
    return config


def aspired_versions(policy: ServableVersionPolicy, found: Mapping[int, Path]) -> dict[int, Path]:
    """The versions of ``found`` that ``policy`` serves (``FileSystemStoragePathSource``'s rule).

    ``latest`` (also when no policy is set): the ``num_versions`` highest, at least one. ``all``:
    every one. ``specific``: those listed that exist (TF Serving only logs the missing ones).
    """
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return dict(found)
    if choice == "specific":
        wanted = set(policy.specific.versions)
        return {version: path for version, path in found.items() if version in wanted}
    count = max(policy.latest.num_versions, 1) if choice == "latest" else 1
    newest = sorted(found, reverse=True)[:count]
    return {version: found[version] for version in sorted(newest)}


def serving_config(
    models: Mapping[str, PathLike] | PathLike | ModelServerConfig | None,
    model_config_file: PathLike | None,
    labels: Mapping[str, Mapping[str, int]] | None,
) -> ModelServerConfig:
    """What to serve, as a ``ModelServerConfig``: the config file's (:func:`read_model_config`),
    the one given, or model paths (:func:`~.model_repository.resolve_models`) under the ``all``
    policy (:func:`config_for_models`); with ``labels`` (model → label → version) added.

    Only the file system is read. Every base path must exist (TF Serving's "Could not find base
    path" is a start-up error here); one may still hold no version (the server waits for it).
    """
    if model_config_file is not None:
        if models is not None:
            raise ValueError("Give models or model_config_file, not both")
        config = read_model_config(model_config_file)
    elif isinstance(models, ModelServerConfig):
        config = ModelServerConfig()
        config.CopyFrom(models)
    elif models is None:
        raise ValueError("Give models or model_config_file")
    else:
        config = config_for_models(resolve_models(models))
    by_name = {model.name: model for model in config.model_config_list.config}
    for model in by_name.values():
        if not Path(model.base_path).is_dir():
            raise BackendUnavailable(
                f"Could not find base path {model.base_path} for servable {model.name}"
            )
    for model_name, model_labels in (labels or {}).items():
        for label, version in model_labels.items():
            labelled = by_name.get(model_name)
            if labelled is None:
                raise status_error(
                    "FAILED_PRECONDITION",
                    f"Request to assign label to version {version} of model {model_name}, which "
                    "is not currently available for inference",
                )
            labelled.version_labels[label] = int(version)
    return config
