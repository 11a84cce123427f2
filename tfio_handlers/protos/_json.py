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
    import json

    from google.protobuf import json_format

    try:
        return json_format.Parse(text, cls(), descriptor_pool=POOL, **options)
    except json_format.ParseError as error:
        if "Float value too large" not in str(error) and "Float value too small" not in str(error):
            raise
    # protobuf refuses float32 max (and min, its negative) as every writer prints it
    # ("3.4028235e+38", which as a double is just beyond the largest float32, yet rounds to it):
    # read such values as that maximum.
    document = json.loads(text)
    _round_float32_fields(document, cls.DESCRIPTOR)
    return json_format.ParseDict(document, cls(), descriptor_pool=POOL, **options)


_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_ROUNDS_DOWN = 3.4028235677973366e38  # the midpoint to the next float32 step: above, inf


def _round_float32_fields(value: Any, descriptor: Any) -> None:
    """Clamp, in place, the values of ``float`` fields that round to float32 max but exceed it."""
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        field = descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)
        if field is None:
            continue
        if field.cpp_type == field.CPPTYPE_FLOAT:
            if isinstance(item, list):
                value[key] = [_float32(v) for v in item]
            else:
                value[key] = _float32(item)
        elif field.cpp_type == field.CPPTYPE_MESSAGE:
            message = field.message_type
            if message.GetOptions().map_entry:
                inner = message.fields_by_name["value"]
                if inner.cpp_type == inner.CPPTYPE_MESSAGE and isinstance(item, dict):
                    for entry in item.values():
                        _round_float32_fields(entry, inner.message_type)
            elif isinstance(item, list):
                for entry in item:
                    _round_float32_fields(entry, message)
            else:
                _round_float32_fields(item, message)


def _float32(value: Any) -> Any:
    if isinstance(value, float) and _FLOAT32_MAX < abs(value) <= _FLOAT32_ROUNDS_DOWN:
        return _FLOAT32_MAX if value > 0 else -_FLOAT32_MAX
    return value
