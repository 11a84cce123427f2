"""The embedded backend where TensorFlow is not installed: a 503 that names the extra to install,
never a ModuleNotFoundError from inside a worker.

The first test hides TensorFlow from this process (``sys.modules["tensorflow"] = None`` makes every
``import tensorflow`` fail as a missing package does); the second runs where it really is missing
(``.ci/run``'s core-only venv) and skips elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tfio_handlers.errors import BackendUnavailable

EXTRA = "pip install 'tfio-handlers[tensorflow]'"


def fake_saved_model(tmp_path: Path) -> Path:
    """A base path whose version 1 looks like a SavedModel to the file-system checks."""
    version = tmp_path / "model" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    return version.parent


def test_without_tensorflow_the_backend_says_which_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfio_handlers.backends.embedded import EmbeddedBackend

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(BackendUnavailable, match=r"needs TensorFlow.*tfio-handlers\[tensorflow\]"):
        EmbeddedBackend(fake_saved_model(tmp_path))


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow is installed here"
)
def test_serving_without_tensorflow_answers_ping_503_naming_the_extra(tmp_path: Path) -> None:
    """As ``serve`` runs it: the configuration passes (it reads files only), the worker's pipeline
    cannot be built, and /ping says why."""
    from tfio_handlers.adapters.serving import ServingState
    from tfio_handlers.bootstrap import load_config, pipeline_from_config

    config = load_config({"TFIO_HANDLERS_MODEL_DIR": str(fake_saved_model(tmp_path))})
    state = ServingState(lambda: pipeline_from_config(config))
    state.wait_loaded(60)
    answer = state.ping()
    assert answer.status == 503
    assert EXTRA in json.loads(answer.body)["error"]
