"""TF Serving's REST JSON request bodies → TF Serving requests, exactly as TF Serving converts them.

This is ``tensorflow_serving/util/json_tensor.cc`` (and the signature lookup of
``http_rest_api_handler.cc``) in Python: the same accepted inputs, the same tensors, the same
error messages (responses: :mod:`.responses`).

* :func:`predict_arrays_from_json` — ``{"instances": ...}`` (row) or ``{"inputs": ...}``
  (columnar) → :class:`~tfio_handlers.protocol.arrays.PredictArrays` and the :class:`JsonFormat`
  the response must use (:func:`predict_request_from_json`: the same as a ``PredictRequest``);
* :func:`classify_request_from_json`, :func:`regress_request_from_json` — ``{"examples": [...],
  "context": {...}}`` → ``ClassificationRequest`` / ``RegressionRequest``.

Every error is an :class:`~tfio_handlers.errors.HTTPError` carrying TF Serving's message text and
the status TF Serving answers with: :class:`BadRequest` (400) for its ``InvalidArgument``, and
:class:`Unimplemented` (501) for a columnar input of a dtype JSON cannot carry.

Bodies are parsed by :mod:`.parse` (a fast path, with RapidJSON's exact behaviour as the
fallback); the request tensors are typed by the signature's dtypes. Limits
(:class:`~tfio_handlers.config.Limits`, default :data:`DEFAULT_LIMITS`) are enforced before
tensors are built: ``max_body_bytes`` (413), ``max_depth`` on the rank of each
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

from ...config import Limits
from ...errors import BadRequest, HTTPError, PayloadTooLarge, Unimplemented
from ...protos import (
    DEFAULT_SIGNATURE,
    DT_STRING,
    ClassificationRequest,
    Example,
    ModelSpec,
    PredictRequest,
    RegressionRequest,
    coerce,
)
from ..arrays import Array, PredictArrays
from . import simd
from .examples import example_from_json_object
from .parse import MISSING, find_member, members, parse_body, to_bytes
from .rapidjson_writer import debug_string
from .tensor import (
    INVALID_ARGUMENT,
    TfsStatus,
    Values,
    dense_shape,
    is_b64_object,
    is_object,
    tensor_values,
    values_array,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_SIGNATURE",
    "JsonFormat",
    "classify_request_from_json",
    "predict_arrays_from_json",
    "predict_request_from_json",
    "regress_request_from_json",
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


def predict_arrays_from_json(
    body: Body,
    signatures: Mapping[str, Any] | Message,
    *,
    model_spec: Any = None,
    limits: Limits | None = None,
    fast: bool = True,
) -> tuple[PredictArrays, JsonFormat]:
    """A TF Serving predict body → ``(PredictArrays, JsonFormat)``, as TF Serving converts it.

    ``signatures`` maps signature names to ``SignatureDef`` messages (ours or TensorFlow's); the
    body's ``signature_name`` (else ``model_spec.signature_name``, else ``serving_default``)
    selects one, and a name it lacks is ``Serving signature name: "<name>" not found in signature
    def``. A single ``SignatureDef`` may be passed instead, to use it whatever the body names.
    Only the inputs' dtypes are used: shapes are not checked, as in TF Serving.

    ``model_spec`` (ours or TensorFlow's, e.g. from the URL) is copied into the request; the
    body's ``signature_name`` then replaces its signature name. The format says whether the
    body used ``instances`` (row: answer with ``predictions``) or ``inputs`` (columnar: answer
    with ``outputs``). Each input is an array of the signature's dtype holding the values TF
    Serving's tensor would hold.

    A body of one numeric tensor for a single-input signature first goes to the simdjson fast path
    (:mod:`.simd`, when pysimdjson is installed), which answers only when it proves the result
    equals this function's exact path; ``fast=False`` runs the exact path alone.
    """
    limits = DEFAULT_LIMITS if limits is None else limits
    spec = ModelSpec() if model_spec is None else _copy_spec(model_spec)
    quick = _fast_predict(body, signatures, spec, limits) if fast else None
    if quick is not None:
        return quick
    document = _parse(body, limits)
    _signature_name(document, spec)
    dtypes = _input_dtypes(signatures, spec.signature_name)
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
        arrays = _from_instances(instances, dtypes, limits)
        form = JsonFormat.ROW
    elif inputs is not MISSING:
        arrays = _from_inputs(inputs, dtypes, limits)
        form = JsonFormat.COLUMNAR
    else:
        raise BadRequest("Missing 'inputs' or 'instances' key")
    return PredictArrays(arrays, spec), form


def predict_request_from_json(
    body: Body,
    signatures: Mapping[str, Any] | Message,
    *,
    model_spec: Any = None,
    limits: Limits | None = None,
    fast: bool = True,
) -> tuple[PredictRequest, JsonFormat]:
    """:func:`predict_arrays_from_json` as the ``PredictRequest`` TF Serving builds: every tensor
    in its dtype's typed ``*_val`` field. For clients of a remote TF Serving (gRPC) and tests."""
    arrays, form = predict_arrays_from_json(
        body, signatures, model_spec=model_spec, limits=limits, fast=fast
    )
    return arrays.to_message(typed_fields=True), form


def _copy_spec(model_spec: Any) -> ModelSpec:
    spec = ModelSpec()
    spec.CopyFrom(coerce(model_spec, ModelSpec))
    return spec


def _fast_predict(
    body: Body, signatures: Mapping[str, Any] | Message, spec: ModelSpec, limits: Limits
) -> tuple[PredictArrays, JsonFormat] | None:
    """The simdjson fast path (:mod:`.simd`): a numeric single-input body, proved to give the
    exact path's tensor, without one Python number built. ``None``: take the exact path."""
    decoded = simd.decode_predict(
        body, signatures, signature_name=spec.signature_name or None, limits=limits
    )
    if decoded is None:
        return None
    if decoded.signature_name is not None:
        spec.signature_name = decoded.signature_name
    form = JsonFormat.ROW if decoded.form == "row" else JsonFormat.COLUMNAR
    return PredictArrays({decoded.input_name: decoded.array}, spec), form


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

    def arrays(self, count: int) -> dict[str, Array]:
        """The batched arrays of ``count`` instances."""
        out: dict[str, Array] = {}
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
            out[name] = values_array(dtype, dims, values, name)
        return out


def _shape_text(dims: list[int]) -> str:
    return "[" + ",".join(map(str, dims)) + "]"


def _from_instances(
    instances: list[Any], dtypes: dict[str, int], limits: Limits
) -> dict[str, Array]:
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
    return accumulator.arrays(len(instances))


def _from_inputs(value: Any, dtypes: dict[str, int], limits: Limits) -> dict[str, Array]:
    """``FillTensorMapFromInputsMap``."""
    out: dict[str, Array] = {}
    try:
        if not is_object(value) or is_b64_object(value):
            if len(dtypes) > 1:
                raise BadRequest(
                    "inputs is a plain value/list, but expecting an object as multiple input "
                    "tensors required as per tensorinfo_map"
                )
            (name,) = dtypes
            dims, values = _convert(value, dtypes[name], limits, f"input '{name}'")
            out[name] = values_array(dtypes[name], dims, values, name)
            return out
        for name in sorted(dtypes):
            item = find_member(value, name)
            if item is MISSING:
                raise BadRequest(f"Missing named input: {name} in 'inputs' object.")
            dims, values = _convert(item, dtypes[name], limits, f"input '{name}'")
            out[name] = values_array(dtypes[name], dims, values, name)
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
