"""Builders of small, real SavedModels for the tests: ``build_x(export_dir) -> Path``.

Every builder writes a TensorFlow 2 SavedModel (``tf.saved_model.save``) and returns the directory it
wrote. ``export_dir`` is the SavedModel directory itself, except for the builders that write a TF
Serving model base path (``<base>/<version>/``): :func:`build_iris` and :func:`build_versioned`.
TensorFlow is imported inside the builders, once per process.

TF 2 marks every signature ``tensorflow/serving/predict``; where a model stands for an estimator-style
classify/regress export, :func:`set_method_names` (shared with the iris example) rewrites the method
name in ``saved_model.pb``. The models and their signatures:

``half_plus_two``  (like TF Serving's test model of that name)
    ``serving_default`` predict: ``x`` DT_FLOAT (unknown rank by default, so ``[3]`` and ``[3, 1]``
    both work as on TF Serving, whose graph feeds are not shape-checked) -> ``y = x / 2 + 2``;
    ``regress_x_to_y`` regress: serialized Examples with float feature ``x`` -> ``outputs`` [-1, 1];
    ``classify_x_to_y`` classify: serialized Examples with float feature ``x`` -> only ``scores``
    [-1, 1].
``iris``  (``examples/iris/train.py``) ``serving_default`` classify and ``predict``, see there.
``regression``
    ``serving_default`` (method left at predict: recognised by shape): ``inputs`` DT_STRING [-1],
    Examples with float ``x`` and int64 ``k`` (default 0) -> ``outputs`` DT_FLOAT [-1] = 2x + k.
``multi_input``
    ``serving_default``: ``a`` DT_FLOAT [-1, 2], ``b`` DT_INT64 [-1], ``c`` DT_STRING [-1] ->
    ``total`` DT_FLOAT [-1] (row sum of a, plus b), ``b_doubled`` DT_INT64 [-1],
    ``c_length`` DT_INT32 [-1], ``c_bytes`` DT_STRING [-1] (c unchanged);
    ``with_default``: ``a`` DT_FLOAT [-1] and ``scale`` DT_FLOAT [] with default 2.0 -> ``y = a * scale``;
    ``echo``: one input per dtype (``f32 f64 f16 i32 i64 u8 flag text``) -> the same values, outputs
    named ``<input>_out`` except ``text_bytes``.
``string_model``
    ``serving_default``: ``text`` DT_STRING [-1] -> ``upper`` DT_STRING [-1], ``length`` DT_INT32 [-1].
``bad_signatures``
    classify/regress signatures that break one of TF Serving's structural rules each (see
    :data:`BAD_SIGNATURE_ERRORS`), plus a valid ``serving_default`` classifier.
``versioned``  ``<base>/1`` = half_plus_two, ``<base>/2`` = half_plus_three (``y = x / 2 + 3``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IRIS_TRAIN = ROOT / "examples" / "iris" / "train.py"

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
PREDICT = "tensorflow/serving/predict"

PathLike = str | os.PathLike[str]


def iris_example() -> ModuleType:
    """``examples/iris/train.py`` as a module (it is a script, not part of the package)."""
    name = "tfio_handlers_example_iris_train"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, IRIS_TRAIN)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def set_method_names(export_dir: PathLike, methods: Mapping[str, str]) -> None:
    """Rewrite signatures' ``method_name`` in ``saved_model.pb`` (see the iris example)."""
    iris_example().set_method_names(export_dir, methods)


def _save(
    module: Any,
    export_dir: PathLike,
    signatures: Mapping[str, Callable[..., Any]],
    methods: Mapping[str, str] | None = None,
) -> Path:
    import tensorflow as tf

    path = Path(export_dir)
    tf.saved_model.save(module, str(path), signatures=dict(signatures))
    if methods:
        set_method_names(path, methods)
    return path


def _spec(shape: Any, dtype: Any, name: str) -> Any:
    import tensorflow as tf

    return tf.TensorSpec(shape, dtype, name=name)


# -- half_plus_two ---------------------------------------------------------------------------------


def build_half_plus_two(
    export_dir: PathLike, *, offset: float = 2.0, x_shape: tuple[int | None, ...] | None = None
) -> Path:
    """``y = x / 2 + offset``; ``x_shape=(None, 1)`` declares TF Serving's ``[-1, 1]`` exactly."""
    import tensorflow as tf

    examples = _spec([None], tf.string, "inputs")
    parse_spec = {"x": tf.io.FixedLenFeature([1], tf.float32)}

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5, name="a")
            self.b = tf.Variable(offset, name="b")

        def _y(self, x: Any) -> Any:
            return x * self.a + self.b

        @tf.function(input_signature=[_spec(x_shape, tf.float32, "x")])
        def predict(self, x: Any) -> Any:
            return {"y": self._y(x)}

        @tf.function(input_signature=[examples])
        def regress(self, inputs: Any) -> Any:
            x = tf.io.parse_example(inputs, parse_spec)["x"]
            return {"outputs": self._y(x)}

        @tf.function(input_signature=[examples])
        def classify(self, inputs: Any) -> Any:
            x = tf.io.parse_example(inputs, parse_spec)["x"]
            return {"scores": self._y(x)}

    module = HalfPlusTwo()
    return _save(
        module,
        export_dir,
        {
            "serving_default": module.predict,
            "regress_x_to_y": module.regress,
            "classify_x_to_y": module.classify,
        },
        {"regress_x_to_y": REGRESS, "classify_x_to_y": CLASSIFY},
    )


def build_versioned(base_dir: PathLike) -> Path:
    """A model base path with ``1/`` (y = x/2 + 2) and ``2/`` (y = x/2 + 3); returns the base."""
    base = Path(base_dir)
    build_half_plus_two(base / "1", offset=2.0)
    build_half_plus_two(base / "2", offset=3.0)
    return base


# -- iris ----------------------------------------------------------------------------------------


def build_iris(base_dir: PathLike, version: int = 1) -> Path:
    """The iris example, trained and exported to ``<base_dir>/<version>/``; returns the export dir."""
    exported: Path = iris_example().build(base_dir, version)
    return exported


# -- regression ----------------------------------------------------------------------------------


def build_regression(export_dir: PathLike) -> Path:
    """A regressor over serialized Examples: ``outputs = 2 * x + k``, ``k`` defaulting to 0."""
    import tensorflow as tf

    parse_spec = {
        "x": tf.io.FixedLenFeature([], tf.float32),
        "k": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    }

    class Regression(tf.Module):
        @tf.function(input_signature=[_spec([None], tf.string, "inputs")])
        def regress(self, inputs: Any) -> Any:
            features = tf.io.parse_example(inputs, parse_spec)
            return {"outputs": 2.0 * features["x"] + tf.cast(features["k"], tf.float32)}

    module = Regression()
    return _save(module, export_dir, {"serving_default": module.regress})


# -- multi_input ---------------------------------------------------------------------------------

ECHO_DTYPES: dict[str, str] = {
    "f32": "float32",
    "f64": "float64",
    "f16": "float16",
    "i32": "int32",
    "i64": "int64",
    "u8": "uint8",
    "flag": "bool",
    "text": "string",
}
"""The ``echo`` signature's inputs and their dtypes (all shaped [-1])."""


def build_multi_input(export_dir: PathLike) -> Path:
    """Mixed-dtype inputs and outputs, a signature with a default input, and a dtype echo."""
    import tensorflow as tf

    class MultiInput(tf.Module):
        @tf.function(
            input_signature=[
                _spec([None, 2], tf.float32, "a"),
                _spec([None], tf.int64, "b"),
                _spec([None], tf.string, "c"),
            ]
        )
        def mixed(self, a: Any, b: Any, c: Any) -> Any:
            return {
                "total": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32),
                "b_doubled": b * 2,
                "c_length": tf.strings.length(c),
                "c_bytes": tf.identity(c),
            }

        @tf.function(
            input_signature=[
                _spec([None], tf.float32, "a"),
                _spec([], tf.float32, "scale"),
            ]
        )
        def with_default(self, a: Any, scale: Any = tf.constant(2.0)) -> Any:  # noqa: B008
            return {"y": a * scale}

        @tf.function(
            input_signature=[
                _spec([None], getattr(tf, dtype), name) for name, dtype in ECHO_DTYPES.items()
            ]
        )
        def echo(
            self, f32: Any, f64: Any, f16: Any, i32: Any, i64: Any, u8: Any, flag: Any, text: Any
        ) -> Any:
            return {
                "f32_out": tf.identity(f32),
                "f64_out": tf.identity(f64),
                "f16_out": tf.identity(f16),
                "i32_out": tf.identity(i32),
                "i64_out": tf.identity(i64),
                "u8_out": tf.identity(u8),
                "flag_out": tf.identity(flag),
                "text_bytes": tf.identity(text),
            }

    module = MultiInput()
    return _save(
        module,
        export_dir,
        {"serving_default": module.mixed, "with_default": module.with_default, "echo": module.echo},
    )


# -- string_model --------------------------------------------------------------------------------


def build_string_model(export_dir: PathLike) -> Path:
    """``text`` -> ``upper`` (ASCII upper case) and ``length`` (bytes)."""
    import tensorflow as tf

    class StringModel(tf.Module):
        @tf.function(input_signature=[_spec([None], tf.string, "text")])
        def serve(self, text: Any) -> Any:
            return {"upper": tf.strings.upper(text), "length": tf.strings.length(text)}

    module = StringModel()
    return _save(module, export_dir, {"serving_default": module.serve})


# -- bad_signatures ------------------------------------------------------------------------------

BAD_SIGNATURE_ERRORS: dict[str, str] = {
    # classify, checked before the model runs
    "two_inputs": "Expected one input Tensor.",
    "three_outputs": "Expected one or two output Tensors, found 3",
    "no_inputs_alias": "No classification inputs found in SignatureDef: ",
    "no_classes_or_scores": (
        'Expected classification signature outputs to contain at least one of "classes" or '
        '"scores". Signature was: '
    ),
    # classify, checked on the outputs (2 examples in)
    "classes_rank1": "Expected Tensor shape: [batch_size num_classes] but got [2]",
    "classes_int": "Expected classes Tensor of DT_STRING. Got: DT_INT64",
    "scores_double": "Expected scores Tensor of DT_FLOAT. Got: DT_DOUBLE",
    "classes_batch": "Expected classes output batch size of 2. Got: 3",
    "scores_batch": "Expected scores output batch size of 2. Got: 3",
    "class_score_mismatch": "Tensors class and score should match in dim_size(1). Got 3 vs. 2",
    # regress, checked before the model runs
    "regress_two_outputs": "Expected one output Tensor.",
    "regress_no_outputs_alias": "No regression outputs found in SignatureDef: ",
    # regress, checked on the outputs (2 examples in)
    "regress_wide": (
        "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [2,2]"
    ),
    "regress_batch": "Input batch size did not match output batch size: 2 vs. 3",
    "regress_double": "Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE",
}
"""Signature name in ``bad_signatures`` -> the start of the error a classify/regress call with two
examples gives (TF Serving's text)."""


def build_bad_signatures(export_dir: PathLike) -> Path:
    """Classify/regress signatures that each break one structural rule (:data:`BAD_SIGNATURE_ERRORS`)."""
    import tensorflow as tf

    strings = _spec([None], tf.string, "inputs")

    def batch(inputs: Any) -> Any:
        return tf.shape(inputs)[0]

    def floats(rows: Any, cols: int, dtype: Any = tf.float32) -> Any:
        return tf.ones(tf.stack([rows, cols]), dtype)

    def labels(rows: Any, cols: int) -> Any:
        return tf.fill(tf.stack([rows, cols]), "x")

    class Bad(tf.Module):
        @tf.function(input_signature=[strings])
        def good(self, inputs: Any) -> Any:
            n = batch(inputs)
            return {"classes": labels(n, 2), "scores": floats(n, 2)}

        @tf.function(input_signature=[strings, _spec([None], tf.string, "other")])
        def two_inputs(self, inputs: Any, other: Any) -> Any:
            return {"scores": floats(batch(inputs), 2)}

        @tf.function(input_signature=[strings])
        def three_outputs(self, inputs: Any) -> Any:
            n = batch(inputs)
            return {"classes": labels(n, 2), "scores": floats(n, 2), "extra": floats(n, 2)}

        @tf.function(input_signature=[_spec([None], tf.string, "examples")])
        def no_inputs_alias(self, examples: Any) -> Any:
            return {"scores": floats(batch(examples), 2)}

        @tf.function(input_signature=[strings])
        def no_classes_or_scores(self, inputs: Any) -> Any:
            return {"probabilities": floats(batch(inputs), 2)}

        @tf.function(input_signature=[strings])
        def classes_rank1(self, inputs: Any) -> Any:
            return {"classes": tf.fill(tf.reshape(batch(inputs), [1]), "x")}

        @tf.function(input_signature=[strings])
        def classes_int(self, inputs: Any) -> Any:
            return {"classes": floats(batch(inputs), 2, tf.int64)}

        @tf.function(input_signature=[strings])
        def scores_double(self, inputs: Any) -> Any:
            return {"scores": floats(batch(inputs), 2, tf.float64)}

        @tf.function(input_signature=[strings])
        def classes_batch(self, inputs: Any) -> Any:
            return {"classes": labels(batch(inputs) + 1, 2)}

        @tf.function(input_signature=[strings])
        def scores_batch(self, inputs: Any) -> Any:
            return {"scores": floats(batch(inputs) + 1, 2)}

        @tf.function(input_signature=[strings])
        def class_score_mismatch(self, inputs: Any) -> Any:
            n = batch(inputs)
            return {"classes": labels(n, 3), "scores": floats(n, 2)}

        @tf.function(input_signature=[strings])
        def regress_two_outputs(self, inputs: Any) -> Any:
            n = batch(inputs)
            return {"outputs": floats(n, 1), "extra": floats(n, 1)}

        @tf.function(input_signature=[strings])
        def regress_no_outputs_alias(self, inputs: Any) -> Any:
            return {"y": floats(batch(inputs), 1)}

        @tf.function(input_signature=[strings])
        def regress_wide(self, inputs: Any) -> Any:
            return {"outputs": floats(batch(inputs), 2)}

        @tf.function(input_signature=[strings])
        def regress_batch(self, inputs: Any) -> Any:
            return {"outputs": tf.ones(tf.reshape(batch(inputs) + 1, [1]))}

        @tf.function(input_signature=[strings])
        def regress_double(self, inputs: Any) -> Any:
            return {"outputs": tf.ones(tf.reshape(batch(inputs), [1]), tf.float64)}

    module = Bad()
    signatures: dict[str, Callable[..., Any]] = {"serving_default": module.good}
    methods: dict[str, str] = {"serving_default": CLASSIFY}
    for name in BAD_SIGNATURE_ERRORS:
        signatures[name] = getattr(module, name)
        methods[name] = REGRESS if name.startswith("regress") else CLASSIFY
    return _save(module, export_dir, signatures, methods)


BUILDERS: dict[str, Callable[[PathLike], Path]] = {
    "half_plus_two": build_half_plus_two,
    "regression": build_regression,
    "multi_input": build_multi_input,
    "string_model": build_string_model,
    "bad_signatures": build_bad_signatures,
}
"""The builders that write one SavedModel directory (iris and versioned write base paths)."""
