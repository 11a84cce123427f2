"""Proto3 JSON for our messages, resolving ``google.protobuf.Any`` through our private pool.

``json_format`` looks up the type named in an ``Any``'s type URL in the *default* descriptor pool
unless told otherwise; our classes are not there (see :mod:`tfio_handlers.protos._pool`), so a
``GetModelMetadataResponse`` holding a ``SignatureDefMap`` would fail to print. These helpers
always pass ``descriptor_pool=POOL``. ``json_format`` is imported on first use to keep
``import tfio_handlers.protos`` cheap.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.message import Message

from ._pool import POOL

__all__ = ["from_json", "to_json"]

M = TypeVar("M", bound=Message)


def to_json(message: Message, **options: Any) -> str:
    """``json_format.MessageToJson(message, descriptor_pool=POOL, **options)``.

    Works for TensorFlow's classes as well as ours. ``options`` are ``MessageToJson``'s keyword
    arguments (``preserving_proto_field_name``, ``indent``,
    ``always_print_fields_with_no_presence``, ...); the output is the canonical proto3 JSON
    mapping, identical to what TensorFlow's classes give.
    """
    from google.protobuf import json_format

    return json_format.MessageToJson(message, descriptor_pool=POOL, **options)


def from_json(text: str | bytes, cls: type[M], **options: Any) -> M:
    """Parse proto3 JSON into a new ``cls`` instance (``json_format.Parse`` with our pool).

    ``options`` are ``Parse``'s keyword arguments (``ignore_unknown_fields``,
    ``max_recursion_depth``).
    Raises ``google.protobuf.json_format.ParseError`` on malformed input.
    """
    from google.protobuf import json_format

    return json_format.Parse(text, cls(), descriptor_pool=POOL, **options)
