"""Finding models on disk: SavedModel directories, TF Serving base paths, several named models.

No TensorFlow here: only the file system. The layouts understood:

* a **SavedModel directory** (holds ``saved_model.pb`` or ``saved_model.pbtxt``). Its version is its
  directory name when that is a number (``/models/half/123`` is version 123 of ``half``), else 1;
* a **model base path** as TF Serving reads it: numeric sub-directories, each a SavedModel, one per
  version (``/models/half/1``, ``/models/half/2``). Leading zeros are ignored (``0002`` is version 2);
  non-numeric entries, and numbers beyond an int64, are ignored (as TF Serving does);
* a **model root** holding several of these anywhere below it, as SageMaker's TF Serving container
  finds them (``/opt/ml/model/**/<digits>/saved_model.pb``): each model is named after the directory
  that holds its version directories; a bare SavedModel sub-directory counts as version 1 of a model
  named after it.

:func:`resolve_models` takes either a mapping of model name to path (each path a SavedModel directory
or a base path) or one path (a SavedModel directory, a base path or a model root). Layouts that
cannot be served (nothing found, a name found twice, two directories for one version) raise
:class:`~tfio_handlers.errors.BackendUnavailable` naming the path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BackendUnavailable

__all__ = [
    "SAVED_MODEL_FILES",
    "ModelSource",
    "discover_models",
    "find_versions",
    "is_saved_model_dir",
    "resolve_models",
    "versions_at",
]

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
"""The files that make a directory a SavedModel."""

MAX_DEPTH = 6
"""How deep below a model root :func:`discover_models` looks."""

_DIGITS = re.compile(r"[0-9]+")
"""A version directory's name: ASCII digits (``re``'s ``\\d`` would take every Unicode digit)."""
MAX_VERSION = 2**63 - 1
"""The largest version: TF Serving reads version directories into an int64 (``absl::SimpleAtoi``)
and skips names that do not fit."""
_SKIP_DIRS = frozenset({"variables", "assets", "assets.extra", "code", "__pycache__"})

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One model: its name, where it lives and its versions' SavedModel directories."""

    name: str
    base_path: Path
    """The base path (the SavedModel directory itself for a single bare SavedModel)."""
    versions: dict[int, Path] = field(default_factory=dict)
    """Version number to SavedModel directory, in increasing version order."""

    @property
    def latest(self) -> int:
        """The newest (highest) version number."""
        return max(self.versions)


def is_saved_model_dir(path: PathLike) -> bool:
    """Whether ``path`` is a directory holding ``saved_model.pb`` or ``saved_model.pbtxt``."""
    directory = Path(path)
    return any((directory / name).is_file() for name in SAVED_MODEL_FILES)


def find_versions(base_path: PathLike) -> dict[int, Path]:
    """The numeric sub-directories of ``base_path`` that are SavedModels: version to path.

    Two directories for one version (``1`` and ``01``) raise :class:`BackendUnavailable`.
    """
    base = Path(base_path)
    versions: dict[int, Path] = {}
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return versions
    for entry in entries:
        version = _version_number(entry.name)
        if version is None or not entry.is_dir() or not is_saved_model_dir(entry):
            continue
        if version in versions:
            raise BackendUnavailable(
                f"Model base path {base} has two directories for version {version}: "
                f"{versions[version].name} and {entry.name}"
            )
        versions[version] = entry
    return dict(sorted(versions.items()))


def _version_number(name: str) -> int | None:
    """The version a directory named ``name`` holds: ASCII digits that fit an int64, else ``None``."""
    if not _DIGITS.fullmatch(name):
        return None
    version = int(name)
    return version if version <= MAX_VERSION else None


def _single(name: str, saved_model: Path) -> ModelSource:
    version = _version_number(saved_model.name)
    if version is None:
        version = 1
    return ModelSource(name, saved_model, {version: saved_model})


def versions_at(base_path: PathLike) -> dict[int, Path]:
    """The versions a model's ``base_path`` holds now: version to SavedModel directory.

    A base path is read as :func:`find_versions` reads it; a :class:`ModelSource` whose base path
    is a bare SavedModel directory has that one version (its name when numeric, else 1). This is
    what the embedded backend polls for new and removed versions.
    """
    path = Path(base_path)
    if is_saved_model_dir(path):
        return dict(_single("", path).versions)
    return find_versions(path)


def _model_at(name: str, path: Path) -> ModelSource | None:
    """The model at ``path`` (a SavedModel directory or a base path), or ``None``."""
    if is_saved_model_dir(path):
        return _single(name, path)
    versions = find_versions(path)
    if versions:
        return ModelSource(name, path, versions)
    return None


def _walk(root: Path, depth: int) -> Iterator[tuple[Path, bool]]:
    """Directories below ``root`` that hold models: ``(path, is_bare_saved_model)``."""
    if depth > MAX_DEPTH:
        return
    try:
        children = sorted(entry for entry in root.iterdir() if entry.is_dir())
    except OSError:
        return
    for child in children:
        if child.name.startswith(".") or child.name in _SKIP_DIRS:
            continue
        if _DIGITS.fullmatch(child.name):
            continue  # a version directory: its parent was (or will be) reported
        if find_versions(child):
            yield child, False
        elif is_saved_model_dir(child):
            yield child, True
        else:
            yield from _walk(child, depth + 1)


def discover_models(root: PathLike, *, name: str | None = None) -> dict[str, ModelSource]:
    """The models at or below ``root``: model name to :class:`ModelSource`.

    ``root`` may be a SavedModel directory or a base path (one model, named ``name`` or after the
    directory: the parent's name for a numeric SavedModel directory), or a model root, searched
    up to :data:`MAX_DEPTH` levels down. Hidden directories and ``code`` are skipped.
    """
    path = Path(root)
    if not path.is_dir():
        raise BackendUnavailable(f"Model path {path} does not exist or is not a directory")
    if is_saved_model_dir(path):
        default = path.parent.name if _DIGITS.fullmatch(path.name) else path.name
        model_name = name or default or "model"
        return {model_name: _single(model_name, path)}
    versions = find_versions(path)
    if versions:
        model_name = name or path.name or "model"
        return {model_name: ModelSource(model_name, path, versions)}
    models: dict[str, ModelSource] = {}
    for directory, bare in _walk(path, 1):
        model_name = directory.name
        if model_name in models:
            raise BackendUnavailable(
                f"Two models named {model_name!r} under {path}: "
                f"{models[model_name].base_path} and {directory}"
            )
        models[model_name] = (
            _single(model_name, directory)
            if bare
            else ModelSource(model_name, directory, find_versions(directory))
        )
    if not models:
        raise BackendUnavailable(
            f"No SavedModel found in {path} (looked for saved_model.pb in it, in numeric version "
            "directories under it, and in model directories below it)"
        )
    return models


def resolve_models(models: Mapping[str, PathLike] | PathLike) -> dict[str, ModelSource]:
    """Model name to :class:`ModelSource`, from a mapping of name to path or from one path.

    Each path in a mapping must be a SavedModel directory or a base path; one path is searched
    as :func:`discover_models` does.
    """
    if isinstance(models, Mapping):
        resolved: dict[str, ModelSource] = {}
        for model_name, raw_path in models.items():
            if not model_name:
                raise BackendUnavailable(f"Model path {raw_path} was given an empty model name")
            path = Path(raw_path)
            if not path.is_dir():
                raise BackendUnavailable(
                    f"Model path {path} for model {model_name!r} does not exist or is not a "
                    "directory"
                )
            source = _model_at(model_name, path)
            if source is None:
                raise BackendUnavailable(
                    f"No SavedModel found for model {model_name!r} in {path} (looked for "
                    "saved_model.pb in it and in numeric version directories under it)"
                )
            resolved[model_name] = source
        if not resolved:
            raise BackendUnavailable("No models were given")
        return resolved
    return discover_models(models)
