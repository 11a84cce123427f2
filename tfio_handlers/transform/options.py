"""The settings of a transform job, under SageMaker Batch Transform's names, checked before it starts.

==========================  ======================================  =========================================
option                      SageMaker                               default here (SageMaker's)
==========================  ======================================  =========================================
``content_type``            ``TransformInput.ContentType``          from the file's extension, else JSON
``accept``                  ``TransformOutput.Accept``              the content type for CSV and JSON lines,
                                                                    else the server's default Accept
``split_type``              ``TransformInput.SplitType``            ``Line`` (``None``)
``batch_strategy``          ``BatchStrategy``                       ``MultiRecord``
``max_payload_mb``          ``MaxPayloadInMB``                      6 (6); 0: only the server's body limit
``max_records``             (none)                                  1000 records a body; 0: no limit
``assemble_with``           ``TransformOutput.AssembleWith``        ``Line`` (``None``)
``join_source``             ``DataProcessing.JoinSource``           ``None``
``input_filter``            ``DataProcessing.InputFilter``          ``$``
``output_filter``           ``DataProcessing.OutputFilter``         ``$``
``max_errors``              (none: a failed request fails the job)  0; -1: no limit
``concurrency``             ``MaxConcurrentTransforms``             1 (1)
``invocations_max_retries`` ``ModelClientConfig.                    3 (3): a body answered 503 (busy or
                            InvocationsMaxRetries``                 unavailable) is sent again after its
                                                                    ``Retry-After``, at most this often
==========================  ======================================  =========================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InternalError
from .answers import is_csv, is_json, is_json_lines
from .join import DataProcessing, RecordKind
from .jsonpath import JSONPathError
from .records import SplitType

__all__ = [
    "EXTENSION_TYPES",
    "AssembleWith",
    "BatchStrategy",
    "JoinSource",
    "TransformOptions",
]

BatchStrategy = Literal["SingleRecord", "MultiRecord"]
AssembleWith = Literal["Line", "None"]
JoinSource = Literal["Input", "None"]

MIB = 1024 * 1024

EXTENSION_TYPES = {
    ".csv": "text/csv",
    ".jsonl": "application/jsonlines",
    ".jsonlines": "application/jsonlines",
    ".ndjson": "application/jsonlines",
    ".json": "application/json",
    ".npy": "application/x-npy",
    ".npz": "application/x-npz",
}
"""``--content-type`` when it is not given, by the input file's extension."""


@dataclass(frozen=True)
class TransformOptions:
    """One job's settings (see the module docstring for the SageMaker names and defaults)."""

    content_type: str | None = None
    accept: str | None = None
    split_type: SplitType = "Line"
    batch_strategy: BatchStrategy = "MultiRecord"
    max_payload_mb: float = 6
    max_records: int = 1000
    assemble_with: AssembleWith = "Line"
    join_source: JoinSource = "None"
    input_filter: str | None = None
    output_filter: str | None = None
    max_errors: int = 0
    concurrency: int = 1
    invocations_max_retries: int = 3
    custom_attributes: str | None = None
    """``X-Amzn-SageMaker-Custom-Attributes`` for every body (``tfs-signature=predict``...)."""

    def check(self) -> None:
        """Refuse settings that cannot work together, with a message naming the options."""
        if self.split_type not in ("Line", "RecordIO", "None"):
            raise InternalError(
                f"--split-type must be Line, RecordIO or None, not {self.split_type!r}"
            )
        if self.batch_strategy not in ("SingleRecord", "MultiRecord"):
            raise InternalError("--batch-strategy must be SingleRecord or MultiRecord")
        if self.assemble_with not in ("Line", "None"):
            raise InternalError("--assemble-with must be Line or None")
        if self.join_source not in ("Input", "None"):
            raise InternalError("--join-source must be Input or None")
        if self.max_payload_mb < 0 or self.max_records < 0 or self.concurrency < 1:
            raise InternalError(
                "--max-payload-mb and --max-records must be 0 or more, --concurrency 1 or more"
            )
        if self.max_errors < -1:
            raise InternalError("--max-errors must be -1 (no limit) or more")
        if self.invocations_max_retries < 0:
            raise InternalError("--invocations-max-retries must be 0 or more")
        if self.content_type and "header=present" in self.content_type.replace(" ", "").lower():
            raise InternalError(
                "--content-type with header=present is not supported: records are sent in bodies "
                "of their own, without the file's header row"
            )
        if self.processes_data:
            if self.split_type != "Line":
                raise InternalError(
                    "--input-filter, --output-filter and --join-source need --split-type Line"
                )
            if self.changes_output and self.assemble_with != "Line":
                raise InternalError("--output-filter and --join-source need --assemble-with Line")
            try:
                self.data_processing(self.content_type or "application/json", self.accept)
            except (JSONPathError, InternalError) as exc:
                raise InternalError(str(exc)) from None

    def check_files(self, paths: Sequence[Path], default_accept: str) -> None:
        """Refuse filters or a join that cannot apply to some input's content type and Accept."""
        for path in paths:
            content_type = self.content_type_for(path)
            try:
                self.data_processing(content_type, self.accept_for(content_type, default_accept))
            except InternalError as exc:
                raise InternalError(f"{path}: {exc.message}") from None

    @property
    def processes_data(self) -> bool:
        return bool(
            self.join_source == "Input"
            or _non_root(self.input_filter)
            or _non_root(self.output_filter)
        )

    @property
    def changes_output(self) -> bool:
        return self.join_source == "Input" or _non_root(self.output_filter)

    @property
    def max_bytes(self) -> int:
        """The payload limit in bytes (``MaxPayloadInMB`` counts MiB); 0 for none."""
        return int(self.max_payload_mb * MIB)

    def content_type_for(self, path: Path) -> str:
        if self.content_type:
            return self.content_type
        return EXTENSION_TYPES.get(path.suffix.lower(), "application/json")

    def accept_for(self, content_type: str, default_accept: str) -> str:
        if self.accept:
            return self.accept
        if is_csv(content_type) or is_json_lines(content_type):
            return content_type
        return default_accept

    def data_processing(self, content_type: str, accept: str | None) -> DataProcessing | None:
        """The filters and join for files of ``content_type`` answered as ``accept``; ``None`` when the
        job has none."""
        if not self.processes_data:
            return None
        kind = _kind(content_type)
        if kind is None:
            raise InternalError(
                f"--input-filter, --output-filter and --join-source work on JSON and CSV records; "
                f"the content type is {content_type!r}"
            )
        if self.changes_output and accept is not None:
            answer_kind = _kind(accept)
            if answer_kind != kind:
                raise InternalError(
                    f"--join-source and --output-filter join {kind.upper()} records with answers of "
                    f"the same kind; --accept is {accept!r} (use "
                    f"{'text/csv' if kind == 'csv' else 'application/jsonlines'})"
                )
        return DataProcessing(
            kind,
            input_filter=self.input_filter,
            output_filter=self.output_filter,
            join_input=self.join_source == "Input",
        )


def _non_root(path: str | None) -> bool:
    return path is not None and path.strip() != "$"


def _kind(content_type: str) -> RecordKind | None:
    if is_csv(content_type):
        return "csv"
    if is_json(content_type) or is_json_lines(content_type):
        return "json"
    return None
