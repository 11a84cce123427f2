"""TF Serving's model config file without TensorFlow: parsing, ServerCore's checks and texts, policies."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format

from tfio_handlers.backends.model_config import (
    aspired_versions,
    check_model_config,
    read_model_config,
    serving_config,
)
from tfio_handlers.errors import BackendUnavailable, HTTPError
from tfio_handlers.protos import FileSystemStoragePathSourceConfig, ModelServerConfig

Policy = FileSystemStoragePathSourceConfig.ServableVersionPolicy


def config(text: str) -> ModelServerConfig:
    return text_format.Parse(text, ModelServerConfig())


def refusal(text: str, previous: str | None = None) -> tuple[str, str]:
    with pytest.raises(HTTPError) as raised:
        check_model_config(config(text), config(previous) if previous else None)
    return getattr(raised.value, "grpc_code", ""), raised.value.message


def entry(
    name: str = "half", path: str = "/m/half", extra: str = 'model_platform: "tensorflow"'
) -> str:
    return f'config {{ name: "{name}" base_path: "{path}" {extra} }}'


def test_server_core_refusals_with_tf_serving_texts() -> None:
    twice = f"model_config_list {{ {entry()} {entry()} }}"
    assert refusal(twice) == (
        "INVALID_ARGUMENT",
        "Illegal to list model half multiple times in config list",
    )
    assert refusal(f"model_config_list {{ {entry(path='m/half')} }}") == (
        "INVALID_ARGUMENT",
        "Expected model half to have an absolute path or URI; got base_path()=m/half",
    )
    assert refusal(f"model_config_list {{ {entry(extra='')} }}")[1] == (
        "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
        "ModelServerConfig::model_platform, model name is half"
    )
    onnx_entry = entry(extra="model_platform: 'onnx'")
    onnx = f"model_config_list {{ {onnx_entry} }}"
    assert refusal(onnx)[1] == "Model half requests unsupported platform onnx"
    assert refusal('custom_model_config { type_url: "x" }')[1].endswith(
        "Only ModelConfigList is currently supported"
    )
    old_type = f"model_config_list {{ {entry(extra='model_type: TENSORFLOW')} }}"
    check_model_config(config(old_type))  # the deprecated field still names TensorFlow
    assert refusal(onnx, previous=f"model_config_list {{ {entry()} }}")[1] == (
        "Illegal to change a model's platform. For model half platform was tensorflow and new "
        "platform requested is onnx"
    )
    check_model_config(ModelServerConfig())  # empty: nothing to serve, accepted


def test_reading_a_file_names_it(tmp_path: Path) -> None:
    file = tmp_path / "models.config"
    file.write_text("model_config_list { config { name: ")
    with pytest.raises(BackendUnavailable, match=r"models.config is not a ModelServerConfig"):
        read_model_config(file)
    with pytest.raises(BackendUnavailable, match="Cannot read model config file"):
        read_model_config(tmp_path / "missing.config")
    file.write_text(f"model_config_list {{ {entry(path=str(tmp_path / 'nope'))} }}")
    assert read_model_config(file).model_config_list.config[0].name == "half"
    with pytest.raises(BackendUnavailable) as raised:
        serving_config(None, file, None)
    assert raised.value.message == f"Could not find base path {tmp_path / 'nope'} for servable half"


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ("", [3, 12]),  # no policy: latest 1 ... of versions 1, 3, 12
        ("latest {}", [12]),
        ("latest { num_versions: 2 }", [3, 12]),
        ("latest { num_versions: 9 }", [1, 3, 12]),
        ("all {}", [1, 3, 12]),
        ("specific { versions: 1 versions: 7 }", [1]),
    ],
)
def test_policies_choose_as_the_file_system_source(policy: str, served: list[int]) -> None:
    found = {1: Path("1"), 3: Path("3"), 12: Path("12")}
    expected = [12] if policy == "" else served
    assert list(aspired_versions(text_format.Parse(policy, Policy()), found)) == expected
