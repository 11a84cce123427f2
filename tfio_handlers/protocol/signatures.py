"""Signatures: which method a signature serves, and TF Serving's lookup and structural rules.

TensorFlow 2 exports every signature with ``method_name`` ``tensorflow/serving/predict``, even one
that parses serialized ``tf.Example`` protos and answers ``classes``/``scores`` like an estimator's
classifier. So a signature's method is recognised in two steps (:func:`signature_method`):

1. by ``method_name`` when it says classify or regress (estimator exports, TF 1 builders, models
   whose export rewrote it);
2. otherwise by shape: exactly one input, named ``inputs``, of dtype DT_STRING, and
   * outputs a non-empty subset of ``classes`` (DT_STRING) and ``scores`` (DT_FLOAT): classify;
   * exactly one output, ``outputs`` (DT_FLOAT): regress.

Everything else is predict. TF Serving itself never chooses: the client names the verb. The choice
matters where the client does not (a SageMaker ``/invocations`` body without ``tfs-method``).

The ``check_*`` functions apply the rules TF Serving checks before it runs a signature
(``predict_util.cc``, ``classifier.cc``, ``regressor.cc``), with its error texts and statuses: a
status of InvalidArgument or FailedPrecondition is HTTP 400 (:class:`~tfio_handlers.errors.BadRequest`),
Internal is 500 (:class:`~tfio_handlers.errors.InternalError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from ..context import Method
from ..errors import BadRequest, InternalError
from ..protos import DEFAULT_SIGNATURE, DT_FLOAT, DT_STRING, SignatureDef, coerce

__all__ = [
    "CLASSIFY_INPUTS",
    "CLASSIFY_METHOD_NAME",
    "CLASSIFY_OUTPUT_CLASSES",
    "CLASSIFY_OUTPUT_SCORES",
    "DEFAULT_SIGNATURE",
    "METHOD_NAMES",
    "PREDICT_METHOD_NAME",
    "REGRESS_INPUTS",
    "REGRESS_METHOD_NAME",
    "REGRESS_OUTPUTS",
    "ClassifySignature",
    "Method",
    "RegressSignature",
    "check_classify_signature",
    "check_predict_inputs",
    "check_predict_signature",
    "check_regress_signature",
    "default_method",
    "find_signature",
    "is_classify_signature",
    "is_regress_signature",
    "output_aliases",
    "signature_method",
    "signature_text",
]

"""The signature used when a request names none (``kDefaultServingSignatureDefKey``)."""

PREDICT_METHOD_NAME = "tensorflow/serving/predict"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
REGRESS_METHOD_NAME = "tensorflow/serving/regress"

METHOD_NAMES: dict[Method, str] = {
    "predict": PREDICT_METHOD_NAME,
    "classify": CLASSIFY_METHOD_NAME,
    "regress": REGRESS_METHOD_NAME,
}
"""Method to the ``method_name`` TF Serving writes for it."""

CLASSIFY_INPUTS = "inputs"
CLASSIFY_OUTPUT_CLASSES = "classes"
CLASSIFY_OUTPUT_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"

_BY_METHOD_NAME: dict[str, Method] = {
    CLASSIFY_METHOD_NAME: "classify",
    REGRESS_METHOD_NAME: "regress",
}


def _ours(signature: Any) -> SignatureDef:
    return coerce(signature, SignatureDef)


def signature_text(signature: SignatureDef) -> str:
    """``signature`` in protobuf text format, as TF Serving's ``SignatureDef.DebugString()``."""
    return text_format.MessageToString(signature)


def _has_one_string_input(signature: SignatureDef) -> bool:
    if len(signature.inputs) != 1 or CLASSIFY_INPUTS not in signature.inputs:
        return False
    return signature.inputs[CLASSIFY_INPUTS].dtype == DT_STRING


def is_classify_signature(signature: SignatureDef) -> bool:
    """Whether ``signature`` looks like a classifier (see the module docstring), method aside."""
    signature = _ours(signature)
    if not _has_one_string_input(signature):
        return False
    outputs = signature.outputs
    names = set(outputs)
    if not names or not names <= {CLASSIFY_OUTPUT_CLASSES, CLASSIFY_OUTPUT_SCORES}:
        return False
    if CLASSIFY_OUTPUT_CLASSES in outputs and outputs[CLASSIFY_OUTPUT_CLASSES].dtype != DT_STRING:
        return False
    return not (
        CLASSIFY_OUTPUT_SCORES in outputs and outputs[CLASSIFY_OUTPUT_SCORES].dtype != DT_FLOAT
    )


def is_regress_signature(signature: SignatureDef) -> bool:
    """Whether ``signature`` looks like a regressor (see the module docstring), method aside."""
    signature = _ours(signature)
    if not _has_one_string_input(signature):
        return False
    outputs = signature.outputs
    return set(outputs) == {REGRESS_OUTPUTS} and outputs[REGRESS_OUTPUTS].dtype == DT_FLOAT


def signature_method(signature: SignatureDef) -> Method:
    """The method ``signature`` serves: by ``method_name`` when it says classify/regress, else by
    shape (:func:`is_classify_signature`, :func:`is_regress_signature`), else ``"predict"``.

    Takes our ``SignatureDef`` or TensorFlow's.
    """
    signature = _ours(signature)
    by_name = _BY_METHOD_NAME.get(signature.method_name)
    if by_name is not None:
        return by_name
    if is_classify_signature(signature):
        return "classify"
    if is_regress_signature(signature):
        return "regress"
    return "predict"


def find_signature(
    signature_defs: Mapping[str, SignatureDef],
    signature_name: str | None,
    method: Method = "predict",
) -> tuple[str, SignatureDef]:
    """``(name, SignatureDef)`` for ``signature_name`` (empty or ``None``: ``serving_default``).

    A missing signature raises :class:`BadRequest` with TF Serving's text for ``method``:
    ``Serving signature key "<name>" not found.`` (predict, FailedPrecondition) or
    ``No signature was found with the name: <name>`` (classify and regress, InvalidArgument).
    """
    name = signature_name or DEFAULT_SIGNATURE
    signature = signature_defs.get(name)
    if signature is None:
        if method == "predict":
            raise BadRequest(f'Serving signature key "{name}" not found.')
        raise BadRequest(f"No signature was found with the name: {name}")
    return name, signature


def default_method(
    signature_defs: Mapping[str, SignatureDef], signature_name: str | None = None
) -> Method:
    """The method of ``signature_name`` (default ``serving_default``) in ``signature_defs``.

    Raises :class:`BadRequest` (``Serving signature key "<name>" not found.``) when it is absent.
    """
    _, signature = find_signature(signature_defs, signature_name, "predict")
    return signature_method(signature)


def check_predict_signature(signature: SignatureDef, *, method_name_check: bool = False) -> None:
    """TF Serving's ``VerifySignature``: with ``method_name_check`` (its
    ``--enable_signature_method_name_check``), the method must be predict, classify or regress."""
    if method_name_check and signature.method_name not in _ALL_METHOD_NAMES:
        raise InternalError(
            "Expected prediction signature method_name to be one of {"
            f"{PREDICT_METHOD_NAME}, {CLASSIFY_METHOD_NAME}, {REGRESS_METHOD_NAME}}}. "
            f"Was: {signature.method_name}"
        )


_ALL_METHOD_NAMES = frozenset(METHOD_NAMES.values())


@dataclass(frozen=True, slots=True)
class ClassifySignature:
    """The parts of a classification signature that a classify call uses."""

    input_alias: str
    """Always ``inputs``: the DT_STRING input that takes the serialized examples."""
    classes: str | None
    """``classes`` when the signature has that output, else ``None``."""
    scores: str | None
    """``scores`` when the signature has that output, else ``None``."""


@dataclass(frozen=True, slots=True)
class RegressSignature:
    """The parts of a regression signature that a regress call uses."""

    input_alias: str
    output_alias: str


def check_classify_signature(
    signature: SignatureDef, *, method_name_check: bool = False
) -> ClassifySignature:
    """TF Serving's ``PreProcessClassification``: raise its errors, or say which outputs to read.

    Checks, in its order: the method name (only with ``method_name_check``), exactly one input,
    one or two outputs, an input named ``inputs``, an output named ``classes`` or ``scores``.
    The dtypes and shapes of the outputs are checked on the tensors the model returns.
    """
    if method_name_check and signature.method_name != CLASSIFY_METHOD_NAME:
        raise BadRequest(
            f"Expected classification signature method_name to be {CLASSIFY_METHOD_NAME}. "
            f"Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise BadRequest("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise BadRequest(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if CLASSIFY_INPUTS not in signature.inputs:
        raise BadRequest(
            f"No classification inputs found in SignatureDef: {signature_text(signature)}"
        )
    classes = CLASSIFY_OUTPUT_CLASSES if CLASSIFY_OUTPUT_CLASSES in signature.outputs else None
    scores = CLASSIFY_OUTPUT_SCORES if CLASSIFY_OUTPUT_SCORES in signature.outputs else None
    if classes is None and scores is None:
        raise BadRequest(
            "Expected classification signature outputs to contain at least one of "
            f'"{CLASSIFY_OUTPUT_CLASSES}" or "{CLASSIFY_OUTPUT_SCORES}". '
            f"Signature was: {signature_text(signature)}"
        )
    return ClassifySignature(CLASSIFY_INPUTS, classes, scores)


def check_regress_signature(
    signature: SignatureDef, *, method_name_check: bool = False
) -> RegressSignature:
    """TF Serving's ``PreProcessRegression``: raise its errors, or name the input and output.

    Checks, in its order: the method name (only with ``method_name_check``), exactly one input,
    exactly one output, an input named ``inputs``, an output named ``outputs``. The output's dtype
    and shape are checked on the tensor the model returns.
    """
    if method_name_check and signature.method_name != REGRESS_METHOD_NAME:
        raise BadRequest(
            f"Expected regression signature method_name to be {REGRESS_METHOD_NAME}. "
            f"Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise BadRequest("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise BadRequest("Expected one output Tensor.")
    if REGRESS_INPUTS not in signature.inputs:
        raise BadRequest(f"No regression inputs found in SignatureDef: {signature_text(signature)}")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise BadRequest(
            f"No regression outputs found in SignatureDef: {signature_text(signature)}"
        )
    return RegressSignature(REGRESS_INPUTS, REGRESS_OUTPUTS)


# -- TF Serving's checks of a predict request against its signature ---------------------------------


def _joined(names: Iterable[str]) -> str:
    return ",".join(sorted(names))


def check_predict_inputs(request_inputs: Iterable[str], signature: SignatureDef) -> None:
    """TF Serving's checks of a predict request's input names (``PreProcessPrediction``), with its
    messages: no extra input, and every missing one has a default. Shared by the embedded backend and
    the REST backend's client (TF Serving's REST API ignores extra inputs instead; its gRPC API, whose
    answers both backends give, refuses them)."""
    request_names = set(request_inputs)
    signature_names = set(signature.inputs)
    n_request, n_signature = len(request_names), len(signature_names)
    if n_request > n_signature or (n_request < n_signature and not signature.defaults):
        raise BadRequest(
            f"input size does not match signature: {n_request}!={n_signature} "
            f"len({{{_joined(request_names)}}}) != len({{{_joined(signature_names)}}}). "
            f"Sent extra: {{{_joined(request_names - signature_names)}}}. "
            f"Missing but required: {{{_joined(signature_names - request_names)}}}."
        )
    for alias in sorted(signature_names - request_names):
        if alias not in signature.defaults:
            raise BadRequest(
                f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) not "
                "found in request and no default value provided. Inputs expected to be in "
                f"the request {{{_joined(request_names)}}}, or default input alias set: "
                f"{_joined(signature.defaults)}"
            )
    if request_names - signature_names:
        raise BadRequest(
            f"Inputs contains invalid name. Used request inputs: "
            f"{_joined(request_names & signature_names)}, request input: {_joined(request_names)}"
        )


def output_aliases(output_filter: Sequence[str], signature: SignatureDef) -> list[str]:
    """The outputs to answer with: ``output_filter`` checked as TF Serving checks it (each known,
    none twice), else all of the signature's, in name order."""
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise BadRequest(
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {{{_joined(signature.outputs)}}}."
            )
        if alias in seen:
            raise BadRequest(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)
