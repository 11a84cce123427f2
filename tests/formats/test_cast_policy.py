"""One cast policy (:mod:`tfio_handlers.tensors.casting`): the same numbers get the same answer in every
plain format.

A record of numbers (or strings) for a model input of one dtype (int32, int64, float32, string) is sent
as plain JSON, one JSON lines line, one CSV row and an npy array of shape ``[1, k]``, through the real
pipeline over a real SavedModel whose signatures echo their input. Every format must answer alike: the
same tensor (the same response bytes), or a 400 in all of them, and the answer must be the policy's:
whole-number floats fit integer inputs; a fraction, NaN, infinity, a value out of range, or a float beyond
2**53 is a 400. TF Serving JSON bodies keep TF Serving's rule (``1.0`` for int32 is its 400).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.registry import Registry
from tfio_handlers.tensors.casting import integer_from_text

pytestmark = pytest.mark.tensorflow

DTYPES = ("int32", "int64", "float32", "string")
"""One signature per dtype, named after it: ``x`` of shape ``[None, None]`` -> ``y = x``."""

INT64 = (-(2**63), 2**63 - 1)
SAFE = 2**53


def build_cast_model(export_dir: Path) -> None:
    import tensorflow as tf

    class Echo(tf.Module):  # type: ignore[misc]
        pass

    module = Echo()
    signatures = {}
    for name in DTYPES:
        dtype = getattr(tf, name)

        def echo(x: Any) -> Any:
            return {"y": tf.identity(x)}

        function = tf.function(echo, input_signature=[tf.TensorSpec([None, None], dtype, "x")])
        setattr(module, name, function)
        signatures[name] = function
    tf.saved_model.save(module, str(export_dir), signatures=signatures)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    pytest.importorskip("tensorflow")
    from tfio_handlers.backends.embedded import EmbeddedBackend

    root = tmp_path_factory.mktemp("cast_policy") / "models"
    build_cast_model(root / "cast" / "1")
    backend = EmbeddedBackend(root, default_model="cast")
    yield Pipeline(backend, settings=Settings.from_env({}), registry=Registry())
    backend.close()


# -- bodies ----------------------------------------------------------------------------------------


def npy_body(record: list[Any]) -> bytes | None:
    """``record`` as an npy array of shape ``[1, k]``; None when npy cannot carry the same values
    (an integer beyond int64; integers beyond 2**53 beside floats, which float64 would round)."""
    if all(isinstance(v, str) for v in record):
        array = np.array([record], dtype=str)
    elif all(type(v) is int for v in record):
        if not all(INT64[0] <= v <= INT64[1] for v in record):
            return None
        array = np.array([record], dtype=np.int64)
    else:
        if any(type(v) is int and abs(v) > SAFE for v in record):
            return None
        array = np.array([record], dtype=np.float64)
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def csv_body(record: list[Any]) -> bytes:
    text = io.StringIO()
    strings = all(isinstance(v, str) for v in record)
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    if not strings:
        writer = csv.writer(text, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow([v if isinstance(v, str) else repr(v) for v in record])
    return text.getvalue().encode()


def json_text(record: list[Any]) -> bytes:
    # Python's json writes NaN and Infinity tokens, which the JSON readers take, as TF Serving does.
    return json.dumps(record).encode()


def bodies(record: list[Any], formats: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
    out = {
        "json": ("application/json", json_text(record)),
        "jsonlines": ("application/jsonlines", json_text(record) + b"\n"),
        "csv": ("text/csv", csv_body(record)),
    }
    npy = npy_body(record)
    if npy is not None:
        out["npy"] = ("application/x-npy", npy)
    return {name: body for name, body in out.items() if name in formats}


def ask(pipeline: Pipeline, dtype: str, content_type: str, body: bytes) -> tuple[int, bytes]:
    response = pipeline.invoke(
        body,
        {
            "Content-Type": content_type,
            "Accept": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": f"tfs-model-name=cast,tfs-signature={dtype}",
        },
    )
    return response.status, response.body


def answers(
    pipeline: Pipeline, dtype: str, record: list[Any], formats: tuple[str, ...]
) -> dict[str, tuple[int, bytes]]:
    return {
        name: ask(pipeline, dtype, content_type, body)
        for name, (content_type, body) in bodies(record, formats).items()
    }


# -- the policy, written plainly ------------------------------------------------------------------


def expected(dtype: str, record: list[Any]) -> list[Any] | None:
    """The values the model should see, or None for a 400 (the rule of the module docstring)."""
    if dtype == "string":
        return [v.encode() for v in record] if all(isinstance(v, str) for v in record) else None
    if any(isinstance(v, str) for v in record):
        return None
    if dtype == "float32":
        out = []
        for v in record:
            if type(v) is int:
                # numpy's int64/uint64 -> float32 (the JSON readers read a wider integer as a double)
                wide = np.array([v]) if -(2**63) <= v < 2**64 else np.array([float(v)])
                out.append(float(wide.astype(np.float32)[0]))
                continue
            with np.errstate(over="ignore"):
                narrowed = np.float32(v)
            if math.isfinite(v) and not math.isfinite(narrowed):
                return None
            out.append(float(narrowed))
        return out
    info = np.iinfo(dtype)
    ints = []
    for v in record:
        if type(v) is float:
            if not math.isfinite(v) or not v.is_integer() or abs(v) > SAFE:
                return None
            v = int(v)
        if not info.min <= v <= info.max:
            return None
        ints.append(v)
    return ints


def check(got: dict[str, tuple[int, bytes]], dtype: str, record: list[Any]) -> None:
    statuses = {status for status, _ in got.values()}
    assert len(statuses) == 1, got
    want = expected(dtype, record)
    status = statuses.pop()
    if want is None:
        assert status == 400, got
        for _, body in got.values():
            message = json.loads(body)["error"]
            assert "'x'" in message or "x" in message.split(":")[0], message  # names the input
            assert "{{node" not in message
        return
    assert status == 200, got
    assert len({body for _, body in got.values()}) == 1, got
    y = json.loads(next(iter(got.values()))[1])["outputs"]["y"]
    field = {"int32": "intVal", "int64": "int64Val", "float32": "floatVal", "string": "stringVal"}
    values = y.get(field[dtype], [])
    if dtype == "int64":
        values = [int(v) for v in values]
    elif dtype == "string":
        import base64

        values = [base64.b64decode(v) for v in values]
    elif dtype == "float32":
        # float32 values are written in their shortest form (2147483600.0 for 2**31)
        values = [float(np.float32(float(v))) for v in values]
        assert all(
            (a == b) or (math.isnan(a) and math.isnan(b)) for a, b in zip(values, want, strict=True)
        ), (values, want)
        return
    assert values == want, (values, want)


# -- strategies -----------------------------------------------------------------------------------

EDGES = [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63)]
integers = st.one_of(st.integers(-1000, 1000), st.sampled_from(EDGES), st.integers(*INT64))
whole_floats = st.one_of(
    st.integers(-(2**31), 2**31).map(float),
    st.sampled_from([float(e) for e in EDGES] + [2e3, -0.0, 1e19, 2.0**60, 3.4e38, 1e300]),
)
other_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, -1.5, math.nan, math.inf, -math.inf, 1e-300]),
)
numbers = st.one_of(integers, whole_floats, other_floats)
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
# Text a string input takes in every format: no NUL (npy's fixed-width strings drop trailing NULs)
# and no lone surrogates (not text in any of the formats).
texts = st.text(
    st.characters(blacklist_categories=SURROGATES, blacklist_characters="\x00"), max_size=8
)


def records(dtype: str) -> st.SearchStrategy[list[Any]]:
    if dtype == "string":
        return st.lists(texts, min_size=1, max_size=4)
    return st.lists(numbers, min_size=1, max_size=4)


FORMATS = ("json", "jsonlines", "npy")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_json_jsonlines_and_npy_answer_alike_by_the_policy(
    pipeline: Pipeline, dtype: str, data: st.DataObject
) -> None:
    record = data.draw(records(dtype))
    check(answers(pipeline, dtype, record, FORMATS), dtype, record)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_csv_answers_as_the_other_formats_do(
    pipeline: Pipeline, dtype: str, data: st.DataObject
) -> None:
    record = data.draw(st.lists(st.one_of(integers, whole_floats), min_size=1, max_size=4))
    check(answers(pipeline, dtype, record, (*FORMATS, "csv")), dtype, record)


@pytest.mark.parametrize("dtype", ["float32", "string"])
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_csv_answers_as_the_other_formats_do_for_float_and_string_inputs(
    pipeline: Pipeline, dtype: str, data: st.DataObject
) -> None:
    record = data.draw(records(dtype))
    check(answers(pipeline, dtype, record, (*FORMATS, "csv")), dtype, record)


# -- examples, one per format ---------------------------------------------------------------------


def one(pipeline: Pipeline, dtype: str, name: str, record: list[Any]) -> tuple[int, Any]:
    ((content_type, body),) = bodies(record, (name,)).values()
    status, text = ask(pipeline, dtype, content_type, body)
    return status, json.loads(text)


@pytest.mark.parametrize("name", FORMATS)
def test_whole_floats_fit_an_int32_input(pipeline: Pipeline, name: str) -> None:
    status, body = one(pipeline, "int32", name, [1.0, 2e3, -0.0])
    assert status == 200, body
    assert body["outputs"]["y"]["intVal"] == [1, 2000, 0]


@pytest.mark.parametrize("name", [*FORMATS, "csv"])
@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1.5, "value 1.5 has a fraction; int32 takes whole numbers only"),
        (math.nan, "value nan is not a whole number"),
        (math.inf, "value inf is not a whole number"),
        (3e9, "value 3000000000 is out of range for int32"),
    ],
)
def test_a_float_that_is_not_a_whole_int32_is_a_400_naming_input_value_and_dtype(
    pipeline: Pipeline, name: str, value: float, words: str
) -> None:
    status, body = one(pipeline, "int32", name, [1, value])
    assert status == 400, body
    if name != "csv":  # CSV words it its own way today (see test_csv_answers_as_the_other_...)
        assert words in body["error"] and "input 'x' (DT_INT32)" in body["error"], body


@pytest.mark.parametrize("name", FORMATS)
def test_a_float_beyond_2_53_is_a_400_for_int64(pipeline: Pipeline, name: str) -> None:
    status, body = one(pipeline, "int64", name, [2.0**60])
    assert status == 400 and "send it as an integer literal" in body["error"], body
    status, body = one(pipeline, "int64", name, [2**60])  # the integer literal is exact
    assert status == 200 and body["outputs"]["y"]["int64Val"] == [str(2**60)], body


@pytest.mark.parametrize("name", ["json", "jsonlines"])
def test_booleans_are_refused_in_numeric_inputs_even_among_numbers(
    pipeline: Pipeline, name: str
) -> None:
    for dtype in ("int32", "float32"):
        status, body = one(pipeline, dtype, name, [True, 2])
        assert status == 400 and "expects numbers, got booleans" in body["error"], body


@pytest.mark.parametrize("name", [*FORMATS, "csv"])
def test_a_finite_float_beyond_float32_is_a_400(pipeline: Pipeline, name: str) -> None:
    status, body = one(pipeline, "float32", name, [1e300])
    assert status == 400 and "out of range" in body["error"], body


@pytest.mark.parametrize("name", ["json", "jsonlines", "npy"])
def test_numbers_are_refused_by_a_string_input(pipeline: Pipeline, name: str) -> None:
    status, body = one(pipeline, "string", name, [1.0])
    assert status == 400 and "expects strings" in body["error"], body


def test_csv_cells_are_text_for_a_string_input(pipeline: Pipeline) -> None:
    status, body = ask(pipeline, "string", "text/csv", b"1.0,2\n")
    assert (
        status == 200
        and body
        and json.loads(body)["outputs"]["y"]["stringVal"]
        == [
            "MS4w",  # b"1.0"
            "Mg==",  # b"2"
        ]
    )


def test_tf_serving_json_keeps_tf_servings_rule(pipeline: Pipeline) -> None:
    status, body = ask(pipeline, "int32", "application/json", b'{"instances": [[1.0, 2.0]]}')
    assert status == 400
    assert json.loads(body)["error"].endswith(
        "Error: INVALID_ARGUMENT: JSON Value: 1.0 Type: Number is not of expected type: int32"
    )
    status, body = ask(pipeline, "int32", "application/json", b'{"instances": [[1, 2]]}')
    assert status == 200 and json.loads(body) == {"predictions": [[1, 2]]}


def test_csv_integer_text_rule() -> None:
    """The parser the CSV reader uses for cells of integer inputs."""
    assert integer_from_text("12") == 12 and integer_from_text("1.0") == 1
    assert integer_from_text("2e3") == 2000 and integer_from_text(str(2**70)) == 2**70
    for text, reason in [
        ("1.5", "fraction"),
        ("nan", "whole"),
        ("inf", "whole"),
        ("1e19", "integer literal"),
    ]:
        with pytest.raises(ValueError, match=reason):
            integer_from_text(text)
    with pytest.raises(ValueError):
        integer_from_text("one")
