"""The same value gets the same answer in every plain format: JSON, JSON lines, CSV and npy.

One record, ``[6.4, 3.2, 4.5, 1.5]``, may reach the iris model as a JSON list, one JSON lines line,
one CSV line or an npy array of shape ``[4]``: the batch rule of plain bodies makes each of them one
record, so each must answer byte for byte as the others do. A record of the wrong length gets the
same status in every format, with a message that explains the rule (never a TensorFlow op name).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.registry import Registry

pytestmark = pytest.mark.tensorflow

SIGNATURES = {
    "classify": "tfs-model-name=iris",
    "predict": "tfs-model-name=iris,tfs-signature=predict",
}


@pytest.fixture(scope="module")
def pipeline(embedded_backend: Any) -> Pipeline:
    return Pipeline(embedded_backend, settings=Settings.from_env({}), registry=Registry())


def npy(record: list[float], dtype: Any) -> bytes:
    stream = io.BytesIO()
    np.save(stream, np.array(record, dtype))
    return stream.getvalue()


def bodies(record: list[float]) -> dict[str, tuple[str, bytes]]:
    """One record in every plain format: name -> (content type, body)."""
    text = json.dumps(record).encode()
    return {
        "json": ("application/json", text),
        "jsonlines": ("application/jsonlines", text + b"\n"),
        "csv": ("text/csv", ",".join(repr(v) for v in record).encode() + b"\n"),
        "npy float64": ("application/x-npy", npy(record, np.float64)),
        "npy float32": ("application/x-npy", npy(record, np.float32)),
    }


def answers(pipeline: Pipeline, record: list[float], method: str) -> dict[str, tuple[int, bytes]]:
    out = {}
    for name, (content_type, body) in bodies(record).items():
        response = pipeline.invoke(
            body,
            {
                "Content-Type": content_type,
                "Accept": "application/json",
                "X-Amzn-SageMaker-Custom-Attributes": SIGNATURES[method],
            },
        )
        out[name] = (response.status, response.body)
    return out


def test_the_seed_record_answers_alike_in_every_format(pipeline: Pipeline) -> None:
    got = answers(pipeline, [6.4, 3.2, 4.5, 1.5], "classify")
    assert {status for status, _ in got.values()} == {200}
    assert len({body for _, body in got.values()}) == 1, got
    classes = json.loads(got["npy float64"][1])["result"]["classifications"]
    assert len(classes) == 1  # one record, not four


floats32 = st.floats(-1000, 1000, width=32)


@pytest.mark.parametrize("method", sorted(SIGNATURES))
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(record=st.lists(floats32, min_size=1, max_size=6))
def test_every_format_answers_a_record_alike(
    pipeline: Pipeline, method: str, record: list[float]
) -> None:
    got = answers(pipeline, record, method)
    statuses = {status for status, _ in got.values()}
    assert len(statuses) == 1, got
    status = statuses.pop()
    if len(record) == 4:
        assert status == 200, got
        assert len({body for _, body in got.values()}) == 1, got
        return
    assert status == 400, got
    for _, body in got.values():
        message = json.loads(body)["error"]
        assert "ParseExample" not in message and "{{node" not in message
        assert "4" in message  # names the length the model takes
