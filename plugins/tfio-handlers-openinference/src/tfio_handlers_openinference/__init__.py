"""The Open Inference Protocol V2 over REST, as a tfio-handlers route plugin.

KServe's, Triton's and MLServer's clients talk to a TensorFlow model on any tfio-handlers backend
(embedded SavedModel, TF Serving over gRPC or REST) through these routes:

* ``GET /v2``: server metadata; ``GET /v2/health/live`` and ``/v2/health/ready``;
* ``GET /v2/models/{name}[/versions/{version}]``: model metadata (the signature's inputs and outputs);
* ``GET /v2/models/{name}[/versions/{version}]/ready``;
* ``POST /v2/models/{name}[/versions/{version}]/infer``: JSON tensors, and Triton's binary tensor
  data extension (``Inference-Header-Content-Length``, ``binary_data_size``, ``binary_data_output``
  and per-output ``binary_data``).

An inference request is a predict on the model's ``serving_default`` signature, or the one named by
the request's ``parameters.signature_name`` (this plugin's extension). Every error is a 4xx (or the
503/504 the server gives every route) with the protocol's body ``{"error": "..."}``.
``docs/plugins/openinference.md`` tells the whole mapping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import tfio_handlers
from tfio_handlers.adapters.routes import AddRoute, RouteRequest
from tfio_handlers.codec import InputSpec, check_answer, hookimpl, input_specs, predict_outputs
from tfio_handlers.config import Limits
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, HTTPError, NotFound
from tfio_handlers.pipeline import Response
from tfio_handlers.protocol.answer_size import binary_bytes, flat_text_bytes
from tfio_handlers.protocol.arrays import PredictArrays
from tfio_handlers.protocol.tfs_json.parse import parse_first
from tfio_handlers.protocol.tfs_json.rapidjson_reader import JsonObject
from tfio_handlers.protos import GetModelStatusRequest, ModelSpec

from .tensors import (
    binary_tensor,
    check_dims,
    datatype_of,
    json_tensor,
    read_binary,
    read_json,
    spec_of,
    to_model,
)

__all__ = ["DEFAULT_SIGNATURE", "HEADER_LENGTH", "TFIO_HANDLERS_CONFORMANCE", "register_routes"]

DEFAULT_SIGNATURE = "serving_default"
HEADER_LENGTH = "inference-header-content-length"
"""Triton's header giving the JSON part's length when binary tensor data follows it."""

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
PLATFORM = "tensorflow_savedmodel"
CODEC = "v2"
_AVAILABLE = 30  # ModelVersionStatus.State.AVAILABLE

_INFER_JSON = {
    "id": "1",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}],
    "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
}
_INFER_HEADER = json.dumps(
    {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}
        ]
    }
).encode()

TFIO_HANDLERS_CONFORMANCE: dict[str, Any] = {
    "routes": {
        "examples": [
            {"method": "GET", "path": "/v2", "status": 200},
            {"method": "GET", "path": "/v2/health/live", "status": 200},
            {"method": "GET", "path": "/v2/health/ready", "status": 200},
            {"method": "GET", "path": "/v2/models/half_plus_two", "status": 200},
            {"method": "GET", "path": "/v2/models/half_plus_two/versions/1/ready", "status": 200},
            {
                "method": "POST",
                "path": "/v2/models/half_plus_two/infer",
                "json": _INFER_JSON,
                "headers": {"content-type": JSON},
                "status": 200,
            },
            {
                "method": "POST",
                "path": "/v2/models/half_plus_two/versions/1/infer",
                "body": _INFER_HEADER + b"\x00\x00\x80?\x00\x00\x00@",
                "headers": {
                    "content-type": OCTET_STREAM,
                    HEADER_LENGTH: str(len(_INFER_HEADER)),
                },
                "status": 200,
            },
        ]
    }
}
"""The conformance suite's examples (``tfio_handlers.testing.check_routes``), over a pipeline
serving the ``half_plus_two`` test model (``x`` FP32 -> ``y``): each route's fuzz mutates them."""


def _answer(document: Any, status: int = 200) -> Response:
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return Response(status, body, [("content-type", JSON)], CODEC)


def _error(error: HTTPError) -> Response:
    return Response.error(error, CODEC)


def _number(text: str, digits: int) -> int | None:
    """``text`` as a non-negative integer of at most ``digits`` ASCII digits, else ``None``
    (``str.isdigit`` also takes ``'²'``, which ``int`` refuses, and ``int`` refuses over 4300 digits)."""
    if not text or len(text) > digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _version(request: RouteRequest) -> int | None:
    text = request.params.get("version")
    if text is None or text == "":
        return None
    version = _number(text, 18)
    if version is None:
        raise BadRequest(f"Model version must be a number, got {text[:40]!r}")
    return version


# -- health and metadata ------------------------------------------------------------------------------


def server_live(request: RouteRequest) -> Response:
    """``GET /v2/health/live``: the server answers, so it is live (while the model loads too)."""
    return _answer({"live": True})


def server_ready(request: RouteRequest) -> Response:
    """``GET /v2/health/ready``: what ``/ping`` says; not ready is 400, as the protocol asks of a
    false health answer (a 4xx), with the reason."""
    readiness = request.readiness()
    if readiness.status == 200:
        return _answer({"ready": True})
    try:
        reason = json.loads(readiness.body)["error"]
    except (ValueError, KeyError, TypeError):
        reason = "not ready"
    return _answer({"error": reason}, 400)


def server_metadata(request: RouteRequest) -> Response:
    """``GET /v2``: name, version and the extensions served."""
    return _answer(
        {
            "name": "tfio-handlers",
            "version": tfio_handlers.__version__,
            "extensions": ["binary_tensor_data"],
        }
    )


def _signature(request: RouteRequest, name: str | None) -> tuple[Any, Any]:
    backend: Any = request.pipeline.backend
    resolved = backend.signatures(request.params["name"], _version(request), None)
    chosen = name or DEFAULT_SIGNATURE
    signature = resolved.signature_defs.get(chosen)
    if signature is None:
        raise NotFound(
            f"Model {resolved.name!r} has no signature {chosen!r}; it has: "
            + ", ".join(sorted(resolved.signature_defs))
        )
    return resolved, signature


def _tensor_metadata(infos: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    tensors = []
    for alias in sorted(infos):
        info = infos[alias]
        try:
            datatype = datatype_of(int(info.dtype), f"{what} {alias!r}")
        except BadRequest:
            datatype = ""
        if info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank:
            shape = [int(d.size) for d in info.tensor_shape.dim]
        else:
            shape = [-1]
        tensors.append({"name": alias, "datatype": datatype, "shape": shape})
    return tensors


def model_metadata(request: RouteRequest) -> Response:
    """``GET /v2/models/{name}[/versions/{version}]``: the default signature's tensors."""
    try:
        resolved, signature = _signature(request, None)
        versions = _available_versions(request, resolved)
        return _answer(
            {
                "name": resolved.name,
                "versions": versions,
                "platform": PLATFORM,
                "inputs": _tensor_metadata(signature.inputs, "input"),
                "outputs": _tensor_metadata(signature.outputs, "output"),
            }
        )
    except HTTPError as exc:
        return _error(exc)


def _available_versions(request: RouteRequest, resolved: Any) -> list[str]:
    backend: Any = request.pipeline.backend
    try:
        status = backend.get_model_status(
            GetModelStatusRequest(model_spec=ModelSpec(name=resolved.name))
        )
        found = sorted(
            int(v.version) for v in status.model_version_status if int(v.state) == _AVAILABLE
        )
    except HTTPError:
        found = []
    if not found and resolved.version is not None:
        found = [int(resolved.version)]
    return [str(v) for v in found]


def model_ready(request: RouteRequest) -> Response:
    """``GET /v2/models/{name}[/versions/{version}]/ready``: 200 when the version answers, else 400
    (a false health answer) saying why."""
    try:
        backend: Any = request.pipeline.backend
        resolved = backend.signatures(request.params["name"], _version(request), None)
        return _answer({"name": resolved.name, "ready": True})
    except HTTPError as exc:
        return _answer({"error": exc.message}, 400 if exc.status_code < 500 else exc.status_code)


# -- inference ----------------------------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, JsonObject):
        raise BadRequest(f"{where} repeats a member name")
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    return value


def _parameters(holder: Mapping[str, Any], where: str) -> dict[str, Any]:
    value = holder.get("parameters")
    if value is None:
        return {}
    return _object(value, f"{where}'s parameters")


def _split(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, bytes]:
    """The JSON header and the binary data after it (``Inference-Header-Content-Length``)."""
    declared = headers.get(HEADER_LENGTH)
    if declared is None:
        return body, b""
    length = _number(declared.strip(), 18)
    if length is None:
        raise BadRequest(f"Inference-Header-Content-Length must be a number, got {declared[:40]!r}")
    if length > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {length}, beyond the body of {len(body)} bytes"
        )
    return body[:length], body[length:]


def _parse_header(data: bytes, limits: Limits) -> dict[str, Any]:
    document, end = parse_first(data, max_depth=limits.max_depth)
    if data[end:].strip():
        raise BadRequest(
            "The inference request holds more than one JSON value (binary tensor data needs "
            "the Inference-Header-Content-Length header)"
        )
    return _object(document, "The inference request")


def _inputs(
    header: Mapping[str, Any],
    binary: bytes,
    specs: Mapping[str, InputSpec],
    limits: Limits,
) -> dict[str, Any]:
    listed = header.get("inputs")
    if not isinstance(listed, list) or not listed:
        raise BadRequest("The inference request needs a non-empty 'inputs' list")
    arrays: dict[str, Any] = {}
    position = 0
    for index, raw in enumerate(listed):
        tensor = _object(raw, f"inputs[{index}]")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{index}] needs a 'name' string")
        where = f"input {name!r}"
        at = f"inputs[{index}]"  # the library's messages name the input and dtype after it
        if name in arrays:
            raise BadRequest(f"{where} is given twice")
        if name not in specs:
            raise BadRequest(
                f"{where} is not an input of the signature; it takes: " + ", ".join(sorted(specs))
            )
        client = spec_of(name, tensor.get("datatype"), where)
        dims = check_dims(tensor.get("shape"), limits, where)
        size = _parameters(tensor, where).get("binary_data_size")
        if size is not None:
            if "data" in tensor:
                raise BadRequest(f"{where} has both data and binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadRequest(f"{where}: binary_data_size must be a non-negative integer")
            if size > len(binary) - position:
                raise BadRequest(
                    f"{where}: binary_data_size of {size} bytes goes beyond the "
                    f"{len(binary) - position} bytes of binary data left"
                )
            array = read_binary(binary[position : position + size], dims, client, limits, where)
            position += size
        else:
            if "data" not in tensor:
                raise BadRequest(f"{where} has neither data nor binary_data_size")
            array = read_json(tensor["data"], dims, client, limits, where, at=at)
        arrays[name] = to_model(array, specs[name], limits, at)
    if position != len(binary):
        raise BadRequest(
            f"The request holds {len(binary) - position} bytes of binary data that no input claims"
        )
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise BadRequest("The inference request lacks inputs: " + ", ".join(missing))
    return arrays


def _outputs(
    header: Mapping[str, Any], names: list[str], binary_default: bool
) -> list[tuple[str, bool]]:
    """The outputs to answer and whether each is binary, in the order the request lists them."""
    listed = header.get("outputs")
    if listed is None:
        return [(name, binary_default) for name in names]
    if not isinstance(listed, list):
        raise BadRequest("'outputs' must be a list")
    chosen: list[tuple[str, bool]] = []
    for index, raw in enumerate(listed):
        tensor = _object(raw, f"outputs[{index}]")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"outputs[{index}] needs a 'name' string")
        if name not in names:
            raise BadRequest(
                f"output {name!r} is not an output of the signature; it has: " + ", ".join(names)
            )
        parameters = _parameters(tensor, f"output {name!r}")
        if "classification" in parameters:
            raise BadRequest("The classification extension is not supported")
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise BadRequest(f"output {name!r}: binary_data must be true or false")
        chosen.append((name, binary))
    return chosen


def infer(request: RouteRequest) -> Response:
    """``POST /v2/models/{name}[/versions/{version}]/infer``: a predict on the model's signature."""
    try:
        return _infer(request)
    except HTTPError as exc:
        return _error(exc)


def _infer(request: RouteRequest) -> Response:
    pipeline = request.pipeline
    limits = pipeline.settings.limits
    body = pipeline.decoded_body(request.body, request.headers)
    limits.check_body(len(body))
    head, binary = _split(body, request.headers)
    header = _parse_header(head, limits)
    parameters = _parameters(header, "The inference request")
    signature_name = parameters.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise BadRequest("parameters.signature_name must be a string")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise BadRequest("parameters.binary_data_output must be true or false")
    resolved, signature = _signature(request, signature_name)
    chosen = signature_name or DEFAULT_SIGNATURE
    specs = input_specs(Context(signature_defs={chosen: signature}, signature_name=chosen))
    arrays = _inputs(header, binary, specs, limits)
    wanted = _outputs(header, sorted(signature.outputs), binary_default)
    spec = ModelSpec(name=resolved.name, signature_name=signature_name or DEFAULT_SIGNATURE)
    if resolved.version is not None:
        spec.version.value = int(resolved.version)
    backend: Any = pipeline.backend
    prediction = backend.predict_arrays(
        PredictArrays(arrays, spec, [name for name, _ in wanted] if "outputs" in header else ())
    )
    outputs = predict_outputs(prediction)
    check_answer(
        [
            (
                f"output {name!r}",
                outputs[name].shape,
                (binary_bytes if is_binary else flat_text_bytes)(
                    outputs[name].shape, outputs[name].dtype.itemsize
                ),
            )
            for name, is_binary in wanted
            if name in outputs
        ],
        limits,
        JSON,
    )
    tensors: list[dict[str, Any]] = []
    payloads: list[bytes] = []
    for name, is_binary in wanted:
        if name not in outputs:
            raise BadRequest(f"The model did not answer output {name!r}")
        where = f"output {name!r}"
        if is_binary:
            tensor, payload = binary_tensor(name, outputs[name], where)
            tensors.append(tensor)
            payloads.append(payload)
        else:
            tensors.append(json_tensor(name, outputs[name], where))
    document: dict[str, Any] = {"model_name": resolved.name, "outputs": tensors}
    if resolved.version is not None:
        document["model_version"] = str(resolved.version)
    if isinstance(header.get("id"), str):
        document["id"] = header["id"]
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    if not payloads:
        return Response(200, text, [("content-type", JSON)], CODEC)
    return Response(
        200,
        b"".join([text, *payloads]),
        [("content-type", OCTET_STREAM), ("inference-header-content-length", str(len(text)))],
        CODEC,
    )


@hookimpl
def register_routes(add_route: AddRoute) -> None:
    """The V2 REST routes: health and server metadata answer at once (``health``), model metadata
    and readiness beside the work pool (``light``), inference in it (``model``)."""
    add_route("GET", "/v2", server_metadata, work="health", name="v2:server-metadata")
    add_route("GET", "/v2/health/live", server_live, work="health", name="v2:live")
    add_route("GET", "/v2/health/ready", server_ready, work="health", name="v2:ready")
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        add_route("GET", prefix, model_metadata, work="light", name="v2:model-metadata")
        add_route("GET", prefix + "/ready", model_ready, work="light", name="v2:model-ready")
        add_route("POST", prefix + "/infer", infer, work="model", name="v2:infer")
