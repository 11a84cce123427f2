"""The SavedModels the HTTP benchmarks serve, built into a directory of the caller's choosing.

``iris``
    The iris example (``examples/iris/train.py``): the benchmark calls its ``predict`` signature,
    ``inputs`` float ``[-1, 4]`` → ``probabilities`` ``[-1, 3]``, ``class_ids``, ``classes``.
``dense784``
    A 784-feature classifier shaped like an MNIST model: ``serving_default`` ``x`` float
    ``[-1, 784]`` → ``scores = softmax(x @ W + b)`` ``[-1, 10]``, with fixed random weights.

Both are written as TF Serving model base paths (``<root>/<name>/1/``). TensorFlow is imported by
the builders.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IRIS_TRAIN = ROOT / "examples" / "iris" / "train.py"


def _iris_module() -> ModuleType:
    name = "tfio_handlers_bench_iris_train"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, IRIS_TRAIN)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def build_iris(root: Path) -> Path:
    """``<root>/iris/1``, trained as the example trains it."""
    exported: Path = _iris_module().build(root / "iris", 1)
    return exported


def build_dense784(root: Path, seed: int = 7) -> Path:
    """``<root>/dense784/1``: ``softmax(x @ W + b)`` over 784 features, 10 classes."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((784, 10)) * 0.05).astype(np.float32)
    bias = (rng.standard_normal(10) * 0.1).astype(np.float32)

    class Dense784(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(weights, name="w")
            self.b = tf.Variable(bias, name="b")

        @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="x")])
        def serve(self, x: Any) -> Any:
            return {"scores": tf.nn.softmax(tf.matmul(x, self.w) + self.b)}

    module = Dense784()
    path = root / "dense784" / "1"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def build_all(root: Path) -> dict[str, Path]:
    """Every benchmark model: name → its version directory."""
    return {"iris": build_iris(root), "dense784": build_dense784(root)}
