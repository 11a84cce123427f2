"""The in-process benchmark groups of ``benchmarks/run.py``: codecs against the code they replace.

Every group first checks that every contender produces the same tensor (bit for bit), then times
them side by side with :func:`harness.compare`. TensorFlow and ``tensorflow-serving-api`` are
loaded in this process: they are the baselines, and a serving process of the embedded backend has
them loaded too.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from harness import Goal, GroupResult, Table, Timing, calls_fast_path, compare, fmt_ratio, fmt_time

ROOT = Path(__file__).resolve().parent.parent

DT_FLOAT = 1


def _signatures(dims: tuple[int, ...]) -> dict[str, Any]:
    """``serving_default`` predict with one float input ``x`` of shape ``[-1, *dims[1:]]``."""
    from tfio_handlers.protos import SignatureDef

    signature = SignatureDef(method_name="tensorflow/serving/predict")
    signature.inputs["x"].name = "x:0"
    signature.inputs["x"].dtype = DT_FLOAT  # type: ignore[assignment]
    shape = signature.inputs["x"].tensor_shape
    for i, d in enumerate(dims):
        shape.dim.add().size = -1 if i == 0 else d
    signature.outputs["y"].name = "y:0"
    signature.outputs["y"].dtype = DT_FLOAT  # type: ignore[assignment]
    return {"serving_default": signature}


def _same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
        raise AssertionError(f"{what}: tensors differ ({a.dtype}{a.shape} vs {b.dtype}{b.shape})")


def _timing_cells(timings: dict[str, Timing], names: list[str]) -> list[str]:
    return [timings[name].text() if name in timings else "n/a" for name in names]


# -- JSON decode --------------------------------------------------------------------------------------

JSON_SIZES: dict[str, tuple[int, ...]] = {
    "1x4": (1, 4),
    "100x784": (100, 784),
    "1000x784": (1000, 784),
    "8x224x224x3": (8, 224, 224, 3),
}


def bench_json(repeats: int, target: float) -> GroupResult:
    """JSON ``{"instances"|"inputs": ...}`` → PredictRequest, every size, row and columnar."""
    import simdjson
    import tensorflow as tf

    from tfio_handlers.context import Context
    from tfio_handlers.formats.json import decode_json
    from tfio_handlers.media import MediaType
    from tfio_handlers.protocol.tfs_json import requests as rest_json
    from tfio_handlers.protocol.tfs_json import simd as _simd

    result = GroupResult("json")
    mt = MediaType("application/json")
    parser = simdjson.Parser()
    rng = np.random.default_rng(0)
    names = [
        "legacy: json.loads + tf.make_tensor_proto",
        "raw simdjson parse",
        "ours: formats.json (as served)",
        "ours: fast path alone (simd.decode_predict)",
        "ours: exact path alone (fast path off)",
    ]
    legacy, raw, served, fast, exact = names
    table = Table(
        "JSON predict body → PredictRequest (float32)",
        ["body", "bytes", *names, "legacy / served", "served / raw parse", "fast / raw parse"],
    )
    for label, shape in JSON_SIZES.items():
        array = rng.random(shape, dtype=np.float32)
        sigs = _signatures(shape)
        for key, form in (("instances", "row"), ("inputs", "columnar")):
            body = json.dumps({key: array.tolist()}).encode()

            def run_legacy(body: bytes = body, key: str = key) -> Any:
                return tf.make_tensor_proto(json.loads(body)[key], dtype=tf.float32)

            def run_served(body: bytes = body, sigs: Any = sigs) -> Any:
                return decode_json(body, mt, Context(signature_defs=sigs))

            def run_fast(body: bytes = body, sigs: Any = sigs) -> Any:
                return _simd.decode_predict(body, sigs)

            def run_exact(body: bytes = body, sigs: Any = sigs) -> Any:
                saved = _simd._simdjson
                _simd._simdjson = None  # as without pysimdjson: decode_predict declines
                try:
                    return rest_json.predict_arrays_from_json(body, sigs)
                finally:
                    _simd._simdjson = saved

            def run_raw(body: bytes = body) -> None:
                parser.parse(body)  # the proxy dies here, so the parser can be reused

            _same(tf.make_ndarray(run_legacy()), array, f"{label} {form} legacy")
            _same(run_served().inputs["x"], array, f"{label} {form} served")
            fast_answer = run_fast()
            if fast_answer is None:
                raise AssertionError(f"{label} {form}: the fast path declined a numeric body")
            _same(fast_answer.array, array, f"{label} {form} fast")
            _same(run_exact()[0].inputs["x"], array, f"{label} {form} exact")
            result.checks.append(f"JSON {label} {form}: all four decoders give the same tensor")
            timings = compare(
                {
                    legacy: run_legacy,
                    raw: run_raw,
                    served: run_served,
                    fast: run_fast,
                    exact: run_exact,
                },
                repeats,
                target=target,
            )
            t = {name: timing.median for name, timing in timings.items()}
            table.rows.append(
                [
                    f"{label} {form}",
                    f"{len(body) / 1e6:.2f} MB" if len(body) > 1e5 else f"{len(body)} B",
                    *_timing_cells(timings, names),
                    fmt_ratio(t[legacy] / t[served]),
                    fmt_ratio(t[served] / t[raw]),
                    fmt_ratio(t[fast] / t[raw]),
                ]
            )
            result.raw[f"{label} {form}"] = {n: timings[n].median for n in names}
            if label in ("1000x784", "8x224x224x3"):
                proof = compare(
                    {
                        "translate": lambda body=body: body.translate(None, _simd._NON_STRUCTURAL),
                        "count": lambda body=body: _simd._count_open(body),
                    },
                    repeats,
                    target=target,
                )
                integrated = calls_fast_path(run_served)
                for who, median in (
                    ("as served (formats.json)", t[served]),
                    ("fast path function", t[fast]),
                ):
                    served_row = who.startswith("as served")
                    speedup = t[legacy] / median
                    over_raw = median / t[raw]
                    why = ""
                    if served_row and not integrated:
                        why = (
                            f"formats.json does not call the simdjson fast path yet (it runs the "
                            f"exact path); the fast path alone: {fmt_ratio(t[legacy] / t[fast])}"
                            f" / {fmt_ratio(t[fast] / t[raw])}"
                        )
                    elif over_raw > 1.5:
                        why = (
                            f"the complete rectangularity proof costs one pass over the body "
                            f"(bytes.translate {fmt_time(proof['translate'].median)}, or "
                            f"counting '[' {fmt_time(proof['count'].median)} plus one proxy per "
                            f"row), on top of the parse ({fmt_time(t[raw])}) and the buffer copy"
                        )
                    result.goals.append(
                        Goal(
                            f"JSON {label} {form} → request ≥ 20x legacy, {who}",
                            fmt_ratio(speedup),
                            speedup >= 20,
                            "" if speedup >= 20 else f"short by {20 / speedup:.2f}x; {why}",
                        )
                    )
                    result.goals.append(
                        Goal(
                            f"JSON {label} {form} → request within 1.5x of a raw simdjson parse, {who}",
                            fmt_ratio(over_raw),
                            over_raw <= 1.5,
                            "" if over_raw <= 1.5 else f"over by {over_raw / 1.5:.2f}x; {why}",
                        )
                    )
    result.tables.append(_bench_json_plain(result, repeats, target))
    table.notes.append(
        "legacy = `tf.make_tensor_proto(json.loads(body)[key], dtype=tf.float32)`; raw simdjson "
        "parse = `parser.parse(body)` with a reused parser, building nothing: the floor. "
        "'as served' is the JSON codec the pipeline calls (formats.json → rest_json); 'fast path' is "
        "`protocol.tfs_json.simd.decode_predict`, the simdjson path the codec calls first when "
        "pysimdjson is installed; 'exact path alone' is `rest_json.predict_arrays_from_json` with the fast path "
        "switched off (as without pysimdjson): TF Serving's rules in Python, what the fast path "
        "saves."
    )
    result.tables.insert(0, table)
    return result


PLAIN_SIZES: dict[str, tuple[int, ...]] = {"1x4": (1, 4), "1000x784": (1000, 784)}


def _bench_json_plain(result: GroupResult, repeats: int, target: float) -> Table:
    """Issue 17: a plain JSON list of lists on ``/invocations`` (``[[...], ...]``, SageMaker's
    usual body) → request, against the same numbers as ``{"instances": ...}``; both through the
    codec as served and ``build_request``, as the pipeline calls them."""
    import simdjson

    from tfio_handlers.context import Context
    from tfio_handlers.formats.json import decode_json
    from tfio_handlers.media import MediaType
    from tfio_handlers.protocol.requests import build_request
    from tfio_handlers.protocol.tfs_json import simd as _simd

    mt = MediaType("application/json")
    parser = simdjson.Parser()
    rng = np.random.default_rng(3)
    names = [
        "raw simdjson parse (plain body)",
        "ours: plain list (as served)",
        'ours: {"instances": ...} (as served)',
        "ours: plain list, exact path (fast path off)",
    ]
    raw, plain, instances, exact = names
    table = Table(
        'Plain JSON list of lists → request (float32 input), against {"instances": ...}',
        ["body", "bytes", *names, "plain / instances", "plain / raw parse", "exact / plain"],
    )
    for label, shape in PLAIN_SIZES.items():
        array = rng.random(shape, dtype=np.float32)
        sigs = _signatures(shape)
        plain_body = json.dumps(array.tolist()).encode()
        instances_body = json.dumps({"instances": array.tolist()}).encode()

        def run_served(body: bytes, sigs: Any = sigs) -> Any:
            context = Context(signature_defs=sigs)
            return build_request(decode_json(body, mt, context), context)

        def run_exact(body: bytes = plain_body) -> Any:
            saved = _simd._simdjson
            _simd._simdjson = None  # as without pysimdjson
            try:
                return run_served(body)
            finally:
                _simd._simdjson = saved

        def run_raw(body: bytes = plain_body) -> None:
            parser.parse(body)  # the proxy dies here, so the parser can be reused

        contenders = {
            raw: run_raw,
            plain: lambda body=plain_body: run_served(body),
            instances: lambda body=instances_body: run_served(body),
            exact: run_exact,
        }
        for name in (plain, instances, exact):
            _same(contenders[name]().inputs["x"], array, f"plain {label}: {name}")
        result.checks.append(
            f"JSON plain list {label}: as served, as instances and on the exact path, the same "
            "tensor"
        )
        timings = compare(contenders, repeats, target=target)
        t = {name: timing.median for name, timing in timings.items()}
        ratio = t[plain] / t[instances]
        table.rows.append(
            [
                label,
                f"{len(plain_body) / 1e6:.2f} MB"
                if len(plain_body) > 1e5
                else f"{len(plain_body)} B",
                *_timing_cells(timings, names),
                fmt_ratio(ratio),
                fmt_ratio(t[plain] / t[raw]),
                fmt_ratio(t[exact] / t[plain]),
            ]
        )
        result.raw[f"plain {label}"] = dict(t)
        if label == "1000x784":
            result.goals.append(
                Goal(
                    "JSON plain list of lists 1000x784 → request within 1.3x of the same numbers as "
                    '{"instances": ...}',
                    fmt_ratio(ratio),
                    ratio <= 1.3,
                    "" if ratio <= 1.3 else f"over by {ratio / 1.3:.2f}x",
                )
            )
    table.notes.append(
        "As the pipeline decodes: `build_request(formats.json.decode_json(body, ...), context)`, a "
        "signature with one float32 input. The plain body takes the simdjson fast path "
        "(`simd.decode_plain`) where the one cast policy's exact path would give the same array; "
        "'exact path' is the same call with pysimdjson switched off."
    )
    return table


# -- protobuf decode ----------------------------------------------------------------------------------


def bench_protobuf(repeats: int, target: float) -> GroupResult:
    """``PredictRequest`` bytes → ndarray."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from tfio_handlers.context import Context
    from tfio_handlers.formats.protobuf import decode_protobuf
    from tfio_handlers.media import MediaType
    from tfio_handlers.protos import PredictRequest
    from tfio_handlers.tensors import to_ndarray, to_tensor_proto

    result = GroupResult("protobuf")
    mt = MediaType("application/x-protobuf")
    names = ["legacy: FromString + tf.make_ndarray", "ours: formats.protobuf + to_ndarray"]
    legacy, ours = names
    table = Table("PredictRequest bytes → ndarray (float32)", ["tensor", *names, "ratio"])
    rng = np.random.default_rng(1)
    for label, shape in (("1x4", (1, 4)), ("1000x784", (1000, 784))):
        array = rng.random(shape, dtype=np.float32)
        request = PredictRequest()
        request.model_spec.name = "m"
        request.inputs["x"].CopyFrom(to_tensor_proto(array))
        data = request.SerializeToString()
        context = Context(method="predict", signature_defs=_signatures(shape))

        def run_legacy(data: bytes = data) -> Any:
            return tf.make_ndarray(predict_pb2.PredictRequest.FromString(data).inputs["x"])

        def run_ours(data: bytes = data, context: Any = context) -> Any:
            return to_ndarray(decode_protobuf(data, mt, context).inputs["x"])

        ours_array = run_ours()
        _same(run_legacy(), array, f"protobuf {label} legacy")
        _same(ours_array, array, f"protobuf {label} ours")
        zero_copy = not ours_array.flags.owndata and not ours_array.flags.writeable
        result.checks.append(
            f"protobuf {label}: same tensor; ours is a read-only view of tensor_content "
            f"(no copy after the parse): {zero_copy}"
        )
        timings = compare({legacy: run_legacy, ours: run_ours}, repeats, target=target)
        ratio = timings[legacy].median / timings[ours].median
        table.rows.append([label, *_timing_cells(timings, names), fmt_ratio(ratio)])
        result.raw[label] = {n: timings[n].median for n in names}
        result.goals.append(
            Goal(
                f"protobuf PredictRequest {label} → ndarray ≥ 2x FromString + tf.make_ndarray",
                fmt_ratio(ratio),
                ratio >= 2,
                "" if ratio >= 2 else "both sides are bound by the same parse and copy",
            )
        )
        if label == "1000x784":
            result.goals.append(
                Goal(
                    "zero-copy read of tensor_content where alignment allows",
                    "view" if zero_copy else "copy",
                    zero_copy,
                )
            )
    table.notes.append(
        "Both sides parse the bytes (one copy into the message). `to_ndarray` then reads "
        "`tensor_content` once and returns an `np.frombuffer` view of it; `tf.make_ndarray` copies "
        "again."
    )
    result.tables.append(table)
    return result


# -- response encode ----------------------------------------------------------------------------------


def _predict_response(array: np.ndarray) -> Any:
    """A PredictResponse as the embedded backend answers: typed ``float_val`` (packed)."""
    from tfio_handlers.protos import PredictResponse

    response = PredictResponse()
    response.model_spec.name = "m"
    response.model_spec.signature_name = "serving_default"
    response.model_spec.version.value = 1
    out = response.outputs["scores"]
    out.dtype = DT_FLOAT  # type: ignore[assignment]
    for d in array.shape:
        out.tensor_shape.dim.add().size = d
    raw = array.astype("<f4").tobytes()
    length = len(raw)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            varint.append(byte | 0x80)
        else:
            varint.append(byte)
            break
    out.MergeFromString(bytes(((5 << 3) | 2,)) + bytes(varint) + raw)
    return response


def bench_response(repeats: int, target: float) -> GroupResult:
    """PredictResponse [1000, 784] → JSON, both response forms, against MessageToJson."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow_serving.apis import predict_pb2

    from tfio_handlers.context import Context
    from tfio_handlers.formats.json import encode_json
    from tfio_handlers.media import MediaType
    from tfio_handlers.protocol.responses import response_to_legacy_json
    from tfio_handlers.protocol.tfs_json import JsonFormat, predict_response_to_json

    result = GroupResult("response")
    array = np.random.default_rng(2).random((1000, 784), dtype=np.float32)
    response = _predict_response(array)
    tf_response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    mt = MediaType("application/json")
    names = [
        "legacy: MessageToJson",
        "legacy: make_ndarray + tolist + json.dumps",
        "ours: TF Serving JSON (formats.json, as served)",
        "ours: TF Serving JSON (rest_json)",
        "ours: proto-JSON, seed form (responses.response_to_legacy_json)",
    ]
    mtj, dumps, served, tfs, legacy_form = names

    def run_served() -> bytes:
        return encode_json(response, mt, Context(response_form="row"))

    contenders: dict[str, Callable[[], Any]] = {
        mtj: lambda: json_format.MessageToJson(tf_response),
        dumps: lambda: json.dumps(
            {"predictions": tf.make_ndarray(tf_response.outputs["scores"]).tolist()}
        ),
        served: run_served,
        tfs: lambda: predict_response_to_json(response, JsonFormat.ROW),
        legacy_form: lambda: response_to_legacy_json(response),
    }

    def floats_of(text: bytes | str, path: str) -> np.ndarray:
        doc = json.loads(text)
        if path == "predictions":
            return np.array(doc["predictions"], np.float32)
        values = doc["outputs"]["scores"]["floatVal"]
        return np.array(values, np.float32).reshape(array.shape)

    for name, path in (
        (mtj, "proto"),
        (dumps, "predictions"),
        (served, "predictions"),
        (tfs, "predictions"),
        (legacy_form, "proto"),
    ):
        _same(floats_of(contenders[name](), path), array, f"response {name}")
    result.checks.append(
        "response [1000,784]: every encoder's JSON parses back to the same float32 values"
    )
    timings = compare(contenders, repeats, target=target)
    t = {n: timings[n].median for n in names}
    table = Table(
        "PredictResponse [1000, 784] float32 → JSON",
        ["encoder", "time", "MessageToJson / this", "tolist+dumps / this", "bytes"],
    )
    for name in names:
        size = len(contenders[name]())
        table.rows.append(
            [
                name,
                timings[name].text(),
                fmt_ratio(t[mtj] / t[name]),
                fmt_ratio(t[dumps] / t[name]),
                f"{size / 1e6:.1f} MB",
            ]
        )
    table.notes.append(
        "The response holds its values in `float_val`, as TF Serving and the embedded backend "
        "answer. Every output is checked to parse back to the same float32 values."
    )
    result.tables.append(table)
    result.raw = t
    for name, form in ((served, "TF Serving JSON (as served)"), (legacy_form, "proto-JSON form")):
        ratio = t[mtj] / t[name]
        result.goals.append(
            Goal(
                f"response [1000,784] → {form} ≥ 50x MessageToJson",
                fmt_ratio(ratio),
                ratio >= 50,
                "" if ratio >= 50 else f"short by {50 / ratio:.2f}x",
            )
        )
    return result


# -- CSV ---------------------------------------------------------------------------------------------


def bench_csv(repeats: int, target: float) -> GroupResult:
    """CSV 1000x784 → float32 array."""
    from tfio_handlers.context import Context
    from tfio_handlers.formats.csv import decode_csv
    from tfio_handlers.media import MediaType

    result = GroupResult("csv")
    array = np.random.default_rng(3).random((1000, 784), dtype=np.float32)
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in array).encode()
    sigs = _signatures((1000, 784))
    mt = MediaType("text/csv")
    names = [
        "legacy toolkit: np.genfromtxt",
        "legacy container: csv.reader + float",
        "ours: formats.csv",
    ]
    genfromtxt, reader, ours = names

    contenders: dict[str, Callable[[], Any]] = {
        genfromtxt: lambda: np.genfromtxt(io.BytesIO(body), delimiter=",", dtype=np.float32),
        reader: lambda: np.array(
            [[float(v) for v in row] for row in csv.reader(io.StringIO(body.decode()))],
            dtype=np.float32,
        ),
        ours: lambda: decode_csv(body, mt, Context(signature_defs=sigs)),
    }
    for name in names:
        _same(np.asarray(contenders[name](), dtype=np.float32), array, f"csv {name}")
    result.checks.append("CSV 1000x784: the three readers give the same float32 array")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom tfio_handlers.formats.csv import decode_csv\n"
            "from tfio_handlers.context import Context\nfrom tfio_handlers.media import MediaType\n"
            "decode_csv(b'1,2\\n3,4', MediaType('text/csv'), Context())\n"
            "print('pandas' in sys.modules, 'pyarrow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    ).stdout.split()
    no_pandas = probe == ["False", "False"]
    result.checks.append(f"CSV decode imports neither pandas nor pyarrow: {no_pandas}")
    timings = compare(contenders, repeats, target=target)
    t = {n: timings[n].median for n in names}
    table = Table(
        "CSV 1000x784 (" + f"{len(body) / 1e6:.1f} MB" + ") → float32 array",
        ["reader", "time", "np.genfromtxt / this", "csv.reader / this"],
    )
    for name in names:
        table.rows.append(
            [
                name,
                timings[name].text(),
                fmt_ratio(t[genfromtxt] / t[name]),
                fmt_ratio(t[reader] / t[name]),
            ]
        )
    result.tables.append(table)
    result.raw = t
    ratio = t[genfromtxt] / t[ours]
    result.goals.append(
        Goal(
            "CSV numeric 1000x784 ≥ 8x np.genfromtxt",
            fmt_ratio(ratio),
            ratio >= 8,
            "" if ratio >= 8 else f"short by {8 / ratio:.2f}x",
        )
    )
    result.goals.append(
        Goal(
            "CSV decode without importing pandas",
            "no pandas" if no_pandas else "pandas loaded",
            no_pandas,
        )
    )
    return result


# -- JSON lines ----------------------------------------------------------------------------------------


def bench_jsonlines(repeats: int, target: float) -> GroupResult:
    """JSON lines, 1000 lines of 784 floats → float32 array."""
    import tensorflow as tf

    from tfio_handlers.context import Context
    from tfio_handlers.formats.jsonlines import decode_jsonlines
    from tfio_handlers.media import MediaType

    result = GroupResult("jsonlines")
    array = np.random.default_rng(4).random((1000, 784), dtype=np.float32)
    body = "\n".join(json.dumps(row) for row in array.tolist()).encode() + b"\n"
    sigs = _signatures((1000, 784))
    mt = MediaType("application/jsonlines")
    names = ["legacy: json.loads per line + tf.make_tensor_proto", "ours: formats.jsonlines"]
    legacy, ours = names
    contenders: dict[str, Callable[[], Any]] = {
        legacy: lambda: tf.make_tensor_proto(
            [json.loads(line) for line in body.splitlines() if line.strip()], dtype=tf.float32
        ),
        ours: lambda: decode_jsonlines(body, mt, Context(signature_defs=sigs)),
    }
    _same(tf.make_ndarray(contenders[legacy]()), array, "jsonlines legacy")
    _same(np.asarray(contenders[ours]()), array, "jsonlines ours")
    result.checks.append("JSON lines 1000x784: same float32 array")
    timings = compare(contenders, repeats, target=target)
    t = {n: timings[n].median for n in names}
    table = Table(
        "JSON lines, 1000 lines x 784 floats (" + f"{len(body) / 1e6:.1f} MB) → array",
        ["reader", "time", "legacy / this"],
    )
    for name in names:
        table.rows.append([name, timings[name].text(), fmt_ratio(t[legacy] / t[name])])
    result.tables.append(table)
    result.raw = t
    return result


# -- registry dispatch ---------------------------------------------------------------------------------


class _TinyCodec:
    """A codec that does no work, so that timing it through the registry times the registry."""

    def __init__(self, request: Any) -> None:
        self.request = request

    def decode(self, body: bytes, media_type: Any, context: Any) -> Any:
        return self.request

    def encode(self, response: Any, media_type: Any, context: Any) -> bytes:
        return b"{}"


def bench_registry(repeats: int, target: float) -> GroupResult:
    """Per-request dispatch overhead: negotiate + decode + encode through the Registry, minus the
    codec's own work."""
    from tfio_handlers.context import Context
    from tfio_handlers.formats.json import decode_json, encode_json
    from tfio_handlers.hookspecs import hookimpl
    from tfio_handlers.media import MediaType
    from tfio_handlers.protos import PredictRequest, PredictResponse
    from tfio_handlers.registry import Kind, Registry

    result = GroupResult("registry")
    tiny = _TinyCodec(PredictRequest())

    class Plugin:
        @hookimpl
        def register_codecs(self, register: Any) -> None:
            register("application/x-bench", decode=tiny.decode, encode=tiny.encode)

    registry = Registry()
    registry.register(Plugin(), name="bench", kind=Kind.PLUGIN)
    registry.check()
    bench_mt = MediaType("application/x-bench")
    json_mt = MediaType("application/json")
    response = PredictResponse()
    response.outputs["y"].CopyFrom(_predict_response(np.ones((1, 3), np.float32)).outputs["scores"])
    sigs = _signatures((1, 4))
    body = b'{"instances": [[6.4, 3.2, 4.5, 1.5]]}'

    def through_registry_tiny() -> Any:
        context = Context()
        accept = registry.negotiate("application/x-bench", "application/json")
        registry.decode(b"x", bench_mt, context)
        return registry.encode(response, accept, context)

    def direct_tiny() -> Any:
        context = Context()
        tiny.decode(b"x", bench_mt, context)
        return tiny.encode(response, bench_mt, context)

    def through_registry_json() -> Any:
        context = Context(signature_defs=sigs)
        accept = registry.negotiate("application/json", "application/json")
        registry.decode(body, json_mt, context)
        return registry.encode(response, accept, context)

    def direct_json() -> Any:
        context = Context(signature_defs=sigs)
        decode_json(body, json_mt, context)
        return encode_json(response, json_mt, context)

    names = [
        "no-op codec through the Registry",
        "no-op codec called directly",
        "JSON codec through the Registry",
        "JSON codec called directly",
    ]
    timings = compare(
        dict(
            zip(
                names,
                (through_registry_tiny, direct_tiny, through_registry_json, direct_json),
                strict=False,
            )
        ),
        repeats * 3,
        target=target,
    )
    t = {n: timings[n].median for n in names}
    overhead = t[names[0]] - t[names[1]]
    json_overhead = t[names[2]] - t[names[3]]
    table = Table("Registry dispatch, per request (negotiate + decode + encode)", ["path", "time"])
    for name in names:
        table.rows.append([name, timings[name].text()])
    table.rows.append(["dispatch overhead (no-op codec)", fmt_time(overhead)])
    table.rows.append(["dispatch overhead (JSON codec, noisier)", fmt_time(json_overhead)])
    table.notes.append(
        'The no-op codec returns a fixed request and `b"{}"`, so the difference is the '
        "registry's own work: Accept negotiation, the cached chain lookup for decode and encode, "
        "and the result checks. The JSON rows show it against a real codec's work (iris body)."
    )
    result.tables.append(table)
    result.raw = {**t, "overhead": overhead, "json_overhead": json_overhead}
    parts = compare(
        {
            "negotiate": lambda: registry.negotiate("application/x-bench", "application/json"),
            "decode": lambda: registry.decode(b"x", bench_mt, Context()),
            "encode": lambda: registry.encode(response, bench_mt, Context()),
            "Context()": Context,
        },
        repeats * 3,
        target=target,
    )
    table.rows.append(
        [
            "of which: negotiate / decode / encode (each with a Context() of "
            f"{fmt_time(parts['Context()'].median)})",
            " / ".join(fmt_time(parts[k].median) for k in ("negotiate", "decode", "encode")),
        ]
    )
    why = (
        f"Registry.negotiate takes {fmt_time(parts['negotiate'].median)}: it matches the Accept "
        "header against every encodable type on every request (nothing cached); chain lookups "
        "for decode and encode are cached"
    )
    result.goals.append(
        Goal(
            "registry dispatch overhead < 5 µs per request",
            fmt_time(overhead),
            overhead < 5e-6,
            "" if overhead < 5e-6 else f"over by {overhead / 5e-6:.2f}x; {why}",
        )
    )
    return result
