"""TF Serving's JSON examples as ``tf.Example`` messages (``MakeExampleFromJsonObject``).

:func:`example_from_json_object` is TF Serving's ``MakeExampleFromJsonObject``, used for the
``examples`` and ``context`` of classify and regress bodies. Every member becomes a feature, a
scalar counting as a list of one, and **the first value fixes the feature's kind**:

* a string is a ``bytes_list`` entry (its raw bytes), a ``{"b64": "..."}`` object one too (decoded);
* ``true``/``false`` are ``int64_list`` 1/0, and mix freely with integers;
* an integer literal is ``int64_list`` (above 2^63 - 1: ``has uint64_t element``);
* any other number (a fraction, an exponent, NaN, infinity, an integer beyond 64 bits) is a
  ``float_list`` entry, rounded to float32;
* later values must be of the same kind (``[10, 10.0]`` is an error: write ``[10.0, 10.0]``);
  ``null``, nested lists and other objects are errors; ``[]`` is a feature with no kind; when a
  name repeats, the later member wins.
"""

from __future__ import annotations

from typing import Any

from ...errors import BadRequest
from ...protos import Example
from ..examples import INT64_MAX, set_feature
from .parse import members
from .tensor import b64_decode, is_b64_object, is_object, json_type

__all__ = ["example_from_json_object"]


def example_from_json_object(value: Any) -> Example:
    """A parsed JSON object as an Example, exactly as TF Serving converts it.

    ``value`` is a parsed JSON value (``dict``; see :mod:`.parse` for the parser). Raises
    :class:`BadRequest` with TF Serving's message: ``Example must be JSON object but got JSON
    <Type>``, ``Feature: <name> has element with unexpected JSON type: <Type>``, ``Unexpected
    element type in feature: <name> expecting type: <kind>``, ``Feature: <name> has uint64_t
    element. Only int64_t is supported.``, ``Unable to base64 decode``.
    """
    if not is_object(value):
        raise BadRequest(f"Example must be JSON object but got JSON {json_type(value)}")
    example = Example()
    features = example.features.feature
    for name, content in members(value):
        if isinstance(name, bytes):
            raise BadRequest(f"Feature name {name.decode('utf-8', 'replace')!r} is not valid UTF-8")
        kind, values = _json_feature_values(name, content)
        feature = features[name]
        feature.Clear()
        set_feature(feature, kind, values)
    return example


def _json_feature_values(name: str, content: Any) -> tuple[str | None, list[Any]]:
    """``AddValueToFeature`` over a member's value(s): the kind and the values."""
    values = content if type(content) is list else [content]
    if not values:
        return None, []
    kinds = set(map(type, values))
    if kinds == {float}:
        return "float", values
    if kinds == {str}:
        return "bytes", [v.encode("utf-8", "surrogatepass") for v in values]
    if kinds and kinds <= {int, bool}:
        if max(values) > INT64_MAX:
            raise BadRequest(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        return "int64", [int(v) for v in values] if bool in kinds else values
    return _slow_feature_values(name, values)


def _slow_feature_values(name: str, values: list[Any]) -> tuple[str | None, list[Any]]:
    """The value-by-value path, for mixed lists: TF Serving's first error, in its order."""
    kind: str | None = None
    out: list[Any] = []
    for value in values:
        t = type(value)
        if value is None or t is list:
            raise BadRequest(
                f"Feature: {name} has element with unexpected JSON type: {json_type(value)}"
            )
        if t is bool:
            needed = "int64"
        elif is_object(value):
            if not is_b64_object(value):
                raise BadRequest(f"Feature: {name} has element with unexpected JSON type: Object")
            needed = "bytes"
        elif t is str or t is bytes:
            needed = "bytes"
        elif t is float:
            needed = "float"
        else:
            needed = "int64"
        if kind is not None and kind != needed:
            raise BadRequest(f"Unexpected element type in feature: {name} expecting type: {kind}")
        kind = needed
        if t is bool:
            out.append(1 if value else 0)
        elif needed == "bytes":
            if t is str:
                out.append(value.encode("utf-8", "surrogatepass"))
            elif t is bytes:
                out.append(value)
            else:
                decoded = b64_decode(value["b64"])
                if decoded is None:
                    raise BadRequest("Unable to base64 decode")
                out.append(decoded)
        elif needed == "int64" and value > INT64_MAX:
            raise BadRequest(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        else:
            out.append(value)
    return kind, out
