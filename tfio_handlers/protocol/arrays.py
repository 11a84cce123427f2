"""Predict requests and answers as named numpy arrays: the value a request is inside the library.

A predict request changes form as few times as it can: the codecs turn bytes into arrays, the
embedded backend feeds the arrays to TensorFlow and hands back arrays, and the encoders write the
arrays. Protobuf is the form at the edges only: a gRPC or REST backend, the protobuf codec, the
gRPC adapter and user code that asks for messages convert with :meth:`PredictArrays.to_message`,
:meth:`PredictArrays.from_message`, :meth:`Prediction.to_message` and
:meth:`Prediction.from_message`, which share buffers where the layout allows (``tensor_content``
is read as a view, not copied).

Classify and regress requests carry ``tf.Example`` messages, which are already the model's input
form: they stay messages throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf.message import Message

from ..errors import BadRequest, HTTPError, PayloadTooLarge, ServerBusy
from ..protos import ModelSpec, PredictRequest, PredictResponse, coerce
from ..tensors import data_type_of, fills_of_one_request, to_ndarray, to_tensor_proto

__all__ = ["PredictArrays", "Prediction", "as_response_message"]

Array = npt.NDArray[Any]


class PredictArrays:
    """A predict request: named input arrays, the model and signature, the outputs wanted.

    ``inputs`` map input aliases to arrays typed as the signature's inputs; ``model_spec`` names the
    model, its version or label and the signature (empty: the default model's
    ``serving_default``); ``output_filter`` lists the outputs to answer with (empty: all).
    """

    __slots__ = ("inputs", "model_spec", "output_filter")

    def __init__(
        self,
        inputs: Mapping[str, Array],
        model_spec: ModelSpec | None = None,
        output_filter: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.inputs: dict[str, Array] = dict(inputs)
        self.model_spec = model_spec if model_spec is not None else ModelSpec()
        self.output_filter = tuple(output_filter)

    @classmethod
    def from_message(cls, request: PredictRequest | Message) -> PredictArrays:
        """A ``PredictRequest`` (ours or TF Serving's) as arrays: zero-copy for ``tensor_content``.

        A tensor that cannot be read is TF Serving's ``tensor parsing error: <alias>`` (400), its
        reason chained; one this server will not read now (over a limit, 413, or over the
        process's budget of filled tensors while others hold it, 503) keeps its own status.
        """
        message = coerce(request, PredictRequest)
        inputs: dict[str, Array] = {}
        with fills_of_one_request(inputs):
            for alias, proto in message.inputs.items():
                try:
                    inputs[alias] = to_ndarray(proto)
                except (PayloadTooLarge, ServerBusy):
                    raise
                except HTTPError as exc:
                    raise BadRequest(f"tensor parsing error: {alias}") from exc
        return cls(inputs, message.model_spec, list(message.output_filter))

    def to_message(self, *, typed_fields: bool = False) -> PredictRequest:
        """This request as a ``PredictRequest``: each array in ``tensor_content`` (strings in
        ``string_val``), or with ``typed_fields`` in its dtype's ``*_val`` field as TF Serving's
        REST API builds requests."""
        request = PredictRequest()
        request.model_spec.CopyFrom(self.model_spec)
        for alias, array in self.inputs.items():
            request.inputs[alias].CopyFrom(to_tensor_proto(array, typed_fields=typed_fields))
        request.output_filter.extend(self.output_filter)
        return request

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in sorted(self.inputs.items()))
        return f"PredictArrays({{{shapes}}}, model={self.model_spec.name!r})"


def _array(value: Any) -> Array:
    """An output as an array: a rank-0 output comes from TensorFlow's ``.numpy()`` as a numpy
    scalar, which the writers (they read ``.shape`` and ``.dtype`` as an array's) once failed on."""
    return np.asarray(value) if isinstance(value, np.generic) else value


class Prediction:
    """A predict answer: named output arrays and the model spec that answered.

    Made from arrays by the embedded backend, or from a ``PredictResponse`` by a remote one; each
    form is made from the other only when asked for, once. ``typed_fields`` is the layout
    :meth:`to_message` writes (TF Serving's typed ``*_val`` fields, or ``tensor_content``).
    """

    __slots__ = ("_arrays", "_message", "model_spec", "typed_fields")

    def __init__(
        self,
        outputs: Mapping[str, Array] | None = None,
        model_spec: ModelSpec | None = None,
        *,
        message: PredictResponse | None = None,
        typed_fields: bool = True,
    ) -> None:
        self._arrays: dict[str, Array] | None = (
            None if outputs is None else {name: _array(outputs[name]) for name in sorted(outputs)}
        )
        self._message = message
        if model_spec is None:
            model_spec = message.model_spec if message is not None else ModelSpec()
        self.model_spec = model_spec
        self.typed_fields = typed_fields

    @classmethod
    def from_message(cls, response: PredictResponse | Message) -> Prediction:
        """A ``PredictResponse`` (ours or TF Serving's); its tensors are read when first asked for."""
        return cls(message=coerce(response, PredictResponse))

    @property
    def message(self) -> PredictResponse | None:
        """The ``PredictResponse`` this answer was made from or has built, else ``None``."""
        return self._message

    @property
    def outputs(self) -> dict[str, Array]:
        """The outputs as arrays, in name order (zero-copy views of ``tensor_content``)."""
        if self._arrays is None:
            assert self._message is not None
            outputs = self._message.outputs
            self._arrays = {name: to_ndarray(outputs[name]) for name in sorted(outputs)}
        return self._arrays

    def dtypes(self) -> dict[str, int]:
        """Each output's ``DataType``, in name order, without reading the values."""
        if self._message is not None:
            outputs = self._message.outputs
            return {name: int(outputs[name].dtype) for name in sorted(outputs)}
        return {name: data_type_of(array.dtype) for name, array in self.outputs.items()}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each output's shape, in name order, without reading the values."""
        if self._message is not None:
            outputs = self._message.outputs
            return {
                name: tuple(d.size for d in outputs[name].tensor_shape.dim)
                for name in sorted(outputs)
            }
        return {name: array.shape for name, array in self.outputs.items()}

    def to_message(self) -> PredictResponse:
        """This answer as a ``PredictResponse`` (built once, in the :attr:`typed_fields` layout)."""
        if self._message is None:
            response = PredictResponse()
            response.model_spec.CopyFrom(self.model_spec)
            for name, array in self.outputs.items():
                response.outputs[name].CopyFrom(
                    to_tensor_proto(array, typed_fields=self.typed_fields)
                )
            self._message = response
        return self._message

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {list(s)}" for k, s in self.shapes().items())
        return f"Prediction({{{shapes}}}, model={self.model_spec.name!r})"


def as_response_message(response: Any) -> Message:
    """``response`` as a TF Serving response message: a :class:`Prediction`'s ``PredictResponse``,
    any message as it is. For code at the edges that speaks protobuf (user ``output_fn``, the
    protobuf codec)."""
    if isinstance(response, Prediction):
        return response.to_message()
    return response  # type: ignore[no-any-return]
