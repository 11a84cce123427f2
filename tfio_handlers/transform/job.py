"""The transform job: every input file's records through the pipeline, into ``<name>.out``.

For each input file (a directory stands for the files under it, hidden ones left out), batches of records
(:mod:`.records`) are handed to ``concurrency`` threads, each of which sends them through
:meth:`Pipeline.invoke <tfio_handlers.pipeline.Pipeline.invoke>` with the job's ``Content-Type`` and
``Accept``, exactly as an HTTP client's request would go (same codecs, same user ``input_fn`` and
``output_fn``). The main thread writes the answers in input order.

- **MultiRecord** bodies hold a batch's records; the answer is split back into one output per record
  (:mod:`.answers`). A body that fails is **bisected**: each half is sent again, down to single records,
  so the records at fault are found and every other record is answered. An answer that cannot be split
  per record sends that body's records one at a time, and the rest of the job does the same (with a
  warning saying why). When MultiRecord bodies keep failing while each of their records succeeds alone
  (user code that reads only single records, say), the job switches to single records too.
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
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from ..errors import InternalError, error_body
from .answers import one_line, split_answer
from .join import DataProcessing
from .options import TransformOptions
from .progress import NoProgress, Progress
from .records import Batch, BodyFormat, Unreadable, read_batches

if TYPE_CHECKING:
    from ..pipeline import Pipeline, Response

__all__ = ["FileResult", "JobResult", "TransformJob", "find_inputs"]

log = logging.getLogger("tfio_handlers.transform")

FRUITLESS_LIMIT = 3
"""Failed MultiRecord bodies in a row whose records all succeed alone before the job sends single records."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A record that was not answered."""

    status: int
    message: str
    body: bytes
    """Its line in ``.out`` (without the line end): the error body."""


Outcome: TypeAlias = "bytes | Failure"
Results: TypeAlias = "list[tuple[int, Outcome]]"
"""``(position in the batch, output)``, in position order."""


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


@dataclass(frozen=True)
class _FileSetup:
    """What every batch of one file is sent with."""

    body_format: BodyFormat
    accept: str
    processing: DataProcessing | None
    custom_attributes: str | None


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
        options.check()
        self.pipeline = pipeline
        self.options = options
        self.progress: Progress = progress or NoProgress()
        server_limit = pipeline.settings.limits.max_body_bytes
        self.max_bytes = min(options.max_bytes or server_limit, server_limit)
        self.max_records = options.max_records or 2**62
        self.single = options.batch_strategy == "SingleRecord" or options.split_type == "None"
        self.line_mode = options.assemble_with == "Line"
        self._fruitless = 0
        self._lock = threading.Lock()
        self.errors = 0

    # -- the job -----------------------------------------------------------------------------------

    def run(self, inputs: Sequence[Path], output_dir: Path) -> JobResult:
        """Transform every input into ``output_dir``; files whose ``.out`` exists are skipped."""
        started = time.monotonic()
        files = find_inputs(inputs, output_dir)
        self.options.check_files([f for f, _ in files], self.pipeline.settings.default_accept)
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
        executor = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="tfio-transform")
        try:
            for source, name in todo:
                file_result = FileResult(source, output_dir / (name + ".out"))
                result.files.append(file_result)
                self._run_file(file_result, executor)
        except _TooManyErrors:
            result.stopped = True
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            self.progress.close()
        result.seconds = time.monotonic() - started
        return result

    def _setup(self, source: Path) -> _FileSetup:
        content_type = self.options.content_type_for(source)
        accept = self.options.accept_for(content_type, self.pipeline.settings.default_accept)
        return _FileSetup(
            BodyFormat(self.options.split_type, content_type),
            accept,
            self.options.data_processing(content_type, accept),
            self.options.custom_attributes,
        )

    def _run_file(self, result: FileResult, executor: ThreadPoolExecutor) -> None:
        setup = self._setup(result.source)
        out_path = result.output
        partial = out_path.with_name(out_path.name + ".partial")
        err_path = out_path.with_name(out_path.name[: -len(".out")] + ".err.jsonl")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        err_path.unlink(missing_ok=True)
        window = 2 * self.options.concurrency
        pending: deque[tuple[Batch, Future[Results]]] = deque()
        batches = read_batches(
            result.source,
            self.options.split_type,
            max_bytes=self.max_bytes,
            max_records=self.max_records,
        )
        with partial.open("wb") as out, _LazyFile(err_path) as err:
            try:
                for batch in batches:
                    pending.append((batch, executor.submit(self._process, batch, setup)))
                    while len(pending) > window:
                        self._write(*pending.popleft(), out, err, result)
                while pending:
                    self._write(*pending.popleft(), out, err, result)
            except BaseException:
                for _, future in pending:
                    future.cancel()
                raise
        partial.replace(out_path)
        log.info(
            "%s: %d records, %d errors -> %s",
            result.source,
            result.records,
            result.errors,
            out_path,
        )

    def _write(
        self,
        batch: Batch,
        future: Future[Results],
        out: IO[bytes],
        err: _LazyFile,
        result: FileResult,
    ) -> None:
        results = future.result()
        chunks: list[bytes] = []
        errors = 0
        for position, outcome in results:
            if isinstance(outcome, Failure):
                errors += 1
                err.write(
                    json.dumps(
                        {
                            "line": batch.first + position,
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
        records = batch.records
        result.records += records
        result.errors += errors
        self.errors += errors
        self.progress.advance(records, batch.nbytes, errors)
        if 0 <= self.options.max_errors < self.errors:
            log.error(
                "%s: %d records failed, over --max-errors %d: stopping (see %s)",
                result.source,
                self.errors,
                self.options.max_errors,
                err.path,
            )
            raise _TooManyErrors

    # -- one batch (in a worker thread) ---------------------------------------------------------------

    def _process(self, batch: Batch, setup: _FileSetup) -> Results:
        results: Results = []
        todo: list[tuple[int, bytes, bytes]] = []
        processing = setup.processing
        for position, item in enumerate(batch.items):
            if item is None:
                if self.line_mode:
                    results.append((position, b"\n"))
            elif isinstance(item, Unreadable):
                results.append((position, _failure(item.status, item.message)))
            elif processing is not None and processing.filters_input:
                try:
                    todo.append((position, item, processing.filter_input(item)))
                except ValueError as exc:
                    results.append((position, _failure(400, f"--input-filter: {exc}")))
            else:
                todo.append((position, item, item))
        if todo:
            if self.single:
                for one in todo:
                    results.extend(self._send([one], setup))
            else:
                results.extend(self._send(todo, setup))
        results.sort(key=lambda pair: pair[0])
        return results

    def _send(self, items: list[tuple[int, bytes, bytes]], setup: _FileSetup) -> Results:
        """Answer ``items`` (position, record, payload) with one body; bisect it when it fails."""
        if len(items) == 1:
            position, record, payload = items[0]
            body, content_type = setup.body_format.single(payload)
            response = self._invoke(body, content_type, setup)
            if response.status != 200:
                return [(position, _failure_of(response))]
            return [(position, self._finish(record, response.body, _type_of(response), setup))]
        body, content_type = setup.body_format.multi([payload for _, _, payload in items])
        response = self._invoke(body, content_type, setup)
        if response.status == 200:
            if not self.line_mode:
                return [(items[0][0], response.body)]
            answer_type = _type_of(response)
            parts = split_answer(response.body, answer_type, len(items))
            if parts is not None:
                self._fruitless = 0
                return [
                    (position, self._finish(record, part, answer_type, setup))
                    for (position, record, _), part in zip(items, parts, strict=True)
                ]
            self._unsplittable(answer_type, len(items))
            return [pair for item in items for pair in self._send([item], setup)]
        middle = len(items) // 2
        results = self._send(items[:middle], setup) + self._send(items[middle:], setup)
        if not any(isinstance(outcome, Failure) for _, outcome in results):
            self._fruitless_bisection(response)
        return results

    def _invoke(self, body: bytes, content_type: str, setup: _FileSetup) -> Response:
        headers = {"content-type": content_type, "accept": setup.accept}
        if setup.custom_attributes:
            headers["x-amzn-sagemaker-custom-attributes"] = setup.custom_attributes
        return self.pipeline.invoke(body, headers)

    def _finish(self, record: bytes, output: bytes, answer_type: str, setup: _FileSetup) -> Outcome:
        """A record's output as written: one line (joined and filtered) with ``Line``, else as is."""
        if not self.line_mode:
            return output
        if self.options.split_type == "None":  # the whole file's answer: written whole
            return output if output.endswith(b"\n") else output + b"\n"
        try:
            line = one_line(output, answer_type)
        except ValueError as exc:
            return _failure(500, str(exc))
        if setup.processing is not None and setup.processing.changes_output:
            try:
                line = setup.processing.output(record, line)
            except ValueError as exc:
                return _failure(400, f"--output-filter: {exc}")
        return line + b"\n"

    def _unsplittable(self, answer_type: str, records: int) -> None:
        with self._lock:
            if self.single:
                return
            self.single = True
        log.warning(
            "An answer of type %s to a body of %d records cannot be split into one output per "
            "record: sending one record per body from now on (answers of type "
            "application/jsonlines or text/csv can be split: see --accept)",
            answer_type,
            records,
        )

    def _fruitless_bisection(self, response: Response) -> None:
        with self._lock:
            self._fruitless += 1
            if self._fruitless < FRUITLESS_LIMIT or self.single:
                return
            self.single = True
        log.warning(
            "%d MultiRecord bodies in a row failed (%d: %s) while each of their records "
            "succeeded alone: sending one record per body from now on "
            "(--batch-strategy SingleRecord)",
            FRUITLESS_LIMIT,
            response.status,
            _message_of(response.body)[:200],
        )


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


def _type_of(response: Response) -> str:
    for name, value in response.headers:
        if name.lower() == "content-type":
            return value
    return "application/octet-stream"


def _message_of(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return body[:1000].decode("utf-8", "replace")
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return str(document["error"])
    return body[:1000].decode("utf-8", "replace")


def _failure_of(response: Response) -> Failure:
    body = response.body.replace(b"\r", b" ").replace(b"\n", b" ").strip()
    return Failure(response.status, _message_of(response.body), body or error_body("error"))


def _failure(status: int, message: str) -> Failure:
    return Failure(status, message, error_body(message))
