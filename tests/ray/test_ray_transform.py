"""``tfio-handlers transform --ray``: the job on Ray Data writes exactly the local job's files.

One local Ray session for the module (two CPUs, a bounded object store, no dashboard). Every run is
compared byte for byte with :class:`TransformJob` run in this process over the same inputs: JSON lines
with a malformed record and a blank line (bisection, ``.err.jsonl``), CSV, several files in one dataset,
a join with the input, a stop on ``--max-errors``, and the command line itself.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")
pytest.importorskip("ray.data")

import ray

from tfio_handlers.cli import main
from tfio_handlers.config import Settings
from tfio_handlers.ray.deployments import config_env
from tfio_handlers.ray.transform import RayTransformJob
from tfio_handlers.transform import TransformJob, TransformOptions

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

PREDICT = "tfs-signature=predict"


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        object_store_memory=128 * 2**20,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def iris(model_root: Path) -> Path:
    return model_root / "iris"


@pytest.fixture(scope="module")
def pipeline(iris: Path) -> Iterator[Any]:
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline

    backend = EmbeddedBackend(iris)
    yield Pipeline(backend)
    backend.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three files: JSON lines with a malformed record and a blank line, CSV, and more JSON lines."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = random.Random(13)
    rows = [[round(rng.uniform(1, 8), 1) for _ in range(4)] for _ in range(2400)]
    lines = [json.dumps(row) for row in rows]
    lines[700] = "[1.0, 2.0]"  # the wrong length: a 400 for this record alone
    lines[1500] = ""  # blank: a blank output line
    (folder / "a.jsonl").write_text("".join(line + "\n" for line in lines))
    (folder / "b.csv").write_text("".join(",".join(map(str, row)) + "\n" for row in rows[:900]))
    (folder / "c.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:333]))
    return {path.name: path for path in folder.iterdir()}


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def on_ray(iris: Path, options: TransformOptions, actors: int = 2) -> RayTransformJob:
    env = config_env(iris)
    return RayTransformJob(env, options, settings=Settings.from_env(env), actors=actors)


@pytest.mark.parametrize(
    "options",
    [
        {"custom_attributes": PREDICT, "max_records": 100, "max_errors": -1},
        {"custom_attributes": PREDICT, "join_source": "Input", "max_errors": -1},
    ],
    ids=["multi-record", "join-input"],
)
def test_the_same_files_as_the_local_job(
    ray_session: None,
    iris: Path,
    pipeline: Any,
    inputs: dict[str, Path],
    tmp_path: Path,
    options: dict[str, Any],
) -> None:
    sources = list(inputs.values())
    local = TransformJob(pipeline, TransformOptions(**options)).run(sources, tmp_path / "local")
    remote = on_ray(iris, TransformOptions(**options)).run(sources, tmp_path / "ray")
    assert (remote.records, remote.errors, remote.stopped) == (local.records, local.errors, False)
    assert remote.errors == 1
    expected = files_of(tmp_path / "local")
    assert set(expected) == {"a.jsonl.out", "a.jsonl.err.jsonl", "b.csv.out", "c.jsonl.out"}
    assert files_of(tmp_path / "ray") == expected
    error = json.loads(expected["a.jsonl.err.jsonl"])
    assert error["line"] == 701 and error["status"] == 400


def test_too_many_errors_stop_the_job(
    ray_session: None, iris: Path, inputs: dict[str, Path], tmp_path: Path
) -> None:
    options = TransformOptions(custom_attributes=PREDICT, max_records=100, max_errors=0)
    result = on_ray(iris, options, actors=1).run([inputs["a.jsonl"]], tmp_path)
    assert result.stopped and result.errors == 1
    assert not (tmp_path / "a.jsonl.out").exists()  # not complete: a rerun redoes it
    assert (tmp_path / "a.jsonl.out.partial").exists()
    assert json.loads((tmp_path / "a.jsonl.err.jsonl").read_bytes())["line"] == 701


def test_the_command_line(
    ray_session: None,
    iris: Path,
    pipeline: Any,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--ray`` joins this process's Ray session, leaves it running, and resumes as the local job."""
    source = inputs["b.csv"]
    local = TransformJob(pipeline, TransformOptions(custom_attributes=PREDICT))
    local.run([source], tmp_path / "local")
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "c.jsonl.out").write_bytes(b"done before\n")  # complete: skipped
    command = ["transform", str(source), str(inputs["c.jsonl"]), "--model-dir", str(iris)]
    command += ["-o", str(tmp_path / "ray"), "--custom-attributes", PREDICT, "--progress", "off"]
    assert main([*command, "--ray", "--ray-actors", "1", "--ray-num-cpus", "0.25"]) == 0
    assert ray.is_initialized()
    assert files_of(tmp_path / "ray") == {
        **files_of(tmp_path / "local"),
        "c.jsonl.out": b"done before\n",
    }
    assert "2 files (1 skipped as complete), 900 records, 0 errors" in capsys.readouterr().err
