"""``tfio-handlers transform``: SageMaker Batch Transform on one machine.

Input files are split into records (``SplitType``), the records sent in bodies (``BatchStrategy``,
``MaxPayloadInMB``) through the same :class:`~tfio_handlers.pipeline.Pipeline` as online requests, and
the answers written to ``<input name>.out``, one line per input line (``AssembleWith=Line``), with
SageMaker's ``DataProcessing`` (input and output filters, join with the input). See ``docs/transform.md``.

Modules, one concept each: :mod:`.options` (the settings under SageMaker's names), :mod:`.records`
(files into records, records into bodies), :mod:`.answers` (answers back into one output per record),
:mod:`.jsonpath` and :mod:`.join` (the filters and the join), :mod:`.progress` (the bar or log line),
:mod:`.job` (the runner: concurrency, bisection, errors, resume). Nothing here imports TensorFlow or tqdm
at import time.
"""

from __future__ import annotations

from .job import Answered, FileResult, JobResult, TransformJob, find_inputs
from .options import TransformOptions
from .progress import make_progress

__all__ = [
    "Answered",
    "FileResult",
    "JobResult",
    "TransformJob",
    "TransformOptions",
    "find_inputs",
    "make_progress",
]
