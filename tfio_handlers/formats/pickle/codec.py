"""The pickle codec itself: :func:`decode_pickle` and :func:`encode_pickle`, each refused unless enabled.

A decoded pickle (read by :func:`~.restricted.restricted_loads`, or by ``pickle.loads`` when
unsafe pickles are allowed) is read like a JSON body; a response is pickled as plain data, a
``dict`` of numpy arrays. The rules are the package docstring's.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf.message import Message
from numpy.typing import NDArray

from ...config import Limits
from ...context import Context
from ...errors import (
    BadRequest,
    NotAcceptable,
    UnsupportedMediaType,
)
from ...media import MediaType
from ...protocol.answer_size import binary_bytes, check_response
from ...protocol.requests import choose_method
from .._request import (
    InputSpec,
    array_from_json,
    conform,
    input_specs,
    object_strings,
    stack_instances,
)
from .._response import response_arrays
from .restricted import ValueWalk, restricted_loads

__all__ = ["ALIASES", "MEDIA_TYPE", "PROTOCOL", "decode_pickle", "encode_pickle"]

MEDIA_TYPE = "application/python-pickle"
ALIASES = ("application/x-pickle",)
PROTOCOL = 4
"""The protocol responses are written with: readable by Python 3.4 and later."""

Array = NDArray[Any]

_DISABLED = (
    "application/python-pickle is disabled: unpickling a request can run arbitrary code on the "
    "server. Set TFIO_HANDLERS_ENABLE_PICKLE=1 to accept pickles through a restricted unpickler that "
    "loads only numpy arrays and plain builtin values, or send application/x-npy"
)


# -- decoding --------------------------------------------------------------------------------------


def _tensor(value: Any, spec: InputSpec | None, limits: Limits, where: str) -> Array:
    if isinstance(value, np.ndarray):
        return conform(value, spec, limits, where)
    return array_from_json(value, spec, limits, where)


def _features(mapping: Mapping[str, Any], limits: Limits, where: str) -> dict[str, list[Any]]:
    example: dict[str, list[Any]] = {}
    for name, value in mapping.items():
        if isinstance(value, np.ndarray):
            array = object_strings(value, limits, where) if value.dtype.kind in "OUS" else value
            example[name] = array.ravel().tolist()
            continue
        items = value if isinstance(value, list) else [value]
        values: list[Any] = []
        for item in items:
            if isinstance(item, str):
                item = item.encode("utf-8", "surrogatepass")
            elif item is None or isinstance(item, (list, dict, complex)):
                raise BadRequest(
                    f"{where}: feature {name!r} holds a {type(item).__name__}; a feature holds "
                    "numbers or strings"
                )
            values.append(item)
        example[name] = values
    return example


def _examples(value: Any, limits: Limits) -> list[dict[str, list[Any]]]:
    if isinstance(value, dict):
        return [_features(value, limits, "pickle example")]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_features(v, limits, f"pickle example {i}") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        rows = value.reshape(1) if value.ndim == 0 else value
        return [_features({"inputs": row}, limits, f"pickle row {i}") for i, row in enumerate(rows)]
    if isinstance(value, list):
        if value and all(isinstance(v, (list, np.ndarray)) for v in value):
            return [
                _features(
                    {"inputs": np.asarray(v) if isinstance(v, np.ndarray) else v},
                    limits,
                    f"pickle row {i}",
                )
                for i, v in enumerate(value)
            ]
        return [_features({"inputs": value}, limits, "pickle body")]
    return [_features({"inputs": value}, limits, "pickle body")]


def _instances(value: Any, specs: dict[str, InputSpec], limits: Limits) -> Any:
    if isinstance(value, dict):
        if specs:
            for name in value:
                if name not in specs:
                    raise BadRequest(
                        f"The pickle names {name!r}, which is not an input of the signature "
                        f"(inputs: {', '.join(specs)})"
                    )
        return {
            name: _tensor(item, specs.get(name), limits, f"input {name!r}")
            for name, item in value.items()
        }
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = set(value[0])
        for index, item in enumerate(value):
            if set(item) != keys:
                raise BadRequest(
                    f"pickle instance {index}: keys must be equal to: {','.join(sorted(keys))}"
                )
        return {
            name: stack_instances(
                [
                    _tensor(item[name], specs.get(name), limits, f"pickle instance {i}")
                    for i, item in enumerate(value)
                ],
                [f"pickle instance {i}" for i in range(len(value))],
                name,
            )
            for name in sorted(keys)
        }
    if isinstance(value, (np.ndarray, list)):
        if len(specs) > 1:
            raise BadRequest(
                f"The pickle holds one value, but the signature has inputs {', '.join(specs)}: "
                "pickle a dict naming each input"
            )
        spec = next(iter(specs.values())) if specs else None
        return _tensor(value, spec, limits, "pickle body")
    raise BadRequest(
        f"The pickle holds a {type(value).__name__}; expected an array, a list, or a dict of them"
    )


def decode_pickle(body: bytes, media_type: MediaType, context: Context) -> Any:
    """Decode a pickle body (only when enabled; 415 otherwise). See the module docstring."""
    settings = context.settings
    if not (settings.enable_pickle or settings.unsafe_pickle):
        raise UnsupportedMediaType(_DISABLED)
    limits = context.limits
    limits.check_body(len(body))
    if settings.unsafe_pickle:
        try:
            loaded = pickle.loads(body)
        except Exception as exc:
            raise BadRequest(
                f"Cannot unpickle the body: {type(exc).__name__}: {exc}"[:500]
            ) from None
        if isinstance(loaded, Message):
            return loaded
        value = ValueWalk(limits, max(len(body), limits.max_body_bytes)).value(loaded)
    else:
        value = restricted_loads(body, limits)
    if choose_method(context) != "predict":
        limits.check_examples(len(value) if isinstance(value, (list, np.ndarray)) else 1, "pickle")
        return _examples(value, limits)
    return _instances(value, input_specs(context), limits)


def encode_pickle(response: Any, media_type: MediaType, context: Context) -> bytes:
    """Pickle the response as a plain ``dict`` of numpy arrays (protocol 4); 406 unless enabled.

    Only ``builtins`` and ``numpy`` appear in the pickle, so a client loads it with numpy alone
    (no tfio-handlers, no ml_dtypes).
    """
    settings = context.settings
    if not (settings.enable_pickle or settings.unsafe_pickle):
        raise NotAcceptable(
            "application/python-pickle responses are disabled; set TFIO_HANDLERS_ENABLE_PICKLE=1 "
            "or ask for application/x-npy, application/x-npz or application/json"
        )
    check_response(response, context.limits, MEDIA_TYPE, binary_bytes, overhead=64)
    return pickle.dumps(
        {name: _plain(array) for name, array in response_arrays(response).items()},
        protocol=PROTOCOL,
    )


def _plain(array: NDArray[Any]) -> NDArray[Any]:
    """An array whose pickle needs numpy alone: bfloat16 (an ``ml_dtypes`` type) as float32."""
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else array
