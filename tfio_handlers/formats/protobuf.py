"""Protobuf (``application/x-protobuf``; ``application/octet-stream`` as SageMaker's legacy client sends).

Request message types in: ``PredictRequest``, ``ClassificationRequest``, ``RegressionRequest`` and
``TensorProto``. The type is chosen by the media-type parameter ``proto`` (or ``messageType``), e.g.
``application/x-protobuf; proto=tensorflow.serving.ClassificationRequest``; without one, by the method
(``tfs-method`` custom attribute, else the signature's method, as SageMaker's legacy container did).
Responses go out as the matching response message, tensors as ``tensor_content`` when the backend
wrote them so; ``Accept: application/x-protobuf; proto=tensorflow.TensorProto`` answers a predict with
its single output tensor.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from ..context import Context
from ..errors import BadRequest, NotAcceptable
from ..hookspecs import Register, hookimpl
from ..media import MediaType
from ..protocol.arrays import as_response_message
from ..protocol.requests import choose_method
from ..protos import ClassificationRequest, PredictRequest, RegressionRequest, TensorProto

__all__ = ["decode_protobuf", "encode_protobuf"]

PROTOBUF = "application/x-protobuf"

_BY_NAME: dict[str, type[Message]] = {
    "tensorflow.serving.PredictRequest": PredictRequest,
    "tensorflow.serving.ClassificationRequest": ClassificationRequest,
    "tensorflow.serving.RegressionRequest": RegressionRequest,
    "tensorflow.TensorProto": TensorProto,
}
_BY_METHOD: dict[str, type[Message]] = {
    "predict": PredictRequest,
    "classify": ClassificationRequest,
    "regress": RegressionRequest,
}


def _requested_type(media_type: MediaType) -> str | None:
    return media_type.params.get("proto") or media_type.params.get("messagetype")


def decode_protobuf(body: bytes, media_type: MediaType, context: Context) -> Message:
    """Parse the body as the request message its media type (or the method) names.

    A body that does not parse as the message the method implies, or parses only with fields that
    message does not have (a ``PredictRequest`` sent to a model whose default signature classifies,
    say), is a 400 that names the message expected and how to send another one.
    """
    name = _requested_type(media_type)
    if name is not None:
        cls = _BY_NAME.get(name)
        if cls is None:
            raise BadRequest(
                f"Unsupported protobuf message type {name!r}; expected one of "
                + ", ".join(sorted(_BY_NAME))
            )
    else:
        cls = _BY_METHOD[choose_method(context)]
    context.limits.check_body(len(body))
    full_name = cls.DESCRIPTOR.full_name
    try:
        message = cls.FromString(body)
    except DecodeError as exc:
        detail = f"Invalid {full_name} protobuf: {exc}"
        raise BadRequest(detail if name is not None else _not_implied(full_name, detail)) from None
    if name is None and _has_unknown_fields(message, len(body)):
        raise BadRequest(_not_implied(full_name, f"The body is not a {full_name}"))
    return message


_UNKNOWN_FIELDS_LOOK: Final = 64
"""How many messages :func:`_has_unknown_fields` looks at in a large body, breadth first."""

_SMALL_BODY: Final = 64 * 1024
"""Up to this size a body's message is checked whole (C, a few microseconds)."""


@functools.cache
def _message_fields(descriptor: Descriptor) -> tuple[tuple[str, str], ...]:
    """A message type's fields that hold messages, as ``(name, "single" | "repeated" | "map")``:
    only these are visited (reading a ``bytes`` field would copy it)."""
    fields = []
    for field in descriptor.fields:
        entry = field.message_type
        if field.type != FieldDescriptor.TYPE_MESSAGE or entry is None:
            continue
        if entry.GetOptions().map_entry:
            if entry.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                fields.append((field.name, "map"))
        else:
            fields.append((field.name, "repeated" if field.is_repeated else "single"))
    return tuple(fields)


def _has_unknown_fields(message: Message, size: int) -> bool:
    """Whether parsing kept fields the message type does not declare.

    A small body (``size`` up to :data:`_SMALL_BODY`) is checked whole: ``ByteSize`` before and after
    ``DiscardUnknownFields``, done in C. That re-encodes the message, which for a large one costs
    milliseconds (5 ms for a 1000x784 float tensor), so a large body gets a bounded look instead:
    the first :data:`_UNKNOWN_FIELDS_LOOK` messages, breadth first. A body of another message type
    shows unknown fields near the top (its field numbers mean other things there).
    """
    if size <= _SMALL_BODY:
        before = message.ByteSize()
        message.DiscardUnknownFields()
        return bool(message.ByteSize() != before)
    pending = deque([message])
    looked = 0
    while pending and looked < _UNKNOWN_FIELDS_LOOK:
        current = pending.popleft()
        looked += 1
        if len(UnknownFieldSet(current)):
            return True
        for name, kind in _message_fields(current.DESCRIPTOR):
            if kind == "single":
                if current.HasField(name):
                    pending.append(getattr(current, name))
            elif kind == "map":
                pending.extend(getattr(current, name).values())
            else:
                pending.extend(getattr(current, name))
    return False


def _not_implied(full_name: str, detail: str) -> str:
    """``detail``, and how to send another message than the one the method implies."""
    method = next(m for m, cls in _BY_METHOD.items() if cls.DESCRIPTOR.full_name == full_name)
    return (
        f"{detail}. A protobuf body without a message type must be the request of the model's "
        f"method ({method}: {full_name}). To send another message, name it: "
        f"'Content-Type: {PROTOBUF}; proto=<type>' with one of {', '.join(sorted(_BY_NAME))}, "
        "or choose the method with the custom attribute 'tfs-method=predict|classify|regress'"
    )


def encode_protobuf(response: Any, media_type: MediaType, context: Context) -> bytes:
    """Serialise the response message (or, with ``proto=tensorflow.TensorProto``, its one output)."""
    response = as_response_message(response)
    name = _requested_type(media_type)
    size = response.ByteSize()  # the message is in memory: its size is what the answer copies
    if size > context.limits.max_response_bytes:
        context.limits.check_response(size, response.DESCRIPTOR.full_name, None, PROTOBUF)
    if name in (None, response.DESCRIPTOR.full_name):
        return bytes(response.SerializeToString())
    if name == "tensorflow.TensorProto" and hasattr(response, "outputs"):
        if len(response.outputs) != 1:
            raise NotAcceptable(
                "A TensorProto answer needs exactly one output; this response has "
                f"{len(response.outputs)}: {', '.join(sorted(response.outputs))}"
            )
        return bytes(next(iter(response.outputs.values())).SerializeToString())
    raise NotAcceptable(f"Cannot answer a {response.DESCRIPTOR.full_name} as {name}")


@hookimpl
def register_codecs(register: Register) -> None:
    register(
        PROTOBUF,
        decode=decode_protobuf,
        encode=encode_protobuf,
        aliases=(
            "application/octet-stream",
            "application/protobuf",
            "application/x-google-protobuf",
            "application/vnd.google.protobuf",
        ),
        text=False,
    )
