"""The public codec kit: every name documented, re-exported (never copied), light to import; and a
third-party-style codec written with the kit alone round-trips requests through a real ``Pipeline``."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfio_handlers
from tfio_handlers import codec
from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest
from tfio_handlers.media import MediaType
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "grpc", "httpx")


def test_the_public_names_are_sorted_unique_and_present() -> None:
    assert codec.__all__ == sorted(set(codec.__all__))
    for name in codec.__all__:
        assert getattr(codec, name) is not None, name


@pytest.mark.parametrize("name", codec.__all__)
def test_every_name_is_documented(name: str) -> None:
    assert f"``{name}" in (codec.__doc__ or ""), f"the module docstring does not explain {name}"
    value = getattr(codec, name)
    if inspect.isfunction(value) or inspect.isclass(value):
        assert value.__doc__ and len(inspect.cleandoc(value.__doc__)) > 20, name
        for attribute, member in vars(value).items():
            if not attribute.startswith("_") and isinstance(member, property):
                assert member.__doc__, f"{name}.{attribute}"


@pytest.mark.parametrize("name", codec.__all__)
def test_every_name_is_the_one_implementation(name: str) -> None:
    value = getattr(codec, name)
    home = getattr(value, "__module__", None)
    if home is not None and home.startswith("tfio_handlers"):
        assert home != "tfio_handlers.codec", f"{name} is defined in codec.py: a second copy"
        assert getattr(sys.modules[home], name) is value


def test_the_kit_is_a_lazy_public_name_of_the_package() -> None:
    assert "codec" in tfio_handlers.__all__ and tfio_handlers.codec is codec


def test_the_kit_imports_no_heavy_dependency() -> None:
    code = (
        "import sys, tfio_handlers\n"
        "tfio_handlers.codec.check_response\n"
        "import tfio_handlers.codec\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_stack_instances_of_scalar_strings_holds_the_strings() -> None:
    """A 0-d instance (a string line) is stacked as its element, not as a nested array."""
    limits = Limits()
    arrays = [codec.array_from_json(v, None, limits, "line") for v in ("x", {"b64": "eXo="})]
    batch = codec.stack_instances(arrays, ["line 1", "line 2"], "c")
    assert batch.dtype == object and batch.tolist() == [b"x", b"yz"]


def test_conform_applies_the_one_cast_policy() -> None:
    spec = codec.InputSpec("b", 9, np.dtype(np.int64), (-1,))  # DT_INT64
    assert codec.conform(np.array([1.0, 2.0]), spec, Limits(), "here").dtype == np.int64
    with pytest.raises(BadRequest, match=r"here: input 'b' \(DT_INT64\)"):
        codec.conform(np.array([1.5]), spec, Limits(), "here")


# -- a third-party codec written with the kit alone ------------------------------------------------

KIT = "text/x-kit"


def decode_kit(body: bytes, media_type: MediaType, context: Context) -> codec.PredictArrays:
    """One JSON object per line, one line per instance: ``{"input": value, ...}``."""
    specs = codec.input_specs(context)
    columns: dict[str, list[Any]] = {}
    wheres: dict[str, list[str]] = {}
    for number, line in enumerate(body.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        codec.check_string(line, context.limits, where)
        for name, value in json.loads(line).items():
            array = codec.array_from_json(value, specs.get(name), context.limits, where)
            columns.setdefault(name, []).append(array)
            wheres.setdefault(name, []).append(where)
    if not columns:
        raise BadRequest("No instances")
    return codec.PredictArrays(
        {
            name: codec.stack_instances(arrays, wheres[name], name)
            for name, arrays in columns.items()
        }
    )


def _plain(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def encode_kit(response: object, media_type: MediaType, context: Context) -> bytes:
    """One JSON object per line: an instance's outputs, an example's classes, or its value."""
    kind = codec.response_kind(response)
    rows: list[Any]
    if kind == "predict":
        codec.check_response(response, context.limits, KIT, codec.nested_text_bytes)
        outputs = codec.predict_outputs(response)
        rows = [
            {name: _plain(array[i : i + 1].tolist()[0]) for name, array in outputs.items()}
            for i in range(codec.batch_size(outputs))
        ]
    elif kind == "classify":
        rows = [dict(row) for row in codec.classification_rows(response)]
    else:
        rows = [{"value": float(v)} for v in codec.regression_values(response)]
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode()


class KitPlugin:
    @codec.hookimpl
    def register_codecs(self, register: codec.Register) -> None:
        register(KIT, decode=decode_kit, encode=encode_kit)


def test_the_codec_is_typed_by_the_kit() -> None:
    decoder: codec.Decoder = decode_kit
    encoder: codec.Encoder = encode_kit
    assert decoder is decode_kit and encoder is encode_kit


def kit_pipeline(backend: Any, limits: Limits | None = None) -> Pipeline:
    settings = Settings.from_env({})
    if limits is not None:
        settings = dataclasses.replace(settings, limits=limits)
    registry = Registry()
    registry.register(KitPlugin(), name="kit")
    return Pipeline(backend, settings=settings, registry=registry)


def model(name: str, signature: str | None = None) -> dict[str, str]:
    value = f"tfs-model-name={name}" + (f",tfs-signature={signature}" if signature else "")
    return {"X-Amzn-SageMaker-Custom-Attributes": value}


@pytest.mark.tensorflow
def test_a_kit_codec_round_trips_through_a_real_model(embedded_backend: Any) -> None:
    pipeline = kit_pipeline(embedded_backend)
    body = b'{"a": [1, 2], "b": 3, "c": "x"}\n{"a": [3.5, 4], "b": 4.0, "c": "yz"}\n'
    answer = pipeline.invoke(body, {"Content-Type": KIT, "Accept": KIT, **model("multi_input")})
    assert answer.status == 200, answer.body
    assert ("content-type", KIT) in answer.headers
    assert [json.loads(line) for line in answer.body.splitlines()] == [
        {"b_doubled": 6, "c_bytes": "x", "c_length": 1, "total": 6.0},
        {"b_doubled": 8, "c_bytes": "yz", "c_length": 2, "total": 11.5},
    ]


@pytest.mark.tensorflow
def test_a_kit_codec_applies_the_one_cast_policy(embedded_backend: Any) -> None:
    pipeline = kit_pipeline(embedded_backend)
    body = b'{"a": [1, 2], "b": 1.5, "c": "x"}\n'
    answer = pipeline.invoke(body, {"Content-Type": KIT, **model("multi_input")})
    assert answer.status == 400
    assert "line 1: input 'b' (DT_INT64)" in json.loads(answer.body)["error"]


@pytest.mark.tensorflow
def test_a_kit_encoder_answers_classify_and_regress(embedded_backend: Any) -> None:
    pipeline = kit_pipeline(embedded_backend)
    regress = pipeline.invoke(
        b'{"examples": [{"x": [4.0]}, {"x": [1.0]}]}',
        {
            "Content-Type": "application/json",
            "Accept": KIT,
            **model("half_plus_two", "regress_x_to_y"),
        },
    )
    assert regress.status == 200, regress.body
    assert [json.loads(line) for line in regress.body.splitlines()] == [
        {"value": 4.0},
        {"value": 2.5},
    ]
    classify = pipeline.invoke(
        b"[6.4, 3.2, 4.5, 1.5]",
        {"Content-Type": "application/json", "Accept": KIT, **model("iris")},
    )
    assert classify.status == 200, classify.body
    (row,) = [json.loads(line) for line in classify.body.splitlines()]
    assert set(row) == {"0", "1", "2"} and max(row, key=row.get) == "1"


@pytest.mark.tensorflow
def test_a_kit_encoder_bounds_its_answer_before_writing(embedded_backend: Any) -> None:
    pipeline = kit_pipeline(embedded_backend, Limits(max_response_bytes=8))
    body = b'{"a": [1, 2], "b": 3, "c": "x"}\n' * 3
    answer = pipeline.invoke(body, {"Content-Type": KIT, "Accept": KIT, **model("multi_input")})
    assert answer.status == 413, answer.body
    assert f"as {KIT}" in json.loads(answer.body)["error"]
