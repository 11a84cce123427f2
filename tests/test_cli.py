"""``tfio-handlers serve`` configured the SageMaker way, and the README's main-job command.

One server for the module, started as a SageMaker container would start it: the model directory holds
``code/inference.py`` (the seed document's pickle ``input_fn``/``output_fn``) and
``code/requirements.txt``, and every ``SAGEMAKER_*`` variable the command honours is set:
``SAGEMAKER_BIND_TO_PORT``, ``SAGEMAKER_PROGRAM``, ``SAGEMAKER_REQUIREMENTS`` (a local wheel, no
network), ``SAGEMAKER_MODEL_SERVER_WORKERS=2``, ``SAGEMAKER_MODEL_SERVER_TIMEOUT``,
``SAGEMAKER_MAX_PAYLOAD_IN_MB`` and ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``; pickle is enabled. The
user code sleeps at import, standing in for slow user code: the command imports it once to check it,
each worker again before it listens, and then loads the model while ``/ping`` answers 503.
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
    free_port,
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


def test_503_while_the_model_loads(sagemaker: LiveServer) -> None:
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
    time.sleep(1.2)  # the supervisor passes SIGTERM on to its workers (polls every 0.5 s)
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
    for extra in ("tensorflow", "uvicorn", "httpx"):  # the quick start's extras
        pytest.importorskip(extra)
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


# -- configuration errors stop `serve` at start-up ---------------------------------------------------


def fake_saved_model(tmp_path: Path) -> Path:
    """A base path whose version 1 looks like a SavedModel: enough for the start-up check, which
    reads only the file system (the model is loaded by the workers, after it)."""
    version = tmp_path / "model" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    return version.parent


def serve_fails(
    tmp_path: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``tfio-handlers serve ARGS``, which must end by itself, well before any model could load."""
    argv = [PYTHON, "-m", "tfio_handlers", "serve", *args, "--host", "127.0.0.1"]
    argv += ["--port", str(free_port())]
    return subprocess.run(
        argv, env=clean_env(env), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def assert_refused(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tfio-handlers serve: cannot start: "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "Uvicorn running" not in result.stderr + result.stdout


@pytest.mark.skipif(Path("/opt/ml/model").exists(), reason="/opt/ml/model is the default model")
def test_serve_without_a_model_exits_at_once(tmp_path: Path) -> None:
    assert_refused(serve_fails(tmp_path, []), "No model: give --model-dir")


def test_serve_with_a_model_dir_that_does_not_exist_exits_at_once(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert_refused(
        serve_fails(tmp_path, ["--model-dir", str(missing)]), f"Model path {missing} does not exist"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(
        serve_fails(tmp_path, ["--model-dir", str(empty)]), f"No SavedModel found in {empty}"
    )


BROKEN_USER_CODE = {
    "import": (
        "import json\n\nraise RuntimeError('settings.yaml is missing')\n",
        "failed at line 3: RuntimeError: settings.yaml is missing",
    ),
    "syntax": ("def input_fn(data, content_type)\n    return None\n", "SyntaxError"),
    "arity": (
        "def output_fn(prediction):\n    return None\n",
        "output_fn must take 2 arguments (prediction, accept), or 3 with a trailing context; "
        "it takes 1",
    ),
    "handler arity": (
        "def input_handler(data):\n    return data.read()\n",
        "input_handler must take 2 arguments (data, context); it takes 1",
    ),
    "legacy with tfs": (
        "def input_fn(data, content_type):\n    pass\n\n"
        "def output_handler(response, context):\n    pass\n",
        "mixes SageMaker's legacy functions (input_fn) with the TF Serving container's "
        "(output_handler)",
    ),
    "transform with input_fn": (
        "def transform_fn(data, content_type, accept):\n    pass\n\n"
        "def input_fn(data, content_type):\n    pass\n",
        "transform_fn cannot be declared together with an input or output function",
    ),
    "handler with input_handler": (
        "def handler(data, context):\n    pass\n\ndef input_handler(data, context):\n    pass\n",
        "handler cannot be declared together with input_handler",
    ),
}


def test_serve_on_a_rest_backend_without_a_model_name_exits_at_once(tmp_path: Path) -> None:
    """TF Serving's REST API cannot list its models: without SAGEMAKER_TFS_DEFAULT_MODEL_NAME the
    server would answer /ping 503 for ever, so it refuses to start, saying what to set."""
    result = serve_fails(tmp_path, ["--backend", "http://127.0.0.1:1"])
    assert_refused(result, "SAGEMAKER_TFS_DEFAULT_MODEL_NAME")


@pytest.mark.parametrize("case", list(BROKEN_USER_CODE))
def test_serve_with_broken_user_code_exits_at_once_naming_the_file(
    tmp_path: Path, case: str
) -> None:
    source, problem = BROKEN_USER_CODE[case]
    code = tmp_path / "inference.py"
    code.write_text(source)
    model = fake_saved_model(tmp_path)
    result = serve_fails(tmp_path, ["--model-dir", str(model), "--entry-point", str(code)])
    assert_refused(result, str(code), problem)


def test_gunicorn_and_sagemaker_program_also_refuse_before_any_worker(tmp_path: Path) -> None:
    model = fake_saved_model(tmp_path)
    code = model / "code"
    code.mkdir()
    (code / "serve_me.py").write_text("import not_installed_anywhere_xyz\n")
    result = serve_fails(
        tmp_path,
        ["--server", "gunicorn", "--model-dir", str(model)],
        {"SAGEMAKER_PROGRAM": "serve_me.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
    )
    assert_refused(
        result,
        str(code / "serve_me.py"),
        "ModuleNotFoundError: No module named 'not_installed_anywhere_xyz'",
    )
    assert "Booting worker" not in result.stderr


def test_bare_uvicorn_factory_refuses_broken_user_code(tmp_path: Path) -> None:
    """Without the CLI, ``uvicorn --factory`` gets the same check: it stops instead of serving 503."""
    pytest.importorskip("uvicorn")
    code = tmp_path / "inference.py"
    code.write_text("def output_handler(response):\n    pass\n")
    env = {
        "TFIO_HANDLERS_MODEL_DIR": str(fake_saved_model(tmp_path)),
        "TFIO_HANDLERS_ENTRY_POINT": str(code),
    }
    argv = [PYTHON, "-m", "uvicorn", "tfio_handlers.adapters.asgi:app_from_env", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(free_port())]
    result = subprocess.run(argv, env=clean_env(env), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"{code}: output_handler must take 2 arguments (response, context)" in result.stderr
    assert "Uvicorn running" not in result.stderr


@pytest.mark.tensorflow
def test_remote_model_server_not_up_yet_is_waited_for_with_ping_503(
    half_plus_two_model: Path, tmp_path: Path
) -> None:
    """The one start-up condition worth waiting for: the model server comes up later."""
    grpc_port = free_port()
    live = serve_cli(
        "remote",
        tmp_path,
        ["--backend", f"grpc://127.0.0.1:{grpc_port}"],
        {"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "half_plus_two"},
    )
    live.start()
    model_server = None
    try:
        waiting = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and waiting is None:
            assert live.process is not None and live.process.poll() is None, live.log()[-3000:]
            try:
                waiting = live.get("/ping", timeout=5)
            except OSError:
                time.sleep(0.1)
        assert waiting is not None and waiting.status == 503, live.log()[-3000:]
        assert waiting.json() == {"error": "Model is loading"}
        time.sleep(2)
        assert live.process is not None and live.process.poll() is None
        assert live.get("/ping").status == 503
        grpc_serve = [PYTHON, "-m", "tfio_handlers", "grpc-serve", "--port", str(grpc_port)]
        model_server = subprocess.Popen(
            [*grpc_serve, "--model-dir", str(half_plus_two_model.parent)],
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        live.wait_ready(120)
        answer = ok(live.post("/invocations", "[1.0]", headers={"Accept": "application/json"}))
        assert answer.json()["outputs"]["y"]["floatVal"] == [2.5]
    finally:
        live.stop()
        if model_server is not None:
            model_server.terminate()
            model_server.wait(30)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--port", "70000"], {}, "--port 70000 is out of range: 0 to 65535"),
        (["--port", "-5"], {}, "--port -5 is out of range"),
        (["--workers", "0"], {}, "--workers 0 is out of range: 1 to 1024"),
        (["--workers", "-1"], {}, "--workers -1 is out of range"),
        ([], {"SAGEMAKER_MODEL_SERVER_WORKERS": "abc"}, "SAGEMAKER_MODEL_SERVER_WORKERS='abc'"),
        ([], {"SAGEMAKER_BIND_TO_PORT": "99999"}, "SAGEMAKER_BIND_TO_PORT 99999 is out of range"),
    ],
)
def test_serve_refuses_a_port_or_worker_count_it_cannot_use(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    argv = [PYTHON, "-m", "tfio_handlers", "serve", "--host", "127.0.0.1", *args]
    result = subprocess.run(
        argv, env=clean_env(env), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert_refused(result, expected)


def test_a_port_and_worker_count_from_the_flag_the_variable_or_the_default() -> None:
    from tfio_handlers.cli import _count_of

    variable = {"SAGEMAKER_BIND_TO_PORT": "9000"}
    assert _count_of("--port", 0, variable, "SAGEMAKER_BIND_TO_PORT", 8080, 0, 65535) == 0
    assert _count_of("--port", None, variable, "SAGEMAKER_BIND_TO_PORT", 8080, 0, 65535) == 9000
    assert _count_of("--port", None, {}, "SAGEMAKER_BIND_TO_PORT", 8080, 0, 65535) == 8080


def test_serve_refuses_a_metrics_folder_that_does_not_exist(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")  # without it, serve refuses for that first
    result = serve_fails(
        tmp_path,
        ["--model-dir", str(fake_saved_model(tmp_path)), "--workers", "2"],
        {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "nowhere")},
    )
    assert_refused(result, "PROMETHEUS_MULTIPROC_DIR=", "is not a folder")
