"""Plain values to TF Serving requests, per signature: the SageMaker conveniences on top of TF Serving.

Decoders of plain bodies (a JSON list, CSV rows, an npy array, a user ``input_fn``'s return value) hand
back values, not requests. This module turns them into :class:`~.arrays.PredictArrays` (predict), a
``ClassificationRequest`` or a ``RegressionRequest``, typing every tensor by the signature's dtypes (not
by the first Python value, the legacy container's defect with multi-input models), and refusing casts
that would change a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
from google.protobuf.message import Message

from ..context import Context, Method
from ..errors import BadRequest, HTTPError, PayloadTooLarge, ServerBusy
from ..protos import (
    ClassificationRequest,
    Example,
    ModelSpec,
    PredictRequest,
    RegressionRequest,
    SignatureDef,
    TensorProto,
    coerce,
)
from ..tensors import fills_of_one_request, numpy_dtype, to_ndarray, to_tensor_proto
from ..tensors.casting import dtype_label, leaves_of, typed_numbers
from .arrays import Array, PredictArrays
from .examples import example_from_values
from .signatures import signature_method

__all__ = ["TFSRequest", "build_request", "choose_method", "fill_model_spec", "to_examples"]

TFSRequest: TypeAlias = PredictRequest | ClassificationRequest | RegressionRequest

_REQUEST_METHODS: dict[str, tuple[type[Message], Method]] = {
    "tensorflow.serving.PredictRequest": (PredictRequest, "predict"),
    "tensorflow.serving.ClassificationRequest": (ClassificationRequest, "classify"),
    "tensorflow.serving.RegressionRequest": (RegressionRequest, "regress"),
}

_DT_STRING = 7
_DT_BOOL = 10


def choose_method(context: Context) -> Method:
    """The method for a request that did not name one: ``context.method``, else the signature's."""
    if context.method is not None:
        return context.method
    signature = context.signature
    return signature_method(signature) if signature is not None else "predict"


def fill_model_spec(spec: ModelSpec, context: Context) -> None:
    """Fill the parts of ``spec`` the request left empty from ``context`` (URL, custom attributes)."""
    if not spec.name and context.model_name:
        spec.name = context.model_name
    if not spec.HasField("version") and not spec.version_label:
        if context.model_version is not None:
            spec.version.value = context.model_version
        elif context.version_label:
            spec.version_label = context.version_label
    if not spec.signature_name and context.signature_name:
        spec.signature_name = context.signature_name


def build_request(value: Any, context: Context) -> TFSRequest | PredictArrays:
    """Turn a decoded value into a TF Serving request for ``context``'s model and signature.

    * :class:`~.arrays.PredictArrays` (the TF Serving JSON codec's) passes through, its model spec
      completed from ``context``;
    * a request message (ours or TF Serving's class) passes through, and sets the method;
    * a ``TensorProto`` is the single input of a predict request;
    * for a classify or regress signature: a dict is one example, a list of dicts several, a flat list
      of numbers one example with the feature ``inputs``, a list of lists one example per row;
    * for predict: a dict maps input names to values; anything else is the single input's value,
      already batched (the JSON codec adds the batch dimension to a flat list).
    """
    if isinstance(value, PredictArrays):
        context.method = "predict"
        if value.model_spec.signature_name:
            context.signature_name = value.model_spec.signature_name
        fill_model_spec(value.model_spec, context)
        return value
    if isinstance(value, Message):
        return _from_message(value, context)
    method = choose_method(context)
    context.method = method
    request: TFSRequest
    if method == "predict":
        arrays = PredictArrays(_input_arrays(value, context.signature))
        fill_model_spec(arrays.model_spec, context)
        return arrays
    else:
        if isinstance(value, (list, np.ndarray)):  # a user input_fn's value too
            context.limits.check_examples(len(value))
        request = ClassificationRequest() if method == "classify" else RegressionRequest()
        request.input.example_list.examples.extend(to_examples(value))
    fill_model_spec(request.model_spec, context)
    return request


def _from_message(value: Message, context: Context) -> TFSRequest:
    full_name = value.DESCRIPTOR.full_name
    if full_name == "tensorflow.TensorProto":
        request = PredictRequest()
        name = _single_input_name(context.signature)
        request.inputs[name].CopyFrom(coerce(value, TensorProto))
        context.method = "predict"
        fill_model_spec(request.model_spec, context)
        return request
    known = _REQUEST_METHODS.get(full_name)
    if known is None:
        raise BadRequest(
            f"Cannot make a TF Serving request from a {full_name} message; expected a "
            "PredictRequest, ClassificationRequest, RegressionRequest or TensorProto"
        )
    cls, method = known
    request_message = coerce(value, cls)
    context.method = method
    spec = request_message.model_spec  # type: ignore[attr-defined]
    if spec.signature_name:
        context.signature_name = spec.signature_name
    fill_model_spec(spec, context)
    return request_message  # type: ignore[return-value]


def _single_input_name(signature: SignatureDef | None) -> str:
    if signature is None or not signature.inputs:
        return "inputs"
    if len(signature.inputs) == 1:
        return next(iter(signature.inputs))
    raise BadRequest(
        "Got a single value but the signature has several inputs: "
        + ", ".join(sorted(signature.inputs))
        + "; send a JSON object (or a dict) naming each input"
    )


def input_name(name: Any) -> str:
    """An input name as protobuf map keys need it: text that is valid UTF-8, or a 400.

    JSON object keys arrive as ``str``, or as ``bytes`` when they are not valid UTF-8 (RapidJSON
    does not validate); a ``str`` may hold a lone surrogate (``"\\ud800"``). Neither can be a
    ``string`` field of a protobuf message.
    """
    if isinstance(name, bytes):
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(
                f"Input name {name.decode('utf-8', 'replace')!r} is not valid UTF-8"
            ) from None
    if not isinstance(name, str):
        raise BadRequest(f"Input names must be strings, got {type(name).__name__}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            f"Input name {name.encode('utf-8', 'replace').decode()!r} is not valid UTF-8"
        ) from None
    return name


def _input_arrays(value: Any, signature: SignatureDef | None) -> dict[str, Array]:
    """The named input arrays of a plain predict value: a dict names them, anything else is the
    signature's single input."""
    if isinstance(value, Mapping):
        if not value:
            raise BadRequest("No inputs: the request holds an empty object")
        arrays: dict[str, Array] = {}
        with fills_of_one_request(arrays):
            for key, item in value.items():
                name = input_name(key)
                dtype = (
                    signature.inputs[name].dtype
                    if signature is not None and name in signature.inputs
                    else None
                )
                arrays[name] = typed_array(item, dtype, name)
        return arrays
    name = _single_input_name(signature)
    dtype = signature.inputs[name].dtype if signature is not None and signature.inputs else None
    return {name: typed_array(value, dtype, name)}


def typed_array(value: Any, dtype: int | None, name: str = "inputs") -> Array:
    """The array of ``value`` typed by the signature's ``dtype`` by the one cast policy
    (:mod:`tfio_handlers.tensors.casting`): a value may change its type, never its value.

    Integers become floats as TF Serving allows (precision may round, as documented by TF Serving);
    a whole-number float (``1.0``) becomes an integer, one with a fraction never does; a number never
    becomes a bool or a string. Strings become ``bytes`` (``str`` as UTF-8) in an ``object`` array.
    Without a dtype (no signature), the dtype is inferred as TensorFlow infers it (Python floats are
    float32). A ``TensorProto`` is read as it is.
    """
    if isinstance(value, Message):
        try:
            return to_ndarray(coerce(value, TensorProto))
        except (PayloadTooLarge, ServerBusy):
            raise  # a limit of this server's, not a malformed tensor
        except HTTPError as exc:
            raise BadRequest(f"tensor parsing error: {name}") from exc
    if dtype is None or dtype == 0:
        try:
            return to_ndarray(to_tensor_proto(value))
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"Input {name}: {exc}") from None
    label = f"input {name!r} ({dtype_label(dtype)})"
    if dtype == _DT_STRING:
        array = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
        if array.dtype.kind not in "OUS":
            raise BadRequest(f"{label} expects strings, got {array.dtype} values")
        if isinstance(value, list):
            for leaf in leaves_of(value):
                if not isinstance(leaf, (str, bytes)):
                    raise BadRequest(
                        f"{label} expects strings, got a {type(leaf).__name__} {leaf!r:.80}"
                    )
        return to_ndarray(to_tensor_proto(array, dtype=dtype))
    try:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"Input {name}: values are not a rectangular array ({exc})") from None
    target = numpy_dtype(dtype)
    if array.dtype == target:  # already the input's dtype (bfloat16 too, which numpy calls 'V')
        return array
    typed = typed_numbers(value, array, target, label)
    if typed is None:
        raise BadRequest(f"{label} expects {target.name} values, got strings or objects")
    return typed if typed.dtype == target else typed.astype(target)


def _unnamed(values: Any) -> Example:
    """One example whose only feature is ``inputs``: a float feature when the values are numbers.

    SageMaker's legacy container typed this feature by the first Python value, so ``[6, 3, 4, 1]``
    became an int64 feature that a model parsing floats rejects. Unnamed numeric features are the
    estimator convention of float columns, so integers are written as floats here; named features
    (a dict) keep the kind of their values.
    """
    items = list(values)
    numeric = all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in items
    )
    return example_from_values({"inputs": items}, kinds={"inputs": "float"} if numeric else None)


def to_examples(value: Any) -> list[Example]:
    """Examples for a classify or regress request from a plain value (see :func:`build_request`)."""
    if isinstance(value, Mapping):
        return [example_from_values(value)]
    if isinstance(value, np.ndarray):
        value = value.tolist() if value.dtype.kind not in "OSU" else list(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [_unnamed([value])]
    if not value:
        raise BadRequest("No examples: the request holds an empty list")
    if all(isinstance(item, Mapping) for item in value):
        return [example_from_values(item) for item in value]
    if any(isinstance(item, Mapping) for item in value):
        raise BadRequest("A list of examples must hold only objects, or only values")
    if all(isinstance(item, (list, tuple, np.ndarray)) for item in value):
        return [_unnamed(item) for item in value]
    return [_unnamed(value)]
