"""HTTP end to end, and dynamic batching: the groups of ``benchmarks/run.py`` that start servers.

Servers (each one process, TensorFlow in it, the same SavedModels):

* **ours**: ``serve_ours.py`` — uvicorn, ``ASGIApp(Pipeline(EmbeddedBackend))``;
* **legacy**: ``legacy_server.py`` — gunicorn ``gthread`` (16 threads), Flask, ``json.loads`` +
  ``tf.make_tensor_proto``, ``MessageToJson``;
* **ours + batching**: ``serve_ours.py --batching`` — the same with
  :class:`~tfio_handlers.backends.batching.BatchingBackend` in front of the backend.

The load generator (``loadgen.py``, a process of its own) holds N keep-alive connections in a
closed loop. On a machine with two or more CPUs every server is pinned to CPU 0 and the generator
to CPU 1, so the generator cannot take the server's CPU and both servers get the same single core;
the generator's own CPU use is recorded with each run (``gen CPU``) to show it had slack. Runs are
interleaved (ours, legacy, ours, ...) and repeated; tables show medians over repeats.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from harness import Goal, GroupResult, Table, fmt_ratio, fmt_time

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

IRIS_BODY = b'{"signature_name": "predict", "instances": [[6.4, 3.2, 4.5, 1.5]]}'
CONCURRENCY = (1, 16, 64)


def _dense_body() -> bytes:
    values = np.random.default_rng(784).random((1, 784), dtype=np.float32)
    return json.dumps({"instances": values.tolist()}).encode()


REQUESTS = {"iris": ("iris", IRIS_BODY), "784 floats": ("dense784", _dense_body())}

MODEL_CALL = "the model call (TensorFlow's signature call)"
OUTSIDE_MODEL = "outside the model call"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpus() -> tuple[int | None, int | None]:
    """(server CPU, generator CPU), or (None, None) when there is nothing to pin apart."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def _start(name: str, argv: list[str], env: dict[str, str], cpu: int | None, logs: Path) -> Server:
    port = _free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    log = logs / f"{name}.log"
    handle = log.open("wb")

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        os.setsid()

    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=pin
    )
    return Server(name, port, process, log)


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} server exited:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"{server.name} server not ready after {timeout:.0f} s:\n{server.log_tail()}"
    )


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(5)


@contextlib.contextmanager
def servers(
    models: dict[str, Path], batching: str | None, logs: Path
) -> Iterator[dict[str, Server]]:
    """Start ours, legacy (and ours with batching when asked), wait until they answer /ping."""
    server_cpu, _ = _cpus()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    ours_models = ",".join(f"{name}={path.parent}" for name, path in models.items())
    legacy_models = ",".join(f"{name}={path}" for name, path in models.items())
    started: dict[str, Server] = {}
    try:
        started["ours"] = _start(
            "ours",
            [
                sys.executable,
                str(HERE / "serve_ours.py"),
                "--port",
                "{port}",
                "--models",
                ours_models,
            ],
            env,
            server_cpu,
            logs,
        )
        started["legacy"] = _start(
            "legacy",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-k",
                "gthread",
                "--threads",
                "16",
                "-w",
                "1",
                "-b",
                "127.0.0.1:{port}",
                "--chdir",
                str(HERE),
                "--log-level",
                "warning",
                "legacy_server:create_app()",
            ],
            dict(env, BENCH_MODELS=legacy_models),
            server_cpu,
            logs,
        )
        if batching:
            started["ours+batching"] = _start(
                "ours+batching",
                [
                    sys.executable,
                    str(HERE / "serve_ours.py"),
                    "--port",
                    "{port}",
                    "--models",
                    ours_models,
                    "--batching",
                    batching,
                ],
                env,
                server_cpu,
                logs,
            )
        for server in started.values():
            _wait_ready(server, 180)
        yield started
    finally:
        for server in started.values():
            _stop(server)


def _headers(model: str) -> list[str]:
    return [
        "Content-Type: application/json",
        f"X-Amzn-SageMaker-Custom-Attributes: tfs-model-name={model}",
    ]


def load(
    server: Server, model: str, body_file: Path, concurrency: int, warmup: float, duration: float
) -> dict[str, Any]:
    """One closed-loop run of the load generator against ``server``."""
    _, generator_cpu = _cpus()
    argv = [
        sys.executable,
        str(HERE / "loadgen.py"),
        "--url",
        server.url + "/invocations",
        "--body-file",
        str(body_file),
        "--concurrency",
        str(concurrency),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
    ]
    for header in _headers(model):
        argv += ["--header", header]
    if generator_cpu is not None:
        argv += ["--cpu", str(generator_cpu)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=warmup + duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["error_count"] or set(result["statuses"]) - {"200"}:
        raise RuntimeError(
            f"{server.name}: errors under load: {result['statuses']} {result['errors']}\n"
            f"{server.log_tail()}"
        )
    return result


# -- correctness over HTTP ---------------------------------------------------------------------------


def _values(text: str) -> dict[str, np.ndarray]:
    """Output arrays from our TF Serving JSON or from MessageToJson's proto JSON."""
    import base64

    doc = json.loads(text)
    if "predictions" in doc:
        rows = doc["predictions"]
        if rows and isinstance(rows[0], dict):
            return {k: np.array([row[k] for row in rows]) for k in rows[0]}
        return {"scores": np.array(rows)}
    out = {}
    for name, tensor in doc["outputs"].items():
        dims = [int(d["size"]) for d in tensor.get("tensorShape", {}).get("dim", [])]
        dtype = tensor["dtype"]
        if "tensorContent" in tensor:
            numpy_dtype = {"DT_FLOAT": "<f4", "DT_INT64": "<i8", "DT_DOUBLE": "<f8"}[dtype]
            raw = base64.b64decode(tensor["tensorContent"])
            out[name] = np.frombuffer(raw, numpy_dtype).reshape(dims)
        elif "floatVal" in tensor:
            out[name] = np.array(tensor["floatVal"], np.float32).reshape(dims)
        elif "int64Val" in tensor:
            out[name] = np.array([int(v) for v in tensor["int64Val"]]).reshape(dims)
        elif "stringVal" in tensor:
            out[name] = np.array([base64.b64decode(v).decode() for v in tensor["stringVal"]])
    return out


def _same_outputs(a: str, b: str) -> bool:
    left, right = _values(a), _values(b)
    if set(left) != set(right):
        return False
    for key in left:
        x, y = left[key], right[key]
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            if not np.allclose(x.astype(np.float64), y.astype(np.float64), rtol=1e-6, atol=1e-7):
                return False
        elif x.tolist() != y.tolist():
            return False
    return True


# -- the HTTP group ----------------------------------------------------------------------------------


def bench_http(
    repeats: int,
    warmup: float,
    duration: float,
    batching: str,
    micro_repeats: int = 5,
    target: float = 0.05,
) -> list[GroupResult]:
    """The HTTP end-to-end group and the dynamic-batching group, sharing the servers."""
    import models as bench_models

    http = GroupResult("http")
    batch = GroupResult("batching")
    with tempfile.TemporaryDirectory(prefix="tfio-bench-") as tmp:
        root = Path(tmp)
        built = bench_models.build_all(root / "models")
        breakdown, costs = request_breakdown(built, micro_repeats, target)
        logs = root / "logs"
        logs.mkdir()
        bodies = {}
        for label, (_, body) in REQUESTS.items():
            path = root / f"{label.replace(' ', '_')}.json"
            path.write_bytes(body)
            bodies[label] = path
        with servers(built, batching, logs) as started:
            ours, legacy = started["ours"], started["legacy"]
            for label, (model, _) in REQUESTS.items():
                answers = {
                    name: load(server, model, bodies[label], 1, 0.0, 0.2)["first_body"]
                    for name, server in started.items()
                }
                if not _same_outputs(answers["ours"], answers["legacy"]):
                    raise AssertionError(f"{label}: ours and legacy answer differently")
                if "ours+batching" in answers and not _same_outputs(
                    answers["ours"], answers["ours+batching"]
                ):
                    raise AssertionError(f"{label}: batching changes the answer")
                http.checks.append(f"HTTP {label}: every server gives the same outputs")
            runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
            for repeat in range(repeats):
                for label, (model, _) in REQUESTS.items():
                    for concurrency in CONCURRENCY:
                        order = [ours, legacy] if repeat % 2 == 0 else [legacy, ours]
                        for server in order:
                            result = load(
                                server, model, bodies[label], concurrency, warmup, duration
                            )
                            runs.setdefault((server.name, label, concurrency), []).append(result)
                if "ours+batching" in started:
                    order = [ours, started["ours+batching"]]
                    for server in order if repeat % 2 == 0 else reversed(order):
                        result = load(server, "iris", bodies["iris"], 64, warmup, duration)
                        runs.setdefault((server.name, "iris batching", 64), []).append(result)
    _http_tables(http, runs, repeats, warmup, duration, costs)
    http.tables.append(breakdown)
    if batching:
        _batching_http_table(batch, runs, batching)
    return [http, batch]


def _median(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results)


def _why_http(costs: dict[str, float]) -> str:
    """The in-process cost of one request, for a missed HTTP goal's note."""
    whole = costs["Pipeline.invoke, whole request"]
    model = costs[MODEL_CALL]
    served = costs["decode as served (formats.json)"]
    fast = costs["decode: simdjson fast path alone"]
    wired = "in use, alone " if costs["fast path wired in"] else ""
    return (
        f"one request costs our pipeline {fmt_time(whole)} in process, of which the model call "
        f"{fmt_time(model)} ({model / whole:.0%}; the baseline makes the same call), decoding "
        f"{fmt_time(served)} (the simdjson fast path, {wired or 'not yet wired in: '}"
        f"{fmt_time(fast)}), encoding "
        f"{fmt_time(costs['encode as served (formats.json)'])}, everything outside the model call "
        f"{fmt_time(costs[OUTSIDE_MODEL])}: with the model call alone fixed, the ratio "
        f"cannot exceed (baseline time per request) / {fmt_time(model)}"
    )


def _http_tables(
    result: GroupResult,
    runs: dict[tuple[str, str, int], list[dict[str, Any]]],
    repeats: int,
    warmup: float,
    duration: float,
    costs: dict[str, dict[str, float]],
) -> None:
    server_cpu, generator_cpu = _cpus()
    for label in REQUESTS:
        table = Table(
            f"HTTP /invocations, {label} request ({len(REQUESTS[label][1])} B body)",
            [
                "concurrency",
                "ours req/s",
                "legacy req/s",
                "req/s ratio",
                "ours p50 / p99 (ms)",
                "legacy p50 / p99 (ms)",
                "p99 ratio (ours/legacy)",
                "gen CPU (ours / legacy)",
            ],
        )
        for concurrency in CONCURRENCY:
            ours = runs[("ours", label, concurrency)]
            legacy = runs[("legacy", label, concurrency)]
            rps_ratio = _median(ours, "rps") / _median(legacy, "rps")
            p99_ratio = _median(ours, "p99_ms") / _median(legacy, "p99_ms")
            table.rows.append(
                [
                    str(concurrency),
                    f"{_median(ours, 'rps'):.0f}",
                    f"{_median(legacy, 'rps'):.0f}",
                    fmt_ratio(rps_ratio),
                    f"{_median(ours, 'p50_ms'):.2f} / {_median(ours, 'p99_ms'):.2f}",
                    f"{_median(legacy, 'p50_ms'):.2f} / {_median(legacy, 'p99_ms'):.2f}",
                    f"{p99_ratio:.2f}",
                    f"{_median(ours, 'cpu_share'):.0%} / {_median(legacy, 'cpu_share'):.0%}",
                ]
            )
            result.raw[f"{label} c={concurrency}"] = {
                "ours": ours,
                "legacy": [dict(r, first_body="") for r in legacy],
            }
            for r in ours:
                r["first_body"] = ""
            if concurrency == 16:
                need = 3.0 if label == "784 floats" else 1.5
                why = _why_http(costs[label])
                result.goals.append(
                    Goal(
                        f"HTTP {label} request, concurrency 16: ≥ {need:g}x legacy req/s",
                        fmt_ratio(rps_ratio),
                        rps_ratio >= need,
                        "" if rps_ratio >= need else f"short by {need / rps_ratio:.2f}x; {why}",
                    )
                )
                if label == "784 floats":
                    result.goals.append(
                        Goal(
                            "HTTP 784 floats, concurrency 16: p99 ≤ ½ legacy's",
                            f"{p99_ratio:.2f} of legacy's",
                            p99_ratio <= 0.5,
                            "" if p99_ratio <= 0.5 else f"over by {p99_ratio / 0.5:.2f}x; {why}",
                        )
                    )
        pinned = (
            f"servers pinned to CPU {server_cpu}, generator to CPU {generator_cpu}"
            if server_cpu is not None
            else "no CPU pinning (fewer than 2 CPUs)"
        )
        import importlib.util

        stack = (
            "uvicorn with "
            + ", ".join(
                f"{name} {'(installed)' if importlib.util.find_spec(name) else '(not installed)'}"
                for name in ("httptools", "uvloop")
            )
            + " (uvicorn uses h11 and asyncio without them)"
        )
        table.notes.append(
            f"Median of {repeats} interleaved runs of {duration:g} s each after {warmup:g} s of "
            f"warm-up; {pinned}. gen CPU = the generator's CPU time over wall time. Ours: {stack}; "
            "legacy: gunicorn gthread, 1 worker, 16 threads."
        )
        result.tables.append(table)


def _batching_http_table(
    result: GroupResult, runs: dict[tuple[str, str, int], list[dict[str, Any]]], batching: str
) -> None:
    plain = runs.get(("ours", "iris batching", 64), [])
    batched = runs.get(("ours+batching", "iris batching", 64), [])
    if not plain or not batched:
        return
    table = Table(
        f"Dynamic batching over HTTP: iris, concurrency 64 (max_batch_size:timeout_us = {batching})",
        ["server", "req/s", "p50 (ms)", "p99 (ms)"],
    )
    for name, data in (("ours", plain), ("ours + batching", batched)):
        table.rows.append(
            [
                name,
                f"{_median(data, 'rps'):.0f}",
                f"{_median(data, 'p50_ms'):.2f}",
                f"{_median(data, 'p99_ms'):.2f}",
            ]
        )
    ratio = _median(batched, "rps") / _median(plain, "rps")
    table.rows.append(["ratio", fmt_ratio(ratio), "", ""])
    result.tables.append(table)
    result.goals.append(
        Goal(
            "dynamic batching, iris at concurrency 64 over HTTP: ≥ 3x the throughput without",
            fmt_ratio(ratio),
            ratio >= 3,
            ""
            if ratio >= 3
            else f"short by {3 / ratio:.2f}x: HTTP, JSON and pipeline work per "
            "request are not batched, only the model call is (see the backend-level table)",
        )
    )
    result.raw["http"] = {"plain": _median(plain, "rps"), "batched": _median(batched, "rps")}


# -- where the time of one request goes ------------------------------------------------------------


def request_breakdown(
    models: dict[str, Path], repeats: int, target: float
) -> tuple[Table, dict[str, dict[str, float]]]:
    """In-process cost of each stage of one request, per request model, sequential calls."""
    from harness import calls_fast_path, compare

    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.context import Context
    from tfio_handlers.formats.json import decode_json, encode_json
    from tfio_handlers.media import MediaType
    from tfio_handlers.pipeline import Pipeline
    from tfio_handlers.protocol.tfs_json import requests as tfs_requests
    from tfio_handlers.protocol.tfs_json import simd

    backend = EmbeddedBackend({name: path.parent for name, path in models.items()})
    pipeline = Pipeline(backend)
    json_type = MediaType("application/json")
    table = Table(
        "Where the time of one request goes (in process, one call at a time)",
        ["stage", *REQUESTS],
    )
    cells: dict[str, list[str]] = {}
    raw: dict[str, dict[str, float]] = {}
    for label, (model, body) in REQUESTS.items():
        headers = {
            "content-type": "application/json",
            "x-amzn-sagemaker-custom-attributes": f"tfs-model-name={model}",
        }
        signatures = backend.signatures(model).signature_defs
        request, _ = tfs_requests.predict_arrays_from_json(body, signatures)
        request.model_spec.name = model
        prediction = backend.predict_arrays(request)
        servable = backend._servable(request.model_spec)
        runner = servable.runner(request.model_spec.signature_name or "serving_default")
        b, h, req, answer = body, headers, request, prediction
        stages = {
            "Pipeline.invoke, whole request": lambda b=b, h=h: pipeline.invoke(b, h),
            MODEL_CALL: lambda runner=runner, req=req: runner.run(req.inputs),
            "backend.predict_arrays (the model call and TF Serving's checks)": (
                lambda req=req: backend.predict_arrays(req)
            ),
            "decode as served (formats.json)": lambda b=b, s=signatures: decode_json(
                b, json_type, Context(signature_defs=s)
            ),
            "decode: simdjson fast path alone": lambda b=b, s=signatures: simd.decode_predict(b, s),
            "encode as served (formats.json)": lambda answer=answer: encode_json(
                answer, json_type, Context(response_form="row")
            ),
        }
        timings = compare(stages, repeats, target=target)
        costs = {stage: timing.median for stage, timing in timings.items()}
        costs["fast path wired in"] = float(
            calls_fast_path(stages["decode as served (formats.json)"])
        )
        costs[OUTSIDE_MODEL] = costs["Pipeline.invoke, whole request"] - costs[MODEL_CALL]
        costs["rest of the pipeline"] = costs["Pipeline.invoke, whole request"] - (
            costs["backend.predict_arrays (the model call and TF Serving's checks)"]
            + costs["decode as served (formats.json)"]
            + costs["encode as served (formats.json)"]
        )
        raw[label] = costs
        for stage, seconds in costs.items():
            if stage != "fast path wired in":
                cells.setdefault(stage, []).append(fmt_time(seconds))
    for stage, values in cells.items():
        table.rows.append([stage, *values])
    backend.close()
    table.notes.append(
        "Median per call, in this process (TensorFlow loaded, the same models). The model call is "
        "TensorFlow's signature call alone, which every server makes; 'outside the model call' is "
        "everything else one request costs in process. 'Rest of the pipeline' = the whole request "
        "minus backend.predict_arrays, decode and encode: the Context, custom attributes, "
        "signature lookup, negotiation and dispatch. The server adds HTTP parsing and the hand-off "
        "of the request to a worker thread."
    )
    return table, raw


# -- batching at the backend ---------------------------------------------------------------------------


def bench_batching_backend(
    model_dir: Path, threads: int, seconds: float, settings: list[tuple[int, int]]
) -> GroupResult:
    """iris ``predict`` from ``threads`` threads for ``seconds``: the embedded backend alone, and
    behind :class:`BatchingBackend` with each ``(max_batch_size, timeout_us)``."""
    from tfio_handlers.backends.batching import BatchingBackend
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.protos import PredictRequest
    from tfio_handlers.tensors import to_ndarray, to_tensor_proto

    result = GroupResult("batching-backend")
    inner = EmbeddedBackend({"iris": model_dir})
    rng = np.random.default_rng(5)
    requests = []
    for _ in range(threads):
        request = PredictRequest()
        request.model_spec.name = "iris"
        request.model_spec.signature_name = "predict"
        features = rng.uniform([4, 2, 1, 0], [8, 4.5, 7, 2.5], (1, 4)).astype(np.float32)
        request.inputs["inputs"].CopyFrom(to_tensor_proto(features))
        requests.append(request)
    expected = [to_ndarray(inner.predict(r).outputs["class_ids"]).tolist() for r in requests]

    def drive(backend: Any) -> tuple[float, float]:
        counts = [0] * threads
        latencies: list[list[float]] = [[] for _ in range(threads)]
        stop = time.perf_counter() + seconds
        barrier = threading.Barrier(threads)
        wrong: list[int] = []

        def work(i: int) -> None:
            barrier.wait()
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                answer = backend.predict(requests[i])
                latencies[i].append(time.perf_counter() - t0)
                if to_ndarray(answer.outputs["class_ids"]).tolist() != expected[i]:
                    wrong.append(i)
                counts[i] += 1

        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        start = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - start
        if wrong:
            raise AssertionError(f"batching gave callers other rows: {len(wrong)} wrong answers")
        flat = sorted(x for lat in latencies for x in lat)
        return sum(counts) / elapsed, flat[int(0.99 * (len(flat) - 1))] * 1000

    table = Table(
        f"Dynamic batching at the backend: iris predict from {threads} threads, {seconds:g} s",
        ["backend", "req/s", "p99 (ms)", "mean batch", "ratio"],
    )
    base_rps, base_p99 = drive(inner)
    table.rows.append(["EmbeddedBackend", f"{base_rps:.0f}", f"{base_p99:.1f}", "1", "1.00x"])
    best = 0.0
    for size, timeout in settings:
        backend = BatchingBackend(
            inner, max_batch_size=size, batch_timeout_micros=timeout, close_inner=False
        )
        rps, p99 = drive(backend)
        stats = backend.stats()
        backend.close()
        ratio = rps / base_rps
        best = max(best, ratio)
        table.rows.append(
            [
                f"BatchingBackend({size}, {timeout} µs)",
                f"{rps:.0f}",
                f"{p99:.1f}",
                f"{stats.mean_batch_size:.1f}",
                fmt_ratio(ratio),
            ]
        )
        result.raw[f"{size}:{timeout}"] = {"rps": rps, "p99_ms": p99, "ratio": ratio}
    inner.close()
    result.raw["embedded"] = {"rps": base_rps, "p99_ms": base_p99}
    table.notes.append(
        "In-process: the model call only, no HTTP and no codec, so the batching gain is not "
        "diluted by per-request work that batching cannot share. Every answer is checked to be "
        "the caller's own row."
    )
    result.tables.append(table)
    result.checks.append("batching at the backend: every caller got its own row")
    result.goals.append(
        Goal(
            "dynamic batching, iris at concurrency 64, model calls: ≥ 3x the throughput without",
            fmt_ratio(best),
            best >= 3,
            "" if best >= 3 else f"short by {3 / best:.2f}x",
        )
    )
    return result
