"""Requests over the test models, shared by the gRPC and REST backend tests (no tests here).

Each :class:`Case` is one call (``predict``, ``classify`` or ``regress``) on one of the models in
``tests/conftest.py``'s ``model_root``; every backend must answer it as the embedded backend does.
:func:`assert_same_response` compares answers by value: tensors by dtype, shape and values (so
typed fields and ``tensor_content`` compare equal), everything else as messages.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import Message

from tfio_handlers.backends.base import Backend
from tfio_handlers.protos import (
    DT_STRING,
    ClassificationRequest,
    Example,
    Feature,
    ModelSpec,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
)
from tfio_handlers.tensors import to_ndarray, to_tensor_proto

__all__ = ["CASES", "Case", "Slow", "assert_same_response", "call", "free_port", "spec"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spec(name: str, signature: str = "", version: int | None = None, label: str = "") -> ModelSpec:
    model_spec = ModelSpec(name=name, signature_name=signature)
    if version is not None:
        model_spec.version.value = version
    elif label:
        model_spec.version_label = label
    return model_spec


def example(**features: Any) -> Example:
    """A ``tf.Example`` from keyword lists: floats, ints or bytes by the first value's type."""
    out = Example()
    for name, values in features.items():
        feature: Feature = out.features.feature[name]
        if isinstance(values[0], bytes):
            feature.bytes_list.value.extend(values)
        elif isinstance(values[0], float):
            feature.float_list.value.extend(values)
        else:
            feature.int64_list.value.extend(values)
    return out


def predict(
    model_spec: ModelSpec, output_filter: tuple[str, ...] = (), **inputs: Any
) -> PredictRequest:
    request = PredictRequest(model_spec=model_spec, output_filter=list(output_filter))
    for alias, (values, dtype) in inputs.items():
        request.inputs[alias].CopyFrom(to_tensor_proto(values, dtype))
    return request


def classify(
    model_spec: ModelSpec, examples: list[Example], context: Example | None = None
) -> ClassificationRequest:
    request = ClassificationRequest(model_spec=model_spec)
    if context is None:
        request.input.example_list.examples.extend(examples)
    else:
        request.input.example_list_with_context.examples.extend(examples)
        request.input.example_list_with_context.context.CopyFrom(context)
    return request


def regress(
    model_spec: ModelSpec, examples: list[Example], context: Example | None = None
) -> RegressionRequest:
    classification = classify(model_spec, examples, context)
    return RegressionRequest(model_spec=classification.model_spec, input=classification.input)


@dataclass(frozen=True)
class Case:
    """One backend call and whether TF Serving's REST API can carry it."""

    id: str
    method: str
    build: Callable[[], Message]
    rest: bool = True
    """False where REST cannot say it (half-float inputs): the REST backend answers 501."""


_IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 4.4, 1.4], [6.3, 3.3, 6.0, 2.5]]

CASES: list[Case] = [
    Case(
        "half_plus_two-predict",
        "predict",
        lambda: predict(spec("half_plus_two"), x=([1.0, 2.0, 5.0], "float32")),
    ),
    Case(
        "half_plus_two-predict-2d",
        "predict",
        lambda: predict(spec("half_plus_two", "serving_default"), x=([[1.0], [-3.5]], "float32")),
    ),
    Case(
        "half_plus_two-classify",
        "classify",
        lambda: classify(
            spec("half_plus_two", "classify_x_to_y"), [example(x=[1.0]), example(x=[4.0])]
        ),
    ),
    Case(
        "half_plus_two-regress-context",
        "regress",
        lambda: regress(
            spec("half_plus_two", "regress_x_to_y"),
            [example(x=[1.0]), example(y=[2])],
            context=example(x=[8.0]),
        ),
    ),
    Case(
        "regression-regress",
        "regress",
        lambda: regress(
            spec("regression"), [example(x=[1.5]), example(x=[2.0], k=[3]), example(x=[-1.0])]
        ),
    ),
    Case(
        "iris-classify",
        "classify",
        lambda: classify(spec("iris"), [example(inputs=row) for row in _IRIS]),
    ),
    Case(
        "iris-predict",
        "predict",
        lambda: predict(spec("iris", "predict"), inputs=(_IRIS, "float32")),
    ),
    Case(
        "multi_input-mixed",
        "predict",
        lambda: predict(
            spec("multi_input"),
            a=([[1.0, 2.0], [3.0, 4.5]], "float32"),
            b=([7, -(2**40)], "int64"),
            c=([b"plain", b"\xff\x00binary"], "string"),
        ),
    ),
    Case(
        "multi_input-filter",
        "predict",
        lambda: predict(
            spec("multi_input"),
            ("c_length", "total"),
            a=([[1.0, 2.0]], "float32"),
            b=([1], "int64"),
            c=([b"xyz"], "string"),
        ),
    ),
    Case(
        "multi_input-default",
        "predict",
        lambda: predict(spec("multi_input", "with_default"), a=([1.0, -2.0, 0.25], "float32")),
    ),
    Case(
        "multi_input-default-given",
        "predict",
        lambda: predict(
            spec("multi_input", "with_default"), a=([1.0, 3.0], "float32"), scale=(10.0, "float32")
        ),
    ),
    Case(
        "multi_input-echo",
        "predict",
        lambda: predict(
            spec("multi_input", "echo"),
            f32=([1.5, float("nan"), float("inf")], "float32"),
            f64=([0.1, -1e300, 5e-324], "float64"),
            f16=([0.5, 1.0, -2.0], "float16"),
            i32=([-(2**31), 0, 2**31 - 1], "int32"),
            i64=([-(2**63), 0, 2**63 - 1], "int64"),
            u8=([0, 128, 255], "uint8"),
            flag=([True, False, True], "bool"),
            text=([b"a", "ünï".encode(), b"\x00\xfe"], "string"),
        ),
        rest=False,
    ),
    Case(
        "string_model",
        "predict",
        lambda: predict(
            spec("string_model"), text=([b"hello", "grüße".encode(), b"\xffraw\x01"], "string")
        ),
    ),
    Case(
        "versioned-version-1",
        "predict",
        lambda: predict(spec("versioned", version=1), x=([2.0], "float32")),
    ),
    Case("versioned-latest", "predict", lambda: predict(spec("versioned"), x=([2.0], "float32"))),
    Case(
        "versioned-label",
        "predict",
        lambda: predict(spec("versioned", label="canary"), x=([2.0, 4.0], "float32")),
    ),
]


def call(backend: Any, method: str, request: Message) -> Message:
    """``backend.<method>(request)``."""
    result: Message = getattr(backend, method)(request)
    return result


def _tensor_equal(a: Any, b: Any) -> bool:
    x, y = to_ndarray(a), to_ndarray(b)
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if a.dtype == DT_STRING:
        return bool(x.tolist() == y.tolist())
    return bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))


def assert_same_response(expected: Message, actual: Message) -> None:
    """Equal answers: tensors by value (dtype, shape, values), the rest as messages."""
    assert type(expected) is type(actual), (type(expected), type(actual))
    if isinstance(expected, PredictResponse):
        assert isinstance(actual, PredictResponse)
        assert expected.model_spec == actual.model_spec
        assert set(expected.outputs) == set(actual.outputs)
        for alias, tensor in expected.outputs.items():
            assert _tensor_equal(tensor, actual.outputs[alias]), (
                alias,
                to_ndarray(tensor),
                to_ndarray(actual.outputs[alias]),
            )
        return
    assert expected == actual


class Slow(Backend):
    """Delegates to another backend after sleeping ``delay`` seconds in ``predict``."""

    def __init__(self, inner: Backend, delay: float) -> None:
        super().__init__()
        self.inner, self.delay = inner, delay
        self.default_model = inner.default_model

    def predict(self, request: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.predict(request)

    def classify(self, request: Any) -> Any:
        return self.inner.classify(request)

    def regress(self, request: Any) -> Any:
        return self.inner.regress(request)

    def get_model_metadata(self, request: Any) -> Any:
        return self.inner.get_model_metadata(request)

    def get_model_status(self, request: Any) -> Any:
        return self.inner.get_model_status(request)
