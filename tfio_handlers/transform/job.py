"""The transform job: every input file's records through the pipeline, into ``<name>.out``.

For each input file (a directory stands for the files under it, hidden ones left out), batches of records
(:mod:`.records`) are answered by a :class:`~.answering.BatchAnswerer` (bodies sent through
:meth:`Pipeline.invoke <tfio_handlers.pipeline.Pipeline.invoke>` with the job's ``Content-Type`` and
``Accept``, exactly as an HTTP client's request would go: same codecs, same user ``input_fn`` and
``output_fn``; MultiRecord bodies bisected to the records at fault). The main thread writes the
answers in input order. :meth:`TransformJob.answers` is where batches are answered: here, by
``concurrency`` threads; on Ray Data (:mod:`tfio_handlers.ray.transform`), by a pool of actors.

- A **failed record** gets its error body (``{"error": "..."}``, what HTTP would answer) as its line in
  ``<name>.out`` and a line ``{"line": N, "status": S, "message": "..."}`` in ``<name>.err.jsonl``
  (``N``: the 1-based line number, or record number for RecordIO). With ``--assemble-with None`` failed
  records write nothing to ``.out``. More than ``max_errors`` failures stop the job.
- **Resumable**: ``<name>.out`` is written as ``<name>.out.partial`` and renamed when the file is done, so
  a rerun skips every file whose ``.out`` exists and redoes the others from their start.
- **Bounded memory**: at most ``2 × concurrency + 1`` batches are read ahead of the writer, each at most
  the payload limit.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import InternalError
from .answering import BatchAnswerer, Failure, FileSetup, Results
from .options import TransformOptions
from .progress import NoProgress, Progress
from .records import Batch, BodyFormat, read_batches

if TYPE_CHECKING:
    from ..config import Settings
    from ..pipeline import Pipeline

__all__ = ["Answered", "FileResult", "JobResult", "TransformJob", "find_inputs"]

log = logging.getLogger("tfio_handlers.transform")


@dataclass(frozen=True, slots=True)
class Answered:
    """One batch answered: what the writer needs of the batch, and its results."""

    file: int
    """The index of the batch's file among the files the job does."""
    first: int
    records: int
    nbytes: int
    results: Results

    @classmethod
    def of(cls, file: int, batch: Batch, results: Results) -> Answered:
        return cls(file, batch.first, batch.records, batch.nbytes, results)


@dataclass
class FileResult:
    """One input file's result."""

    source: Path
    output: Path
    records: int = 0
    errors: int = 0
    skipped: bool = False


@dataclass
class JobResult:
    """The job's result: the files, the totals, and whether it stopped on too many errors."""

    files: list[FileResult] = field(default_factory=list)
    stopped: bool = False
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def errors(self) -> int:
        return sum(f.errors for f in self.files)


class _TooManyErrors(Exception):
    pass


def find_inputs(inputs: Sequence[Path], output_dir: Path) -> list[tuple[Path, str]]:
    """``(file, name)`` for every input: a file is named by its base name, a directory's files by
    their path under it (sorted); hidden files and anything under ``output_dir`` are left out."""
    found: list[tuple[Path, str]] = []
    output = output_dir.resolve()
    for given in inputs:
        if given.is_dir():
            for path in sorted(given.rglob("*")):
                relative = path.relative_to(given)
                if not path.is_file() or any(p.startswith(".") for p in relative.parts):
                    continue
                if path.resolve().is_relative_to(output):
                    continue
                found.append((path, relative.as_posix()))
        elif given.is_file():
            found.append((given, given.name))
        else:
            raise InternalError(f"Input {str(given)!r} is not a file or a directory")
    names: dict[str, Path] = {}
    for path, name in found:
        if name in names:
            raise InternalError(
                f"Inputs {str(names[name])!r} and {str(path)!r} would both write {name}.out"
            )
        names[name] = path
    return found


class TransformJob:
    """A batch transform job over one pipeline; :meth:`run` processes input files into a directory."""

    def __init__(
        self, pipeline: Pipeline, options: TransformOptions, *, progress: Progress | None = None
    ) -> None:
        self._configure(pipeline.settings, options, progress)
        self.answerer = BatchAnswerer(pipeline, options)

    def _configure(
        self, settings: Settings, options: TransformOptions, progress: Progress | None
    ) -> None:
        options.check()
        self.settings = settings
        self.options = options
        self.progress: Progress = progress or NoProgress()
        server_limit = settings.limits.max_body_bytes
        self.max_bytes = min(options.max_bytes or server_limit, server_limit)
        self.max_records = options.max_records or 2**62
        self.line_mode = options.assemble_with == "Line"
        self.errors = 0

    # -- the job -----------------------------------------------------------------------------------

    def run(self, inputs: Sequence[Path], output_dir: Path) -> JobResult:
        """Transform every input into ``output_dir``; files whose ``.out`` exists are skipped."""
        started = time.monotonic()
        files = find_inputs(inputs, output_dir)
        self.options.check_files([f for f, _ in files], self.settings.default_accept)
        result = JobResult()
        todo: list[tuple[Path, str]] = []
        for source, name in files:
            out_path = output_dir / (name + ".out")
            if out_path.exists():
                log.info("%s: %s is complete; skipped (delete it to redo)", source, out_path)
                result.files.append(FileResult(source, out_path, skipped=True))
            else:
                todo.append((source, name))
        self.progress.start(sum(source.stat().st_size for source, _ in todo))
        sources = [source for source, _ in todo]
        answered = self.answers(sources, [self.setup(source) for source in sources])
        try:
            upcoming = next(answered, None)
            for index, (source, name) in enumerate(todo):
                file_result = FileResult(source, output_dir / (name + ".out"))
                result.files.append(file_result)
                upcoming = self._write_file(index, file_result, upcoming, answered)
        except _TooManyErrors:
            result.stopped = True
        finally:
            answered.close()
            self.progress.close()
        result.seconds = time.monotonic() - started
        return result

    def setup(self, source: Path) -> FileSetup:
        """What every body of ``source`` is sent with."""
        content_type = self.options.content_type_for(source)
        accept = self.options.accept_for(content_type, self.settings.default_accept)
        return FileSetup(
            BodyFormat(self.options.split_type, content_type),
            accept,
            self.options.data_processing(content_type, accept),
            self.options.custom_attributes,
        )

    def batches(self, sources: Sequence[Path]) -> Iterator[tuple[int, Batch]]:
        """``(file index, batch)`` for every batch of every file, in order, read as they are asked for."""
        for index, source in enumerate(sources):
            for batch in read_batches(
                source,
                self.options.split_type,
                max_bytes=self.max_bytes,
                max_records=self.max_records,
            ):
                yield index, batch

    def answers(
        self, sources: Sequence[Path], setups: Sequence[FileSetup]
    ) -> Generator[Answered, None, None]:
        """Every batch of ``sources`` answered, in order: by ``concurrency`` threads, reading at most
        ``2 × concurrency`` batches ahead of the writer. Closing the iterator cancels what is left."""
        concurrency = self.options.concurrency
        executor = ThreadPoolExecutor(concurrency, thread_name_prefix="tfio-transform")
        pending: deque[tuple[int, Batch, Future[Results]]] = deque()
        try:
            for index, batch in self.batches(sources):
                future = executor.submit(self.answerer.answer, batch, setups[index])
                pending.append((index, batch, future))
                del batch, future  # held by ``pending`` only, and let go once answered
                while len(pending) > 2 * concurrency:
                    yield _done(pending.popleft())
            while pending:
                yield _done(pending.popleft())
        finally:
            for _, _, future in pending:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)

    def _write_file(
        self,
        index: int,
        result: FileResult,
        upcoming: Answered | None,
        answered: Iterator[Answered],
    ) -> Answered | None:
        """Write file ``index``'s answers (the first is ``upcoming``); the next file's first answer."""
        out_path = result.output
        partial = out_path.with_name(out_path.name + ".partial")
        err_path = out_path.with_name(out_path.name[: -len(".out")] + ".err.jsonl")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        err_path.unlink(missing_ok=True)
        with partial.open("wb") as out, _LazyFile(err_path) as err:
            while upcoming is not None and upcoming.file == index:
                self._write(upcoming, out, err, result)
                upcoming = None  # not held while the next batch is read
                upcoming = next(answered, None)
        partial.replace(out_path)
        log.info(
            "%s: %d records, %d errors -> %s",
            result.source,
            result.records,
            result.errors,
            out_path,
        )
        return upcoming

    def _write(
        self, answered: Answered, out: IO[bytes], err: _LazyFile, result: FileResult
    ) -> None:
        chunks: list[bytes] = []
        errors = 0
        for position, outcome in answered.results:
            if isinstance(outcome, Failure):
                errors += 1
                err.write(
                    json.dumps(
                        {
                            "line": answered.first + position,
                            "status": outcome.status,
                            "message": outcome.message,
                        },
                        ensure_ascii=False,
                    ).encode("utf-8")
                    + b"\n"
                )
                if self.line_mode:
                    chunks.append(outcome.body + b"\n")
            else:
                chunks.append(outcome)
        out.write(b"".join(chunks))
        result.records += answered.records
        result.errors += errors
        self.errors += errors
        self.progress.advance(answered.records, answered.nbytes, errors)
        if 0 <= self.options.max_errors < self.errors:
            log.error(
                "%s: %d records failed, over --max-errors %d: stopping (see %s)",
                result.source,
                self.errors,
                self.options.max_errors,
                err.path,
            )
            raise _TooManyErrors


def _done(work: tuple[int, Batch, Future[Results]]) -> Answered:
    index, batch, future = work
    return Answered.of(index, batch, future.result())


class _LazyFile:
    """A file opened on the first write (``.err.jsonl`` exists only when a record failed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self.stream is None:
            self.stream = self.path.open("wb")
        self.stream.write(data)

    def __enter__(self) -> _LazyFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.stream is not None:
            self.stream.close()
