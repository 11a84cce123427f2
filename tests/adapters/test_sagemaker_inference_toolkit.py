"""The SageMaker inference toolkit's encoders and decoders as real clients of ``tfio-handlers serve``.

``sagemaker_inference.encoder.encode(array_like, content_type)`` writes JSON (``json.dumps`` with
``tolist``), CSV (``np.savetxt(fmt="%s", delimiter=",")``) and npy (``np.save``);
``sagemaker_inference.decoder.decode(obj, content_type)`` reads them back (``np.array(json.loads)``,
``np.genfromtxt``, ``np.load``). Code written for the toolkit's containers builds its request bodies
and reads its answers with these; here they do so over HTTP on 127.0.0.1 against a real server,
on half_plus_two (``y = x / 2 + 2``, one output) and the iris classifier, and the values are checked
against the model's arithmetic.

Two things the toolkit's conventions bring, both decided in docs/formats/json.md and csv.md:

* SageMaker Batch Transform with ``BatchStrategy=MultiRecord`` and ``SplitType=Line`` joins records
  (each one ``encoder.encode(record, "application/json")``) with line ends into one
  ``application/json`` body: every record is answered (issue 14; the TF Serving container's rule);
* the toolkit's CSV encoder writes a 1-d array one value a line, so ``[1.0, 2.0, 5.0]`` is three
  records of one value: half_plus_two answers three predictions, the iris model (4 features a record)
  a 400 naming the row width. A record is a 2-d array of one row.

The toolkit is not a dependency of the project (the ``dev`` extra installs it): the module skips
where ``sagemaker-inference`` is not installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_server import LiveServer, serve_cli

encoder = pytest.importorskip("sagemaker_inference.encoder", reason="sagemaker-inference")
decoder = pytest.importorskip("sagemaker_inference.decoder", reason="sagemaker-inference")
content_types = pytest.importorskip("sagemaker_inference.content_types")

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

JSON = content_types.JSON
CSV = content_types.CSV
NPY = content_types.NPY
TOOLKIT_TYPES = (JSON, CSV, NPY)
HALF = "tfs-model-name=half"
ROWS = np.array([[1.0, 2.0, 5.0], [1.0, 2.0, 9.0], [-4.0, 0.5, 3.25]])
SEED = [6.4, 3.2, 4.5, 1.5]
SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``tfio-handlers serve``: half_plus_two as ``half`` (the default), iris as ``iris``."""
    tmp = tmp_path_factory.mktemp("inference_toolkit")
    live = serve_cli(
        "inference-toolkit",
        tmp,
        [
            "--model",
            f"half={model_root / 'half_plus_two'}",
            "--model",
            f"iris={model_root / 'iris'}",
        ],
        {"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "half"},
    ).start()
    try:
        yield live.wait_ready()
    finally:
        live.stop(10)


def invoke(
    server: LiveServer, body: str | bytes, content_type: str, accept: str, attributes: str = HALF
) -> tuple[int, str, bytes]:
    answer = server.post(
        "/invocations",
        body,
        headers={
            "Content-Type": content_type,
            "Accept": accept,
            "X-Amzn-SageMaker-Custom-Attributes": attributes,
        },
    )
    return answer.status, answer.content_type, answer.body


def toolkit_read(body: bytes, content_type: str) -> Any:
    """The toolkit's decoder on an answer: text for JSON and CSV (its ``UTF8_TYPES``), bytes else."""
    return decoder.decode(body.decode() if content_type in (JSON, CSV) else body, content_type)


def half_answer(body: bytes, content_type: str) -> np.ndarray:
    """half_plus_two's ``y`` from an answer, read by the toolkit's decoder."""
    decoded = toolkit_read(body, content_type)
    if content_type == JSON:  # a JSON object: the toolkit gives a 0-d object array around it
        return np.array(decoded.item()["predictions"], np.float32)
    return np.asarray(decoded, np.float32)


@pytest.mark.parametrize("accept", TOOLKIT_TYPES)
@pytest.mark.parametrize("into", TOOLKIT_TYPES)
@pytest.mark.parametrize("count", [1, 3])
def test_toolkit_bodies_and_answers_on_half_plus_two(
    server: LiveServer, into: str, accept: str, count: int
) -> None:
    rows = ROWS[:count]
    asked = f"{accept}; format=row" if accept == JSON else accept
    status, content_type, body = invoke(server, encoder.encode(rows, into), into, asked)
    assert status == 200, body
    assert content_type == accept
    y = half_answer(body, accept)
    np.testing.assert_allclose(y.reshape(count, 3), rows / 2 + 2, rtol=1e-6)


def test_a_batch_transform_multirecord_body_answers_every_record(server: LiveServer) -> None:
    """Records encoded one by one with the toolkit's JSON encoder, joined by line ends (SageMaker
    Batch Transform's MultiRecord body): the issue 14 body, and rows."""
    for records in ([{"x": list(r)} for r in ROWS[:2]], list(ROWS), [ROWS[0], ROWS[1]]):
        body = "\n".join(encoder.encode(record, JSON) for record in records) + "\n"
        status, content_type, answer = invoke(server, body, JSON, "application/json; format=row")
        assert (status, content_type) == (200, JSON), answer
        y = half_answer(answer, JSON)
        assert y.shape == (len(records), 3)
        np.testing.assert_allclose(y, ROWS[: len(records)] / 2 + 2, rtol=1e-6)


def test_the_toolkit_writes_a_1d_array_as_csv_one_value_a_line(server: LiveServer) -> None:
    body = encoder.encode(np.array([1.0, 2.0, 5.0]), CSV)
    assert body == "1.0\n2.0\n5.0\n"
    status, _, answer = invoke(server, body, CSV, NPY)
    assert status == 200
    # Three records of one value (x of shape [3], as the TF Serving container reads that CSV).
    np.testing.assert_allclose(half_answer(answer, NPY), [2.5, 3.0, 4.5])
    status, _, answer = invoke(
        server, encoder.encode(np.array(SEED), CSV), CSV, JSON, "tfs-model-name=iris"
    )
    assert status == 400
    assert set(json.loads(answer)) == {"error"}


@pytest.mark.parametrize("into", TOOLKIT_TYPES)
def test_toolkit_bodies_on_the_iris_classifier(server: LiveServer, into: str) -> None:
    """Classify (iris's ``serving_default``): one classification a record, the seed's label ``1``."""
    records = np.array([SEED, SETOSA])
    status, _, body = invoke(
        server, encoder.encode(records, into), into, JSON, "tfs-model-name=iris"
    )
    assert status == 200, body
    rows = toolkit_read(body, JSON).item()["result"]["classifications"]
    assert len(rows) == 2
    best = [max(row["classes"], key=lambda c: c["score"])["label"] for row in rows]
    assert best == ["1", "0"]
