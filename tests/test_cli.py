"""``tfio-handlers serve`` configured the SageMaker way, and the README's main-job command.

One server for the module, started as a SageMaker container would start it: the model directory holds
``code/inference.py`` (the seed document's pickle ``input_fn``/``output_fn``) and
``code/requirements.txt``, and every ``SAGEMAKER_*`` variable the command honours is set:
``SAGEMAKER_BIND_TO_PORT``, ``SAGEMAKER_PROGRAM``, ``SAGEMAKER_REQUIREMENTS`` (a local wheel, no
network), ``SAGEMAKER_MODEL_SERVER_WORKERS=2``, ``SAGEMAKER_MODEL_SERVER_TIMEOUT``,
``SAGEMAKER_MAX_PAYLOAD_IN_MB`` and ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``; pickle is enabled. The
user code sleeps at import, standing in for a slow-loading model.
"""

from __future__ import annotations

import http.client
import json
import os
import pickle
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_server import (
    PYTHON,
    ROOT,
    Answer,
    LiveServer,
    build_tiny_wheel,
    clean_env,
    raw_exchange,
    serve_cli,
    start_all,
)

from tfio_handlers.protos import PredictResponse
from tfio_handlers.tensors import to_ndarray

# The seed document's functions, with only its slips fixed: the undefined ``request_content_type``
# is the parameter, ``np.dumps`` is ``pickle.dumps``. The extra branches are the test's own.
SEED_INFERENCE = '''
import json
import os
import pickle
import time

import numpy as np
import tfio_tiny_requirement  # installed at start-up from SAGEMAKER_REQUIREMENTS

time.sleep(float(os.environ.get("SLOW_IMPORT_SECONDS", "0")))  # a slow-loading model


def input_fn(serialized_input, content_type):
    """An input_fn that loads a pickled object"""
    if content_type == "application/python-pickle":
        deserialized_input = pickle.loads(serialized_input)
        return deserialized_input
    elif content_type == "application/x-slow":
        time.sleep(float(serialized_input))
        return np.array([[1.0]], dtype=np.float32)
    elif content_type == "application/x-boom":
        raise RuntimeError("input_fn refused the body")
    else:
        # Handle other content-types here or raise an Exception
        # if the content type is not supported.
        pass


def output_fn(prediction_result, accepts):
    """An output_fn that dumps a pickled object as response"""
    if accepts == "application/python-pickle":
        return pickle.dumps(prediction_result)
    elif accepts == "application/x-worker":
        worker = {"pid": os.getpid(), "requirement": tfio_tiny_requirement.MARKER}
        return json.dumps(worker), "application/x-worker"
    else:
        # Handle other content-types here or raise an Exception
        # if the content type is not supported.
        pass
'''

TIMEOUT_S = 3


@pytest.fixture(scope="module")
def sagemaker(
    half_plus_two_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("sagemaker_cli")
    model_dir = tmp / "model"
    shutil.copytree(half_plus_two_model, model_dir / "half_plus_two" / "1")
    code = model_dir / "code"
    code.mkdir()
    (code / "inference.py").write_text(SEED_INFERENCE)
    wheel = build_tiny_wheel(tmp / "wheels")
    (code / "requirements.txt").write_text(f"--no-index\n{wheel}\n")
    site = tmp / "site"  # pip installs here, never into the test's own environment
    site.mkdir()
    env = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_REQUIREMENTS": "requirements.txt",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(TIMEOUT_S),
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        "TFIO_HANDLERS_ENABLE_PICKLE": "1",
        "SLOW_IMPORT_SECONDS": "2",
        "PIP_TARGET": str(site),
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    live = serve_cli("sagemaker", tmp, ["--model-dir", str(model_dir)], env, port_from_env=True)
    live.env["PYTHONPATH"] = os.pathsep.join([str(site), live.env["PYTHONPATH"]])

    def while_loading(server: LiveServer) -> None:
        server.loading_answers.append(server.post("/invocations", "[1.0]", timeout=10))

    live.while_loading = while_loading
    start_all([live])
    # /ping said 200 from one worker; wait for the other one too.
    log = live.wait_log("Model loaded; ready", timeout=120, count=2)
    assert log.count("Model loaded; ready") == 2, log[-3000:]
    yield live
    live.stop()


def ok(answer: Answer) -> Answer:
    assert answer.status == 200, answer.body
    return answer


def test_503_while_the_user_code_and_model_load(sagemaker: LiveServer) -> None:
    assert 503 in sagemaker.pings and sagemaker.pings[-1] == 200, sagemaker.pings
    (early,) = sagemaker.loading_answers
    assert early.status == 503
    assert early.json() == {"error": "Model is loading"}


def test_requirements_installed_before_the_workers_start(sagemaker: LiveServer) -> None:
    answer = ok(sagemaker.post("/invocations", "[1.0]", headers={"Accept": "application/x-worker"}))
    assert answer.content_type == "application/x-worker"
    assert answer.json()["requirement"] == "tfio_tiny_requirement is installed"


def test_two_workers_start_and_both_answer(sagemaker: LiveServer) -> None:
    pids: set[int] = set()
    for _ in range(200):
        answer = ok(
            sagemaker.post("/invocations", "[1.0]", headers={"Accept": "application/x-worker"})
        )
        pids.add(answer.json()["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2, pids


def test_default_accept_answers_missing_and_wildcard_accept(sagemaker: LiveServer) -> None:
    for headers in ({}, {"Accept": "*/*"}):
        answer = ok(sagemaker.post("/invocations", "[[1.0], [3.0]]", headers=headers))
        assert answer.content_type.startswith("text/csv"), answer.content_type
        assert answer.body == b"2.5\n3.5\n"
    asked = ok(sagemaker.post("/invocations", "[1.0]", headers={"Accept": "application/json"}))
    assert asked.json()["outputs"]["y"]["floatVal"] == [2.5]


def test_payload_limit_from_the_environment(sagemaker: LiveServer) -> None:
    head = (
        "POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {3 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer, seconds = raw_exchange(sagemaker.port, head + b"[1.0", timeout=10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"over the limit of 2097152 bytes" in answer
    assert seconds < 5


def test_seed_pickle_input_fn_and_output_fn(sagemaker: LiveServer) -> None:
    answer = ok(
        sagemaker.post(
            "/invocations",
            pickle.dumps(np.array([[1.0], [5.0]], dtype=np.float32)),
            headers={
                "Content-Type": "application/python-pickle",
                "Accept": "application/python-pickle",
            },
        )
    )
    response = pickle.loads(answer.body)
    assert isinstance(response, PredictResponse)
    np.testing.assert_array_equal(to_ndarray(response.outputs["y"]), [[2.5], [4.5]])


def test_builtin_pickle_when_enabled_is_restricted(sagemaker: LiveServer, tmp_path: Path) -> None:
    # application/x-pickle: the seed's input_fn passes, the built-in (restricted) codec answers.
    answer = ok(
        sagemaker.post(
            "/invocations",
            pickle.dumps(np.array([1.0, 3.0], dtype=np.float32)),
            headers={"Content-Type": "application/x-pickle", "Accept": "application/x-pickle"},
        )
    )
    result = pickle.loads(answer.body)
    np.testing.assert_array_equal(result["y"], [2.5, 3.5])
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    refused = sagemaker.post(
        "/invocations", pickle.dumps(Exploit()), headers={"Content-Type": "application/x-pickle"}
    )
    assert refused.status == 400, refused.body
    assert "Traceback" not in refused.body.decode()
    assert not marker.exists()


def test_user_code_error_is_500_with_the_traceback_only_in_the_log(sagemaker: LiveServer) -> None:
    answer = sagemaker.post("/invocations", b"x", headers={"Content-Type": "application/x-boom"})
    assert answer.status == 500
    assert answer.json() == {"error": "input_fn failed: RuntimeError: input_fn refused the body"}
    log = sagemaker.wait_log("RuntimeError: input_fn refused the body")
    assert "Traceback (most recent call last)" in log
    assert "input_fn raised" in log


def test_slow_request_is_504_after_the_server_timeout(sagemaker: LiveServer) -> None:
    started = time.monotonic()
    answer = sagemaker.post(
        "/invocations", str(TIMEOUT_S + 3), headers={"Content-Type": "application/x-slow"}
    )
    elapsed = time.monotonic() - started
    assert answer.status == 504, answer.body
    assert f"timeout of {TIMEOUT_S} s" in answer.json()["error"]
    assert TIMEOUT_S - 0.5 < elapsed < TIMEOUT_S + 2.5
    # Still serving.
    ok(sagemaker.post("/invocations", "[1.0]", headers={"Accept": "application/json"}))


def test_sigterm_lets_the_request_in_flight_finish(sagemaker: LiveServer) -> None:
    """Last in the module: stops the server."""
    results: list[Answer] = []
    slow = threading.Thread(
        target=lambda: results.append(
            sagemaker.post(
                "/invocations",
                "2.5",
                headers={"Content-Type": "application/x-slow", "Accept": "application/json"},
            )
        )
    )
    slow.start()
    time.sleep(0.5)  # the request is in the model's hands
    sagemaker.signal(signal.SIGTERM)
    time.sleep(1.2)  # uvicorn's supervisor passes SIGTERM on to its workers within ~0.5 s
    # A new request while the server drains is turned away: refused, reset, or 503, never served.
    try:
        late = sagemaker.get("/ping", timeout=10)
    except (OSError, http.client.HTTPException):
        pass
    else:
        assert late.status == 503, late
    slow.join(30)
    (answer,) = results
    assert answer.status == 200, answer.body
    assert answer.json()["outputs"]["y"]["floatVal"] == [2.5]
    assert sagemaker.process is not None
    assert sagemaker.process.wait(30) == 0
    with pytest.raises(OSError):
        sagemaker.get("/ping", timeout=2)


# -- other commands ---------------------------------------------------------------------------------


def test_plugins_prints_the_codec_table() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "tfio_handlers", "plugins"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "media",
        "type",
        "direction",
        "plugin",
        "priority",
        "order",
        "alias",
        "of",
    ]
    rows = {(line.split()[0], line.split()[1]) for line in lines[1:]}
    for media in (
        "application/json",
        "text/csv",
        "application/x-protobuf",
        "application/jsonlines",
        "application/x-npy",
        "application/python-pickle",
    ):
        assert (media, "decode") in rows and (media, "encode") in rows


# -- the README's main-job command --------------------------------------------------------------------


@pytest.mark.slow
def test_readme_main_job_demo(tmp_path: Path) -> None:
    """``python examples/iris/demo.py``: train, serve, ask the seed's question, print, stop.

    Run on a copy of ``examples/iris`` so the trained model lands in a temporary folder.
    """
    example = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", example, ignore=shutil.ignore_patterns("model"))
    result = subprocess.run(
        [PYTHON, str(example / "demo.py")],
        env=clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Training the iris classifier" in out
    assert "$ " in out and " -m tfio_handlers serve --model-dir " in out
    assert ">>> predictor.predict([6.4, 3.2, 4.5, 1.5])" in out
    printed = out.split(">>> predictor.predict([6.4, 3.2, 4.5, 1.5])\n", 1)[1]
    document = json.loads(printed.split("\nmost likely class", 1)[0])
    classes = document["result"]["classifications"][0]["classes"]
    assert [c["label"] for c in classes] == ["0", "1", "2"]
    assert "most likely class: 1 (score " in out
    assert (example / "model" / "1" / "saved_model.pb").is_file()
