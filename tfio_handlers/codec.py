"""The codec kit: what a plugin needs to teach tfio-handlers a media type.

A codec is a decoder (request body → request value) and/or an encoder (the backend's answer → response
body) for one media type, declared from a plugin's :func:`register_codecs` hook::

    from tfio_handlers.codec import (
        PredictArrays, binary_bytes, check_response, conform, hookimpl, input_specs,
        predict_outputs, response_kind,
    )
    from tfio_handlers.errors import BadRequest, NotAcceptable

    def decode_thing(body, media_type, context):
        arrays = parse(body)                             # your format: {input name: numpy array}
        specs = input_specs(context)                     # the signature's inputs, by name
        return PredictArrays({
            name: conform(array, specs.get(name), context.limits, f"input {name!r}")
            for name, array in arrays.items()
        })

    def encode_thing(response, media_type, context):
        if response_kind(response) != "predict":
            raise NotAcceptable("thing answers predict only; ask for application/json")
        # 413 before a byte is written: each output's raw bytes bound this format's
        check_response(response, context.limits, media_type.essence, binary_bytes)
        outputs = predict_outputs(response)              # {output name: numpy array}, name order
        return write(outputs)                            # bytes, str, (body, content_type) or None

    @hookimpl
    def register_codecs(register):
        register("application/x-thing", decode=decode_thing, encode=encode_thing, text=False)

``plugins/tfio-handlers-raw-image`` is a complete plugin built this way; ``docs/plugins.md`` tells how
plugins are found, ordered and tested, and :mod:`tfio_handlers.hookspecs` holds the hook contracts.

Reading a request (decoders):

- ``InputSpec``, ``input_specs(context)``: the chosen signature's inputs (dtype, shape) by name.
- ``conform(array, spec, limits, where)``: an array converted to what its input wants by the one cast
  policy (a value may change its type, never its value: ``1.0`` into an integer input is ``1``,
  ``1.5`` is a 400); strings become ``object`` arrays of ``bytes``.
- ``array_from_json(value, spec, limits, where)``: nested lists of numbers, booleans, strings or
  ``{"b64": ...}`` objects as a typed array, rectangular as TF Serving requires.
- ``stack_instances(arrays, wheres, name)``: per-instance arrays stacked into one batched input.
- ``check_string(data, limits, where)``: a string bounded by ``limits.max_string_bytes`` (413).
- ``PredictArrays``: the predict request a decoder returns (named arrays, model spec, output filter).

Writing an answer (encoders):

- ``Prediction``: the predict answer an encoder receives (``.outputs``, ``.to_message()``).
- ``response_kind(response)``: ``"predict"``, ``"classify"`` or ``"regress"``.
- ``predict_outputs``, ``classification_rows``, ``regression_values``, ``response_arrays``: an
  answer as arrays or rows, whether it came as a ``Prediction`` or a message.
- ``batch_size(outputs)``: the outputs' common first dimension, for formats that write one record
  per instance (TF Serving's row-format rule).
- ``check_response(response, limits, media_type, cost)`` and ``check_answer(costs, limits,
  media_type)``: bound an answer before writing it (413 naming the costliest output);
  ``check_response`` costs every output with ``cost(dims, itemsize)``, ``check_answer`` takes
  ``(what, dims, bytes)`` triples for an answer shaped otherwise.
- ``nested_text_bytes``, ``flat_text_bytes``, ``csv_bytes``, ``binary_bytes``: lower bounds of a
  tensor's bytes in the common layouts, each a ``cost`` of ``check_response`` as it is (the text
  bounds ignore ``itemsize``).

Declaring the codec:

- ``hookimpl``: the marker for :func:`register_codecs` (and the catch-all ``decode``/``encode``).
- ``Register``, ``Decoder``, ``Encoder``: the types of ``register`` and of the functions it takes.

Errors are :mod:`tfio_handlers.errors`' (``BadRequest``, ``NotAcceptable``, ``PayloadTooLarge``,
...): raise one to answer with its status. This module re-exports names from where they live; it
imports neither TensorFlow nor an HTTP or gRPC client.
"""

from __future__ import annotations

from .formats._request import (
    InputSpec,
    array_from_json,
    check_string,
    conform,
    input_specs,
    stack_instances,
)
from .formats._response import (
    batch_size,
    classification_rows,
    predict_outputs,
    regression_values,
    response_arrays,
    response_kind,
)
from .hookspecs import Decoder, Encoder, Register, hookimpl
from .protocol.answer_size import (
    binary_bytes,
    check_answer,
    check_response,
    csv_bytes,
    flat_text_bytes,
    nested_text_bytes,
)
from .protocol.arrays import PredictArrays, Prediction

__all__ = [
    "Decoder",
    "Encoder",
    "InputSpec",
    "PredictArrays",
    "Prediction",
    "Register",
    "array_from_json",
    "batch_size",
    "binary_bytes",
    "check_answer",
    "check_response",
    "check_string",
    "classification_rows",
    "conform",
    "csv_bytes",
    "flat_text_bytes",
    "hookimpl",
    "input_specs",
    "nested_text_bytes",
    "predict_outputs",
    "regression_values",
    "response_arrays",
    "response_kind",
    "stack_instances",
]
