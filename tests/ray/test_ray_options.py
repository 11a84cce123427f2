"""tfio_handlers.ray without a Ray session: options, ``build_app``'s arguments, the command's checks,
and the import rules (the core never imports Ray; a missing Ray says which extra to install)."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")
pytest.importorskip("ray.serve")

import ray

import tfio_handlers.ray as tray
from tfio_handlers.ray import command, deployments


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What :func:`build_app` passes to :func:`app`."""
    seen: dict[str, Any] = {}

    def fake_app(**kwargs: Any) -> str:
        seen.update(kwargs)
        return "application"

    monkeypatch.setattr(deployments, "app", fake_app)
    return seen


def test_build_app_reads_serve_runs_strings(captured: dict[str, Any]) -> None:
    result = tray.build_app(
        {
            "model_dir": "/models/iris",
            "replicas": "3",
            "num_cpus": "0.25",
            "split": "true",
            "model_replicas": "2",
            "model_max_ongoing_requests": "16",
        }
    )
    assert result == "application"
    assert captured == {
        "model_dir": "/models/iris",
        "num_replicas": 3,
        "ray_actor_options": {"num_cpus": 0.25},
        "split": True,
        "model_num_replicas": 2,
        "model_max_ongoing_requests": 16,
    }


def test_build_app_takes_a_yaml_configs_typed_values(captured: dict[str, Any]) -> None:
    tray.build_app(
        {
            "models": {"iris": "/m/iris", "half": "/m/half"},
            "env": {"SAGEMAKER_TFS_ENABLE_BATCHING": "true"},
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 4},
            "split": False,
        }
    )
    assert captured["models"] == {"iris": "/m/iris", "half": "/m/half"}
    assert captured["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4}
    assert captured["split"] is False
    assert "num_replicas" not in captured


def test_build_app_refuses_unknown_arguments() -> None:
    with pytest.raises(ValueError, match="does not take model_path"):
        tray.build_app({"model_path": "/m"})
    with pytest.raises(ValueError, match="not a boolean"):
        tray.build_app({"model_dir": "/m", "split": "maybe"})


def test_app_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="not both"):
        tray.app("/m", num_replicas=2, autoscaling_config={"max_replicas": 3})
    with pytest.raises(ValueError, match="embedded backend only"):
        tray.app(backend="grpc://localhost:8500", split=True)


def test_config_env_writes_the_variables_serve_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = tray.config_env(
        "model", entry_point="code/inference.py", backend="http://tfs:8501", env={"A": "1"}
    )
    assert env == {
        "A": "1",
        "TFIO_HANDLERS_MODEL_DIR": str(tmp_path / "model"),
        "TFIO_HANDLERS_ENTRY_POINT": str(tmp_path / "code" / "inference.py"),
        "TFIO_HANDLERS_BACKEND": "http://tfs:8501",
    }
    assert tray.config_env(models="a=x, b=/y")["TFIO_HANDLERS_MODELS"] == (
        f"a={tmp_path / 'x'},b=/y"
    )


def _args(*argv: str) -> argparse.Namespace:
    """``tfio-handlers serve``'s options, parsed by the command's own parser."""
    from tfio_handlers import cli

    return cli._parser().parse_args(["serve", *argv])


def test_the_commands_options(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _args("--ray", "--model", "iris=/m/iris", "--replicas", "2", "--model-replicas", "1")
    assert args.ray and args.ray_address is None and args.ray_num_cpus == 0.5
    seen: dict[str, Any] = {}
    monkeypatch.setattr(command, "app", lambda **kwargs: seen.update(kwargs))
    env = command.replica_env(args)
    assert env["TFIO_HANDLERS_MODELS"] == "iris=/m/iris"
    command.app_from_args(args, env)
    assert seen["num_replicas"] == 2 and seen["split"] is True
    assert seen["model_num_replicas"] == 1
    assert seen["ray_actor_options"] == {"num_cpus": 0.5}


def test_the_command_stops_on_a_bad_configuration_before_ray_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not ray.is_initialized()
    status = tray.serve_with_ray(_args("--ray", "--model-dir", str(tmp_path / "missing")))
    assert status == 2
    assert "tfio-handlers serve: cannot start:" in capsys.readouterr().err
    assert not ray.is_initialized()
    status = tray.serve_with_ray(
        _args(
            "--ray",
            "--model-dir",
            str(tmp_path),
            "--backend",
            "grpc://h:1",
            "--model-replicas",
            "1",
        )
    )
    assert status == 2
    assert "embedded backend only" in capsys.readouterr().err


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120
    )


def test_the_core_never_imports_ray() -> None:
    result = _python(
        "import sys, tfio_handlers, tfio_handlers.pipeline, tfio_handlers.bootstrap, "
        "tfio_handlers.adapters.asgi, tfio_handlers.cli; assert 'ray' not in sys.modules"
    )
    assert result.returncode == 0, result.stderr


def test_without_ray_the_error_names_the_extra() -> None:
    result = _python(
        "import sys; sys.modules['ray'] = None\n"
        "try:\n    import tfio_handlers.ray\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    assert "pip install 'tfio-handlers[ray]'" in result.stdout, result.stderr


def test_ctrl_c_while_starting_stops_without_a_traceback(iris_model: Path) -> None:
    """SIGINT during ``ray.init`` or the replicas' start: a one-line message, then a clean stop
    with status 130 once Ray is up (interrupting ``ray.init`` itself crashed the process once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = ["serve", "--ray", "--port", port, "--model-dir", str(iris_model.parent)]
    process = subprocess.Popen(
        [sys.executable, "-m", "tfio_handlers", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # ray.init takes longer than this on the CI machine
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted while starting" in err
    assert "Traceback" not in err
