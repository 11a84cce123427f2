"""``tf.Example`` building from plain Python/numpy values.

:func:`example_from_values` builds an Example from a mapping of plain values, the convenience
SageMaker's legacy container offered (``int`` → int64, ``str``/``bytes`` → bytes, ``float`` →
float), without its defects: the kind is decided from all the values, not the first, and bools,
numpy scalars and arrays (of any shape, flattened), nested lists and ``Feature`` messages are
accepted. A ``kinds`` mapping may force a feature's kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import numpy as np
from google.protobuf.message import Message

from ..errors import BadRequest
from ..protos import Example, Feature, coerce

__all__ = ["INT64_MAX", "INT64_MIN", "FeatureKind", "example_from_values", "set_feature"]

FeatureKind = Literal["bytes", "float", "int64"]
"""A ``tf.train.Feature`` kind, by TF Serving's name for it."""

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)


def set_feature(feature: Feature, kind: str | None, values: list[Any]) -> None:
    """Put ``values`` in ``feature``'s list of ``kind`` (``None``: an empty feature, no kind)."""
    if kind == "bytes":
        feature.bytes_list.value.extend(values)
    elif kind == "float":
        feature.float_list.value.extend(values)
    elif kind == "int64":
        feature.int64_list.value.extend(values)


def example_from_values(
    values: Mapping[str, Any], *, kinds: Mapping[str, FeatureKind] | None = None
) -> Example:
    """An Example with one feature per item of ``values``.

    Each value is a scalar (a list of one) or a list, tuple or numpy array of any shape
    (flattened, row-major) of: ``str``/``bytes`` (→ ``bytes_list``, str as UTF-8), ``bool`` and
    integers, Python or numpy (→ ``int64_list``; must fit int64), floats, Python or numpy (→
    ``float_list``, float32). A list mixing integers and floats is a ``float_list``. A
    ``tf.train.Feature`` (ours or TensorFlow's) is taken as it is. ``kinds`` forces a feature's
    kind (``"bytes"``, ``"float"``, ``"int64"``): integers then become floats for ``float``, and
    anything that does not fit is an error; an empty list gets the forced kind, or none.

    Raises :class:`BadRequest` for ``None``, nested mappings, strings mixed with numbers, and
    integers outside int64.
    """
    example = Example()
    features = example.features.feature
    for name, value in values.items():
        if not isinstance(name, str):
            raise BadRequest(f"Feature names must be strings, got {type(name).__name__}")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(
                f"Feature name {name.encode('utf-8', 'replace').decode()!r} is not valid UTF-8"
            ) from None
        forced = kinds.get(name) if kinds else None
        if forced is not None and forced not in ("bytes", "float", "int64"):
            raise BadRequest(f"Unknown feature kind {forced!r} for feature {name!r}")
        feature = features[name]
        if isinstance(value, Message):
            try:
                feature.CopyFrom(coerce(value, Feature))
            except TypeError as error:
                raise BadRequest(f"Feature {name!r}: {error}") from None
            continue
        kind, items = _plain_feature_values(name, value, forced)
        if kind is not None and not items:
            getattr(feature, f"{kind}_list").SetInParent()
        else:
            set_feature(feature, kind, items)
    return example


def _flatten(name: str, value: Any) -> list[Any]:
    """The leaves of a scalar, list/tuple or array, in row-major order (iteratively)."""
    if isinstance(value, np.ndarray):
        return (
            list(value.ravel().tolist())
            if value.dtype != object
            else _flatten(name, list(value.ravel()))
        )
    if not isinstance(value, (list, tuple)):
        return [value]
    out: list[Any] = []
    stack: list[Iterable[Any]] = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, (list, tuple)):
                stack.append(iter(item))
                break
            if isinstance(item, np.ndarray):
                if item.dtype == object:
                    stack.append(iter(list(item.ravel())))
                    break
                out.extend(item.ravel().tolist())
            else:
                out.append(item)
        else:
            stack.pop()
    return out


def _plain_feature_values(
    name: str, value: Any, forced: FeatureKind | None
) -> tuple[FeatureKind | None, list[Any]]:
    items = _flatten(name, value)
    if not items:
        return forced, []
    strings = False
    floats = False
    ints = False
    normalized: list[Any] = []
    for item in items:
        if isinstance(item, np.generic):
            item = item.item()
        if isinstance(item, str):
            strings = True
            normalized.append(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, (bytes, bytearray)):
            strings = True
            normalized.append(bytes(item))
        elif isinstance(item, bool):
            ints = True
            normalized.append(int(item))
        elif isinstance(item, int):
            ints = True
            normalized.append(item)
        elif isinstance(item, float):
            floats = True
            normalized.append(item)
        else:
            raise BadRequest(
                f"Feature {name!r}: cannot put a {type(item).__name__} value in a tf.Example"
            )
    if strings and (ints or floats):
        raise BadRequest(f"Feature {name!r} mixes strings and numbers")
    kind: FeatureKind = "bytes" if strings else "float" if floats else "int64"
    if forced is not None and forced != kind:
        if forced == "float" and kind == "int64":
            kind = "float"
        else:
            raise BadRequest(f"Feature {name!r} holds {kind} values, but is declared {forced}")
    if kind == "int64":
        low, high = min(normalized), max(normalized)
        if low < INT64_MIN or high > INT64_MAX:
            raise BadRequest(f"Feature {name!r} holds an integer outside the int64 range")
    elif kind == "float":
        normalized = [float(v) for v in normalized]
    return kind, normalized
