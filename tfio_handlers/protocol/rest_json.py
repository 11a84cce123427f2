"""TF Serving's REST JSON ⇄ TF Serving requests and responses, exactly as TF Serving converts them.

This is ``tensorflow_serving/util/json_tensor.cc`` (and the signature lookup of
``http_rest_api_handler.cc``) in Python: the same accepted inputs, the same tensors, the same
error messages, and responses whose text matches TF Serving's byte for byte.

Requests:

* :func:`predict_request_from_json` — ``{"instances": ...}`` (row) or ``{"inputs": ...}``
  (columnar) → ``PredictRequest`` and the :class:`JsonFormat` the response must use;
* :func:`classify_request_from_json`, :func:`regress_request_from_json` — ``{"examples": [...],
  "context": {...}}`` → ``ClassificationRequest`` / ``RegressionRequest``.

Responses:

* :func:`predict_response_to_json` — outputs → ``{"predictions": ...}`` or ``{"outputs": ...}``;
* :func:`classification_result_to_json`, :func:`regression_result_to_json` → ``{"results": ...}``.

Every error is an :class:`~tfio_handlers.errors.HTTPError` carrying TF Serving's message text and
the status TF Serving answers with: :class:`BadRequest` (400) for its ``InvalidArgument``, and
:class:`Unimplemented` (501) for a columnar input of a dtype JSON cannot carry.

Bodies are parsed by :mod:`._json_parse` (a fast path, with RapidJSON's exact behaviour as the
fallback); the request tensors carry TF Serving's typed ``*_val`` fields, typed by the
signature's dtypes. Limits (:class:`~tfio_handlers.config.Limits`, default :data:`DEFAULT_LIMITS`)
are enforced before tensors are built: ``max_body_bytes`` (413), ``max_depth`` on the rank of each
tensor value (400), ``max_elements`` on each tensor (413) and ``max_string_bytes`` on each string
(413). Deliberate departures from TF Serving are listed in ``docs/formats/tfs-json.md``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import numpy as np
from google.protobuf.message import Message

from .. import accelerators
from ..config import Limits
from ..errors import BadRequest, HTTPError, PayloadTooLarge, Unimplemented
from ..protos import (
    DEFAULT_SIGNATURE,
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT8,
    DT_UINT32,
    DT_UINT64,
    ClassificationRequest,
    ClassificationResult,
    Example,
    ModelSpec,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResult,
    TensorProto,
    coerce,
)
from ..tensors import data_type_of, dtype_name, shape_of, to_ndarray
from . import _simd
from ._json_encode import indent, nested_text, row_item_texts, value_texts
from ._json_parse import MISSING, find_member, members, parse_body, to_bytes
from ._json_tensor import (
    INVALID_ARGUMENT,
    TfsStatus,
    Values,
    dense_shape,
    is_b64_object,
    is_object,
    tensor_bytes,
    tensor_values,
)
from ._rapidjson_writer import debug_string, escape_string
from .examples import example_from_json_object

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_SIGNATURE",
    "JsonFormat",
    "classification_result_to_json",
    "classify_request_from_json",
    "predict_request_from_json",
    "predict_response_to_json",
    "regress_request_from_json",
    "regression_result_to_json",
]

"""The signature a request that names none uses (``kDefaultServingSignatureDefKey``)."""

DEFAULT_LIMITS: Final = Limits()
"""The limits used when a call passes none: :class:`~tfio_handlers.config.Limits`' defaults
(100 MiB bodies, 2**27 elements a tensor, rank 64, 64 MiB a string)."""

Body = bytes | bytearray | memoryview | str


class JsonFormat(enum.Enum):
    """The JSON form of a predict request, which its response must use."""

    ROW = "row"
    """``{"instances": [...]}`` in, ``{"predictions": [...]}`` out."""
    COLUMNAR = "columnar"
    """``{"inputs": ...}`` in, ``{"outputs": ...}`` out."""


def _http_error(status: TfsStatus) -> HTTPError:
    if status.code == INVALID_ARGUMENT:
        return BadRequest(status.message)
    return Unimplemented(status.message)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _format_error(document: Any, text: str) -> BadRequest:
    """TF Serving's ``FormatError``: ``JSON Value: <doc> <text>``."""
    return BadRequest(f"JSON Value: {debug_string(document)} {text}")


def _parse(body: Body, limits: Limits) -> Any:
    """The parsed body (an object), with TF Serving's errors for the rest."""
    data = to_bytes(body)
    limits.check_body(len(data))
    document = parse_body(data)
    if not is_object(document):
        raise _format_error(document, "Is not object")
    return document


def _signature_name(document: Any, spec: Any) -> None:
    """``FillSignature``: the optional ``signature_name`` into ``spec``."""
    name = find_member(document, "signature_name")
    if name is MISSING:
        return
    if not isinstance(name, (str, bytes)):
        raise _format_error(
            document,
            "not formatted correctly. 'signature_name' key must be a string value.",
        )
    spec.signature_name = _text(name)


def _fill_spec(request: Any, model_spec: Any) -> None:
    if model_spec is not None:
        request.model_spec.CopyFrom(coerce(model_spec, ModelSpec))


M = TypeVar("M", bound=Message)


# --------------------------------------------------------------------------------------------
# Predict
# --------------------------------------------------------------------------------------------


def _input_dtypes(signatures: Mapping[str, Any] | Message, signature_name: str) -> dict[str, int]:
    """The signature's input dtypes by alias, with TF Serving's errors for a bad signature."""
    if isinstance(signatures, Message):
        signature: Any = signatures
    else:
        resolved = signature_name or DEFAULT_SIGNATURE
        signature = signatures.get(resolved)
        if signature is None:
            raise BadRequest(f'Serving signature name: "{resolved}" not found in signature def')
    dtypes = {name: int(info.dtype) for name, info in signature.inputs.items()}
    if not dtypes:
        raise BadRequest(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    return dtypes


def predict_request_from_json(
    body: Body,
    signatures: Mapping[str, Any] | Message,
    *,
    model_spec: Any = None,
    limits: Limits | None = None,
    fast: bool = True,
) -> tuple[PredictRequest, JsonFormat]:
    """A TF Serving predict body → ``(PredictRequest, JsonFormat)``, as TF Serving converts it.

    ``signatures`` maps signature names to ``SignatureDef`` messages (ours or TensorFlow's); the
    body's ``signature_name`` (else ``model_spec.signature_name``, else ``serving_default``)
    selects one, and a name it lacks is ``Serving signature name: "<name>" not found in signature
    def``. A single ``SignatureDef`` may be passed instead, to use it whatever the body names.
    Only the inputs' dtypes are used: shapes are not checked, as in TF Serving.

    ``model_spec`` (ours or TensorFlow's, e.g. from the URL) is copied into the request; the
    body's ``signature_name`` then replaces its signature name. The format says whether the
    body used ``instances`` (row: answer with ``predictions``) or ``inputs`` (columnar: answer
    with ``outputs``).

    A body of one numeric tensor for a single-input signature first goes to the simdjson fast path
    (:mod:`._simd`, when pysimdjson is installed), which answers only when it proves the result
    equals this function's exact path; ``fast=False`` runs the exact path alone.
    """
    limits = DEFAULT_LIMITS if limits is None else limits
    quick = _fast_predict(body, signatures, model_spec, limits) if fast else None
    if quick is not None:
        return quick
    document = _parse(body, limits)
    request = PredictRequest()
    _fill_spec(request, model_spec)
    _signature_name(document, request.model_spec)
    dtypes = _input_dtypes(signatures, request.model_spec.signature_name)
    instances = find_member(document, "instances")
    inputs = find_member(document, "inputs")
    if instances is not MISSING:
        if inputs is not MISSING:
            raise _format_error(
                document,
                "Not formatted correctly expecting only one of 'inputs' or 'instances' keys "
                "to exist ",
            )
        if type(instances) is not list:
            raise _format_error(document, "Expecting 'instances' to be an list/array")
        if not instances:
            raise _format_error(document, "No values in 'instances' array")
        tensors = _from_instances(instances, dtypes, limits)
        form = JsonFormat.ROW
    elif inputs is not MISSING:
        tensors = _from_inputs(inputs, dtypes, limits)
        form = JsonFormat.COLUMNAR
    else:
        raise BadRequest("Missing 'inputs' or 'instances' key")
    for name, data in tensors.items():
        request.inputs[name].MergeFromString(data)
    return request, form


def _fast_predict(
    body: Body, signatures: Mapping[str, Any] | Message, model_spec: Any, limits: Limits
) -> tuple[PredictRequest, JsonFormat] | None:
    """The simdjson fast path (:mod:`._simd`): a numeric single-input body, proved to give the
    exact path's tensor, becomes the very message the exact path builds (typed fields written
    as raw packed bytes) without one Python number built. ``None``: take the exact path."""
    spec_name = coerce(model_spec, ModelSpec).signature_name if model_spec is not None else None
    decoded = _simd.decode_predict(
        body, signatures, signature_name=spec_name or None, limits=limits
    )
    if decoded is None:
        return None
    request = PredictRequest()
    _fill_spec(request, model_spec)
    if decoded.signature_name is not None:
        request.model_spec.signature_name = decoded.signature_name
    array = decoded.array
    request.inputs[decoded.input_name].MergeFromString(
        tensor_bytes(data_type_of(array.dtype), list(array.shape), array.reshape(-1))
    )
    form = JsonFormat.ROW if decoded.form == "row" else JsonFormat.COLUMNAR
    return request, form


def _check_rank(dims: list[int], limits: Limits) -> None:
    if len(dims) > limits.max_depth:
        raise BadRequest(
            f"JSON value nests {len(dims)} lists deep, more than the limit of {limits.max_depth}"
        )


def _check_strings(values: Values, limits: Limits) -> None:
    if isinstance(values, list) and values:
        longest = max(map(len, values))
        if longest > limits.max_string_bytes:
            raise PayloadTooLarge(
                f"A string of {longest} bytes is over the limit of {limits.max_string_bytes}"
            )


def _convert(value: Any, dtype: int, limits: Limits, what: str) -> tuple[list[int], Values]:
    """One JSON value → its shape and values, limits checked before values are built."""
    dims = dense_shape(value)
    _check_rank(dims, limits)
    limits.check_elements(math.prod(dims), what)
    values = tensor_values(value, dims, dtype)
    _check_strings(values, limits)
    return dims, values


class _Instances:
    """The row format's per-input accumulation (``AddInstanceItem``)."""

    def __init__(self, dtypes: dict[str, int], limits: Limits) -> None:
        self.dtypes = dtypes
        self.limits = limits
        self.chunks: dict[str, list[Values]] = {}
        self.sizes: dict[str, int] = {}
        self.shapes: dict[str, list[int]] = {}

    def add(self, item: Any, name: str | bytes) -> None:
        if not isinstance(name, str) or name not in self.dtypes:
            raise TfsStatus(
                INVALID_ARGUMENT, f"JSON object: does not have named input: {_text(name)}"
            )
        dims, values = _convert(item, self.dtypes[name], self.limits, f"input '{name}'")
        size = len(values)
        chunks = self.chunks.setdefault(name, [])
        if name not in self.sizes:
            self.sizes[name] = size
            self.shapes[name] = dims
        elif self.sizes[name] != size:
            raise TfsStatus(
                INVALID_ARGUMENT, f"Expecting tensor size: {self.sizes[name]} but got: {size}"
            )
        elif self.shapes[name] != dims:
            raise TfsStatus(
                INVALID_ARGUMENT,
                f"Expecting shape {_shape_text(self.shapes[name])} but got: {_shape_text(dims)}",
            )
        chunks.append(values)
        self.limits.check_elements(size * len(chunks), f"input '{name}'")

    def tensors(self, count: int) -> dict[str, bytes]:
        """The batched tensors of ``count`` instances."""
        out = {}
        for name, chunks in self.chunks.items():
            if len(chunks) != count:
                # An instance that repeats a name adds its values twice: TF Serving builds a
                # tensor of more values than its shape, which its server then refuses.
                raise BadRequest(f"tensor parsing error: {name}")
            dtype = self.dtypes[name]
            dims = [len(chunks), *self.shapes[name]]
            values: Values
            if dtype == DT_STRING:
                values = [s for chunk in chunks for s in chunk]
            else:
                values = np.concatenate(chunks) if chunks else np.empty(0)
            out[name] = tensor_bytes(dtype, dims, values)
        return out


def _shape_text(dims: list[int]) -> str:
    return "[" + ",".join(map(str, dims)) + "]"


def _from_instances(
    instances: list[Any], dtypes: dict[str, int], limits: Limits
) -> dict[str, bytes]:
    """``FillTensorMapFromInstancesList``."""
    first = instances[0]
    if not is_object(first) and len(dtypes) > 1:
        raise BadRequest(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    objects = is_object(first) and not is_b64_object(first)
    names = sorted(dtypes)
    accumulator = _Instances(dtypes, limits)
    for index, element in enumerate(instances):
        element_is_object = is_object(element) and not is_b64_object(element)
        if objects:
            if not element_is_object:
                raise BadRequest(f"Expecting object but got list at item {index} of input list")
            keys: set[Any] = set()
            for name, value in members(element):
                keys.add(name)
                try:
                    accumulator.add(value, name)
                except TfsStatus as status:
                    raise BadRequest(
                        f"Failed to process element: {index} key: {_text(name)} of 'instances' "
                        f"list. Error: {status.to_string()}"
                    ) from None
            if keys != set(names):
                raise BadRequest(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{debug_string(element)} keys must be equal to: {','.join(names)}"
                )
        else:
            if element_is_object:
                raise BadRequest(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                accumulator.add(element, names[0])
            except TfsStatus as status:
                raise BadRequest(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {status.to_string()}"
                ) from None
    return accumulator.tensors(len(instances))


def _from_inputs(value: Any, dtypes: dict[str, int], limits: Limits) -> dict[str, bytes]:
    """``FillTensorMapFromInputsMap``."""
    out = {}
    try:
        if not is_object(value) or is_b64_object(value):
            if len(dtypes) > 1:
                raise BadRequest(
                    "inputs is a plain value/list, but expecting an object as multiple input "
                    "tensors required as per tensorinfo_map"
                )
            (name,) = dtypes
            dims, values = _convert(value, dtypes[name], limits, f"input '{name}'")
            out[name] = tensor_bytes(dtypes[name], dims, values)
            return out
        for name in sorted(dtypes):
            item = find_member(value, name)
            if item is MISSING:
                raise BadRequest(f"Missing named input: {name} in 'inputs' object.")
            dims, values = _convert(item, dtypes[name], limits, f"input '{name}'")
            out[name] = tensor_bytes(dtypes[name], dims, values)
    except TfsStatus as status:
        raise _http_error(status) from None
    return out


# --------------------------------------------------------------------------------------------
# Classify and regress
# --------------------------------------------------------------------------------------------


def _examples_request(
    body: Body,
    cls: type[M],
    signatures: Mapping[str, Any] | Message | None,
    model_spec: Any,
    limits: Limits | None,
) -> M:
    """``FillClassifyRegressRequestFromJson``, then the signature check of the servable."""
    limits = DEFAULT_LIMITS if limits is None else limits
    document = _parse(body, limits)
    request: Any = cls()
    _fill_spec(request, model_spec)
    _signature_name(document, request.model_spec)
    context = find_member(document, "context")
    has_context = context is not MISSING
    if has_context:
        request.input.example_list_with_context.context.CopyFrom(example_from_json_object(context))
    examples = find_member(document, "examples")
    if examples is MISSING:
        raise _format_error(
            document, "When method is classify, key 'examples' is expected and was not found"
        )
    if type(examples) is not list:
        raise _format_error(document, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(document, "'examples' value is an empty array")
    limits.check_examples(len(examples), "'examples' array")
    converted: list[Example] = [example_from_json_object(item) for item in examples]
    if has_context:
        request.input.example_list_with_context.examples.extend(converted)
    else:
        request.input.example_list.examples.extend(converted)
    if signatures is not None and not isinstance(signatures, Message):
        name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if name not in signatures:
            raise BadRequest(f"No signature was found with the name: {name}")
    return request  # type: ignore[no-any-return]


def classify_request_from_json(
    body: Body,
    signatures: Mapping[str, Any] | Message | None = None,
    *,
    model_spec: Any = None,
    limits: Limits | None = None,
) -> ClassificationRequest:
    """A TF Serving classify body → ``ClassificationRequest``, as TF Serving converts it.

    ``examples`` (required, a non-empty list of objects) become ``input.example_list``; with a
    ``context`` object, ``input.example_list_with_context``. Feature rules: see
    :func:`~tfio_handlers.protocol.examples.example_from_json_object`. ``signature_name`` goes
    into the request's ``model_spec`` (``model_spec``, if given, is copied first). When
    ``signatures`` is a mapping, a signature name it lacks is TF Serving's ``No signature was
    found with the name: <name>`` (the check its classifier makes after parsing).
    """
    return _examples_request(body, ClassificationRequest, signatures, model_spec, limits)


def regress_request_from_json(
    body: Body,
    signatures: Mapping[str, Any] | Message | None = None,
    *,
    model_spec: Any = None,
    limits: Limits | None = None,
) -> RegressionRequest:
    """A TF Serving regress body → ``RegressionRequest``; the same rules as
    :func:`classify_request_from_json` (including the message that says "classify")."""
    return _examples_request(body, RegressionRequest, signatures, model_spec, limits)


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------

_KIND: Final[dict[int, str]] = {
    DT_FLOAT: "float",
    DT_DOUBLE: "double",
    DT_INT32: "int",
    DT_INT16: "int",
    DT_INT8: "int",
    DT_UINT8: "int",
    DT_INT64: "int",
    DT_UINT32: "int",
    DT_UINT64: "int",
    DT_BOOL: "bool",
    DT_STRING: "string",
}


class _Output:
    """One output tensor: its name, shape, and (lazily) the JSON text of its values."""

    def __init__(self, name: str, proto: TensorProto) -> None:
        self.name = name
        self.proto = proto
        self.dtype = int(proto.dtype)
        self.dims = list(shape_of(proto.tensor_shape))
        self.kind = _KIND.get(self.dtype)
        self.b64 = self.dtype == DT_STRING and name.endswith("_bytes")

    def texts(self, strict: bool, depth: int) -> list[str]:
        """The values' JSON texts; ``depth`` is the containers open around each value."""
        if math.prod(self.dims) == 0:
            return []
        if self.kind is None:
            raise BadRequest(
                f"Failed to write JSON value for tensor type: {dtype_name(self.dtype)}"
            )
        values = to_ndarray(self.proto)
        return value_texts(values, self.kind, strict=strict, b64_depth=depth if self.b64 else None)


def _outputs(response_or_outputs: Any) -> list[_Output]:
    if isinstance(response_or_outputs, Message):
        tensors: Mapping[str, Any] = coerce(response_or_outputs, PredictResponse).outputs
    else:
        tensors = response_or_outputs
    out = []
    for name in sorted(tensors):
        proto = tensors[name]
        if not isinstance(proto, TensorProto):
            proto = coerce(proto, TensorProto)
        out.append(_Output(name, proto))
    return out


FAST_TEXT_THRESHOLD: Final = 65536
"""Outputs holding more values than this may be written by :func:`predict_response_to_json`'s fast
path when the caller asks for it (``fast=True``): see that function."""


def predict_response_to_json(
    response_or_outputs: PredictResponse | Message | Mapping[str, Any],
    format: JsonFormat | str,
    *,
    strict: bool = False,
    fast: bool = False,
) -> bytes:
    """Predict outputs → TF Serving's response JSON (``MakeJsonFromTensors``), as bytes.

    Row (``JsonFormat.ROW``): ``{"predictions": [...]}``, every output with rank >= 1 and the
    same first dimension: one output gives its items (scalars for rank 1), several give one
    object per item. Columnar: ``{"outputs": <tensor>}`` or ``{"outputs": {name: tensor}}``.
    Outputs are written in name order (TF Serving's map order is unspecified). An output whose
    name ends in ``_bytes`` and holds strings is written as ``{"b64": ...}`` objects. The text,
    whitespace included, is what TF Serving writes; values are read with
    :func:`~tfio_handlers.tensors.to_ndarray`, so ``tensor_content`` works too.

    ``strict=True`` writes RFC 8259 JSON: NaN and infinities become ``null`` and strings that
    are not UTF-8 get U+FFFD; otherwise (TF Serving's way) they are the bare tokens ``NaN``,
    ``Infinity``, ``-Infinity`` and raw bytes.

    ``fast=True`` lets numeric outputs of more than :data:`FAST_TEXT_THRESHOLD` values in all be
    written by orjson (when installed): the same document, compact, with each float as the
    shortest text that parses back to the same float32/float64 rather than TF Serving's
    ``%g``-then-``%.9g`` text, about 30 times faster. Strings, non-finite values, dtypes JSON
    cannot carry and every error case always take the exact path.
    """
    if isinstance(format, str):
        try:
            format = JsonFormat(format)
        except ValueError:
            raise BadRequest("Invalid request format") from None
    if not isinstance(format, JsonFormat):
        raise BadRequest("Invalid request format")
    outputs = _outputs(response_or_outputs)
    if not outputs:
        raise BadRequest("Cannot convert empty tensor map to JSON")
    if fast:
        quick = _fast_json(outputs, format)
        if quick is not None:
            return quick
    text = (
        _row_json(outputs, strict) if format is JsonFormat.ROW else _columnar_json(outputs, strict)
    )
    return text.encode("utf-8", "surrogateescape")


def _row_json(outputs: list[_Output], strict: bool) -> str:
    batch = -1
    for output in outputs:
        if not output.dims:
            raise BadRequest(f"Tensor name: {output.name} has no shape information ")
        current = output.dims[0]
        if batch >= 0 and batch != current:
            raise BadRequest(
                f"Tensor name: {output.name} has inconsistent batch size: {current} "
                f"expecting: {batch}"
            )
        batch = current
    head = '{\n    "predictions": ['
    if batch == 0:
        return head + "]\n}"
    if len(outputs) == 1:
        (output,) = outputs
        items = row_item_texts(output.texts(strict, 2 + len(output.dims) - 1), output.dims, 2)
        return head + ", ".join(items) + "\n    ]\n}"
    columns = []
    for output in outputs:
        texts = output.texts(strict, 3 + len(output.dims) - 1)
        columns.append(row_item_texts(texts, output.dims, 3))
    member = ",\n" + indent(3)
    keys = [_key(output.name) for output in outputs]
    objects = [
        "{\n"
        + indent(3)
        + member.join(f"{key}: {column[i]}" for key, column in zip(keys, columns, strict=True))
        + "\n"
        + indent(2)
        + "}"
        for i in range(batch)
    ]
    # Each object starts before the single-line option is set: on a line of its own.
    separator = ",\n" + indent(2)
    return head + "\n" + indent(2) + separator.join(objects) + "\n    ]\n}"


_FAST_KINDS: Final = frozenset({"float", "double", "int", "bool"})


def _fast_json(outputs: list[_Output], format: JsonFormat) -> bytes | None:
    """The fast path of :func:`predict_response_to_json`, or ``None`` to take the exact path."""
    if sum(math.prod(o.dims) for o in outputs) <= FAST_TEXT_THRESHOLD:
        return None
    orjson = accelerators.orjson()
    if orjson is None:
        return None
    arrays: dict[str, Any] = {}
    for output in outputs:
        if output.kind not in _FAST_KINDS:
            return None
        array = to_ndarray(output.proto)
        if output.kind in ("float", "double") and not np.isfinite(array).all():
            return None
        arrays[output.name] = np.ascontiguousarray(array) if array.ndim else array.item()
    document: dict[str, Any]
    if format is JsonFormat.COLUMNAR:
        document = {"outputs": next(iter(arrays.values())) if len(arrays) == 1 else arrays}
    else:
        batches = {output.dims[0] if output.dims else -1 for output in outputs}
        if len(batches) != 1 or -1 in batches:
            return None  # the exact path raises TF Serving's error
        if len(arrays) == 1:
            document = {"predictions": next(iter(arrays.values()))}
        else:
            (batch,) = batches
            rows = [{name: array[i] for name, array in arrays.items()} for i in range(batch)]
            document = {"predictions": rows}
    body: bytes = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return body


def _key(name: str) -> str:
    return escape_string(name.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogateescape")


def _tensor_text(output: _Output, depth: int, strict: bool) -> str:
    """A whole tensor in the default (multi-line) layout, ``depth`` containers around it."""
    texts = output.texts(strict, depth + len(output.dims))
    if not output.dims:
        return texts[0]
    return nested_text(texts, output.dims, depth, False)


def _columnar_json(outputs: list[_Output], strict: bool) -> str:
    if len(outputs) == 1:
        return '{\n    "outputs": ' + _tensor_text(outputs[0], 1, strict) + "\n}"
    parts = [f"{_key(o.name)}: {_tensor_text(o, 2, strict)}" for o in outputs]
    return '{\n    "outputs": {\n' + indent(2) + (",\n" + indent(2)).join(parts) + "\n    }\n}"


def _scores_texts(values: list[float], strict: bool) -> list[str]:
    return value_texts(np.array(values, dtype=np.float32), "float", strict=strict)


def classification_result_to_json(
    result: ClassificationResult | Message, *, strict: bool = False
) -> bytes:
    """A ``ClassificationResult`` → ``{"results": [[[label, score], ...], ...]}`` as TF Serving
    writes it (labels as JSON strings, scores by ``WriteDecimal``); ``strict`` as in
    :func:`predict_response_to_json`. No classifications: ``Cannot convert empty
    ClassificationResults to JSON``."""
    result = coerce(result, ClassificationResult)
    if not result.classifications:
        raise BadRequest("Cannot convert empty ClassificationResults to JSON")
    items = []
    for classifications in result.classifications:
        classes = classifications.classes
        scores = _scores_texts([c.score for c in classes], strict)
        pairs = [f"[{_key(c.label)}, {score}]" for c, score in zip(classes, scores, strict=True)]
        items.append("[" + ", ".join(pairs) + "]")
    text = '{\n    "results": [' + ", ".join(items) + "\n    ]\n}"
    return text.encode("utf-8", "surrogateescape")


def regression_result_to_json(result: RegressionResult | Message, *, strict: bool = False) -> bytes:
    """A ``RegressionResult`` → ``{"results": [value, ...]}`` as TF Serving writes it; ``strict``
    as in :func:`predict_response_to_json`. No regressions: ``Cannot convert empty
    RegressionResults to JSON``."""
    result = coerce(result, RegressionResult)
    if not result.regressions:
        raise BadRequest("Cannot convert empty RegressionResults to JSON")
    values = _scores_texts([r.value for r in result.regressions], strict)
    return ('{\n    "results": [' + ", ".join(values) + "]\n}").encode("ascii")
