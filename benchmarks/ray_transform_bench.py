"""The ``ray-transform`` group: ``tfio-handlers transform --ray`` on iris records (issue 13's goals).

Contenders, all on the iris example's ``predict`` signature, embedded backend, one local Ray session
(``num_cpus`` = the machine's cores, a 512 MiB object store, no dashboard):

- **local job**: ``TransformJob.run`` in this process (the reference; the ``transform`` group measures
  it against a per-record loop and numpy);
- **on Ray Data, 1 and 2 actors**: ``RayTransformJob.run`` (the job's reading and writing in this
  process, batches answered by Ray Data actors holding a pipeline each); its files must be byte for
  byte the local job's;
- **Ray Data by hand**, as its docs show a batch inference job: ``read_json(lines=True)`` →
  ``map_batches`` of a callable class calling ``backend.predict_arrays`` on numpy batches of 1000 →
  ``write_json``: no codecs, no per-record errors, Ray's own writer (pandas).

Every Ray run starts its actors (importing TensorFlow and loading the model in each), which is part of
what a job costs: rows/s are over the whole run, and "after start-up" over the time from the first
answered batch to the end.

    python benchmarks/ray_transform_bench.py [--records N]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
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

from harness import Goal, GroupResult, Table  # noqa: E402

PREDICT = "tfs-signature=predict"
SMALL = {"num_cpus": 0.25}
"""Ray Data's read and write tasks claim 1 CPU by default: beside two actors on two cores they could
never be placed, and the job would wait for ever (the trap docs/ray.md describes; it hung this
benchmark's first version for 14 minutes)."""


class _FirstAnswer:
    """A progress sink noting when the first batch was written."""

    def __init__(self) -> None:
        self.first: float | None = None

    def start(self, total_bytes: int) -> None:
        pass

    def advance(self, records: int, nbytes: int, errors: int) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def close(self) -> None:
        pass


class _ByHand:
    """Ray Data's batch inference pattern: the model in a callable class, numpy batches in."""

    def __init__(self, model_dir: str) -> None:
        from tfio_handlers.backends.embedded import EmbeddedBackend
        from tfio_handlers.protos import ModelSpec

        self.backend = EmbeddedBackend(model_dir)
        self.spec = ModelSpec(name="iris", signature_name="predict")

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from tfio_handlers.protocol.arrays import PredictArrays

        features = np.stack(batch["item"]).astype(np.float32)
        answer = self.backend.predict_arrays(PredictArrays({"inputs": features}, self.spec))
        return dict(answer.outputs)


def bench_ray_transform(records: int, repeats: int = 3) -> GroupResult:
    import models
    import numpy as np
    import ray
    import ray.data

    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.config import Settings
    from tfio_handlers.pipeline import Pipeline
    from tfio_handlers.ray.deployments import config_env
    from tfio_handlers.ray.transform import RayTransformJob
    from tfio_handlers.transform import TransformJob, TransformOptions

    result = GroupResult("ray-transform")
    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="tfio-bench-ray-") as tmp:
        root = Path(tmp)
        model_dir = models.build_iris(root / "models").parent
        rng = np.random.default_rng(13)
        rows = np.round(rng.uniform(0.1, 8.0, (records, 4)), 1).tolist()
        source = root / "iris.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
        wrapped = root / "iris-items.jsonl"  # read_json wants objects
        wrapped.write_text("".join(json.dumps({"item": r}) + "\n" for r in rows))
        options = TransformOptions(custom_attributes=PREDICT)

        backend = EmbeddedBackend(model_dir)
        start = time.perf_counter()
        local = TransformJob(Pipeline(backend), options).run([source], root / "local")
        local_seconds = time.perf_counter() - start
        backend.close()
        assert local.records == records and local.errors == 0
        expected = (root / "local" / "iris.jsonl.out").read_bytes()

        ray.init(
            num_cpus=cores,
            object_store_memory=512 * 2**20,
            include_dashboard=False,
            log_to_driver=False,
        )
        try:
            samples: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
            for actors in [1, 2] * repeats:  # interleaved: a busy spell hits both alike
                out = root / f"ray-{actors}"
                shutil.rmtree(out, ignore_errors=True)
                env = config_env(model_dir)
                first = _FirstAnswer()
                job = RayTransformJob(
                    env,
                    options,
                    settings=Settings.from_env(env),
                    actors=actors,
                    num_cpus=min(1.0, (cores - 0.5) / actors),
                    progress=first,
                )
                start = time.perf_counter()
                done = job.run([source], out)
                end = time.perf_counter()
                assert done.records == records and done.errors == 0
                if (out / "iris.jsonl.out").read_bytes() != expected:
                    raise AssertionError(f"{actors} actors: the .out differs from the local job's")
                assert first.first is not None
                samples[actors].append((end - start, end - first.first))
            runs = {
                actors: (
                    statistics.median(wall for wall, _ in times),
                    statistics.median(steady for _, steady in times),
                )
                for actors, times in samples.items()
            }
            result.checks.append(
                "transform --ray with 1 and 2 actors: iris.jsonl.out byte for byte the local job's"
            )

            shutil.rmtree(root / "by-hand", ignore_errors=True)
            start = time.perf_counter()
            (
                ray.data.read_json(str(wrapped), lines=True, num_cpus=0.25)
                .map_batches(
                    _ByHand,
                    fn_constructor_kwargs={"model_dir": str(model_dir)},
                    batch_size=1000,
                    compute=ray.data.ActorPoolStrategy(size=2),
                    num_cpus=min(1.0, (cores - 0.5) / 2),
                    batch_format="numpy",
                )
                .write_json(str(root / "by-hand"), ray_remote_args=SMALL)
            )
            by_hand = time.perf_counter() - start
        finally:
            ray.shutdown()

    local_rate = records / local_seconds
    table = Table(
        f"Batch transform of {records} iris records (JSON lines, predict signature) on Ray Data",
        ["contender", "wall time", "rows/s", "rows/s after start-up", "vs local job"],
    )
    table.rows.append(
        ["local job (no Ray)", f"{local_seconds:.1f} s", f"{local_rate:,.0f}", "", "1.00x"]
    )
    for actors, (wall, steady) in runs.items():
        table.rows.append(
            [
                f"transform --ray, {actors} actor{'s' if actors > 1 else ''}",
                f"{wall:.1f} s",
                f"{records / wall:,.0f}",
                f"{records / steady:,.0f}",
                f"{local_seconds / wall:.2f}x",
            ]
        )
    table.rows.append(
        [
            "Ray Data by hand (read_json → map_batches(predict_arrays) → write_json), 2 actors",
            f"{by_hand:.1f} s",
            f"{records / by_hand:,.0f}",
            "",
            f"{local_seconds / by_hand:.2f}x",
        ]
    )
    table.notes.append(
        f"{cores} cores, one local Ray session; --ray runs: median of {repeats}, 1 and 2 actors "
        "interleaved. Each Ray run starts its actors (TensorFlow imported and "
        "the model loaded in each): 'after start-up' counts from the first batch written. Actors "
        "claim min(1, (cores - 0.5) / actors) CPUs. The outputs of both --ray runs are byte for byte "
        "the local job's; the by-hand pipeline writes Ray's own JSON (through pandas), not the same "
        "bytes, and has no per-record errors or codecs."
    )
    result.tables.append(table)
    one, two = (records / runs[1][1], records / runs[2][1])
    result.goals.append(
        Goal(
            "transform --ray scales with actors (rows/s at 1 and 2 actors, after start-up; issue 13)",
            f"{one:,.0f} → {two:,.0f} rows/s ({two / one:.2f}x)",
            two > one,
            ""
            if two > one
            else f"{cores} cores: the driver's reading and writing compete with the actors",
        )
    )
    result.goals.append(
        Goal(
            "transform --ray writes byte-identical outputs to the local job (issue 13)",
            "identical at 1 and 2 actors",
            True,
        )
    )
    result.raw = {"records": records, "local_s": local_seconds, "ray": runs, "by_hand_s": by_hand}
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args(argv)
    result = bench_ray_transform(opts.records, opts.repeats)
    for table in result.tables:
        print(table.title)
        for row in table.rows:
            print("  ", " | ".join(row))
    for goal in result.goals:
        print(goal)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
