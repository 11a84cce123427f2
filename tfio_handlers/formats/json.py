"""JSON (``application/json``): TF Serving's REST bodies, and SageMaker's plain bodies.

Request forms, told apart by the body:

* a TF Serving REST body: an object with ``instances`` or ``inputs`` (predict) or ``examples``
  (classify/regress), read exactly as TF Serving does (:mod:`tfio_handlers.protocol.tfs_json`);
  answered in TF Serving's form (``predictions`` for row, ``outputs`` for columnar, ``results``);
* a ``TensorProto`` in proto3 JSON (``{"dtype": "DT_FLOAT", "tensorShape": ..., "floatVal": ...}``), as
  SageMaker's legacy client sent it;
* a plain list (``[6.4, 3.2, 4.5, 1.5]`` is one instance, a list of lists a batch), a scalar, or an
  object of named inputs (legacy container).

Plain bodies are answered in the style ``Settings.json_response_style`` names (``legacy``: the proto3
JSON of the response, as the seed document shows; ``tfs``: TF Serving's REST form). An ``Accept``
parameter overrides it per request: ``application/json; format=legacy|tfs|row|columnar``.

**Several JSON values** (``/invocations`` only: TF Serving's own routes read the first value and
ignore the rest, as TF Serving does, in :mod:`tfio_handlers.protocol.tfs_json`). A plain body that
holds more than one value, as SageMaker Batch Transform sends with ``BatchStrategy=MultiRecord`` and
``SplitType=Line``, is read as JSON lines (:mod:`.jsonlines`: one value a line, one record each),
as SageMaker's TF Serving container reads it, and answered with one prediction per record in the
plain-body style. Anything after a TF Serving request object (``instances``, ``inputs``,
``examples``) is a 400: merging requests is not defined, and ignoring the rest would drop records.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from .. import accelerators
from ..context import Context
from ..errors import BadRequest, HTTPError
from ..hookspecs import Register, hookimpl
from ..media import MediaType, text_of
from ..protocol.requests import choose_method
from ..protocol.responses import response_to_json
from ..protocol.tfs_json import (
    JsonFormat,
    classify_request_from_json,
    predict_arrays_from_json,
    regress_request_from_json,
    simd,
)
from ..protocol.tfs_json import parse as tfs_parse
from ..protocol.tfs_json.parse import Decline, parse_first
from ..protocol.tfs_json.rapidjson_reader import JsonObject
from ..protos import POOL, ModelSpec, TensorProto
from .jsonlines import MEDIA_TYPE as JSON_LINES
from .jsonlines import decode_jsonlines

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["decode_json", "encode_json"]

JSON = "application/json"

_TFS_KEYS = re.compile(rb'"(instances|inputs|examples)"\s*:')
_TENSOR_KEYS = frozenset(
    {
        "dtype",
        "tensorShape",
        "tensor_shape",
        "floatVal",
        "float_val",
        "doubleVal",
        "intVal",
        "int64Val",
        "stringVal",
        "boolVal",
        "tensorContent",
        "halfVal",
        "versionNumber",
        "uint32Val",
        "uint64Val",
    }
)
_FORMS = {"legacy": "legacy", "tfs": "tfs", "row": "row", "columnar": "columnar"}


def _utf8_body(body: bytes, media_type: MediaType) -> bytes:
    """The body as UTF-8 bytes: other charsets are transcoded, unknown ones refused (415)."""
    charset = media_type.charset
    if charset in (None, "utf-8", "utf8", "us-ascii", "ascii"):
        return body[3:] if body.startswith(b"\xef\xbb\xbf") else body
    return text_of(body, media_type).encode("utf-8")


def decode_json(body: bytes, media_type: MediaType, context: Context) -> Any:
    """Decode a JSON body into a TF Serving request or a plain value (see the module docstring)."""
    data = _utf8_body(body, media_type)
    key = _top_level_tfs_key(data)
    if key is not None:
        _refuse_values_after_request(data, key)
        return _decode_tfs(data, key, context)
    fast = _plain_numbers(data, context)
    if fast is not None:
        context.response_form = context.response_form or context.settings.json_response_style
        return fast
    document, end = parse_first(data)
    context.response_form = context.response_form or context.settings.json_response_style
    if _CONTENT.search(data, end) is not None:
        return _decode_several(data, context)
    _check_depth(document, context.limits.max_depth)
    if isinstance(document, JsonObject):
        document = dict(document.items())
    if isinstance(document, dict):
        if document and set(document) <= _TENSOR_KEYS and "dtype" in document:
            try:
                return json_format.ParseDict(document, TensorProto(), descriptor_pool=POOL)
            except json_format.ParseError as exc:
                raise BadRequest(f"Invalid TensorProto JSON: {exc}") from None
        return document
    if isinstance(document, list):
        if (
            document
            and not isinstance(document[0], (list, dict))
            and choose_method(context) == "predict"
        ):
            return [document]
        return document
    return [document]


_CONTENT = re.compile(rb"[^ \t\n\r]")
"""Anything but JSON whitespace."""


def _plain_numbers(data: bytes, context: Context) -> NDArray[Any] | None:
    """A plain numeric body for a predict signature of one float or double input, as the array
    the exact path below would build from it, or ``None`` to run that path.

    ``[[0.1, 0.2], ...]`` bodies are SageMaker's usual form, and the exact path builds one Python
    float per number; :func:`~tfio_handlers.protocol.tfs_json.simd.decode_plain` copies the
    numbers in C when it can prove that :func:`~tfio_handlers.protocol.requests.typed_array`
    would give the very same array from the parsed list (the one cast policy). A flat list is one
    instance, as below. The array is what this codec decodes into; it goes to ``build_request``,
    never to user code (an ``input_fn`` or ``input_handler`` reads the body itself). Without a
    signature, for another dtype or method, the exact path types the list (float32 inferred
    without a signature).
    """
    match = _CONTENT.search(data)
    if match is None or data[match.start()] != 0x5B:  # '['
        return None
    signature = context.signature
    if signature is None or len(signature.inputs) != 1 or choose_method(context) != "predict":
        return None
    array = simd.decode_plain(data, signature, limits=context.limits)
    if array is None:
        return None
    return array.reshape(1, -1) if array.ndim == 1 else array


_JSON_LINES = MediaType(JSON_LINES)


def _decode_several(data: bytes, context: Context) -> Any:
    """A body of several JSON values, read as JSON lines: one value a line, one record each (the
    SageMaker TF Serving container's rule); its errors say how the body was read."""
    try:
        return decode_jsonlines(data, _JSON_LINES, context)
    except BadRequest as exc:
        raise BadRequest(
            "The body holds more than one JSON value, read as JSON lines (one value a line, "
            f"one record each): {exc.message}"
        ) from None


def _maybe_more_after_object(data: bytes) -> bool:
    """Might something other than whitespace follow the body's first object?

    A body that is one object ends with its ``}``. When that ``}`` is the body's only one (a
    numeric body), it is the object's end (or the body is not JSON at all, and the TF Serving
    reader says so): ``bytes`` methods in C decide it. Otherwise the whole body is validated as
    one JSON document (:func:`_one_document`). A ``}`` followed by ``,``, ``]`` or ``}`` is not
    always one inside the object: ``{...},{...}`` is two requests.
    """
    end = len(data.rstrip(b" \t\n\r"))
    if not end or data[end - 1] != 0x7D:  # '}'
        return True
    if data.find(b"}", 0, end - 1) < 0:
        return False
    return not _one_document(data)


_local = threading.local()
_KEEP_PARSER_MAX_BYTES = 1 << 20


def _one_document(data: bytes) -> bool:
    """Whether ``data`` is one JSON document and whitespace, by simdjson's validation (no Python
    objects built: ~1 GB/s) or else a fast parser's; ``False`` also when they cannot tell (numbers
    beyond 64 bits, deep nesting...): the exact reader then says where the first value ends."""
    module = accelerators.simdjson()
    if module is not None:
        parser = getattr(_local, "parser", None)
        if parser is None or len(data) > _KEEP_PARSER_MAX_BYTES:
            parser = module.Parser()
            if len(data) <= _KEEP_PARSER_MAX_BYTES:
                _local.parser = parser
        try:
            parser.parse(data)  # the document's proxy is dropped at once
        except (ValueError, TypeError, RuntimeError, UnicodeDecodeError):
            return False
        return True
    for fast in tfs_parse.FAST_PARSERS:
        try:
            fast(data)
        except Decline:
            continue
        return True
    return False


def _refuse_values_after_request(data: bytes, key: str) -> None:
    """400 when a TF Serving request object is followed by anything but whitespace.

    TF Serving reads the first value and ignores the rest; on ``/invocations`` that would drop every
    record after the first request without a word. A body that is one JSON value (nearly all of
    them: :func:`_maybe_more_after_object`) ends with its object. Otherwise the body's first value
    is read to its end; a body that does not parse is left to the TF Serving reader, which reports
    it in TF Serving's words.
    """
    if not _maybe_more_after_object(data):
        return
    try:
        _, end = parse_first(data)
    except HTTPError:
        return
    extra = _CONTENT.search(data, end)
    if extra is not None:
        raise BadRequest(
            f"The body holds more than a TF Serving request: the {key!r} request object ends at "
            f"offset {end} and more follows at offset {extra.start()}. /invocations takes one "
            "TF Serving request a body; send several records as the request's instances, or as "
            "plain JSON values, one a line"
        )


_CONTAINERS = (list, dict, JsonObject)


def _check_depth(document: Any, max_depth: int) -> None:
    """Refuse a plain body nested deeper than ``max_depth`` lists and objects (400).

    The reader builds documents a million levels deep (TF Serving accepts them under ignored
    keys), but a plain body is all values: what reads it next (numpy, ``repr`` in an error
    message, a ``tf.Example`` builder) recurses. The walk is iterative and visits containers
    only: a list of numbers costs one ``set(map(type, ...))`` in C.
    """
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > max_depth:
            raise BadRequest(f"JSON nesting is deeper than the limit of {max_depth} levels")
        if type(value) is list:
            if _CONTAINER_TYPES.isdisjoint(map(type, value)):
                continue
            children: Any = value
        elif type(value) is dict:
            children = value.values()
        elif isinstance(value, JsonObject):
            children = [item for _, item in value.items()]
        else:
            continue
        pending.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))


_CONTAINER_TYPES = frozenset(_CONTAINERS)


def _top_level_tfs_key(data: bytes) -> str | None:
    """``instances``, ``inputs`` or ``examples`` when the body is an object with that member.

    A regular expression finds candidates (C speed, even in a 25 MB body); a candidate counts only
    at nesting depth 1, so an ``inputs`` feature inside ``examples`` is not mistaken for a
    columnar predict body. Predict keys win over ``examples`` when both appear.
    """
    if data.lstrip()[:1] != b"{":
        return None
    found: set[str] = set()
    for count, match in enumerate(_TFS_KEYS.finditer(data)):
        if count >= 16:
            break
        if _depth_at(data, match.start()) == 1:
            found.add(match.group(1).decode())
            if found & {"instances", "inputs"}:
                break
    if "instances" in found or "inputs" in found:
        return "instances" if "instances" in found else "inputs"
    return "examples" if "examples" in found else None


_EXACT_SCAN_BYTES = 1 << 16


def _depth_at(data: bytes, position: int) -> int:
    """Nesting depth of ``position``: exact (strings and escapes understood) for a short prefix;
    for a long one, bracket counts (a bracket inside a string could mislead only a body that puts
    a huge value before the TF Serving key)."""
    if position > _EXACT_SCAN_BYTES:
        opened = data.count(b"{", 0, position) + data.count(b"[", 0, position)
        closed = data.count(b"}", 0, position) + data.count(b"]", 0, position)
        return opened - closed
    depth = 0
    in_string = False
    escaped = False
    for byte in data[:position]:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return depth


def _decode_tfs(data: bytes, key: str, context: Context) -> Any:
    """A TF Serving body: its request for the signature ``tfs-signature`` names (the body's
    ``signature_name`` wins); the pipeline completes the model spec from the context."""
    spec = ModelSpec(signature_name=context.signature_name or "")
    if key == "examples":
        method = choose_method(context)
        if method == "predict":
            method = "classify"
        context.method = method
        context.response_form = "tfs"
        convert = classify_request_from_json if method == "classify" else regress_request_from_json
        return convert(data, context.signature_defs, model_spec=spec, limits=context.limits)
    request, form = predict_arrays_from_json(
        data, context.signature_defs, model_spec=spec, limits=context.limits
    )
    context.method = "predict"
    context.response_form = "columnar" if form is JsonFormat.COLUMNAR else "row"
    if request.model_spec.signature_name:
        context.signature_name = request.model_spec.signature_name
    return request


def encode_json(response: Any, media_type: MediaType, context: Context) -> bytes:
    """Write the response as JSON in the form the request implied, or the one ``format=`` asks for."""
    requested = media_type.params.get("format")
    if requested is not None:
        form = _FORMS.get(requested.lower())
        if form is None:
            raise BadRequest(
                f"Unknown JSON response format {requested!r}; use legacy, tfs, row or columnar"
            )
        context.response_form = "row" if form == "tfs" else form  # type: ignore[assignment]
    return response_to_json(response, context)


@hookimpl
def register_codecs(register: Register) -> None:
    register(JSON, decode=decode_json, encode=encode_json, aliases=("text/json",))
