"""``tfio-handlers transform`` as a user runs it (a subprocess), its exit statuses, its light imports,
and memory that stays bounded on a file of real size (300k iris records)."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from live_server import PYTHON, clean_env

IRIS_ROWS = [[6.4, 3.2, 4.5, 1.5], [5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]


def transform(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "tfio_handlers", "transform", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_package_imports_without_tensorflow_or_tqdm() -> None:
    code = (
        "import sys, tfio_handlers.transform, tfio_handlers.cli\n"
        "print(sorted(m for m in ('tensorflow', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cannot_start_without_a_model_exits_2(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("[1]\n")
    result = transform(str(source), "--output", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2
    assert "tfio-handlers transform: cannot start: No model" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_options_exit_2_naming_them(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("1,2\n")
    result = transform(
        str(source), "--output", str(tmp_path / "out"), "--join-source", "Input",
        "--accept", "application/json", timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "--join-source" in result.stderr


@pytest.mark.tensorflow
def test_cli_transforms_files_then_skips_them_and_stops_on_errors(
    iris_model: Path, tmp_path: Path
) -> None:
    good = [",".join(map(str, row)) for row in IRIS_ROWS]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("\n".join(good) + "\n")
    (tmp_path / "in" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in IRIS_ROWS))
    (tmp_path / "bad.csv").write_text(good[0] + "\n1,2\n" + good[1] + "\n")
    out = tmp_path / "out"
    model = ["--model-dir", str(iris_model.parent), "--custom-attributes", "tfs-signature=predict"]
    result = transform(str(tmp_path / "in"), "--output", str(out), *model, "--progress", "log")
    assert result.returncode == 0, result.stderr
    assert "2 files (0 skipped as complete), 6 records, 0 errors" in result.stderr
    assert len((out / "a.csv.out").read_text().splitlines()) == 3
    rows = [json.loads(line) for line in (out / "b.jsonl.out").read_text().splitlines()]
    assert [row["classes"] for row in rows] == ["1", "0", "2"]

    result = transform(
        str(tmp_path / "in"), str(tmp_path / "bad.csv"), "--output", str(out), *model
    )
    assert result.returncode == 1
    assert "2 skipped as complete" in result.stderr and "stopped: too many errors" in result.stderr
    assert not (out / "bad.csv.out").exists()
    error = json.loads((out / "bad.csv.err.jsonl").read_text())
    assert error["line"] == 2 and error["status"] == 400

    result = transform(str(tmp_path / "bad.csv"), "-o", str(out), *model, "--max-errors", "1")
    assert result.returncode == 0, result.stderr
    lines = (out / "bad.csv.out").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1]) == {"error": error["message"]}


@pytest.mark.tensorflow
@pytest.mark.slow
def test_memory_stays_bounded_on_300k_records(iris_model: Path, tmp_path: Path) -> None:
    """Python's allocations (tracemalloc: the records, bodies, arrays and answers) peak at a small
    fraction of the file, and no higher for 300k records than for 60k, because batches are read,
    answered and written one window at a time. (The peak, ~1.5 MiB, is one request's transient
    allocations, not the batches held.)"""
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline
    from tfio_handlers.transform import TransformJob, TransformOptions

    row = "".join(json.dumps(r) + "\n" for r in IRIS_ROWS)
    backend = EmbeddedBackend(iris_model.parent)
    options = TransformOptions(custom_attributes="tfs-signature=predict", max_records=250)

    def peak_of(repeats: int) -> tuple[int, int]:
        source = tmp_path / f"iris-{repeats}.jsonl"
        with source.open("w") as stream:
            for _ in range(repeats):
                stream.write(row)
        tracemalloc.start()
        try:
            result = TransformJob(pipeline, options).run([source], tmp_path / "out")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.records == 3 * repeats and result.errors == 0
        assert (tmp_path / "out" / f"{source.name}.out").stat().st_size > source.stat().st_size
        return peak, source.stat().st_size

    try:
        pipeline: Any = Pipeline(backend)
        small, _ = peak_of(20_000)
        peak, size = peak_of(100_000)
    finally:
        backend.close()
    assert size > 6_000_000
    assert peak < size / 3, f"peak {peak / 2**20:.1f} MiB for a file of {size / 2**20:.1f} MiB"
    assert peak < 1.3 * small, f"peak {peak} bytes for 300k records, {small} for 60k"


def test_the_option_table_in_the_docs_is_the_commands_options() -> None:
    import re

    from live_server import ROOT

    from tfio_handlers.cli import _parser

    text = (ROOT / "docs" / "transform.md").read_text()
    table = text.split("## Options, with SageMaker's names", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = {option for cell in first_cells for option in re.findall(r"`(--[a-z-]+)", cell)}
    subparsers = next(a for a in _parser()._actions if a.dest == "command")
    transform = subparsers.choices["transform"]  # type: ignore[index]
    options = {s for a in transform._actions for s in a.option_strings if s.startswith("--")}
    assert documented == options - {"--help"}
