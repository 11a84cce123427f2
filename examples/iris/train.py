"""Train a small iris classifier and export it as a TF Serving SavedModel.

Usage::

    python examples/iris/train.py --output-dir /tmp/iris            # writes /tmp/iris/1/
    python examples/iris/train.py --output-dir /tmp/iris --version 2

The export is what SageMaker's legacy TensorFlow container served for the seed document's example
(``predictor.predict([6.4, 3.2, 4.5, 1.5])``):

``serving_default`` (method ``tensorflow/serving/classify``)
    input ``inputs``: DT_STRING ``[-1]``, serialized ``tf.Example`` protos, each holding ONE float
    feature named ``inputs`` with the 4 measurements (sepal length, sepal width, petal length,
    petal width, in cm). That is the Example the legacy container built from a flat JSON list.
    outputs ``classes``: DT_STRING ``[-1, 3]`` (always ``"0"``, ``"1"``, ``"2"``) and
    ``scores``: DT_FLOAT ``[-1, 3]`` (softmax probabilities).
``predict`` (method ``tensorflow/serving/predict``)
    input ``inputs``: DT_FLOAT ``[-1, 4]``; outputs ``probabilities``: DT_FLOAT ``[-1, 3]``,
    ``class_ids``: DT_INT64 ``[-1]`` and ``classes``: DT_STRING ``[-1]`` (the most likely class).

TensorFlow 2 exports every signature with the predict method name; :func:`set_method_names` rewrites
``saved_model.pb`` afterwards so that ``serving_default`` says ``tensorflow/serving/classify``, as an
estimator export did. Training is seeded and full-batch, so it is deterministic on a given machine,
and takes a second or two on two cores.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "iris.csv"
"""Fisher's iris data: 150 rows of ``sepal_length,sepal_width,petal_length,petal_width,label``."""

LABELS = ("0", "1", "2")
"""Class labels as the classify signature answers them: setosa, versicolor, virginica."""

FEATURE = "inputs"
"""The name of the one float feature (4 values) that the classify signature parses."""

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"

SEED = 20240611
STEPS = 150
LEARNING_RATE = 0.05


def load_data(path: str | os.PathLike[str] = DATA) -> tuple[np.ndarray, np.ndarray]:
    """Features ``float32 [150, 4]`` and labels ``int64 [150]`` from ``iris.csv``."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return table[:, :4].astype(np.float32), table[:, 4].astype(np.int64)


def train(features: np.ndarray, labels: np.ndarray, *, seed: int = SEED, steps: int = STEPS):  # type: ignore[no-untyped-def]
    """A Keras model ``[batch, 4] -> softmax [batch, 3]``, trained full-batch with Adam.

    Full-batch steps (no shuffling) and a fixed seed make the result repeatable.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="float32"),
            keras.layers.Normalization(mean=features.mean(0), variance=features.var(0)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # One "epoch" of `steps` identical full batches: one fit() call, no per-epoch overhead.
    batches = tf.data.Dataset.from_tensors((features, labels)).repeat(steps)
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    return model


def export(model, base_dir: str | os.PathLike[str], version: int = 1) -> Path:  # type: ignore[no-untyped-def]
    """Write ``model`` as a SavedModel to ``<base_dir>/<version>/`` and return that path."""
    import tensorflow as tf

    labels = tf.constant([list(LABELS)])

    class IrisServing(tf.Module):
        """The serving signatures around the trained Keras model."""

        def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):  # type: ignore[no-untyped-def]
            parsed = tf.io.parse_example(inputs, {FEATURE: tf.io.FixedLenFeature([4], tf.float32)})
            scores = self.model(parsed[FEATURE], training=False)
            classes = tf.tile(labels, [tf.shape(scores)[0], 1])
            return {"classes": classes, "scores": scores}

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="inputs")])
        def predict(self, inputs):  # type: ignore[no-untyped-def]
            probabilities = self.model(inputs, training=False)
            class_ids = tf.argmax(probabilities, axis=1)
            return {
                "probabilities": probabilities,
                "class_ids": class_ids,
                "classes": tf.gather(labels[0], class_ids),
            }

    module = IrisServing(model)
    export_dir = Path(base_dir) / str(int(version))
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={"serving_default": module.classify, "predict": module.predict},
    )
    set_method_names(export_dir, {"serving_default": CLASSIFY_METHOD})
    return export_dir


def set_method_names(export_dir: str | os.PathLike[str], methods: Mapping[str, str]) -> None:
    """Rewrite the ``method_name`` of the named signatures in ``export_dir/saved_model.pb``.

    ``tf.saved_model.save`` marks every signature ``tensorflow/serving/predict``; TF Serving (and
    tfio-handlers) read ``method_name`` to know that a signature classifies or regresses. The
    method name is metadata only: the loader does not read it, so the edit is safe. The fingerprint
    file is rewritten to match the new ``saved_model.pb``.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(export_dir) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        for name, method in methods.items():
            if name not in meta_graph.signature_def:
                raise KeyError(f"{export_dir} has no signature {name!r}")
            meta_graph.signature_def[name].method_name = method
    path.write_bytes(saved_model.SerializeToString(deterministic=True))
    try:  # a private helper; the fingerprint is advisory, so a missing helper is not fatal
        from tensorflow.python.saved_model import fingerprinting_utils

        fingerprinting_utils.write_fingerprint(str(export_dir))
    except (ImportError, AttributeError):
        (Path(export_dir) / "fingerprint.pb").unlink(missing_ok=True)


def build(base_dir: str | os.PathLike[str], version: int = 1) -> Path:
    """Train on ``iris.csv`` and export to ``<base_dir>/<version>/``; returns the export dir."""
    features, labels = load_data()
    return export(train(features, labels), base_dir, version)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output-dir",
        default=str(HERE / "model"),
        help="TF Serving model base path (default: examples/iris/model)",
    )
    parser.add_argument("--version", type=int, default=1, help="version sub-directory (default 1)")
    args = parser.parse_args(argv)

    from tfio_handlers.backends.savedmodel import quiet_tensorflow_startup

    features, labels = load_data()
    with quiet_tensorflow_startup():  # TensorFlow's native start-up lines, unless asked for
        model = train(features, labels)
    accuracy = float((model.predict_on_batch(features).argmax(1) == labels).mean())
    export_dir = export(model, args.output_dir, args.version)
    print(f"training accuracy {accuracy:.3f}; exported to {export_dir}")


if __name__ == "__main__":
    main()
