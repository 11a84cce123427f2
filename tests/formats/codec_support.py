"""Helpers shared by the codec tests: a SignatureDef and a Context built in one line."""

from __future__ import annotations

from typing import Any

from tfio_handlers.config import Settings
from tfio_handlers.context import Context
from tfio_handlers.protos import DT_FLOAT, PredictResponse, SignatureDef
from tfio_handlers.tensors import to_tensor_proto

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"


def signature(
    inputs: dict[str, tuple[int, list[int] | None]],
    method: str = PREDICT,
    outputs: dict[str, int] | None = None,
) -> SignatureDef:
    """A SignatureDef with ``inputs`` as ``{name: (dtype, shape or None for unknown rank)}``."""
    sig = SignatureDef(method_name=method)
    for name, (dtype, shape) in inputs.items():
        sig.inputs[name].dtype = dtype
        if shape is None:
            sig.inputs[name].tensor_shape.unknown_rank = True
        else:
            sig.inputs[name].tensor_shape.SetInParent()
            for size in shape:
                sig.inputs[name].tensor_shape.dim.add(size=size)
    for name, dtype in (outputs or {"outputs": DT_FLOAT}).items():
        sig.outputs[name].dtype = dtype
    return sig


def context(sig: SignatureDef | None = None, **settings_: Any) -> Context:
    return Context(
        settings=Settings(**settings_),
        signature_defs={"serving_default": sig} if sig is not None else {},
    )


def predict_response(**outputs: Any) -> PredictResponse:
    """A ``PredictResponse`` holding ``outputs`` (name to array), as a remote backend answers."""
    response = PredictResponse()
    for name, array in outputs.items():
        response.outputs[name].CopyFrom(to_tensor_proto(array))
    return response
