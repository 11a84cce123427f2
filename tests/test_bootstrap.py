"""Building a pipeline from the environment: models, labels, backends, user code, requirements, logging."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tfio_handlers import bootstrap
from tfio_handlers.bootstrap import (
    configure_logging,
    find_entry_point,
    install_requirements,
    labels_from_env,
    make_backend,
    pipeline_from_env,
)
from tfio_handlers.config import Settings
from tfio_handlers.errors import InternalError


@pytest.fixture(autouse=True)
def no_sagemaker_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``/opt/ml`` never leaks in from the machine running the tests."""
    monkeypatch.setattr(bootstrap, "SAGEMAKER_MODEL_DIR", tmp_path / "opt-ml-model")
    monkeypatch.setattr(bootstrap, "SAGEMAKER_CODE_DIR", tmp_path / "opt-ml-code")


def test_labels_from_env() -> None:
    assert labels_from_env({}) == {}
    spec = "half:stable=1, half:canary=2,iris:prod=7"
    assert labels_from_env({"TFIO_HANDLERS_MODEL_LABELS": spec}) == {
        "half": {"stable": 1, "canary": 2},
        "iris": {"prod": 7},
    }
    # A model name may hold ':' (TF Serving allows %3A in URLs): the last one splits.
    assert labels_from_env({"TFIO_HANDLERS_MODEL_LABELS": "a:b:x=3"}) == {"a:b": {"x": 3}}
    for bad in ("half=1", "half:stable", "half:stable=one", ":stable=1", "half:=1"):
        with pytest.raises(InternalError, match="model:label=version"):
            labels_from_env({"TFIO_HANDLERS_MODEL_LABELS": bad})


def test_models_from_env(tmp_path: Path) -> None:
    models = bootstrap.models_from_env({"TFIO_HANDLERS_MODELS": "a=/x, b=/y"})
    assert models == {"a": "/x", "b": "/y"}
    with pytest.raises(InternalError, match="name=path"):
        bootstrap.models_from_env({"TFIO_HANDLERS_MODELS": "a"})
    assert bootstrap.models_from_env({"TFIO_HANDLERS_MODEL_DIR": "/m"}) == "/m"
    assert bootstrap.models_from_env({}) is None
    (tmp_path / "opt-ml-model").mkdir()
    assert bootstrap.models_from_env({}) == str(tmp_path / "opt-ml-model")


def test_find_entry_point_rules(tmp_path: Path) -> None:
    model = tmp_path / "model"
    code = model / "code"
    code.mkdir(parents=True)
    assert find_entry_point({}, str(model)) is None
    (code / "inference.py").write_text("")
    assert find_entry_point({}, str(model)) == code / "inference.py"
    (code / "serve.py").write_text("")
    assert find_entry_point({"SAGEMAKER_PROGRAM": "serve.py"}, str(model)) == code / "serve.py"
    explicit = tmp_path / "elsewhere.py"
    assert find_entry_point({"TFIO_HANDLERS_ENTRY_POINT": str(explicit)}, None) == explicit
    absolute = str(code / "serve.py")
    assert find_entry_point({"SAGEMAKER_PROGRAM": absolute}, None) == Path(absolute)
    with pytest.raises(InternalError, match=r"SAGEMAKER_PROGRAM='missing\.py'"):
        find_entry_point({"SAGEMAKER_PROGRAM": "missing.py"}, str(model))
    opt_code = tmp_path / "opt-ml-code"
    opt_code.mkdir()
    (opt_code / "other.py").write_text("")
    assert find_entry_point({"SAGEMAKER_PROGRAM": "other.py"}, None) == opt_code / "other.py"


def test_install_requirements_runs_pip_beside_the_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(bootstrap.subprocess, "run", run)
    install_requirements({}, None)
    assert calls == []
    entry = tmp_path / "code" / "inference.py"
    entry.parent.mkdir()
    entry.write_text("")
    (entry.parent / "requirements.txt").write_text("something\n")
    install_requirements({"SAGEMAKER_REQUIREMENTS": "requirements.txt"}, entry)
    assert calls == [
        [sys.executable, "-m", "pip", "install", "-q", "-r", str(entry.parent / "requirements.txt")]
    ]
    with pytest.raises(InternalError, match="SAGEMAKER_REQUIREMENTS file not found"):
        install_requirements({"SAGEMAKER_REQUIREMENTS": "nope.txt"}, entry)

    def failing(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 1)

    monkeypatch.setattr(bootstrap.subprocess, "run", failing)
    with pytest.raises(InternalError, match="failed with status 1"):
        install_requirements({"SAGEMAKER_REQUIREMENTS": "requirements.txt"}, entry)


def test_make_backend_choices_and_errors() -> None:
    settings = Settings.from_env({"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "half"})
    with pytest.raises(InternalError, match="Unknown backend 'ftp://x'"):
        make_backend("ftp://x", "/m", settings)
    with pytest.raises(InternalError, match="No model"):
        make_backend("embedded", None, settings)
    pytest.importorskip("httpx")
    from tfio_handlers.backends.rest import RestBackend

    rest = make_backend("http://127.0.0.1:1", None, settings)
    assert isinstance(rest, RestBackend)
    rest.close()


@pytest.mark.tensorflow
def test_pipeline_from_env_labels_default_model_and_user_code(
    model_root: Path, tmp_path: Path
) -> None:
    entry = tmp_path / "inference.py"
    entry.write_text("def input_fn(data, content_type):\n    return None\n")
    pipeline = pipeline_from_env(
        {
            "TFIO_HANDLERS_MODEL_DIR": str(model_root),
            "TFIO_HANDLERS_MODEL_LABELS": "versioned:stable=1,versioned:canary=2",
            "SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "iris",
            "TFIO_HANDLERS_ENTRY_POINT": str(entry),
            "TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD": "1",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "7",
        }
    )
    try:
        backend: Any = pipeline.backend
        assert backend.labels("versioned") == {"stable": 1, "canary": 2}
        assert backend.default_model == "iris" and pipeline.default_model == "iris"
        assert pipeline.user_code is not None and pipeline.user_code.input_fn is not None
        assert pipeline.settings.request_timeout == 7.0
        assert pipeline.ping().status == 200
    finally:
        pipeline.backend.close()


def test_configure_logging_only_when_nothing_is_configured() -> None:
    root = logging.getLogger()
    package = logging.getLogger("tfio_handlers")
    saved = (root.handlers[:], package.handlers[:], package.level, package.propagate)
    root.handlers[:] = []  # as in a fresh server process (pytest's own handlers put aside)
    package.handlers[:] = []
    try:
        configure_logging({"TFIO_HANDLERS_LOG_LEVEL": "warning"})
        assert len(package.handlers) == 1 and package.level == logging.WARNING
        configure_logging({})  # already configured: left alone
        assert len(package.handlers) == 1
        package.handlers[:] = []
        root.handlers[:] = [logging.NullHandler()]
        configure_logging({})  # the server configured logging itself
        assert package.handlers == []
    finally:
        root.handlers[:], package.handlers[:] = saved[0], saved[1]
        package.setLevel(saved[2])
        package.propagate = saved[3]


def test_pipeline_from_env_batches_when_sagemaker_says_so(half_plus_two_model: Path) -> None:
    from tfio_handlers.backends.batching import BatchingBackend

    pipeline = pipeline_from_env(
        {
            "TFIO_HANDLERS_MODEL_DIR": str(half_plus_two_model),
            "TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD": "1",
            "SAGEMAKER_TFS_ENABLE_BATCHING": "true",
            "SAGEMAKER_TFS_MAX_BATCH_SIZE": "4",
        }
    )
    try:
        assert isinstance(pipeline.backend, BatchingBackend)
        answer = pipeline.invoke(b'{"instances": [1.0, 3.0]}', {})
        assert answer.status == 200 and b"2.5" in answer.body and b"3.5" in answer.body
    finally:
        pipeline.backend.close()


def test_pipeline_from_env_waits_for_a_remote_model_server(embedded_backend: Any) -> None:
    """A gRPC model server that starts after the pipeline begins waiting is found."""
    import threading
    import time

    from servers import free_port

    from tfio_handlers.adapters.grpc import serve

    port = free_port()
    started: list[Any] = []

    def start_later() -> None:
        time.sleep(1.0)
        server_, _ = serve(embedded_backend, "127.0.0.1", port)
        started.append((time.monotonic(), server_))

    thread = threading.Thread(target=start_later)
    thread.start()
    pipeline = pipeline_from_env(
        {
            "TFIO_HANDLERS_BACKEND": f"grpc://127.0.0.1:{port}",
            "SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "half_plus_two",
            "TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
    )
    ready_at = time.monotonic()
    thread.join()
    try:
        assert started[0][0] <= ready_at, "the pipeline was ready before its model server"
        assert pipeline.invoke(b"[1.0]", {}).status == 200
    finally:
        pipeline.backend.close()
        started[0][1].stop(None)
