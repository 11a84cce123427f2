"""``tf.Example`` building from plain values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tfio_handlers.errors import BadRequest
from tfio_handlers.protocol.examples import example_from_values
from tfio_handlers.protos import Example, Feature


def features(example: Example) -> dict[str, tuple[str | None, list[Any]]]:
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return out


def test_example_from_values_kinds() -> None:
    example = example_from_values(
        {
            "int": 3,
            "str": "héllo",
            "bytes": b"\x00\xff",
            "float": 1.5,
            "bool": True,
            "ints": [1, 2, np.int64(3)],
            "mixed_numbers": [1, 2.5],
            "np_float": np.float32(0.25),
            "np_array": np.array([[1, 2], [3, 4]], dtype=np.int32),
            "np_floats": np.array([0.5, 1.5], dtype=np.float64),
            "np_bool": np.array([True, False]),
            "np_str": np.array(["a", "b"]),
            "np_bytes": np.array([b"a", b"b"], dtype=object),
            "nested": [[1, 2], (3,)],
            "empty": [],
        }
    )
    got = features(example)
    assert got["int"] == ("int64_list", [3])
    assert got["str"] == ("bytes_list", ["héllo".encode()])
    assert got["bytes"] == ("bytes_list", [b"\x00\xff"])
    assert got["float"] == ("float_list", [1.5])
    assert got["bool"] == ("int64_list", [1])
    assert got["ints"] == ("int64_list", [1, 2, 3])
    assert got["mixed_numbers"] == ("float_list", [1.0, 2.5])
    assert got["np_float"] == ("float_list", [0.25])
    assert got["np_array"] == ("int64_list", [1, 2, 3, 4])
    assert got["np_floats"] == ("float_list", [0.5, 1.5])
    assert got["np_bool"] == ("int64_list", [1, 0])
    assert got["np_str"] == ("bytes_list", [b"a", b"b"])
    assert got["np_bytes"] == ("bytes_list", [b"a", b"b"])
    assert got["nested"] == ("int64_list", [1, 2, 3])
    assert got["empty"] == (None, [])


def test_example_from_values_forced_kinds() -> None:
    example = example_from_values(
        {"a": [1, 2], "b": [], "c": 3}, kinds={"a": "float", "b": "bytes", "c": "int64"}
    )
    got = features(example)
    assert got["a"] == ("float_list", [1.0, 2.0])
    assert got["b"] == ("bytes_list", [])
    assert got["c"] == ("int64_list", [3])
    with pytest.raises(BadRequest, match="declared int64"):
        example_from_values({"a": 1.5}, kinds={"a": "int64"})
    with pytest.raises(BadRequest, match="Unknown feature kind"):
        example_from_values({"a": 1}, kinds={"a": "double"})  # type: ignore[dict-item]


def test_example_from_values_features_pass_through() -> None:
    feature = Feature()
    feature.float_list.value.extend([1.0])
    assert features(example_from_values({"f": feature})) == {"f": ("float_list", [1.0])}
    tf_feature_pb2 = pytest.importorskip("tensorflow.core.example.feature_pb2")
    theirs = tf_feature_pb2.Feature()
    theirs.int64_list.value.append(7)
    assert features(example_from_values({"f": theirs})) == {"f": ("int64_list", [7])}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"a": None}, "cannot put a NoneType"),
        ({"a": {"b": 1}}, "cannot put a dict"),
        ({"a": ["x", 1]}, "mixes strings and numbers"),
        ({"a": 2**63}, "outside the int64 range"),
        ({"a": np.array([2**64 - 1], dtype=np.uint64)}, "outside the int64 range"),
        ({1: 2}, "Feature names must be strings"),
    ],
)
def test_example_from_values_errors(values: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        example_from_values(values)


def test_deeply_nested_values_do_not_recurse() -> None:
    value: Any = [1]
    for _ in range(50_000):
        value = [value]
    assert features(example_from_values({"a": value})) == {"a": ("int64_list", [1])}


@pytest.mark.tensorflow
def test_examples_parse_in_tensorflow() -> None:
    tf = pytest.importorskip("tensorflow")
    example = example_from_values({"x": [1.5, 2.5], "label": "cat", "n": 3})
    parsed = tf.io.parse_single_example(
        example.SerializeToString(),
        {
            "x": tf.io.FixedLenFeature([2], tf.float32),
            "label": tf.io.FixedLenFeature([], tf.string),
            "n": tf.io.FixedLenFeature([], tf.int64),
        },
    )
    assert parsed["x"].numpy().tolist() == [1.5, 2.5]
    assert parsed["label"].numpy() == b"cat"
    assert int(parsed["n"].numpy()) == 3
