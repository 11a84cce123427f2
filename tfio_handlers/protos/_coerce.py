"""Conversion of TensorFlow's / TF Serving's message objects to ours (and back).

Our classes and TensorFlow's share full names and wire format but are different Python classes
(they live in different descriptor pools), so protobuf refuses to mix them in ``CopyFrom``,
``MergeFrom`` or field assignment. :func:`coerce` bridges the two by a serialize/parse round trip.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

__all__ = ["coerce"]

M = TypeVar("M", bound=Message)


def _describe(value: object) -> str:
    """``module.Class (full.proto.Name)`` for messages, ``module.Class`` for anything else."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(value, Message):
        return f"{name} ({value.DESCRIPTOR.full_name})"
    return name


def coerce(message: object, cls: type[M]) -> M:
    """Return ``message`` as an instance of ``cls``.

    * an instance of ``cls`` is returned unchanged (the common case costs one ``isinstance``);
    * a protobuf message of another class with the same full name (TensorFlow's
      ``tensor_pb2.TensorProto`` for our ``TensorProto``, or the reverse) is re-parsed:
      ``cls.FromString(message.SerializeToString())``, which is lossless because both sides have
      the same fields; the result is a copy, not a view;
    * anything else raises :class:`TypeError` naming both types.
    """
    if isinstance(message, cls):
        return message
    if isinstance(message, Message) and message.DESCRIPTOR.full_name == cls.DESCRIPTOR.full_name:
        return cls.FromString(message.SerializeToString())
    raise TypeError(
        f"expected a {cls.DESCRIPTOR.full_name} message "
        f"({cls.__module__}.{cls.__qualname__} or a class of the same proto type), "
        f"got {_describe(message)}"
    )
