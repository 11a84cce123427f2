"""The client's side of TF Serving's REST JSON: what a client writes, and how it reads the answers.

The other modules of this package are the server's side (bodies read as TF Serving reads them,
responses written as it writes them). This one is the other end, used by the REST backend
(:mod:`tfio_handlers.backends.rest`, which owns the HTTP transport): request messages → the JSON
bodies TF Serving reads, and TF Serving's JSON answers → the response messages its gRPC API would
have returned. It imports no HTTP client.

Writing:

* :func:`predict_request_to_json`: a ``PredictRequest`` → the columnar body
  ``{"signature_name": ..., "inputs": {alias: nested values}}``. ``DT_STRING`` values are JSON
  strings when every value of the tensor is UTF-8 without NUL bytes, else every value is
  ``{"b64": ...}``: lossless either way, and readable in logs for the common text case. What REST
  cannot say is done here, so that the answer is the gRPC API's: inputs are checked with TF
  Serving's gRPC messages (REST ignores extra ones), inputs with ``SignatureDef.defaults`` are sent
  from them (REST requires every input), a dtype other than the signature's is refused (REST would
  cast it), the ``output_filter`` is checked and kept for reading the answer (REST has none), and
  dtypes TF Serving's JSON cannot carry (half, bfloat16, complex, ...) are 501.
* :func:`examples_to_json`: a Classify/Regress ``Input`` → ``{"examples", "context"}``.
* :func:`body_bytes`: the body as bytes (``NaN`` and ``±Infinity`` as bare tokens).

Reading (:func:`parse_answer` first, then one function per answer):

* :func:`predict_response_from_json`: ``{"outputs": ...}``, which carries no dtypes and, for a single
  output, no name: both come from the signature. Each output is read by the rule TF Serving reads
  a request tensor (:func:`.tensor.dense_shape`, :func:`.tensor.tensor_values`, ``{"b64"}`` through
  :func:`.tensor.b64_decode`) and written to the typed ``*_val`` fields, as TF Serving's gRPC API
  answers. Two steps differ for answers: TF Serving writes ``DT_STRING`` values as raw bytes, not
  always valid UTF-8, so :func:`parse_answer` decodes the answer with ``surrogateescape`` and the
  strings are turned back into those exact bytes before the walk; and what a request would be
  refused with 400 (a value outside a narrow int dtype, by :func:`.tensor.values_array`) is a
  500 here. An empty tensor arrives as nested ``[]``; its inner dimensions come from the
  signature.
* :func:`classification_response_from_json`, :func:`regression_response_from_json`:
  ``{"results": ...}``; :func:`metadata_response_from_json` (``SignatureDefMap`` with or without
  ``@type``), :func:`status_response_from_json`; :func:`error_message`: the ``{"error"}`` text.

An answer that is not what TF Serving writes is an :class:`~tfio_handlers.errors.InternalError`
(500) "Unexpected answer from the model server: ...".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

from ...errors import BadRequest, InternalError, Unimplemented
from ...protos import (
    DT_STRING,
    POOL,
    Class,
    ClassificationResponse,
    ClassificationResult,
    Example,
    GetModelMetadataResponse,
    GetModelStatusResponse,
    Input,
    ModelSpec,
    PredictRequest,
    PredictResponse,
    Regression,
    RegressionResponse,
    RegressionResult,
    SignatureDef,
    SignatureDefMap,
    TensorInfo,
    TensorProto,
    coerce,
    pack_signature_def_map,
)
from ...tensors import dtype_name, to_ndarray, to_tensor_proto
from ..signatures import check_predict_inputs, output_aliases
from .tensor import JSON_DTYPES, TfsStatus, dense_shape, tensor_values, values_array

__all__ = [
    "bad_answer",
    "body_bytes",
    "classification_response_from_json",
    "error_message",
    "examples_to_json",
    "metadata_response_from_json",
    "parse_answer",
    "predict_request_to_json",
    "predict_response_from_json",
    "regression_response_from_json",
    "status_response_from_json",
    "tensor_from_json",
    "tensor_to_json",
]

Resp = TypeVar("Resp", bound=Message)


# -- JSON in and out -------------------------------------------------------------------------------


def body_bytes(body: Any) -> bytes:
    """A request body as UTF-8 JSON; NaN and ±Infinity as bare tokens, which TF Serving accepts."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode()


def parse_answer(content: bytes) -> Any:
    """TF Serving's JSON answer, parsed; strings keep raw bytes as ``surrogateescape`` characters.

    TF Serving writes ``DT_STRING`` values as raw bytes, not always valid UTF-8; decoding with
    ``surrogateescape`` keeps them, so that they can be turned back into the exact bytes.
    """
    try:
        return json.loads(content.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise bad_answer(f"invalid JSON ({exc})") from None
    except RecursionError:
        raise bad_answer("JSON nested too deeply") from None


def bad_answer(what: str) -> InternalError:
    """The error for an answer that is not what TF Serving writes."""
    return InternalError(f"Unexpected answer from the model server: {what}")


def error_message(status: int, content: bytes) -> str:
    """The ``error`` of TF Serving's ``{"error": ...}`` body, else the body's text."""
    text = content.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return text.strip() or f"HTTP {status}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- predict: the request --------------------------------------------------------------------------


def _needs_b64(value: bytes) -> bool:
    if b"\x00" in value:
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _map_leaves(value: Any, leaf: Callable[[Any], Any]) -> Any:
    if isinstance(value, list):
        return [_map_leaves(item, leaf) for item in value]
    return leaf(value)


def tensor_to_json(alias: str, tensor: TensorProto, info: TensorInfo, index: int) -> Any:
    """A request tensor as TF Serving JSON (nested lists; strings plain or all ``{"b64"}``).

    ``index`` is the input's place in sorted alias order, as TensorFlow's dtype error names it.
    """
    tensor = coerce(tensor, TensorProto)
    dt = tensor.dtype
    if info.dtype != dt:
        raise BadRequest(
            f"Expects arg[{index}] to be {dtype_name(info.dtype)} but {dtype_name(dt)} is provided"
        )
    if dt not in JSON_DTYPES:
        raise Unimplemented(
            f"TF Serving's REST API cannot carry {dtype_name(dt)} tensors (input {alias!r}); "
            "use the gRPC backend"
        )
    array = to_ndarray(tensor)
    if dt != DT_STRING:
        return array.tolist()
    values = array.reshape(-1).tolist()
    if any(_needs_b64(v) for v in values):

        def leaf(v: bytes) -> Any:
            return {"b64": base64.b64encode(v).decode("ascii")}
    else:

        def leaf(v: bytes) -> Any:
            return v.decode("utf-8")

    return _map_leaves(array.tolist(), leaf)


def predict_request_to_json(
    request: PredictRequest, signature: SignatureDef
) -> tuple[dict[str, Any], list[str]]:
    """The columnar body for ``request`` and the outputs to read from the answer.

    Checks in TF Serving's order and with its gRPC messages: the inputs against the signature,
    the ``output_filter``, then each input's dtype. Inputs left out are sent from the signature's
    defaults.
    """
    check_predict_inputs(request.inputs, signature)
    wanted = output_aliases(request.output_filter, signature)
    order = sorted(signature.inputs)
    inputs: dict[str, Any] = {}
    for alias, tensor in request.inputs.items():
        inputs[alias] = tensor_to_json(alias, tensor, signature.inputs[alias], order.index(alias))
    for alias in signature.inputs:
        if alias not in inputs and alias in signature.defaults:
            inputs[alias] = tensor_to_json(
                alias, signature.defaults[alias], signature.inputs[alias], order.index(alias)
            )
    body: dict[str, Any] = {"inputs": inputs}
    if request.model_spec.signature_name:
        body["signature_name"] = request.model_spec.signature_name
    return body, wanted


# -- predict: the answer ---------------------------------------------------------------------------


def _raw_string(value: Any) -> Any:
    """A string of :func:`parse_answer` as the bytes TF Serving wrote; anything else as it is.

    A string that holds a surrogate no raw byte gives (a ``\\ud800`` escape) is left for
    :func:`.tensor.tensor_values`, which encodes it as TF Serving's reader does.
    """
    if type(value) is str:
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return value
    return value


def _raw_strings(value: Any) -> Any:
    """``value`` with every string leaf as :func:`_raw_string`, iteratively (no depth is too deep)."""
    if type(value) is not list:
        return _raw_string(value)
    out: list[Any] = []
    stack: list[tuple[list[Any], list[Any]]] = [(value, out)]
    while stack:
        source, target = stack.pop()
        for item in source:
            if type(item) is list:
                nested: list[Any] = []
                target.append(nested)
                stack.append((item, nested))
            else:
                target.append(_raw_string(item))
    return out


def _complete_empty_dims(dims: list[int], info: TensorInfo) -> list[int]:
    """``[]`` hides the inner dimensions of an empty tensor: take them from the signature."""
    shape = info.tensor_shape
    if 0 in dims and not shape.unknown_rank and len(shape.dim) > len(dims):
        dims = dims + [max(d.size, 0) for d in shape.dim[len(dims) :]]
    return dims


def tensor_from_json(value: Any, info: TensorInfo, alias: str) -> TensorProto:
    """An output tensor from TF Serving JSON, typed by the signature, in the typed ``*_val`` field.

    Read as TF Serving reads a request tensor (:func:`.tensor.tensor_values`, whose message for
    the first error is quoted in the :func:`bad_answer`), shaped by :func:`.tensor.values_array`:
    a value that does not fit the output's dtype (300 for an int8 output) is refused.
    """
    dt = info.dtype
    if dt not in JSON_DTYPES:
        raise bad_answer(f"output {alias!r} has dtype {dtype_name(dt)}, which JSON cannot carry")
    if dt == DT_STRING:
        value = _raw_strings(value)
    dims = dense_shape(value)
    try:
        values = tensor_values(value, dims, dt)
    except (TfsStatus, OverflowError) as exc:  # OverflowError: an integer beyond any double
        detail = exc.message if isinstance(exc, TfsStatus) else str(exc)
        raise bad_answer(
            f"output {alias!r} is not a rectangular array of {dtype_name(dt)} ({detail})"
        ) from None
    try:
        array = values_array(dt, _complete_empty_dims(dims, info), values, alias)
    except BadRequest:
        raise bad_answer(f"output {alias!r} holds a value outside {dtype_name(dt)}") from None
    except ValueError as exc:  # a shape no array can have (numpy's rank limit)
        raise bad_answer(f"output {alias!r}: {exc}") from None
    return to_tensor_proto(array, dt, typed_fields=True)


def predict_response_from_json(
    answer: Any, signature: SignatureDef, wanted: list[str], spec: ModelSpec
) -> PredictResponse:
    """TF Serving's ``{"outputs": ...}`` as the ``PredictResponse`` of outputs ``wanted``."""
    if not isinstance(answer, dict) or "outputs" not in answer:
        raise bad_answer("no 'outputs' in the predict answer")
    outputs = answer["outputs"]
    if len(signature.outputs) == 1:
        # One output is written bare, without its name.
        outputs = {next(iter(signature.outputs)): outputs}
    elif not isinstance(outputs, dict):
        raise bad_answer("'outputs' is not an object although the signature has several outputs")
    response = PredictResponse(model_spec=spec)
    for alias in wanted:
        if alias not in outputs:
            raise bad_answer(f"output {alias!r} is missing")
        response.outputs[alias].CopyFrom(
            tensor_from_json(outputs[alias], signature.outputs[alias], alias)
        )
    return response


# -- classify and regress --------------------------------------------------------------------------


def _feature_values(feature: Any) -> list[Any]:
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        values = list(feature.bytes_list.value)
        if any(_needs_b64(v) for v in values):
            return [{"b64": base64.b64encode(v).decode("ascii")} for v in values]
        return [v.decode("utf-8") for v in values]
    if kind == "float_list":
        # Python's float repr always has "." or an exponent (or is NaN/Infinity), so TF Serving
        # reads these as floats, never as int64.
        return [float(v) for v in feature.float_list.value]
    if kind == "int64_list":
        return [int(v) for v in feature.int64_list.value]
    return []


def _example_json(example: Example) -> dict[str, Any]:
    example = coerce(example, Example)
    return {name: _feature_values(feature) for name, feature in example.features.feature.items()}


def examples_to_json(request_input: Input, signature_name: str) -> dict[str, Any]:
    """``{"signature_name", "examples", "context"}`` for a Classify/Regress ``Input``."""
    kind = request_input.WhichOneof("kind")
    context: Example | None = None
    if kind == "example_list":
        examples = request_input.example_list.examples
    elif kind == "example_list_with_context":
        examples = request_input.example_list_with_context.examples
        context = request_input.example_list_with_context.context
    else:
        raise BadRequest("Input is empty.")
    if not examples:
        raise BadRequest("Input is empty.")
    body: dict[str, Any] = {"examples": [_example_json(example) for example in examples]}
    if context is not None:
        body["context"] = _example_json(context)
    if signature_name:
        body["signature_name"] = signature_name
    return body


def _results(answer: Any, method: str) -> list[Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
        raise bad_answer(f"no 'results' list in the {method} answer")
    results: list[Any] = answer["results"]
    return results


def classification_response_from_json(answer: Any, spec: ModelSpec) -> ClassificationResponse:
    """TF Serving's ``{"results": [[[label, score], ...], ...]}`` as a ``ClassificationResponse``."""
    result = ClassificationResult()
    for row in _results(answer, "classify"):
        classifications = result.classifications.add()
        if not isinstance(row, list):
            raise bad_answer("a classification result is not a list")
        for pair in row:
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and _is_number(pair[1])
            ):
                raise bad_answer(f"classification {pair!r} is not [label, score]")
            label = pair[0].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            classifications.classes.append(Class(label=label, score=float(pair[1])))
    return ClassificationResponse(result=result, model_spec=spec)


def regression_response_from_json(answer: Any, spec: ModelSpec) -> RegressionResponse:
    """TF Serving's ``{"results": [value, ...]}`` as a ``RegressionResponse``."""
    result = RegressionResult()
    for value in _results(answer, "regress"):
        if not _is_number(value):
            raise bad_answer(f"regression value {value!r} is not a number")
        result.regressions.append(Regression(value=float(value)))
    return RegressionResponse(result=result, model_spec=spec)


# -- metadata and status ---------------------------------------------------------------------------


def _parse_dict(value: Any, message: Resp) -> Resp:
    from google.protobuf import json_format

    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True, descriptor_pool=POOL)
    except json_format.ParseError as exc:
        raise bad_answer(str(exc)) from None
    return message


def status_response_from_json(answer: Any) -> GetModelStatusResponse:
    """TF Serving's model status JSON (proto3 JSON of ``GetModelStatusResponse``)."""
    if not isinstance(answer, dict):
        raise bad_answer("the model status is not an object")
    return _parse_dict(answer, GetModelStatusResponse())


def metadata_response_from_json(answer: Any) -> GetModelMetadataResponse:
    """TF Serving's metadata JSON: ``{"model_spec", "metadata": {"signature_def": SignatureDefMap}}``.

    TF Serving writes the ``SignatureDefMap`` without the ``@type`` an ``Any`` has in proto3 JSON;
    both forms are read.
    """
    if not isinstance(answer, dict):
        raise bad_answer("the model metadata is not an object")
    response = GetModelMetadataResponse()
    if isinstance(answer.get("model_spec"), dict):
        _parse_dict(answer["model_spec"], response.model_spec)
    metadata = answer.get("metadata")
    entry = metadata.get("signature_def") if isinstance(metadata, dict) else None
    if not isinstance(entry, dict):
        raise bad_answer("no 'metadata.signature_def' in the model metadata")
    entry = {k: v for k, v in entry.items() if k != "@type"}
    return pack_signature_def_map(response, _parse_dict(entry, SignatureDefMap()))
