"""``tfio-handlers transform --ray``: the batch transform job with its batches answered on Ray Data.

The job is :class:`~tfio_handlers.transform.TransformJob`'s: the same files, bodies, bisection,
``.out``/``.err.jsonl`` and resume; only *where* a batch is answered changes. The driver (this process)
lists the inputs and writes the outputs; Ray Data does the rest as one streaming dataset:

1. ``from_items``: one row per input file (its index and path);
2. ``map_batches(_read)``: the file's batches, read by the job's own reader (``records.read_batches``),
   one row per batch;
3. ``map_batches(BatchActor, concurrency=actors)``: a pool of actors, each holding a pipeline (the user's
   code, the codecs and the model, built once in the actor) and a
   :class:`~tfio_handlers.transform.answering.BatchAnswerer`, answers the batches;
4. the driver iterates the answers in input order (``preserve_order``) and writes them.

Because each batch is answered by the same code as in the local job, the outputs are byte-for-byte the
local job's. Input paths must be readable at the same place on every node (as model paths are). A batch
crosses between processes as pickled bytes: records, their results and failures are plain data, and
Ray would pickle the Python objects anyway.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data

from ..config import Settings
from ..transform import TransformOptions
from ..transform.answering import BatchAnswerer, FileSetup
from ..transform.job import Answered, TransformJob
from ..transform.progress import Progress
from ..transform.records import read_batches
from .command import init_ray, replica_env
from .deployments import replica_pipeline

__all__ = ["BatchActor", "RayTransformJob", "ray_transform_job"]

READ_CPUS = 0.25
"""CPUs a file-reading task claims: reading is cheap next to answering, and on a small machine the
actors' claims must leave room for it."""

BLOCK_BATCHES = 16
BLOCK_BYTES = 4 * 2**20
"""A Ray block holds up to this many of the job's batches and bytes of input: Ray Data costs a few
milliseconds a block, so a block per batch of 1000 small records spent more time in Ray than in the
model, while a file in one block would go to one actor whole and reach the writer at the end."""

Columns = dict[str, "np.ndarray[Any, Any]"]


class BatchActor:
    """A Ray Data actor: one pipeline, answering the batches of a block per call."""

    def __init__(
        self, env: Mapping[str, str], options: TransformOptions, setups: Sequence[FileSetup]
    ) -> None:
        self.pipeline = replica_pipeline({**os.environ, **env})
        self.answerer = BatchAnswerer(self.pipeline, options)
        self.setups = setups

    def __call__(self, rows: Columns) -> Columns:
        answered = []
        for file, data in zip(rows["file"], rows["batch"], strict=True):
            batch = pickle.loads(data)
            results = self.answerer.answer(batch, self.setups[file])
            answered.append(pickle.dumps(Answered.of(int(file), batch, results)))
        return {"answered": _objects(answered)}


class RayTransformJob(TransformJob):
    """The transform job with batches answered by ``actors`` Ray Data actors (each ``num_cpus``)."""

    def __init__(
        self,
        env: Mapping[str, str],
        options: TransformOptions,
        *,
        settings: Settings,
        actors: int = 2,
        num_cpus: float = 0.5,
        progress: Progress | None = None,
        owns_ray: bool = False,
    ) -> None:
        self._configure(settings, options, progress)
        self.env = dict(env)
        self.actors = actors
        self.num_cpus = num_cpus
        self.owns_ray = owns_ray

    def close(self) -> None:
        """Shut Ray down when this job started it."""
        if self.owns_ray:
            ray.shutdown()

    def answers(
        self, sources: Sequence[Path], setups: Sequence[FileSetup]
    ) -> Generator[Answered, None, None]:
        if not sources:
            return
        context = ray.data.DataContext.get_current()
        saved = (
            context.target_max_block_size,
            context.execution_options.preserve_order,
            context.enable_progress_bars,
        )
        try:  # a dataset keeps a copy of the context it is made in: these are this job's alone
            # A block per yield of ``read`` (BLOCK_BATCHES): Ray would pack a task's outputs into
            # blocks of up to 128 MiB, so a file would be one block.
            context.target_max_block_size = 1
            context.execution_options.preserve_order = True
            context.enable_progress_bars = False  # the job has its own
            dataset = self._dataset(sources, setups)
        finally:
            (
                context.target_max_block_size,
                context.execution_options.preserve_order,
                context.enable_progress_bars,
            ) = saved
        for row in dataset.iter_rows():
            answered = pickle.loads(row["answered"])
            assert isinstance(answered, Answered)
            yield answered

    def _dataset(self, sources: Sequence[Path], setups: Sequence[FileSetup]) -> ray.data.Dataset:
        """Files → batches, read by the job's own reader → answers, by a pool of actors."""
        split_type, max_bytes, max_records = (
            self.options.split_type,
            self.max_bytes,
            self.max_records,
        )

        def read(rows: Columns) -> Generator[Columns, None, None]:
            """A file's batches, a few to a block (each block one call of an actor)."""
            for file, path in zip(rows["file"], rows["path"], strict=True):
                block: list[bytes] = []
                size = 0
                for batch in read_batches(
                    Path(path), split_type, max_bytes=max_bytes, max_records=max_records
                ):
                    block.append(pickle.dumps(batch))
                    size += batch.nbytes
                    if len(block) >= BLOCK_BATCHES or size >= BLOCK_BYTES:
                        yield {"file": np.full(len(block), file), "batch": _objects(block)}
                        block, size = [], 0
                if block:
                    yield {"file": np.full(len(block), file), "batch": _objects(block)}

        files = [{"file": index, "path": str(path.resolve())} for index, path in enumerate(sources)]
        return (
            ray.data.from_items(files)
            .map_batches(read, batch_size=1, num_cpus=READ_CPUS)
            .map_batches(
                BatchActor,
                fn_constructor_kwargs={"env": self.env, "options": self.options, "setups": setups},
                batch_size=None,  # a block at a time
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                num_cpus=self.num_cpus,
            )
        )


def _objects(items: Any) -> np.ndarray[Any, Any]:
    values = list(items)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def ray_transform_job(
    args: argparse.Namespace, options: TransformOptions, progress: Progress
) -> RayTransformJob:
    """The job ``tfio-handlers transform --ray`` runs: Ray joined (``--ray-address``, or the session
    this process already has) or started with the small-machine defaults, and shut down by
    :meth:`RayTransformJob.close` only when started here."""
    env = replica_env(args)
    owns_ray = not args.ray_address and not ray.is_initialized()
    init_ray(args.ray_address, object_store_mb=args.ray_object_store_mb)
    return RayTransformJob(
        env,
        options,
        settings=Settings.from_env({**os.environ, **env}),
        actors=args.ray_actors,
        num_cpus=args.ray_num_cpus,
        progress=progress,
        owns_ray=owns_ray,
    )
