"""A batch of records answered through the pipeline: bodies, bisection, one output per record.

:class:`BatchAnswerer` is the part of the job that needs the model: it turns a :class:`~.records.Batch`
into :data:`Results` (each record's output line, or its :class:`Failure`). The local job runs it in
threads; ``tfio-handlers transform --ray`` runs one in each Ray Data actor. Everything here is plain
data that pickles, so a batch and its results can cross to another process unchanged, and the job
writes the same bytes wherever a batch was answered.

- **MultiRecord** bodies hold a batch's records; the answer is split back into one output per record
  (:mod:`.answers`). A body that fails is **bisected**: each half is sent again, down to single records,
  so the records at fault are found and every other record is answered. A body answered 503 (busy,
  unavailable) is sent again after its ``Retry-After`` (``invocations_max_retries`` times); still
  refused, its records fail with that answer, unbisected: a 503 is no record's fault. An answer that
  cannot be split per record sends that body's records one at a time, and the answerer does the same
  from then on (with a warning saying why). When MultiRecord bodies keep failing while each of their
  records succeeds alone (user code that reads only single records, say), it switches to single
  records too.
  Either switch changes which bodies are sent, never what a record's output is.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ..errors import error_body
from .answers import one_line, split_answer
from .join import DataProcessing
from .options import TransformOptions
from .records import Batch, BodyFormat, Unreadable

if TYPE_CHECKING:
    from ..pipeline import Pipeline, Response

__all__ = [
    "FRUITLESS_LIMIT",
    "MAX_RETRY_DELAY",
    "BatchAnswerer",
    "Failure",
    "FileSetup",
    "Outcome",
    "Results",
    "retry_delay",
]

log = logging.getLogger("tfio_handlers.transform")

FRUITLESS_LIMIT = 3
"""Failed MultiRecord bodies in a row whose records all succeed alone before single records are sent."""


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


@dataclass(frozen=True)
class FileSetup:
    """What every batch of one file is sent with."""

    body_format: BodyFormat
    accept: str
    processing: DataProcessing | None
    custom_attributes: str | None


class BatchAnswerer:
    """Answers batches through one pipeline; thread-safe (the local job shares one among threads)."""

    def __init__(self, pipeline: Pipeline, options: TransformOptions) -> None:
        self.pipeline = pipeline
        self.options = options
        self.single = options.batch_strategy == "SingleRecord" or options.split_type == "None"
        self.line_mode = options.assemble_with == "Line"
        self._fruitless = 0
        self._lock = threading.Lock()

    def answer(self, batch: Batch, setup: FileSetup) -> Results:
        """Every item of ``batch``: a record's output, a :class:`Failure`, or a blank line's blank line."""
        results: Results = []
        todo: list[tuple[int, bytes, bytes]] = []
        processing = setup.processing
        for position, item in enumerate(batch.items):
            if item is None:
                if self.line_mode:
                    results.append((position, b"\n"))
            elif isinstance(item, Unreadable):
                results.append((position, failure(item.status, item.message)))
            elif processing is not None and processing.filters_input:
                try:
                    todo.append((position, item, processing.filter_input(item)))
                except ValueError as exc:
                    results.append((position, failure(400, f"--input-filter: {exc}")))
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

    def _send(self, items: list[tuple[int, bytes, bytes]], setup: FileSetup) -> Results:
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
        if response.status == 503:  # busy or unavailable after the retries: no record's fault
            refused = _failure_of(response)
            return [(position, refused) for position, _, _ in items]
        middle = len(items) // 2
        results = self._send(items[:middle], setup) + self._send(items[middle:], setup)
        if not any(isinstance(outcome, Failure) for _, outcome in results):
            self._fruitless_bisection(response)
        return results

    def _invoke(self, body: bytes, content_type: str, setup: FileSetup) -> Response:
        """One body's answer; a 503 (the server busy, or its backend unavailable: it says it may
        answer later) is sent again after its ``Retry-After``, up to ``invocations_max_retries``
        times, as SageMaker's batch transform retries its invocations."""
        headers = {"content-type": content_type, "accept": setup.accept}
        if setup.custom_attributes:
            headers["x-amzn-sagemaker-custom-attributes"] = setup.custom_attributes
        response = self.pipeline.invoke(body, headers)
        for _ in range(self.options.invocations_max_retries):
            if response.status != 503:
                break
            time.sleep(retry_delay(response))
            response = self.pipeline.invoke(body, headers)
        return response

    def _finish(self, record: bytes, output: bytes, answer_type: str, setup: FileSetup) -> Outcome:
        """A record's output as written: one line (joined and filtered) with ``Line``, else as is."""
        if not self.line_mode:
            return output
        if self.options.split_type == "None":  # the whole file's answer: written whole
            return output if output.endswith(b"\n") else output + b"\n"
        try:
            line = one_line(output, answer_type)
        except ValueError as exc:
            return failure(500, str(exc))
        if setup.processing is not None and setup.processing.changes_output:
            try:
                line = setup.processing.output(record, line)
            except ValueError as exc:
                return failure(400, f"--output-filter: {exc}")
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


MAX_RETRY_DELAY = 10.0
"""The longest wait before a retry, whatever ``Retry-After`` asks."""


def retry_delay(response: Response) -> float:
    """Seconds to wait before sending again what ``response`` refused: its ``Retry-After`` in
    seconds (at most :data:`MAX_RETRY_DELAY`), else 1."""
    for name, value in response.headers:
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:  # an HTTP date: not worth parsing for a local retry
                break
            if seconds == seconds:  # not NaN
                return min(max(seconds, 0.0), MAX_RETRY_DELAY)
            break
    return 1.0


def failure(status: int, message: str) -> Failure:
    """A record's failure with its error body, as HTTP would answer it."""
    return Failure(status, message, error_body(message))


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
