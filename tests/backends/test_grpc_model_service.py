"""``tfio-handlers grpc-serve --model-config-file`` driven by TF Serving's own gRPC stubs.

The ``tensorflow_serving.apis`` stubs (``PredictionServiceStub``, ``ModelServiceStub``) talk to a real
``grpc-serve`` subprocess on 127.0.0.1: predict by version label, GetModelStatus with every version's
state and error, and HandleReloadConfigRequest changing policies, labels and models, with TF Serving's
codes and texts when it refuses.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import ROOT, clean_env, free_port

pytestmark = pytest.mark.tensorflow

grpc = pytest.importorskip("grpc")


def model_config(
    half: Path, *, policy: str, labels: dict[str, int], iris: Path | None = None
) -> Any:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    label_text = "".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
    text = (
        f'model_config_list {{ config {{ name: "half" base_path: "{half}" '
        f'model_platform: "tensorflow" model_version_policy {{ {policy} }} {label_text} }}'
    )
    if iris is not None:
        text += f' config {{ name: "iris" base_path: "{iris}" model_platform: "tensorflow" }}'
    return text_format.Parse(text + " }", model_server_config_pb2.ModelServerConfig())


@pytest.fixture(scope="module")
def half_base(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("grpc_models") / "half"
    shutil.copytree(model_root / "versioned", base)  # 1: x/2 + 2, 2: x/2 + 3
    return base


@pytest.fixture(scope="module")
def channel(half_base: Path) -> Iterator[Any]:
    from google.protobuf import text_format

    config_file = half_base.parent / "models.config"
    config = model_config(half_base, policy="all {}", labels={"stable": 1, "canary": 2})
    config_file.write_text(text_format.MessageToString(config))
    port = free_port()
    log = (half_base.parent / "grpc-serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfio_handlers",
            "grpc-serve",
            "--model-config-file",
            str(config_file),
            "--file-system-poll-wait-seconds",
            "0.5",
            "--port",
            str(port),
            "--grace",
            "1",
        ],
        cwd=ROOT,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
            grpc.channel_ready_future(chan).result(timeout=120)
            yield chan
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def predict(channel: Any, label: str = "", version: int | None = None, name: str = "half") -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if label:
        request.model_spec.version_label = label
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0], dtype=tf.float32))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, timeout=30)


def states(channel: Any, name: str = "half") -> dict[int, tuple[str, int, str]]:
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    answer = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    names = get_model_status_pb2.ModelVersionStatus.State
    return {
        s.version: (names.Name(s.state), s.status.error_code, s.status.error_message)
        for s in answer.model_version_status
    }


def reload(channel: Any, config: Any) -> Any:
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    request = model_management_pb2.ReloadConfigRequest(config=config)
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    return stub.HandleReloadConfigRequest(request, timeout=120)


def test_labels_status_and_reloads_with_tf_serving_stubs(
    channel: Any, half_base: Path, model_root: Path
) -> None:
    assert predict(channel).outputs["y"].float_val == [3.5]  # latest: 2
    assert predict(channel, "stable").model_spec.version.value == 1
    assert predict(channel, "canary").outputs["y"].float_val == [3.5]
    with pytest.raises(grpc.RpcError) as caught:
        predict(channel, "beta")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "Unrecognized servable version label: beta"
    assert states(channel) == {2: ("AVAILABLE", 0, ""), 1: ("AVAILABLE", 0, "")}

    # A label on a version that is not available: refused, the old labels stay.
    with pytest.raises(grpc.RpcError) as caught:
        reload(channel, model_config(half_base, policy="all {}", labels={"stable": 7}))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == (
        "Request to assign label to version 7 of model half, which is not currently available "
        "for inference"
    )
    assert predict(channel, "canary").model_spec.version.value == 2

    # Another policy and a new model: version 2 leaves (END), iris loads, the labels follow.
    answer = reload(
        channel,
        model_config(
            half_base,
            policy="specific { versions: 1 }",
            labels={"stable": 1},
            iris=model_root / "iris",
        ),
    )
    assert answer.status.error_code == 0
    assert states(channel) == {2: ("END", 0, ""), 1: ("AVAILABLE", 0, "")}
    assert states(channel, "iris") == {1: ("AVAILABLE", 0, "")}
    assert predict(channel).model_spec.version.value == 1
    with pytest.raises(grpc.RpcError) as caught:
        predict(channel, "canary")
    assert caught.value.details() == "Unrecognized servable version label: canary"

    # A version that fails to load is reported; the serving one keeps serving.
    reload(channel, model_config(half_base, policy="latest { num_versions: 2 }", labels={}))
    broken = half_base / "9"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    deadline = time.monotonic() + 30
    while 9 not in states(channel) and time.monotonic() < deadline:
        time.sleep(0.1)
    state, code, message = states(channel)[9]
    assert state == "END" and code != 0
    assert str(broken) in message
    assert predict(channel).model_spec.version.value == 2
    assert states(channel)[2][0] == "AVAILABLE"

    # Only a model_config_list is accepted, as TF Serving's ModelServiceImpl.
    from tensorflow_serving.config import model_server_config_pb2

    custom = model_server_config_pb2.ModelServerConfig()
    custom.custom_model_config.type_url = "type.googleapis.com/x"
    with pytest.raises(grpc.RpcError) as caught:
        reload(channel, custom)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Only ModelConfigList is currently supported" in caught.value.details()
