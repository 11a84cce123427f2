"""The ``transform`` group: ``tfio-handlers transform`` on iris records, against one request per record
and against numpy batches straight to the backend (issue 13's goals).

Contenders, all on the iris example's ``predict`` signature, embedded backend, in this process:

- **transform** (``TransformJob.run``, the job's defaults: MultiRecord bodies of 1000 records, one
  thread): a file of N records (JSON lines, then CSV) read, sent through ``Pipeline.invoke``, answers
  split per record and written to ``<name>.out``;
- **one request per record**: a plain loop calling ``Pipeline.invoke`` once per record with the same
  headers (timed on a sample: at ~1k records/s the whole file would take minutes);
- **numpy batches, file to file**: what one writes by hand without the library: numpy reads the file
  into a float32 array, ``backend.predict_arrays`` on slices of 1000 rows, each answer row written as
  the job writes it; and, for information, the model alone on slices already in memory (the floor).

Before timing, the outputs of the job are checked equal to what ``Pipeline.invoke`` answers for the
same records one at a time (a sample). Peak RSS is the whole CLI process (TensorFlow included), run once
as a subprocess on the JSON lines file.

    python benchmarks/transform_bench.py [--records N] [--quick]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(HERE), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness import Goal, GroupResult, Table, fmt_ratio  # noqa: E402

PREDICT = "tfs-signature=predict"
FORMATS = {"JSON lines": ("iris.jsonl", "application/jsonlines"), "CSV": ("iris.csv", "text/csv")}


def _rows(n: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(13)
    return np.round(rng.uniform(0.1, 8.0, (n, 4)), 1)


def _write_inputs(root: Path, rows: Any) -> dict[str, Path]:
    values = rows.tolist()
    jsonl = root / "iris.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in values))
    csv = root / "iris.csv"
    csv.write_text("".join(",".join(map(str, r)) + "\n" for r in values))
    return {"JSON lines": jsonl, "CSV": csv}


def bench_transform(records: int, loop_records: int, repeats: int) -> GroupResult:
    import models
    import numpy as np

    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline
    from tfio_handlers.protocol.arrays import PredictArrays
    from tfio_handlers.protos import ModelSpec
    from tfio_handlers.transform import TransformJob, TransformOptions

    result = GroupResult("transform")
    with tempfile.TemporaryDirectory(prefix="tfio-bench-transform-") as tmp:
        root = Path(tmp)
        model_dir = models.build_iris(root / "models").parent
        rows = _rows(records)
        inputs = _write_inputs(root, rows)
        backend = EmbeddedBackend(model_dir)
        pipeline = Pipeline(backend)
        options = TransformOptions(custom_attributes=PREDICT)

        def run_job(source: Path) -> float:
            out = root / "out"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            job = TransformJob(pipeline, options).run([source], out)
            seconds = time.perf_counter() - start
            assert job.records == records and job.errors == 0
            return seconds

        # Same outputs first: the job's lines against Pipeline.invoke per record (a sample).
        for label, source in inputs.items():
            run_job(source)
            written = (root / "out" / (source.name + ".out")).read_bytes().split(b"\n")
            lines = source.read_bytes().split(b"\n")
            headers = {
                "content-type": FORMATS[label][1],
                "accept": FORMATS[label][1],
                "x-amzn-sagemaker-custom-attributes": PREDICT,
            }
            for i in range(0, records, max(1, records // 200)):
                alone = pipeline.invoke(lines[i], headers).body.rstrip(b"\n")
                if written[i] != alone:
                    raise AssertionError(f"{label} line {i + 1}: {written[i]!r} != {alone!r}")
            result.checks.append(
                f"transform ({label}): every 1/200th line of the .out equals Pipeline.invoke's "
                "answer to that record alone"
            )

        spec = ModelSpec(name="iris", signature_name="predict")
        features = rows.astype(np.float32)

        def model_floor() -> float:
            start = time.perf_counter()
            for i in range(0, records, 1000):
                backend.predict_arrays(PredictArrays({"inputs": features[i : i + 1000]}, spec))
            return time.perf_counter() - start

        def numpy_batches(label: str) -> float:
            """By hand, file to file: numpy reads the records, predict_arrays on batches of 1000,
            each answer row written as the job writes it (a JSON object, or CSV fields)."""
            source = inputs[label]
            start = time.perf_counter()
            if label == "CSV":
                array = np.loadtxt(source, delimiter=",", dtype=np.float32, ndmin=2)
            else:
                with source.open("rb") as stream:
                    array = np.array([json.loads(line) for line in stream], dtype=np.float32)
            with (root / "by-hand.out").open("w") as out:
                for i in range(0, len(array), 1000):
                    answer = backend.predict_arrays(
                        PredictArrays({"inputs": array[i : i + 1000]}, spec)
                    ).outputs
                    ids = answer["class_ids"].tolist()
                    names = [c.decode() for c in answer["classes"].tolist()]
                    probabilities = answer["probabilities"].tolist()
                    if label == "CSV":
                        out.writelines(
                            f"{a},{b},{','.join(map(repr, p))}\n"
                            for a, b, p in zip(ids, names, probabilities, strict=True)
                        )
                    else:
                        out.writelines(
                            json.dumps({"class_ids": a, "classes": b, "probabilities": p}) + "\n"
                            for a, b, p in zip(ids, names, probabilities, strict=True)
                        )
            return time.perf_counter() - start

        loop_bodies = {
            label: source.read_bytes().split(b"\n")[:loop_records]
            for label, source in inputs.items()
        }

        def one_per_record(label: str) -> float:
            content_type = FORMATS[label][1]
            headers = {
                "content-type": content_type,
                "accept": content_type,
                "x-amzn-sagemaker-custom-attributes": PREDICT,
            }
            start = time.perf_counter()
            for body in loop_bodies[label]:
                pipeline.invoke(body, headers)
            return (time.perf_counter() - start) / len(loop_bodies[label]) * records

        model_floor()  # warm
        timings: dict[str, list[float]] = {}
        for _ in range(repeats):
            for label, source in inputs.items():
                timings.setdefault(f"transform {label}", []).append(run_job(source))
                timings.setdefault(f"loop {label}", []).append(one_per_record(label))
                timings.setdefault(f"numpy {label}", []).append(numpy_batches(label))
            timings.setdefault("model floor", []).append(model_floor())
        backend.close()
        median = {name: statistics.median(values) for name, values in timings.items()}
        rss = _cli_peak_rss(model_dir, inputs["JSON lines"], root / "cli-out")

    rate = {name: records / seconds for name, seconds in median.items()}
    table = Table(
        f"Batch transform of {records} iris records (predict signature), rows/s",
        [
            "input",
            "transform",
            "one request per record",
            "numpy batches, file to file",
            "vs loop",
            "vs numpy",
        ],
    )
    for label in FORMATS:
        ours = rate[f"transform {label}"]
        table.rows.append(
            [
                label,
                f"{ours:,.0f}",
                f"{rate[f'loop {label}']:,.0f}",
                f"{rate[f'numpy {label}']:,.0f}",
                fmt_ratio(ours / rate[f"loop {label}"]),
                fmt_ratio(ours / rate[f"numpy {label}"]),
            ]
        )
    table.notes.append(
        f"Median of {repeats} runs. transform: `TransformJob.run` with the defaults (MultiRecord, "
        "1000 records a body, 6 MB, concurrency 1), reading the file and writing `.out`. One request "
        f"per record: `Pipeline.invoke` per line, timed on the first {loop_records} lines and "
        "scaled. numpy batches, file to file: what one writes by hand without the library, "
        "`np.loadtxt` (CSV) or `json.loads` per line (JSON lines) into a float32 array, "
        "`backend.predict_arrays` on slices of 1000 rows, each answer row written as the job "
        "writes it. The model alone (`predict_arrays` on slices already in memory, no file, no "
        f"codec, no writing) answers {rate['model floor']:,.0f} rows/s: the floor. "
        f"Peak RSS of `tfio-handlers transform` on the JSON lines file (whole process, TensorFlow "
        f"and the model included): {rss:.0f} MiB."
    )
    result.tables.append(table)
    result.raw = {"records": records, "seconds": median, "rows_per_s": rate, "peak_rss_mib": rss}
    for label in FORMATS:
        ours = rate[f"transform {label}"]
        versus_loop = ours / rate[f"loop {label}"]
        result.goals.append(
            Goal(
                f"transform ({label}) ≥ 40x one request per record (issue 13)",
                f"{versus_loop:.0f}x ({ours:,.0f} rows/s)",
                versus_loop >= 40,
                "" if versus_loop >= 40 else f"short by {40 / versus_loop:.2f}x",
            )
        )
        versus_numpy = rate[f"numpy {label}"] / ours
        result.goals.append(
            Goal(
                f"transform ({label}) within 2x of numpy batches to the backend, file to file "
                "(issue 13)",
                f"{versus_numpy:.2f}x the time of numpy's {rate[f'numpy {label}']:,.0f} rows/s",
                versus_numpy <= 2,
                "" if versus_numpy <= 2 else f"over by {versus_numpy / 2:.2f}x",
            )
        )
    floor = rate["model floor"]
    result.goals.append(
        Goal(
            "(information, not a goal) the model alone on arrays in memory",
            f"{floor:,.0f} rows/s",
            None,
            "transform (JSON lines) takes "
            f"{floor / rate['transform JSON lines']:.1f}x its time, CSV "
            f"{floor / rate['transform CSV']:.1f}x: reading, decoding, encoding and writing records",
        )
    )
    result.goals.append(
        Goal(
            "(information, not a goal) peak RSS of `tfio-handlers transform`, whole process",
            f"{rss:.0f} MiB",
            None,
            f"{records} records; TensorFlow and the model are most of it",
        )
    )
    return result


def _cli_peak_rss(model_dir: Path, source: Path, out: Path) -> float:
    """Peak RSS (MiB) of ``tfio-handlers transform`` run once as a subprocess."""
    code = (
        "import resource, subprocess, sys\n"
        "status = subprocess.run(sys.argv[1:]).returncode\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(status)\n"
    )
    command = [
        sys.executable, "-c", code, sys.executable, "-m", "tfio_handlers", "transform",
        str(source), "--output", str(out), "--model-dir", str(model_dir),
        "--custom-attributes", PREDICT, "--progress", "off", "--log-level", "warning",
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return int(done.stdout.split()[-1]) / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=None, help="default 300000 (60000 quick)")
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args(argv)
    records = opts.records or (60_000 if opts.quick else 300_000)
    result = bench_transform(records, 500 if opts.quick else 2000, 1 if opts.quick else 3)
    for table in result.tables:
        print(table.title)
        for row in table.rows:
            print("  ", row)
        for note in table.notes:
            print("  ", note)
    for goal in result.goals:
        print(goal)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MiB peak RSS (this process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
