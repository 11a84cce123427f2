"""KServe's ``InferenceRESTClient`` as a real client of the V2 routes (and of TF Serving's ``/v1``
routes, its V1 protocol), against ``tfio-handlers serve`` with the plugin on 127.0.0.1.

``kserve`` 0.21 requires protobuf < 7 and the dev venv has protobuf 7, so the client runs in a venv of
its own holding ``kserve`` only, built once per machine under the temporary directory (keyed by the
kserve version and the Python interpreter, guarded by a file lock, marked complete only after
``import kserve`` works) and reused afterwards. Where it cannot be built (no index reachable, a build over
``BUILD_TIMEOUT``) the test skips and says why. The client script is ``kserve_client_script.py``.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from live_server import LiveServer, clean_env, serve_cli  # noqa: E402

KSERVE = "0.21.0"
PIN = f"kserve=={KSERVE}"
BUILD_TIMEOUT = 240.0
"""Seconds the whole venv build may take (all its steps together) before the test skips."""
SCRIPT = Path(__file__).with_name("kserve_client_script.py")

# a first build may take BUILD_TIMEOUT, beyond the suite's 300 s per test
pytestmark = [pytest.mark.tensorflow, pytest.mark.slow, pytest.mark.timeout(600)]


def kserve_env() -> dict[str, str]:
    """The environment of the kserve venv's processes: this one's, without our source tree on
    ``PYTHONPATH`` (the venv holds kserve only)."""
    env = clean_env()
    env.pop("PYTHONPATH", None)
    return env


def kserve_python() -> Path:
    """The Python of a venv holding ``kserve==KSERVE``: reused when built before, else built now;
    ``pytest.skip`` with pip's reason when it cannot be."""
    base = hashlib.sha256(sys.base_prefix.encode()).hexdigest()[:8]  # the venv's interpreter
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}-{base}"
    venv = Path(tempfile.gettempdir()) / f"tfio-handlers-kserve-{KSERVE}-{tag}"
    python = venv / "bin" / "python"
    done = venv / ".complete"
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others then reuse it
        if done.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)  # an earlier build that did not finish
        build = [
            [sys.executable, "-m", "venv", str(venv)],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-compile",
                "--timeout",
                "20",
                "--retries",
                "1",
                PIN,
            ],
            [str(python), "-c", "import kserve, httpx, numpy"],
        ]
        deadline = time.monotonic() + BUILD_TIMEOUT
        for command in build:
            try:
                done_step = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    timeout=max(1.0, deadline - time.monotonic()),
                    env=kserve_env(),
                )
            except subprocess.TimeoutExpired:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.skip(f"a venv with kserve=={KSERVE} took over {BUILD_TIMEOUT:g} s to build")
            if done_step.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                why = (done_step.stderr or done_step.stdout).strip().splitlines()[-3:]
                pytest.skip(f"no venv with kserve=={KSERVE} (offline?): " + " | ".join(why))
        done.write_text(KSERVE)
    return python


@pytest.fixture(scope="module")
def kserve_and_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, LiveServer]]:
    pytest.importorskip("tensorflow")
    import saved_models

    tmp = tmp_path_factory.mktemp("oip_kserve")
    models = tmp / "models"
    saved_models.build_half_plus_two(models / "half_plus_two" / "1")
    saved_models.build_multi_input(models / "multi_input" / "1")
    env = {
        "TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD": "0",
        "TFIO_HANDLERS_PLUGINS": "openinference",
        "TFIO_HANDLERS_MODEL_DIR": str(models),
    }
    live = serve_cli("oip-kserve", tmp, env=env).start()  # loads while the venv is found or built
    try:
        python = kserve_python()
        live.wait_ready(180)
        yield python, live
    finally:
        live.stop()


def test_kserve_rest_client_gets_what_tf_serving_predict_answers(
    kserve_and_server: tuple[Path, LiveServer],
) -> None:
    python, server = kserve_and_server
    run = subprocess.run(
        [str(python), str(SCRIPT), server.url],
        capture_output=True,
        text=True,
        timeout=120,
        env=kserve_env(),
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])

    assert report["live"] is True and report["ready"] is True
    assert report["model_ready"] is True and report["unknown_model_ready"] is False

    answer = server.post("/v1/models/half_plus_two:predict", '{"instances": [1.0, 2.0, 5.0, -3.5]}')
    expected = answer.json()["predictions"]
    assert report["v1_predict"] == {"predictions": expected}  # KServe's V1 protocol: our /v1
    for form, content_type in (
        ("json", "application/json"),
        ("binary", "application/octet-stream"),
    ):
        infer = report[f"infer_{form}"]
        assert infer["content_type"] == content_type
        assert infer["model_name"] == "half_plus_two" and infer["id"] == f"req-{form == 'binary'}"
        y = infer["outputs"]["y"]
        assert (y["datatype"], y["shape"], y["dtype"]) == ("FP32", [4], "float32")
        assert y["data"] == expected

    mixed_body = {"inputs": {"a": [[1.5, 2.0], [3.0, 4.25]], "b": [7, -2], "c": ["abc", "de"]}}
    answer = server.post("/v1/models/multi_input:predict", json.dumps(mixed_body))
    mixed_expected = answer.json()["outputs"]
    # TF Serving writes outputs named *_bytes as {"b64": ...}; V2 answers BYTES as text
    c_bytes = [base64.b64decode(v["b64"]).decode() for v in mixed_expected["c_bytes"]]
    mixed_expected["c_bytes"] = c_bytes
    for form in ("json", "binary"):
        mixed = report[f"mixed_{form}"]
        assert {name: out["data"] for name, out in mixed.items()} == mixed_expected, form
        assert mixed["b_doubled"]["datatype"] == "INT64" and mixed["c_bytes"]["datatype"] == "BYTES"

    unknown = report["unknown_model"]
    assert unknown["status"] == 404 and "no_such_model" in unknown["message"]
