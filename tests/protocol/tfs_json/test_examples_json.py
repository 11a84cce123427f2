"""``tf.Example`` from TF Serving JSON objects (``MakeExampleFromJsonObject``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tfio_handlers.errors import BadRequest
from tfio_handlers.protocol.tfs_json.examples import example_from_json_object
from tfio_handlers.protocol.tfs_json.parse import parse_body
from tfio_handlers.protos import Example


def features(example: Example) -> dict[str, tuple[str | None, list[Any]]]:
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return out


def test_example_from_json_object() -> None:
    document = parse_body(b'{"a": [1, 2], "b": "x", "c": 0.5, "d": {"b64": "aGk="}, "e": []}')
    assert features(example_from_json_object(document)) == {
        "a": ("int64_list", [1, 2]),
        "b": ("bytes_list", [b"x"]),
        "c": ("float_list", [0.5]),
        "d": ("bytes_list", [b"hi"]),
        "e": (None, []),
    }


def test_example_from_json_object_errors() -> None:
    with pytest.raises(BadRequest, match=r"^Example must be JSON object but got JSON Array$"):
        example_from_json_object([1])
    with pytest.raises(BadRequest, match=r"^Example must be JSON object but got JSON Null$"):
        example_from_json_object(None)
    with pytest.raises(BadRequest, match="uint64_t"):
        example_from_json_object({"a": [2**63]})
    with pytest.raises(BadRequest, match="not valid UTF-8"):
        example_from_json_object({b"\xff": 1})


def test_large_homogeneous_features() -> None:
    floats = np.random.default_rng(0).random(2000).astype(np.float32).tolist()
    example = example_from_json_object({"f": floats, "i": list(range(2000)), "s": ["a"] * 2000})
    got = features(example)
    assert got["f"][1] == floats
    assert got["i"][1] == list(range(2000))
    assert got["s"] == ("bytes_list", [b"a"] * 2000)
