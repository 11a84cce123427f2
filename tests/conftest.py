"""Shared fixtures: real SavedModels, built once per test session into a temporary directory.

Every model is built under one root, ``<tmp>/models/<name>/<version>/``, so the root is also a
multi-model directory as SageMaker lays one out (:func:`model_root`). The builders are in
``tests/saved_models.py``; building all of them takes a few seconds, TensorFlow's import included.
Fixtures that need TensorFlow skip the test when it is not installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

# Two ways to run the property tests (the tests marked ``property`` below):
# - "ci": a fixed seed, so a red build can be reproduced and a green one is not luck; the default
#   under CI=true;
# - "random": fresh seeds and no example database, for the CI step that explores new examples
#   (``pytest -m property --hypothesis-profile=random``); a failure prints the blob to replay it.
# Developers' runs are random by default and keep failing examples in .hypothesis/.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("random", derandomize=False, database=None, print_blob=True)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not config.getoption("hypothesis_profile", None):
        settings.load_profile("ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every Hypothesis test ``property``, so a run can select the property tests alone."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)


TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import saved_models  # noqa: E402  (needs the path above)

MODEL_NAMES = (
    "half_plus_two",
    "iris",
    "regression",
    "multi_input",
    "string_model",
    "bad_signatures",
    "versioned",
)
"""The models under :func:`model_root`, each a directory of numeric versions."""


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every test model as ``<name>/<version>/`` (built once per session)."""
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("saved_models") / "models"
    for name, build in saved_models.BUILDERS.items():
        build(root / name / "1")
    saved_models.build_iris(root / "iris", 1)
    saved_models.build_versioned(root / "versioned")
    return root


@pytest.fixture(scope="session")
def half_plus_two_model(model_root: Path) -> Path:
    """SavedModel dir: ``serving_default`` predict ``x -> y = x/2 + 2`` (x of unknown rank), plus
    ``regress_x_to_y`` and ``classify_x_to_y`` over Examples with float feature ``x``."""
    return model_root / "half_plus_two" / "1"


@pytest.fixture(scope="session")
def iris_model(model_root: Path) -> Path:
    """SavedModel dir of the iris example: ``serving_default`` classify, ``predict``."""
    return model_root / "iris" / "1"


@pytest.fixture(scope="session")
def regression_model(model_root: Path) -> Path:
    """SavedModel dir: Examples (``x`` float, ``k`` int64 default 0) -> ``outputs = 2x + k``."""
    return model_root / "regression" / "1"


@pytest.fixture(scope="session")
def multi_input_model(model_root: Path) -> Path:
    """SavedModel dir: mixed dtypes (``serving_default``), a default input (``with_default``),
    one input per dtype (``echo``)."""
    return model_root / "multi_input" / "1"


@pytest.fixture(scope="session")
def string_model(model_root: Path) -> Path:
    """SavedModel dir: ``text`` -> ``upper``, ``length``."""
    return model_root / "string_model" / "1"


@pytest.fixture(scope="session")
def bad_signatures_model(model_root: Path) -> Path:
    """SavedModel dir of malformed classify/regress signatures (``saved_models.BAD_SIGNATURE_ERRORS``)."""
    return model_root / "bad_signatures" / "1"


@pytest.fixture(scope="session")
def versioned_model(model_root: Path) -> Path:
    """Model base path: ``1/`` is half_plus_two (+2), ``2/`` half_plus_three (+3)."""
    return model_root / "versioned"


@pytest.fixture(scope="session")
def embedded_backend(model_root: Path) -> Iterator[Any]:
    """An ``EmbeddedBackend`` over :func:`model_root`; default model ``half_plus_two``; labels
    ``stable`` -> 1 and ``canary`` -> 2 on ``versioned``. Shared: tests must not close it."""
    from tfio_handlers.backends.embedded import EmbeddedBackend

    backend = EmbeddedBackend(
        model_root,
        default_model="half_plus_two",
        labels={"versioned": {"stable": 1, "canary": 2}},
    )
    yield backend
    backend.close()
