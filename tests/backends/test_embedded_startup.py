"""TensorFlow's native start-up chatter stays quiet unless the user asks for it.

Run in a fresh process each: the lines come once, when TensorFlow is imported and finds devices.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorflow

SCRIPT = """
import sys
from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.protos import PredictRequest
from tfio_handlers.tensors import to_tensor_proto
backend = EmbeddedBackend(sys.argv[1])
request = PredictRequest()
request.inputs["x"].CopyFrom(to_tensor_proto([1.0, 2.0]))
backend.predict(request)
print("served", file=sys.stderr)
"""
NOISE = ("cuInit", "oneDNN", "absl::InitializeLog", "cpu_feature_guard", "cuda")


def run(model: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stderr


def test_startup_lines_are_hidden_by_default(half_plus_two_model: Path) -> None:
    stderr = run(half_plus_two_model)
    assert "served" in stderr  # the process's own stderr still works afterwards
    assert not [line for line in stderr.splitlines() if any(n in line for n in NOISE)], stderr


def test_a_level_the_user_set_shows_tensorflows_logging(half_plus_two_model: Path) -> None:
    loud = run(half_plus_two_model, TF_CPP_MIN_LOG_LEVEL="0")
    quiet = run(half_plus_two_model)
    # What TensorFlow prints depends on the machine (CPU features, GPU or not); whatever it is,
    # the user's own setting lets it through, and the default hides the noise part of it.
    noisy = [line for line in loud.splitlines() if any(n in line for n in NOISE)]
    if not noisy:
        pytest.skip("TensorFlow printed no start-up lines on this machine")
    assert len(loud.splitlines()) > len(quiet.splitlines())
