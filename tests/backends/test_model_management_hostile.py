"""Model management under attack: odd version directories, half-copied versions, reloads racing
requests, hostile poll intervals. No TensorFlow: the manager is given a fake loader."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf import text_format

from tfio_handlers.backends.manager import ModelManager
from tfio_handlers.backends.model_repository import find_versions, versions_at
from tfio_handlers.protos import GetModelStatusResponse, ModelServerConfig, ModelVersionStatus

AVAILABLE = ModelVersionStatus.AVAILABLE
UNLOADING = ModelVersionStatus.UNLOADING
END = ModelVersionStatus.END


def make_version(base: Path, name: str) -> Path:
    directory = base / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "saved_model.pb").write_bytes(b"pb")
    return directory


def config_of(models: dict[str, Path], policy: str = "all {}") -> ModelServerConfig:
    entries = "".join(
        f'config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" '
        f"model_version_policy {{ {policy} }} }}"
        for name, path in models.items()
    )
    return text_format.Parse(f"model_config_list {{ {entries} }}", ModelServerConfig())


def fake_load(name: str, version: int, path: Path) -> Any:
    return SimpleNamespace(name=name, version=version, path=path)


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Switch threads every microsecond, so that races show in a short test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


# -- version directories ------------------------------------------------------------------------


def test_version_directories_beyond_int64_are_ignored_as_tf_serving_does(tmp_path: Path) -> None:
    """TF Serving parses version directories with absl::SimpleAtoi into an int64 and skips those
    that do not fit. A directory named 2**63 (or 20 nines) was version 2**63 here: it became the
    latest, and every request and status call on the model was a 500 (protobuf's int64 refused it).
    """
    make_version(tmp_path, "1")
    make_version(tmp_path, str(2**63))
    make_version(tmp_path, "9" * 20)
    make_version(tmp_path, str(2**63 - 1))
    assert sorted(find_versions(tmp_path)) == [1, 2**63 - 1]
    assert sorted(versions_at(tmp_path)) == [1, 2**63 - 1]


def test_non_ascii_digit_directories_are_not_versions(tmp_path: Path) -> None:
    """``re``'s ``\\d`` matches every Unicode digit and ``int`` reads them: a directory named
    ``١`` (Arabic-Indic one) was version 1, clashing with ``1``. TF Serving reads ASCII digits."""
    make_version(tmp_path, "1")
    make_version(tmp_path, "\u0661")  # ARABIC-INDIC DIGIT ONE
    make_version(tmp_path, "\uff12")  # FULLWIDTH DIGIT TWO
    assert find_versions(tmp_path) == {1: tmp_path / "1"}


def test_status_of_a_model_after_an_oversized_version_directory(tmp_path: Path) -> None:
    """The status of every version seen is answerable (the oversized one is never seen)."""
    make_version(tmp_path, "1")
    manager = ModelManager(config_of({"m": tmp_path}), fake_load)
    manager.poll()
    make_version(tmp_path, "9" * 20)
    manager.poll()
    response = GetModelStatusResponse()
    for state in (manager.states("m") or {}).values():
        manager.add_status(response, state)
    assert [s.version for s in response.model_version_status] == [1]
    assert sorted(manager.serving("m")) == [1]


# -- half-copied versions -----------------------------------------------------------------------


def test_a_version_whose_copy_completes_during_a_failed_load_is_retried(tmp_path: Path) -> None:
    """A version directory copied while the server polls: the load fails on the half-copied files,
    and the copy finishes while the loader is still failing. The files the failure is remembered
    with must be those the load saw: taken after the failure, they were the finished copy's, so
    the version was never tried again and stayed END with the half-copy's error."""
    make_version(tmp_path, "1")
    attempts: list[int] = []

    def load(name: str, version: int, path: Path) -> Any:
        if version == 2:
            attempts.append(version)
            if len(attempts) == 1:
                (path / "variables").mkdir()
                (path / "variables" / "variables.index").write_bytes(b"done copying")
                raise OSError("variables/variables.index: no such file (half-copied)")
        return fake_load(name, version, path)

    manager = ModelManager(config_of({"m": tmp_path}), load)
    manager.poll()
    make_version(tmp_path, "2")
    manager.poll()
    assert sorted(manager.serving("m")) == [1]
    manager.poll()  # nothing changed since the copy finished: the version must be tried again
    assert attempts == [2, 2]
    assert sorted(manager.serving("m")) == [1, 2]


# -- races between requests and reloads ----------------------------------------------------------


def test_ping_while_the_config_adds_and_removes_models(tmp_path: Path, switch_often: None) -> None:
    """``/ping`` asks :meth:`ModelManager.not_ready` while a config reload adds and removes
    models in another thread; it iterated the live dict and raised ``RuntimeError: dictionary
    changed size during iteration`` (a 500 from /ping)."""
    bases = {f"m{i}": tmp_path / f"m{i}" for i in range(30)}
    for base in bases.values():
        make_version(base, "1")
    few = config_of(dict(list(bases.items())[:1]))
    many = config_of(bases)
    manager = ModelManager(few, fake_load)
    manager.poll()
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                manager.not_ready()
                manager.model_names  # noqa: B018
                for name in manager.model_names:
                    manager.states(name)
            except BaseException as exc:
                errors.append(exc)
                return

    reader = threading.Thread(target=ask)
    reader.start()
    deadline = time.monotonic() + 1.5
    try:
        while time.monotonic() < deadline and not errors:
            manager.reload(many)
            manager.reload(few)
    finally:
        stop.set()
        reader.join()
    assert errors == []


# -- the background thread ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1e300, 1e12])
def test_a_huge_poll_interval_keeps_the_thread_alive_and_close_stops_it(
    tmp_path: Path, seconds: float
) -> None:
    """``--file-system-poll-wait-seconds 1e300`` (any float the flag accepts) made the thread's
    ``Event.wait`` raise ``OverflowError`` (beyond time_t): the poll thread died with a traceback
    at start-up, and config polling with it."""
    make_version(tmp_path, "1")
    manager = ModelManager(
        config_of({"m": tmp_path}), fake_load, file_system_poll_wait_seconds=seconds
    )
    manager.poll()
    manager.start()
    thread = manager._thread
    assert thread is not None
    time.sleep(0.2)
    assert thread.is_alive()
    started = time.monotonic()
    manager.close()
    assert not thread.is_alive()
    assert time.monotonic() - started < 5


def test_a_reload_does_not_wait_for_requests_on_the_versions_it_unloads(tmp_path: Path) -> None:
    """A request in flight on a version that a reload (HandleReloadConfigRequest, the config
    file's poll) removes: the reload waited for it, up to 600 s, holding the lock every poll and
    reload needs, so new versions of every model waited too. TF Serving's ReloadConfig returns
    once the new models are available; unloading finishes on its own. The version is UNLOADING
    while the request runs and END (its servable dropped) when it ends."""
    make_version(tmp_path / "a", "1")
    make_version(tmp_path / "b", "1")
    manager = ModelManager(config_of({"a": tmp_path / "a", "b": tmp_path / "b"}), fake_load)
    manager.poll()
    servable = manager.serving("a")[1]
    holding = threading.Event()
    release = threading.Event()

    def request() -> None:
        with manager.using("a", servable):
            holding.set()
            release.wait(30)

    worker = threading.Thread(target=request)
    worker.start()
    holding.wait(5)
    reloading = threading.Thread(target=manager.reload, args=(config_of({"b": tmp_path / "b"}),))
    try:
        reloading.start()
        reloading.join(3)
        assert not reloading.is_alive(), "the reload waited for the request in flight"
        assert manager.model_names == ["b"]
        make_version(tmp_path / "b", "2")
        manager.poll()  # the lock is free: other models move on
        assert sorted(manager.serving("b")) == [1, 2]
    finally:
        release.set()
        worker.join()
        reloading.join()
    manager.close()


def test_a_version_leaving_its_policy_is_unloading_until_its_last_request_ends(
    tmp_path: Path,
) -> None:
    make_version(tmp_path, "1")
    manager = ModelManager(config_of({"m": tmp_path}, "latest {}"), fake_load)
    manager.poll()
    servable = manager.serving("m")[1]
    with manager.using("m", servable):
        make_version(tmp_path, "2")
        manager.poll()  # returns at once: version 2 serves, version 1 waits for this request
        states = manager.states("m") or {}
        assert {v: s.state for v, s in states.items()} == {2: AVAILABLE, 1: UNLOADING}
        assert states[1].servable is servable
    states = manager.states("m") or {}
    assert states[1].state == END and states[1].servable is None
