"""The transform job on the real iris SavedModel: outputs equal to what ``Pipeline.invoke`` answers per
record, bisection to the records at fault, errors, resume, join and filters, RecordIO, concurrency."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tfio_handlers.transform import TransformJob, TransformOptions
from tfio_handlers.transform.records import frame_recordio

pytestmark = pytest.mark.tensorflow

PREDICT = "tfs-signature=predict"

IRIS = [
    [6.4, 3.2, 4.5, 1.5],
    [5.1, 3.5, 1.4, 0.2],
    [6.2, 3.4, 5.4, 2.3],
    [5.9, 3.0, 5.1, 1.8],
    [4.9, 3.0, 1.4, 0.2],
    [6.7, 3.1, 4.7, 1.5],
    [7.7, 2.6, 6.9, 2.3],
]


@pytest.fixture(scope="module")
def pipeline(model_root: Path) -> Iterator[Any]:
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline

    backend = EmbeddedBackend(model_root / "iris")
    yield Pipeline(backend)
    backend.close()


class Counting:
    """The pipeline, counting the bodies sent and how many records each held."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.bodies: list[tuple[int, str]] = []

    def invoke(self, body: bytes, headers: dict[str, str]) -> Any:
        self.bodies.append((body.count(b"\n") or 1, headers["content-type"]))
        return self.pipeline.invoke(body, headers)


def per_record(
    pipeline: Any, lines: list[bytes], content_type: str, accept: str, attributes: str = ""
) -> list[bytes]:
    """What Pipeline.invoke answers for each record alone, as one line."""
    headers = {"content-type": content_type, "accept": accept}
    if attributes:
        headers["x-amzn-sagemaker-custom-attributes"] = attributes
    return [pipeline.invoke(line, headers).body.rstrip(b"\n") for line in lines]


@contextmanager
def user_code_pipeline(model_root: Path, tmp_path: Path, source: str) -> Iterator[Any]:
    """A pipeline on the iris model with ``source`` as its ``inference.py``."""
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline
    from tfio_handlers.usercode import load_user_code

    code = tmp_path / "inference.py"
    code.write_text(source)
    backend = EmbeddedBackend(model_root / "iris")
    try:
        yield Pipeline(backend, user_code=load_user_code(code))
    finally:
        backend.close()


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def run(pipeline: Any, inputs: list[Path], out: Path, **options: Any) -> Any:
    return TransformJob(pipeline, TransformOptions(**options)).run(inputs, out)


def out_lines(out: Path, name: str) -> list[bytes]:
    return (out / f"{name}.out").read_bytes().split(b"\n")[:-1]


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
@pytest.mark.parametrize(
    ("name", "content_type", "accept", "lines"),
    [
        (
            "in.jsonl",
            "application/jsonlines",
            "application/jsonlines",
            [json.dumps(r).encode() for r in IRIS],
        ),
        ("in.csv", "text/csv", "text/csv", [",".join(map(str, r)).encode() for r in IRIS]),
        (
            "in.csv",
            "text/csv",
            "application/jsonlines",
            [",".join(map(str, r)).encode() for r in IRIS],
        ),
        ("in.jsonl", "application/jsonlines", "text/csv", [json.dumps(r).encode() for r in IRIS]),
    ],
)
def test_outputs_equal_what_invoke_answers_per_record(
    pipeline: Any,
    tmp_path: Path,
    strategy: str,
    name: str,
    content_type: str,
    accept: str,
    lines: list[bytes],
) -> None:
    counting = Counting(pipeline)
    result = run(
        counting,
        [write_lines(tmp_path / name, lines)],
        tmp_path / "out",
        accept=accept,
        batch_strategy=strategy,
        max_records=4,
        custom_attributes=PREDICT,
    )
    assert (result.records, result.errors, result.stopped) == (7, 0, False)
    assert out_lines(tmp_path / "out", name) == per_record(
        pipeline, lines, content_type, accept, PREDICT
    )
    expected_bodies = [4, 3] if strategy == "MultiRecord" else [1] * 7
    assert [n for n, _ in counting.bodies] == expected_bodies
    assert not (tmp_path / "out" / f"{name}.err.jsonl").exists()


def test_json_records_multirecord_as_json_lines_and_json_answers(
    pipeline: Any, tmp_path: Path
) -> None:
    """application/json records go several to a body as JSON lines; the default classify signature's
    JSON answers (proto3 form) cannot be split per record, so the job sends single records."""
    lines = [json.dumps(r).encode() for r in IRIS]
    source = write_lines(tmp_path / "in.json", lines)
    counting = Counting(pipeline)
    run(counting, [source], tmp_path / "a", accept="application/jsonlines")
    assert counting.bodies == [(7, "application/jsonlines")]
    assert out_lines(tmp_path / "a", "in.json") == per_record(
        pipeline, lines, "application/json", "application/jsonlines"
    )
    counting.bodies.clear()
    run(counting, [source], tmp_path / "b")  # Accept: the server's default, application/json
    assert out_lines(tmp_path / "b", "in.json") == per_record(
        pipeline, lines, "application/json", "application/json"
    )
    assert counting.bodies[0] == (7, "application/jsonlines") and len(counting.bodies) == 8


def test_failed_records_are_found_by_bisection(pipeline: Any, tmp_path: Path) -> None:
    good = [json.dumps(r).encode() for r in IRIS]
    lines = [
        good[0],
        b"[1, 2, 3]",
        good[1],
        b"",
        good[2],
        good[3],
        b'"text"',
        good[4],
        good[5],
        good[6],
    ]
    counting = Counting(pipeline)
    result = run(
        counting,
        [write_lines(tmp_path / "in.jsonl", lines)],
        tmp_path / "out",
        max_errors=5,
        custom_attributes=PREDICT,
    )
    assert (result.records, result.errors, result.stopped) == (9, 2, False)
    written = out_lines(tmp_path / "out", "in.jsonl")
    assert len(written) == len(lines)
    expected = per_record(
        pipeline, lines, "application/jsonlines", "application/jsonlines", PREDICT
    )
    for line, got, want in zip(lines, written, expected, strict=True):
        assert got == (want if line else b"")
    errors = [
        json.loads(e) for e in (tmp_path / "out" / "in.jsonl.err.jsonl").read_text().splitlines()
    ]
    assert [(e["line"], e["status"]) for e in errors] == [(2, 400), (7, 400)]
    assert json.loads(written[1]) == {"error": errors[0]["message"]}
    # Bisection, not one body per record: the whole body, then halves down to the bad records.
    assert len(counting.bodies) < 2 * 9 and counting.bodies[0][0] == 9


def test_max_errors_stops_the_job_and_leaves_no_out(pipeline: Any, tmp_path: Path) -> None:
    lines = [b"[1]", b"[2]", *[json.dumps(r).encode() for r in IRIS]]
    source = write_lines(tmp_path / "in.jsonl", lines)
    result = run(pipeline, [source], tmp_path / "out", max_errors=1, custom_attributes=PREDICT)
    assert result.stopped and result.errors == 2
    assert not (tmp_path / "out" / "in.jsonl.out").exists()
    assert (tmp_path / "out" / "in.jsonl.err.jsonl").exists()
    result = run(pipeline, [source], tmp_path / "out", max_errors=-1, custom_attributes=PREDICT)
    assert (
        not result.stopped and result.errors == 2 and (tmp_path / "out" / "in.jsonl.out").exists()
    )


def test_rerun_skips_complete_outputs(
    pipeline: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = write_lines(tmp_path / "in" / "a.jsonl", [json.dumps(r).encode() for r in IRIS])
    second = write_lines(
        tmp_path / "in" / "sub" / "b.csv", [",".join(map(str, r)).encode() for r in IRIS]
    )
    out = tmp_path / "out"
    result = run(pipeline, [tmp_path / "in"], out, custom_attributes=PREDICT)
    assert [(f.output.name, f.skipped) for f in result.files] == [
        ("a.jsonl.out", False),
        ("b.csv.out", False),
    ]
    assert (out / "sub" / "b.csv.out").exists()
    before = (out / "a.jsonl.out").read_bytes()
    (out / "a.jsonl.out").write_bytes(b"kept\n")  # a complete output is never rewritten
    (out / "sub" / "b.csv.out").unlink()  # ... a missing one is redone
    (out / "sub" / "b.csv.out.partial").write_bytes(b"half")
    counting = Counting(pipeline)
    with caplog.at_level(logging.INFO, "tfio_handlers.transform"):
        result = run(counting, [tmp_path / "in"], out, custom_attributes=PREDICT)
    assert [f.skipped for f in result.files] == [True, False]
    assert "is complete; skipped" in caplog.text
    assert (out / "a.jsonl.out").read_bytes() == b"kept\n"
    assert out_lines(out, "sub/b.csv") == per_record(
        pipeline, second.read_bytes().splitlines(), "text/csv", "text/csv", PREDICT
    )
    assert not (out / "sub" / "b.csv.out.partial").exists()
    assert len(counting.bodies) == 1 and before != b"kept\n" and first.exists()


def test_join_json_records(pipeline: Any, tmp_path: Path) -> None:
    lines = [
        b'{"id": 1, "features": [6.4, 3.2, 4.5, 1.5]}',
        b'{"id": 2, "features": [5.1, 3.5, 1.4, 0.2]}',
    ]
    run(
        pipeline,
        [write_lines(tmp_path / "in.jsonl", lines)],
        tmp_path / "out",
        input_filter="$.features",
        join_source="Input",
        custom_attributes=PREDICT,
    )
    outputs = per_record(
        pipeline,
        [b"[6.4,3.2,4.5,1.5]", b"[5.1,3.5,1.4,0.2]"],
        "application/jsonlines",
        "application/jsonlines",
        PREDICT,
    )
    written = out_lines(tmp_path / "out", "in.jsonl")
    assert written == [
        line[:-1] + b',"SageMakerOutput":' + o + b"}"
        for line, o in zip(lines, outputs, strict=True)
    ]
    joined = json.loads(written[0])
    assert joined["id"] == 1 and joined["SageMakerOutput"] == json.loads(outputs[0])

    run(
        pipeline,
        [write_lines(tmp_path / "in2.jsonl", lines)],
        tmp_path / "out",
        input_filter="$.features",
        join_source="Input",
        output_filter="$['id','SageMakerOutput']",
        custom_attributes=PREDICT,
    )
    assert [json.loads(w) for w in out_lines(tmp_path / "out", "in2.jsonl")] == [
        {"id": i + 1, "SageMakerOutput": json.loads(o)} for i, o in enumerate(outputs)
    ]


def test_join_csv_rows_with_an_id_column(pipeline: Any, tmp_path: Path) -> None:
    lines = [b"id-1,6.4,3.2,4.5,1.5", b'"id,2",5.1,3.5,1.4,0.2']
    run(
        pipeline,
        [write_lines(tmp_path / "in.csv", lines)],
        tmp_path / "out",
        input_filter="$[1:]",
        join_source="Input",
        custom_attributes=PREDICT,
    )
    outputs = per_record(
        pipeline, [b"6.4,3.2,4.5,1.5", b"5.1,3.5,1.4,0.2"], "text/csv", "text/csv", PREDICT
    )
    assert out_lines(tmp_path / "out", "in.csv") == [
        line + b"," + o for line, o in zip(lines, outputs, strict=True)
    ]
    run(
        pipeline,
        [write_lines(tmp_path / "in2.csv", lines)],
        tmp_path / "out",
        input_filter="$[1:]",
        join_source="Input",
        output_filter="$[0,-3:]",
        custom_attributes=PREDICT,
    )
    assert out_lines(tmp_path / "out", "in2.csv") == [
        b"id-1," + outputs[0].split(b",", 2)[2],
        b'"id,2",' + outputs[1].split(b",", 2)[2],
    ]


def test_recordio_single_records(pipeline: Any, tmp_path: Path) -> None:
    payloads = [json.dumps(r).encode() for r in IRIS[:3]]
    source = tmp_path / "in.rec"
    source.write_bytes(b"".join(frame_recordio(p) for p in payloads))
    result = run(
        pipeline,
        [source],
        tmp_path / "out",
        split_type="RecordIO",
        batch_strategy="SingleRecord",
        content_type="application/json",
        accept="application/jsonlines",
        custom_attributes=PREDICT,
    )
    assert result.records == 3
    assert out_lines(tmp_path / "out", "in.rec") == per_record(
        pipeline, payloads, "application/json", "application/jsonlines", PREDICT
    )


def test_split_none_sends_the_whole_file(pipeline: Any, tmp_path: Path) -> None:
    body = b"".join(",".join(map(str, r)).encode() + b"\n" for r in IRIS)
    source = tmp_path / "in.csv"
    source.write_bytes(body)
    run(
        pipeline,
        [source],
        tmp_path / "out",
        split_type="None",
        assemble_with="None",
        custom_attributes=PREDICT,
    )
    expected = pipeline.invoke(
        body,
        {
            "content-type": "text/csv",
            "accept": "text/csv",
            "x-amzn-sagemaker-custom-attributes": PREDICT,
        },
    ).body
    assert (tmp_path / "out" / "in.csv.out").read_bytes() == expected
    run(pipeline, [source], tmp_path / "line", split_type="None", custom_attributes=PREDICT)
    assert (tmp_path / "line" / "in.csv.out").read_bytes() == expected  # whole, with its line end


def test_concurrency_writes_the_same_output_in_order(pipeline: Any, tmp_path: Path) -> None:
    rows = [IRIS[i % len(IRIS)] for i in range(500)]
    lines = [",".join(map(str, r)).encode() for r in rows]
    lines[123] = b"1,2"
    source = write_lines(tmp_path / "in.csv", lines)
    one = run(
        pipeline,
        [source],
        tmp_path / "one",
        max_records=16,
        max_errors=-1,
        custom_attributes=PREDICT,
    )
    four = run(
        pipeline,
        [source],
        tmp_path / "four",
        max_records=16,
        max_errors=-1,
        concurrency=4,
        custom_attributes=PREDICT,
    )
    assert one.errors == four.errors == 1
    assert (tmp_path / "one" / "in.csv.out").read_bytes() == (
        tmp_path / "four" / "in.csv.out"
    ).read_bytes()
    assert (tmp_path / "one" / "in.csv.err.jsonl").read_bytes() == (
        tmp_path / "four" / "in.csv.err.jsonl"
    ).read_bytes()
    assert json.loads((tmp_path / "four" / "in.csv.err.jsonl").read_text())["line"] == 124


def test_multirecord_bodies_refused_by_user_code_fall_back_to_single_records(
    model_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An input_fn written for one JSON value per body (the peer pain: huggingface/notebooks#227)."""
    source = (
        "import json\n"
        "def input_fn(data, content_type):\n"
        "    if content_type != 'application/json':\n"
        "        raise ValueError('only application/json, got ' + content_type)\n"
        "    return json.dumps({'signature_name': 'predict', 'instances': [json.loads(data)]})\n"
    )
    with user_code_pipeline(model_root, tmp_path, source) as user_pipeline:
        lines = [json.dumps(IRIS[i % 7]).encode() for i in range(40)]
        counting = Counting(user_pipeline)
        with caplog.at_level(logging.WARNING, "tfio_handlers.transform"):
            result = run(
                counting,
                [write_lines(tmp_path / "in.json", lines)],
                tmp_path / "out",
                max_records=4,
                accept="application/jsonlines",
            )
        assert result.errors == 0
        assert "sending one record per body" in caplog.text
        assert out_lines(tmp_path / "out", "in.json") == per_record(
            user_pipeline, lines, "application/json", "application/jsonlines"
        )
        multi = [n for n, _ in counting.bodies if n > 1]
        assert len(multi) <= 3 * 3  # three fruitless bisections of 4 records, then singles


def test_a_body_answered_503_is_sent_again_after_its_retry_after(
    model_root: Path, tmp_path: Path
) -> None:
    """User code that is busy every other call (a feature store warming up, say) answers 503 with
    ``Retry-After: 1``: each body is sent again once (``invocations_max_retries``), and with no
    retries the busy ones fail."""
    source = (
        "import json\n"
        "from tfio_handlers.errors import ServerBusy\n"
        "calls = 0\n"
        "def input_fn(data, content_type):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls % 2:\n"
        "        raise ServerBusy('warming up')\n"
        "    return json.dumps({'signature_name': 'predict', 'instances': [json.loads(data)]})\n"
    )
    with user_code_pipeline(model_root, tmp_path, source) as busy:
        lines = [json.dumps(IRIS[i]).encode() for i in range(2)]
        inputs = [write_lines(tmp_path / "in.json", lines)]
        options = {"batch_strategy": "SingleRecord", "accept": "application/jsonlines"}
        result = run(busy, inputs, tmp_path / "retried", invocations_max_retries=1, **options)
        assert result.errors == 0
        answered = out_lines(tmp_path / "retried", "in.json")
        assert all(b"probabilities" in line for line in answered), answered
        result = run(
            busy, inputs, tmp_path / "once", invocations_max_retries=0, max_errors=-1, **options
        )
        assert result.errors == 1  # the first of each pair of calls is refused
        assert b"warming up" in (tmp_path / "once" / "in.json.out").read_bytes()
        # MultiRecord (the next call is busy: the calls so far were even): a body still refused
        # 503 is not bisected
        counting = Counting(busy)
        result = run(
            counting,
            inputs,
            tmp_path / "multi",
            invocations_max_retries=0,
            max_errors=-1,
            accept="application/jsonlines",
        )
        assert result.errors == 2
        assert len(counting.bodies) == 1


def test_retry_delay_reads_retry_after_within_bounds() -> None:
    from tfio_handlers.pipeline import Response
    from tfio_handlers.transform.answering import MAX_RETRY_DELAY, retry_delay

    def after(value: str | None) -> float:
        headers = [("Retry-After", value)] if value is not None else []
        return retry_delay(Response(503, b"{}", headers))

    assert after("2") == 2.0
    assert after("0.5") == 0.5
    assert after("-3") == 0.0
    assert after("86400") == after("inf") == MAX_RETRY_DELAY
    assert after(None) == after("nan") == after("Wed, 21 Oct 2026 07:28:00 GMT") == 1.0
