"""The JSON lines codec (``application/jsonlines`` and its aliases): one record per line, both ways.

Decoding: every non-blank line is one JSON value and one instance. Blank (or whitespace-only) lines are
skipped, so a trailing newline or a blank line between records is harmless. A line that is not JSON is
a 400 naming its line number (counting every line, blank ones too, from 1).

* predict: a JSON list, number, string or ``{"b64": ...}`` is one instance of the signature's single
  input; a JSON object names the inputs (``{"x": [1, 2], "y": 3}``). All lines must have the same
  form and the same keys; the instances of an input are stacked into a batch, and must have one shape.
* classify/regress: a JSON object is one example, its members the features (a scalar is a feature of
  one value); a list or a scalar is the feature ``inputs``, as the legacy container did.

Values are typed by the signature (TF Serving's JSON rules: integer inputs take integer literals only,
bool inputs ``true``/``false`` only, string inputs JSON strings or ``{"b64": ...}``); with no signature
numbers become float32. ``NaN``, ``Infinity`` and ``-Infinity`` tokens are read, as TF Serving reads
them.

Encoding writes one result per line, in batch order and ending with a newline, so that a SageMaker
batch transform's output lines up with its input; see :func:`encode_jsonlines`. orjson is used when
installed (the ``fast`` extra), the standard library otherwise; the output is the same bytes.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import accelerators
from ..context import Context
from ..errors import BadRequest, HTTPError, PayloadTooLarge, Unimplemented
from ..hookspecs import Register, hookimpl
from ..media import MediaType, text_of
from ..protocol._json_compact import NULLS, TOKENS, write
from ..protocol.answer_size import check_response, nested_text_bytes
from ..protocol.requests import choose_method
from ._request import (
    InputSpec,
    array_from_json,
    check_string,
    input_specs,
    stack_instances,
    unwrap_b64,
)
from ._response import (
    batch_size,
    classification_rows,
    predict_outputs,
    regression_values,
    response_kind,
)

__all__ = ["ALIASES", "MEDIA_TYPE", "decode_jsonlines", "encode_jsonlines", "register_codecs"]

MEDIA_TYPE = "application/jsonlines"
ALIASES = (
    "application/jsons",
    "application/x-jsonlines",
    "application/jsonl",
    "application/x-ndjson",
)

Array = NDArray[Any]


@hookimpl
def register_codecs(register: Register) -> None:
    """Declare ``application/jsonlines`` and its aliases (text types)."""
    register(
        MEDIA_TYPE,
        decode=decode_jsonlines,
        encode=encode_jsonlines,
        aliases=list(ALIASES),
        text=True,
    )


# -- reading ---------------------------------------------------------------------------------------


_INT_MIN = -(2**63)
_UINT_MAX = 2**64 - 1


def _json_int(text: str) -> int | float:
    """An integer literal as orjson reads it: an ``int`` within int64/uint64, a float beyond;
    beyond float64 too (about 309 digits) it is a 400, as in a JSON body (``Number too big``)."""
    if len(text) > 400:  # int() of thousands of digits is slow, and over 4300 a ValueError
        raise ValueError(f"Number too big: an integer of {len(text)} digits")
    value = int(text)
    return value if _INT_MIN <= value <= _UINT_MAX else _json_float(text)


def _json_float(text: str) -> float:
    """A number literal as a float; one beyond float64's range is a 400 (``1e999``), never
    infinity: only the ``Infinity`` token is infinite."""
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"Number too big to be stored in double: {text[:40]}")
    return value


def _stdlib_loads(line: bytes) -> Any:
    """The standard library's reader, reading numbers as orjson does (and ``NaN``/``Infinity``
    tokens, which orjson refuses), so that a line means the same with or without orjson."""
    return json.loads(line, parse_int=_json_int, parse_float=_json_float)


def _json_loader() -> Callable[[bytes], Any]:
    """orjson when installed (falling back to the standard library for ``NaN`` tokens and numbers
    orjson refuses), else the standard library."""
    orjson = accelerators.orjson()
    if orjson is None:
        return _stdlib_loads
    fast = orjson.loads
    error = orjson.JSONDecodeError

    def loads(line: bytes) -> Any:
        try:
            return fast(line)
        except error:
            return _stdlib_loads(line)

    return loads


_LOADS: list[Callable[[bytes], Any]] = []


def _loads() -> Callable[[bytes], Any]:
    if not _LOADS:
        _LOADS.append(_json_loader())
    return _LOADS[0]


def _records(body: bytes, media_type: MediaType) -> list[tuple[int, Any]]:
    charset = media_type.charset
    if charset in (None, "utf-8", "utf8"):
        data = body[3:] if body.startswith(b"\xef\xbb\xbf") else body
    else:
        data = text_of(body, media_type).encode("utf-8", "surrogatepass")
    loads = _loads()
    records: list[tuple[int, Any]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            value = loads(line)
        except RecursionError:
            raise BadRequest(f"JSON lines: line {number} is nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise BadRequest(
                f"JSON lines: line {number}, column {exc.colno}: not valid JSON: {exc.msg}"
            ) from None
        except ValueError as exc:
            raise BadRequest(f"JSON lines: line {number} is not valid JSON: {exc}") from None
        records.append((number, value))
    if not records:
        raise BadRequest("The JSON lines body holds no records")
    return records


def _is_named(value: Any) -> bool:
    """A JSON object that names inputs or features (a ``{"b64": ...}`` object is a value)."""
    return isinstance(value, dict) and not (len(value) == 1 and "b64" in value)


def decode_jsonlines(body: bytes, media_type: MediaType, context: Context) -> Any:
    """Decode JSON lines into an array (one input), a dict of arrays, or a list of feature dicts."""
    context.limits.check_body(len(body))
    classify = choose_method(context) != "predict"
    if classify and body.count(b"\n") >= context.limits.max_examples:
        # Count the records before parsing them: a million "[]" lines parse to a million values.
        count = sum(1 for line in body.split(b"\n") if line.strip())
        context.limits.check_examples(count, "JSON lines body")
    records = _records(body, media_type)
    if classify:
        context.limits.check_examples(len(records), "JSON lines body")
        return _examples(records, context)
    return _instances(records, input_specs(context), context)


def _instances(
    records: list[tuple[int, Any]], specs: dict[str, InputSpec], context: Context
) -> Any:
    first_line, first = records[0]
    named = _is_named(first)
    for number, value in records:
        if _is_named(value) != named:
            expected = "an object naming the inputs" if named else "an instance (not an object)"
            raise BadRequest(
                f"JSON lines: line {number}: expected {expected}, as on line {first_line}"
            )
    if not named:
        if len(specs) > 1:
            raise BadRequest(
                f"JSON lines: line {first_line} is one instance of a single input, but the "
                f"signature has inputs {', '.join(specs)}: write each line as an object naming them"
            )
        spec = next(iter(specs.values())) if specs else None
        name = spec.name if spec is not None else "inputs"
        return _stack([(n, v) for n, v in records], spec, name, context)
    keys = set(first)
    for number, value in records:
        if set(value) != keys:
            raise BadRequest(
                f"JSON lines: line {number}: the object's keys must be equal to: "
                f"{','.join(sorted(keys))} (as on line {first_line})"
            )
    if specs:
        for key in sorted(keys):
            if key not in specs:
                raise BadRequest(
                    f"JSON lines: line {first_line}: JSON object: does not have named input: {key}"
                )
        missing = [name for name in specs if name not in keys]
        if missing:
            raise BadRequest(
                f"JSON lines: line {first_line}: missing input {missing[0]!r} (inputs: "
                f"{', '.join(specs)})"
            )
    return {
        key: _stack([(n, v[key]) for n, v in records], specs.get(key), key, context)
        for key in sorted(keys)
    }


def _stack(
    items: list[tuple[int, Any]], spec: InputSpec | None, name: str, context: Context
) -> Array:
    """One input's instances as a batch: all at once when that works, else line by line (errors)."""
    limits = context.limits
    values = [value for _, value in items]
    try:
        batch = array_from_json(values, spec, limits, f"input {name!r}")
        if batch.ndim >= 1 and batch.shape[0] == len(values):
            return batch
    except PayloadTooLarge:
        raise
    except HTTPError:
        pass
    arrays: list[Array] = []
    wheres: list[str] = []
    total = 0
    for number, value in items:
        where = f"JSON lines: line {number}"
        array = array_from_json(value, spec, limits, where)
        total += array.size
        limits.check_elements(total, "JSON lines body")
        arrays.append(array)
        wheres.append(where)
    return stack_instances(arrays, wheres, name)


def _feature(value: Any, name: str, context: Context, where: str) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogatepass")
            check_string(data, context.limits, where)
            out.append(data)
        elif isinstance(item, dict) and len(item) == 1 and "b64" in item:
            out.append(unwrap_b64(item, context.limits, where))
        elif isinstance(item, (bool, int, float)):
            out.append(item)
        else:
            kind = "Null" if item is None else "Array" if isinstance(item, list) else "Object"
            raise BadRequest(
                f"{where}: Feature: {name} has element with unexpected JSON type: {kind}"
            )
    return out


def _examples(records: list[tuple[int, Any]], context: Context) -> list[dict[str, list[Any]]]:
    examples: list[dict[str, list[Any]]] = []
    total = 0
    for number, value in records:
        where = f"JSON lines: line {number}"
        if _is_named(value):
            example = {
                str(key): _feature(item, str(key), context, where) for key, item in value.items()
            }
        else:
            example = {"inputs": _feature(value, "inputs", context, where)}
        total += sum(len(items) for items in example.values())
        context.limits.check_elements(total, "JSON lines body")
        examples.append(example)
    return examples


# -- writing ---------------------------------------------------------------------------------------


def _strings(array: Array, name: str) -> Any:
    """A string tensor as nested lists: text when UTF-8 (``{"b64": ...}`` when not, or when the
    output's name ends in ``_bytes``, TF Serving's rule)."""
    force = name.endswith("_bytes")

    def one(item: Any) -> Any:
        data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        if not force:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(data).decode("ascii")}

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        return one(value)

    return walk(array.tolist())


class _Writer:
    """Serializes one value per line: orjson when installed, else :func:`._json_compact.write`,
    which writes the same bytes (float32 values as their shortest float32 text)."""

    def __init__(self, strict: bool) -> None:
        self.non_finite = NULLS if strict else TOKENS
        self.standard = False
        """Set once some value holds non-finite floats that must be written as bare tokens, which
        orjson cannot do: from then on every line goes through :func:`._json_compact.write`."""
        self.orjson = accelerators.orjson()

    def prepare(self, array: Array, name: str) -> tuple[Array | None, Any]:
        """Either the numeric array itself, or nested lists (strings)."""
        kind = array.dtype.kind
        if kind in "OSU":
            return None, _strings(array, name)
        if kind == "c":
            raise Unimplemented(
                f"Output {name!r} is {array.dtype}, which JSON cannot carry; ask for "
                "application/x-npy"
            )
        if kind not in "biuf":
            if array.dtype.name == "bfloat16":
                array = array.astype(np.float32)
            else:
                raise Unimplemented(f"Output {name!r} is {array.dtype}, which JSON cannot carry")
        if array.size == 0 and array.ndim:
            # No values, only (empty) rows: nested lists in one C call, each line then a plain
            # ``[]`` (orjson does not take zero-sized arrays; a row at a time costs 25 µs).
            return None, array.tolist()
        if kind == "f" and self.non_finite is TOKENS and not np.isfinite(array).all():
            self.standard = True
        # (np.ascontiguousarray would make a scalar 1-d.)
        return (array if array.flags.c_contiguous else array.copy()), None

    def dumps(self, value: Any) -> bytes:
        if self.orjson is not None and not self.standard:
            try:
                data: bytes = self.orjson.dumps(value, option=self.orjson.OPT_SERIALIZE_NUMPY)
                return data
            except TypeError:
                pass
        return write(value, non_finite=self.non_finite)


def _item(prepared: tuple[Array | None, Any], index: int | None) -> Any:
    array, plain = prepared
    if index is None:
        return array[()] if array is not None else plain
    if array is not None:
        return array[index]
    return plain[index]


def _lines_cost(dims: Any, itemsize: int) -> int:
    """A record per line: nested lists, with line ends for the outer brackets and commas."""
    return max(nested_text_bytes(dims) - 2, 0)


def encode_jsonlines(response: Any, media_type: MediaType, context: Context) -> bytes:
    """One JSON value per line, in batch order, each line ending with ``\\n``.

    * predict, one output: the output's value for the instance (a scalar when the output is
      ``[N]``); several outputs: ``{"name": value, ...}``; outputs must share the batch dimension;
    * classify: the example's classes as ``[[label, score], ...]`` (TF Serving's form);
    * regress: the example's value.

    Non-finite floats are the bare tokens ``NaN``, ``Infinity`` and ``-Infinity`` as TF Serving writes
    them, or ``null`` when ``TFIO_HANDLERS_STRICT_JSON`` is set. String outputs are text, or
    ``{"b64": ...}`` when not UTF-8 or when the output's name ends in ``_bytes``.
    """
    kind = response_kind(response)
    check_response(response, context.limits, MEDIA_TYPE, _lines_cost)
    writer = _Writer(context.settings.strict_json)
    lines: list[bytes] = []
    if kind == "predict":
        outputs = predict_outputs(response)
        count = batch_size(outputs)
        scalar = all(array.ndim == 0 for array in outputs.values())
        prepared = {name: writer.prepare(array, name) for name, array in outputs.items()}
        for i in range(count):
            index = None if scalar else i
            if len(prepared) == 1:
                value: Any = _item(next(iter(prepared.values())), index)
            else:
                value = {name: _item(item, index) for name, item in prepared.items()}
            lines.append(writer.dumps(value))
    elif kind == "regress":
        array, plain = writer.prepare(regression_values(response), "outputs")
        for i in range(len(array) if array is not None else len(plain)):
            lines.append(writer.dumps(array[i] if array is not None else plain[i]))
    else:
        for example in classification_rows(response):
            scores = np.array([score for _, score in example], dtype=np.float32)
            array, plain = writer.prepare(scores, "scores")
            row = [
                [label, array[j] if array is not None else plain[j]]
                for j, (label, _) in enumerate(example)
            ]
            lines.append(writer.dumps(row))
    if not lines:
        return b""
    return b"\n".join(lines) + b"\n"
