"""The real SageMaker Python SDK's serializers and deserializers against a real ``tfio-handlers serve``.

``predictor.predict(data)`` with the SDK sends ``serializer.serialize(data)`` with
``Content-Type: serializer.CONTENT_TYPE`` and ``Accept:`` the deserializer's ``ACCEPT`` tuple joined
with ``", "``, then returns ``deserializer.deserialize(body, <the response's Content-Type>)``
(sagemaker 2.x ``sagemaker/base_predictor.py``, ``Predictor._create_request_args`` and
``_handle_response``; the 3.x ``AsyncPredictor`` in ``sagemaker/serve/predictor_async.py`` joins the
same way). These tests do exactly that over HTTP on 127.0.0.1, with no AWS in between, for every pair
of ``JSONSerializer``/``CSVSerializer``/``NumpySerializer`` and ``JSONDeserializer``/
``CSVDeserializer``/``NumpyDeserializer``, on the iris model (the seed's ``[6.4, 3.2, 4.5, 1.5]``),
its classify ``serving_default`` (outputs ``classes``, ``scores``) and its ``predict`` signature
(``class_ids``, ``classes``, ``probabilities``), and check the values against the SavedModel itself.

The decided behaviour for ``NumpyDeserializer`` on several outputs (docs/formats/npy.md): its default
``Accept: application/x-npy`` alone is a 406 naming ``application/x-npz``; with
``NumpyDeserializer(accept=("application/x-npy", "application/x-npz"))`` (or ``accept=
"application/x-npz"``) the answer is an npz, ``Content-Type: application/x-npz``, which the SDK's
deserializer loads as a dict-like ``NpzFile`` of the outputs. One output under the default ``Accept``
is a plain ``.npy`` array.

The SDK is not a dependency of the project: the module skips where neither ``sagemaker-core`` (where
sagemaker 3.x keeps the (de)serializers) nor sagemaker 2.x is installed.
"""

from __future__ import annotations

import base64
import importlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_server import LiveServer, serve_cli

try:  # sagemaker 3.x: sagemaker-core holds them
    serializers = importlib.import_module("sagemaker.core.serializers")
    deserializers = importlib.import_module("sagemaker.core.deserializers")
except ImportError:  # sagemaker 2.x
    serializers = pytest.importorskip("sagemaker.serializers", reason="the SageMaker SDK")
    deserializers = pytest.importorskip("sagemaker.deserializers", reason="the SageMaker SDK")

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

NPY = "application/x-npy"
NPZ = "application/x-npz"
SEED = [6.4, 3.2, 4.5, 1.5]
"""The seed document's record: versicolor, label ``"1"``."""
SETOSA = [5.1, 3.5, 1.4, 0.2]
"""iris.csv's first row: setosa, label ``"0"``."""
LABELS = ["0", "1", "2"]
PREDICT = "tfs-signature=predict"
"""``X-Amzn-SageMaker-Custom-Attributes`` for the iris model's ``predict`` signature."""

INPUTS: dict[str, tuple[Any, int]] = {
    "list": (SEED, 1),
    "array": (np.array(SEED), 1),
    "batch-list": ([SEED, SETOSA], 2),
    "batch-array": (np.array([SEED, SETOSA]), 2),
}
"""What the client passes to ``predict``, and how many records it is (the batch rule: a flat
record is one)."""

SERIALIZERS = {
    "json": serializers.JSONSerializer,
    "csv": serializers.CSVSerializer,
    "npy": serializers.NumpySerializer,
}
DESERIALIZERS = {
    "json": deserializers.JSONDeserializer,
    "csv": deserializers.CSVDeserializer,
    "npy+npz": lambda: deserializers.NumpyDeserializer(accept=(NPY, NPZ)),
    "npz": lambda: deserializers.NumpyDeserializer(accept=NPZ),
}
"""The deserializers that can read every iris answer (``NumpyDeserializer()`` alone cannot: 406)."""


def answered_as(out: str) -> str:
    """The media type that answers the deserializer ``out`` on a model of several outputs."""
    return {"json": "application/json", "csv": "text/csv"}.get(out, NPZ)


def sdk_accept(deserializer: Any) -> str:
    """The ``Accept`` header the SDK's ``Predictor`` sends for ``deserializer`` (its join)."""
    accept = deserializer.ACCEPT
    return accept if isinstance(accept, str) else ", ".join(accept)


def sdk_predict(
    server: LiveServer,
    serializer: Any,
    deserializer: Any,
    data: Any,
    custom_attributes: str | None = None,
) -> tuple[int, str, Any]:
    """``predictor.predict(data)`` over HTTP: (status, response content type, deserialized body).

    The body is deserialized only on a 200 (the SDK raises ``ModelError`` on any other status).
    """
    headers = {"Content-Type": serializer.CONTENT_TYPE, "Accept": sdk_accept(deserializer)}
    if custom_attributes:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
    answer = server.post("/invocations", serializer.serialize(data), headers=headers)
    if answer.status != 200:
        return answer.status, answer.content_type, answer.json()
    body = deserializer.deserialize(io.BytesIO(answer.body), answer.content_type)
    return answer.status, answer.content_type, body


# -- the server and the expected values --------------------------------------------------------------


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``tfio-handlers serve``: the iris model as ``model`` (the default), half_plus_two as ``half``."""
    tmp = tmp_path_factory.mktemp("sagemaker_sdk")
    served = tmp / "model"  # the quick start's examples/iris/model: the model is named "model"
    served.symlink_to(model_root / "iris", target_is_directory=True)
    live = serve_cli(
        "sagemaker-sdk",
        tmp,
        ["--model", f"model={served}", "--model", f"half={model_root / 'half_plus_two'}"],
        {"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "model"},
    ).start()
    try:
        yield live.wait_ready()
    finally:
        live.stop(10)


@pytest.fixture(scope="module")
def probabilities(model_root: Path) -> np.ndarray:
    """The iris SavedModel's own ``predict`` answer for ``[SEED, SETOSA]``, float32 ``[2, 3]``."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_root / "iris" / "1"))
    outputs = loaded.signatures["predict"](inputs=tf.constant([SEED, SETOSA], tf.float32))
    probabilities = np.asarray(outputs["probabilities"].numpy())
    assert probabilities.argmax(axis=1).tolist() == [1, 0]  # versicolor, setosa
    return probabilities


def assert_scores(scores: Any, expected: np.ndarray) -> None:
    np.testing.assert_allclose(np.asarray(scores, np.float32), expected, rtol=1e-5, atol=1e-7)


# -- reading each deserializer's answer back into arrays ----------------------------------------------


def classify_answer(content_type: str, body: Any) -> tuple[list[list[str]], np.ndarray]:
    """(labels ``[N][3]``, scores ``[N, 3]``) from a deserialized classify answer."""
    if (
        content_type == "application/json"
    ):  # the legacy container's proto3 JSON of a ClassificationResponse
        rows = body["result"]["classifications"]
        labels = [[c["label"] for c in row["classes"]] for row in rows]
        return labels, np.array([[c["score"] for c in row["classes"]] for row in rows])
    if content_type == "text/csv":  # label,score pairs per example
        return [row[0::2] for row in body], np.array([row[1::2] for row in body], np.float64)
    with body:  # an NpzFile
        assert sorted(body.files) == ["classes", "scores"]
        return body["classes"].tolist(), body["scores"]


def tensor_values(tensor: dict[str, Any]) -> np.ndarray:
    """A proto3 JSON ``TensorProto`` (the legacy answer's outputs) as an array."""
    shape = [int(d["size"]) for d in tensor["tensorShape"]["dim"]]
    if "floatVal" in tensor:
        return np.array(tensor["floatVal"], np.float32).reshape(shape)
    if "int64Val" in tensor:
        return np.array([int(v) for v in tensor["int64Val"]], np.int64).reshape(shape)
    values = [base64.b64decode(v).decode() for v in tensor["stringVal"]]
    return np.array(values, object).reshape(shape)


def predict_answer(content_type: str, body: Any) -> tuple[list[int], list[str], np.ndarray]:
    """(class_ids, classes, probabilities ``[N, 3]``) from a deserialized predict answer."""
    if content_type == "application/json":
        outputs = body["outputs"]
        assert sorted(outputs) == ["class_ids", "classes", "probabilities"]
        return (
            tensor_values(outputs["class_ids"]).tolist(),
            tensor_values(outputs["classes"]).tolist(),
            tensor_values(outputs["probabilities"]),
        )
    if content_type == "text/csv":  # the outputs' columns side by side, in output-name order
        return (
            [int(row[0]) for row in body],
            [row[1] for row in body],
            np.array([row[2:] for row in body], np.float64),
        )
    with body:
        assert sorted(body.files) == ["class_ids", "classes", "probabilities"]
        assert body["class_ids"].dtype == np.int64
        return (
            body["class_ids"].tolist(),
            [c.decode() for c in body["classes"].tolist()],  # strings are written as an S array
            body["probabilities"],
        )


# -- every pair, both signatures ----------------------------------------------------------------------


@pytest.mark.parametrize("data", INPUTS, ids=str)
@pytest.mark.parametrize("out", DESERIALIZERS, ids=str)
@pytest.mark.parametrize("into", SERIALIZERS, ids=str)
def test_sdk_pair_on_the_classify_signature(
    server: LiveServer, probabilities: np.ndarray, into: str, out: str, data: str
) -> None:
    value, records = INPUTS[data]
    status, content_type, body = sdk_predict(
        server, SERIALIZERS[into](), DESERIALIZERS[out](), value
    )
    assert status == 200, body
    assert content_type == answered_as(out)
    labels, scores = classify_answer(content_type, body)
    assert labels == [LABELS] * records
    assert_scores(scores, probabilities[:records])
    assert labels[0][int(np.argmax(scores[0]))] == "1"  # the seed document's answer


@pytest.mark.parametrize("data", INPUTS, ids=str)
@pytest.mark.parametrize("out", DESERIALIZERS, ids=str)
@pytest.mark.parametrize("into", SERIALIZERS, ids=str)
def test_sdk_pair_on_the_predict_signature(
    server: LiveServer, probabilities: np.ndarray, into: str, out: str, data: str
) -> None:
    value, records = INPUTS[data]
    status, content_type, body = sdk_predict(
        server, SERIALIZERS[into](), DESERIALIZERS[out](), value, PREDICT
    )
    assert status == 200, body
    assert content_type == answered_as(out)
    class_ids, classes, scores = predict_answer(content_type, body)
    expected_ids = probabilities[:records].argmax(axis=1).tolist()
    assert class_ids == expected_ids
    assert classes == [LABELS[i] for i in expected_ids]
    assert_scores(scores, probabilities[:records])


# -- NumpyDeserializer and several outputs: the decision ----------------------------------------------


def test_the_sdk_joins_an_accept_tuple_with_a_comma_and_a_space() -> None:
    assert deserializers.NumpyDeserializer().ACCEPT == (NPY,)
    assert sdk_accept(deserializers.NumpyDeserializer()) == NPY
    both = deserializers.NumpyDeserializer(accept=(NPY, NPZ))
    assert sdk_accept(both) == "application/x-npy, application/x-npz"


@pytest.mark.parametrize(
    ("attributes", "outputs"),
    [(None, "classes, scores"), (PREDICT, "class_ids, classes, probabilities")],
    ids=["classify", "predict"],
)
@pytest.mark.parametrize("into", SERIALIZERS, ids=str)
def test_numpy_deserializer_default_accept_on_several_outputs_is_406_naming_npz(
    server: LiveServer, into: str, attributes: str | None, outputs: str
) -> None:
    status, content_type, body = sdk_predict(
        server, SERIALIZERS[into](), deserializers.NumpyDeserializer(), SEED, attributes
    )
    assert (status, content_type) == (406, "application/json")
    count = outputs.count(",") + 1
    assert body == {
        "error": f"The response has {count} outputs ({outputs}), and application/x-npy holds "
        "one array: ask for application/x-npz"
    }


@pytest.mark.parametrize("data", INPUTS, ids=str)
@pytest.mark.parametrize("into", SERIALIZERS, ids=str)
def test_numpy_deserializer_default_accept_on_one_output_is_the_array(
    server: LiveServer, into: str, data: str
) -> None:
    """half_plus_two answers one output ``y = x / 2 + 2``: a plain ``.npy`` under every Accept."""
    value, records = INPUTS[data]
    expected = np.asarray(value, np.float32).reshape(records, 4) / 2 + 2
    for accept in (NPY, (NPY, NPZ)):
        status, content_type, body = sdk_predict(
            server,
            SERIALIZERS[into](),
            deserializers.NumpyDeserializer(accept=accept),
            value,
            "tfs-model-name=half",
        )
        assert (status, content_type) == (200, NPY), body
        assert isinstance(body, np.ndarray)
        assert body.dtype == np.float32
        np.testing.assert_array_equal(body, expected)


def test_the_npz_answer_is_what_numpy_deserializer_documents(server: LiveServer) -> None:
    """The ``NpzFile`` the SDK returns maps output names to arrays, loadable without pickle."""
    status, content_type, body = sdk_predict(
        server,
        serializers.NumpySerializer(),
        deserializers.NumpyDeserializer(accept=(NPY, NPZ)),
        np.array([SEED, SETOSA]),
    )
    assert (status, content_type) == (200, NPZ)
    assert isinstance(body, np.lib.npyio.NpzFile)
    with body:
        arrays = dict(body)
    assert sorted(arrays) == ["classes", "scores"]
    assert arrays["classes"].dtype == np.dtype("<U1")
    assert arrays["classes"].shape == arrays["scores"].shape == (2, 3)
    assert arrays["scores"].dtype == np.float32
