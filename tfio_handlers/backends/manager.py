"""Which model versions are served, and their lifecycle: TF Serving's manager, source and labels.

A :class:`ModelManager` holds a ``ModelServerConfig`` (:mod:`.model_config`) and, per model, every
version it has seen with its state as ``GetModelStatus`` reports it: ``START`` (found, about to
load), ``LOADING``, ``AVAILABLE`` (serving), ``UNLOADING`` (left the policy; requests in flight
finish on it), ``END`` (unloaded, or failed to load: then with the error). It never imports
TensorFlow itself: loading is the ``load`` function it is given (the embedded backend's).

:meth:`ModelManager.poll` is one pass of TF Serving's file-system source: each model's base path is
listed, its version policy picks the versions to serve, new ones are loaded, and versions that left
the policy are unloaded once the new ones are available (TF Serving's availability-preserving
order). A background thread (:meth:`ModelManager.start`) polls every
``file_system_poll_wait_seconds`` and, if given a config file, re-reads it every
``model_config_file_poll_wait_seconds``; loading happens there, never on a request's path: requests
read an immutable snapshot of the serving versions (:meth:`ModelManager.serving`), swapped when a
pass changes it.

Where it differs from TF Serving, on purpose (docs/models.md):

* version labels are checked after the config's versions have loaded, so a config file may label
  the versions it serves from the start (TF Serving checks them before loading, and refuses such a
  file unless ``--allow_version_labels_for_unavailable_models``);
* a model is never left without a serving version by a pass: versions leaving the policy are
  unloaded only when a version the policy wants is available (a new version that fails to load, or
  a base path emptied by mistake, leaves the old one serving);
* a version that failed to load is tried again only when its directory's files change;
* a version directory counts once it holds ``saved_model.pb`` (TF Serving aspires any numeric
  directory and fails to load a half-copied one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HTTPError
from ..protos import (
    GetModelStatusResponse,
    ModelConfig,
    ModelServerConfig,
    ModelVersionStatus,
)
from .model_config import aspired_versions, check_model_config, read_model_config
from .model_repository import PathLike, versions_at
from .status import code_number, status_error

__all__ = ["Loader", "ModelManager", "VersionState"]

log = logging.getLogger(__name__)

Loader = Callable[[str, int, Path], Any]
"""``load(model_name, version, path)`` → the loaded servable; raises on failure."""

START = ModelVersionStatus.START
LOADING = ModelVersionStatus.LOADING
AVAILABLE = ModelVersionStatus.AVAILABLE
UNLOADING = ModelVersionStatus.UNLOADING
END = ModelVersionStatus.END

_LONGEST_WAIT = 60.0
"""The poll thread wakes at least this often: a wait beyond ``threading.TIMEOUT_MAX`` (or time_t,
``--file-system-poll-wait-seconds 1e300``) raises ``OverflowError`` and would kill the thread."""


@dataclass(eq=False)
class VersionState:
    """One version of one model: where it is, its state, its error, its requests in flight."""

    version: int
    path: Path
    state: int = START
    error_code: int = 0
    """TF Serving's status code of the last transition (0: OK)."""
    error_message: str = ""
    servable: Any = None
    in_flight: int = 0
    fingerprint: tuple[tuple[str, int, int], ...] = ()
    """The directory's files when a load failed: a retry waits until they change."""


@dataclass(eq=False)
class _Model:
    config: ModelConfig
    versions: dict[int, VersionState] = field(default_factory=dict)
    serving: Mapping[int, Any] = field(default_factory=dict)
    """Version → servable of the AVAILABLE versions; replaced, never changed in place."""


def _fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """The files under ``path`` with their modification times and sizes."""
    entries: list[tuple[str, int, int]] = []
    try:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                stat = file.stat()
                entries.append((file.relative_to(path).as_posix(), stat.st_mtime_ns, stat.st_size))
    except OSError:
        pass
    return tuple(entries)


class ModelManager:
    """The served versions of every configured model, their states and labels (module docstring).

    ``config`` says which models, where and under which policy; ``load`` loads one version.
    :meth:`poll` must run once (the embedded backend does, at construction) before anything serves.
    """

    def __init__(
        self,
        config: ModelServerConfig,
        load: Loader,
        *,
        file_system_poll_wait_seconds: float = 0,
        model_config_file: PathLike | None = None,
        model_config_file_poll_wait_seconds: float = 0,
        allow_version_labels_for_unavailable_models: bool = False,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        check_model_config(config)
        self._load = load
        self._config = ModelServerConfig()
        self._config.CopyFrom(config)
        self._models: dict[str, _Model] = {
            model.name: _Model(_copy(model)) for model in config.model_config_list.config
        }
        self._labels: Mapping[str, Mapping[str, int]] = {}
        self.file_system_poll_wait_seconds = file_system_poll_wait_seconds
        self.model_config_file = Path(model_config_file) if model_config_file else None
        self.model_config_file_poll_wait_seconds = model_config_file_poll_wait_seconds
        self.allow_version_labels_for_unavailable_models = (
            allow_version_labels_for_unavailable_models
        )
        self._on_change = on_change or (lambda name: None)
        self._lock = threading.Lock()  # states and in-flight counts; held only briefly
        self._reload_lock = threading.RLock()  # one pass or reload at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what requests read ------------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        """The configured models, in the config's order."""
        with self._lock:
            return list(self._models)

    @property
    def config(self) -> ModelServerConfig:
        """A copy of the config in force."""
        copy = ModelServerConfig()
        copy.CopyFrom(self._config)
        return copy

    def serving(self, model_name: str) -> Mapping[int, Any]:
        """``model_name``'s AVAILABLE versions: version → servable (empty if unknown)."""
        model = self._models.get(model_name)
        return model.serving if model is not None else {}

    def labels(self, model_name: str) -> Mapping[str, int]:
        """``model_name``'s version labels."""
        return self._labels.get(model_name, {})

    def states(self, model_name: str) -> dict[int, VersionState] | None:
        """Every version of ``model_name`` seen, newest first; ``None`` for an unknown model."""
        model = self._models.get(model_name)
        if model is None:
            return None
        with self._lock:
            return {v: model.versions[v] for v in sorted(model.versions, reverse=True)}

    def add_status(self, response: GetModelStatusResponse, state: VersionState) -> None:
        """One ``model_version_status`` entry, as TF Serving's ``AddModelVersionStatusToResponse``."""
        status = response.model_version_status.add()
        status.version = state.version
        status.state = state.state  # type: ignore[assignment]
        status.status.error_code = state.error_code  # type: ignore[assignment]
        status.status.error_message = state.error_message

    def not_ready(self) -> dict[str, str]:
        """Models with no AVAILABLE version, each with why (for ``/ping``); empty when all serve."""
        missing: dict[str, str] = {}
        with self._lock:  # a reload may add or remove models meanwhile
            models = [
                (name, model, list(model.versions.values())) for name, model in self._models.items()
            ]
        for name, model, versions in models:
            if model.serving:
                continue
            failed = [s for s in versions if s.error_message]
            missing[name] = (
                f"version {failed[-1].version} failed to load: {failed[-1].error_message}"
                if failed
                else f"no version of model {name} is available yet under {model.config.base_path}"
            )
        return missing

    @contextmanager
    def using(self, model_name: str, servable: Any) -> Iterator[Any]:
        """Count a request in flight on ``servable`` for as long as the block runs."""
        state = self._state_of(model_name, servable)
        if state is None:
            yield servable
            return
        with self._lock:
            state.in_flight += 1
        try:
            yield servable
        finally:
            with self._lock:
                state.in_flight -= 1
                unloaded = state.in_flight == 0 and state.state == UNLOADING
                if unloaded:
                    state.servable = None
                    state.state = END
            if unloaded:
                log.info("Model %s version %d unloaded", model_name, state.version)

    def _state_of(self, model_name: str, servable: Any) -> VersionState | None:
        model = self._models.get(model_name)
        if model is None:
            return None
        state = model.versions.get(getattr(servable, "version", -1))
        return state if state is not None and state.servable is servable else None

    # -- labels ----------------------------------------------------------------------------------

    def set_label(self, model_name: str, label: str, version: int) -> None:
        """Point ``label`` of ``model_name`` at ``version``, which must be AVAILABLE."""
        with self._reload_lock:
            labels = {name: dict(model_labels) for name, model_labels in self._labels.items()}
            self._check_label(model_name, label, version)
            labels.setdefault(model_name, {})[label] = int(version)
            self._labels = labels
        self._on_change(model_name)

    def _check_label(self, model_name: str, label: str, version: int) -> None:
        """TF Serving's ``UpdateModelVersionLabelMap`` check for one label."""
        if self.allow_version_labels_for_unavailable_models:
            current = self._labels.get(model_name, {}).get(label)
            if current is None or current == version:
                return
        if version not in self.serving(model_name):
            raise status_error(
                "FAILED_PRECONDITION",
                f"Request to assign label to version {version} of model {model_name}, which is "
                "not currently available for inference",
            )

    def apply_labels(self) -> None:
        """Put the config's labels in force, all or none (the old ones stay when one is refused)."""
        labels: dict[str, dict[str, int]] = {}
        for model in self._config.model_config_list.config:
            for label, version in sorted(model.version_labels.items()):
                self._check_label(model.name, label, version)
                labels.setdefault(model.name, {})[label] = int(version)
        changed = labels != self._labels
        self._labels = labels
        if changed:
            for name in labels:
                self._on_change(name)

    # -- polling ---------------------------------------------------------------------------------

    def poll(self) -> list[VersionState]:
        """One pass over every model's base path (module docstring); the versions that failed."""
        with self._reload_lock:
            failed: list[VersionState] = []
            for name, model in list(self._models.items()):
                failed.extend(self._poll_model(name, model))
            return failed

    def _poll_model(self, name: str, model: _Model) -> list[VersionState]:
        base = Path(model.config.base_path)
        if not base.is_dir():
            log.warning("Could not find base path %s for servable %s", base, name)
            return []
        try:
            found = versions_at(base)
        except HTTPError as exc:
            log.warning("Model %s: %s", name, exc.message)
            return []
        wanted = aspired_versions(model.config.model_version_policy, found)
        failed: list[VersionState] = []
        for version in sorted(wanted, reverse=True):  # the newest serves soonest
            state = model.versions.get(version)
            if state is not None and state.state in (LOADING, AVAILABLE):
                continue
            if (
                state is not None
                and state.error_code
                and state.fingerprint == _fingerprint(wanted[version])
            ):
                continue  # failed before and unchanged since
            outcome = self._load_version(name, model, version, wanted[version])
            if outcome.error_code:
                failed.append(outcome)
        leaving = [v for v in model.serving if v not in wanted]
        if leaving and any(v in model.serving for v in wanted):
            for version in leaving:
                self._unload_version(name, model, version)
        return failed

    def _load_version(self, name: str, model: _Model, version: int, path: Path) -> VersionState:
        # The files as the load finds them: a copy finishing while the load fails must count as a
        # change (taken after the failure, the finished copy's files would never be tried).
        before = _fingerprint(path)
        state = VersionState(version, path)
        with self._lock:
            model.versions[version] = state
            state.state = LOADING
        log.info("Loading model %s version %d from %s", name, version, path)
        try:
            servable = self._load(name, version, path)
        except Exception as exc:
            code = getattr(exc, "grpc_code", None) or getattr(exc.__cause__, "error_code", None)
            with self._lock:
                state.state = END
                # TensorFlow's error code when it raised one (DATA_LOSS for a corrupt
                # saved_model.pb...), else UNKNOWN.
                state.error_code = code_number(code) if isinstance(code, str) else int(code or 2)
                state.error_message = getattr(exc, "message", None) or str(exc)
                state.fingerprint = before
            log.error("Model %s version %d failed to load: %s", name, version, state.error_message)
            return state
        with self._lock:
            state.servable = servable
            state.state = AVAILABLE
            model.serving = {**model.serving, version: servable}
        log.info("Model %s version %d is available", name, version)
        self._on_change(name)
        return state

    def _unload_version(self, name: str, model: _Model, version: int) -> None:
        """Stop new requests reaching ``version``; drop it now if none is in flight, else when
        the last one ends (:meth:`using`). Nothing waits for them: TF Serving unloads in its
        manager's thread, and neither a poll nor a reload waits on a slow request."""
        with self._lock:
            state = model.versions[version]
            state.state = UNLOADING
            model.serving = {v: s for v, s in model.serving.items() if v != version}
            if state.in_flight == 0:
                state.servable = None
                state.state = END
            in_flight = state.in_flight
        self._on_change(name)
        if in_flight:
            log.info(
                "Unloading model %s version %d after its %d requests in flight",
                name,
                version,
                in_flight,
            )
        else:
            log.info("Model %s version %d unloaded", name, version)

    # -- reloading the config --------------------------------------------------------------------

    def reload(self, config: ModelServerConfig) -> None:
        """TF Serving's ``ReloadConfig``: check, add/update/remove models, load, then label.

        Raises the library error of TF Serving's status code and message when the config is
        refused, when a new model's versions fail to load ("N model(s) did not become
        available"), or when a label points at a version that is not available.
        """
        with self._reload_lock:
            check_model_config(config, self._config)
            if config == self._config:
                return
            new = {model.name: model for model in config.model_config_list.config}
            for name in [n for n in self._models if n not in new]:
                with self._lock:
                    removed = self._models.pop(name)
                for version in list(removed.serving):
                    self._unload_version(name, removed, version)
                self._on_change(name)
            added: list[str] = []
            for name, model_config in new.items():
                existing = self._models.get(name)
                if existing is None:
                    with self._lock:
                        self._models[name] = _Model(_copy(model_config))
                    added.append(name)
                else:
                    existing.config = _copy(model_config)
            self._config = ModelServerConfig()
            self._config.CopyFrom(config)
            log.info("Model config reloaded: %s", ", ".join(new) or "no models")
            failed = {
                name: self._poll_model(name, model) for name, model in list(self._models.items())
            }
            self.apply_labels()
            unavailable = [
                (name, state)
                for name in added
                for state in failed[name]
                if not self._models[name].serving
            ]
            if unavailable:
                details = "".join(
                    f"{{{{name: {name} version: {state.version}}} due to error: "
                    f"{state.error_message}}}, "
                    for name, state in unavailable
                )
                raise status_error(
                    "UNKNOWN",
                    f"{len(unavailable)} model(s) did not become available: {{{details}}}",
                )

    def reload_config_file(self) -> None:
        """Re-read :attr:`model_config_file` and :meth:`reload` it; errors are logged, the old
        config stays (TF Serving's ``PollFilesystemAndReloadConfig``)."""
        if self.model_config_file is None:
            return
        try:
            self.reload(read_model_config(self.model_config_file))
        except HTTPError as exc:
            log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", exc.message)

    # -- the background thread -------------------------------------------------------------------

    def start(self) -> None:
        """Start polling in a background thread, if either interval is positive."""
        if self._thread is not None:
            return
        if self.file_system_poll_wait_seconds <= 0 and not (
            self.model_config_file and self.model_config_file_poll_wait_seconds > 0
        ):
            return
        self._thread = threading.Thread(target=self._run, name="tfio-model-poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fs_every = self.file_system_poll_wait_seconds
        config_every = self.model_config_file_poll_wait_seconds if self.model_config_file else 0
        now = time.monotonic()
        next_fs = now + fs_every if fs_every > 0 else float("inf")
        next_config = now + config_every if config_every > 0 else float("inf")
        while not self._stop.wait(
            min(max(0.0, min(next_fs, next_config) - time.monotonic()), _LONGEST_WAIT)
        ):
            try:
                if time.monotonic() >= next_config:
                    self.reload_config_file()
                    next_config = time.monotonic() + config_every
                if time.monotonic() >= next_fs:
                    self.poll()
                    next_fs = time.monotonic() + fs_every
            except Exception:
                log.exception("Polling the model base paths failed")
                next_fs = time.monotonic() + max(fs_every, 1.0)

    def close(self) -> None:
        """Stop the background thread and drop every servable."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        with self._reload_lock, self._lock:
            for model in self._models.values():
                model.serving = {}
                for state in model.versions.values():
                    state.servable = None


def _copy(model: ModelConfig) -> ModelConfig:
    copy = ModelConfig()
    copy.CopyFrom(model)
    return copy
