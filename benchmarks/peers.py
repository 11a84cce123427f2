"""The project against the stacks users would pick instead (issue 17 item 1): the ``peers`` group of
``benchmarks/run.py``, written to ``RESULTS-peers.md``.

Servers, each one process tree with TensorFlow and the same two SavedModels (``models.py``):

* **tfio-handlers**: ``tfio-handlers serve`` (defaults), measured on both routes,
  ``/v1/models/M:predict`` (TF Serving REST) and ``/invocations`` (SageMaker);
* **tfio-handlers + batching**: the same with ``SAGEMAKER_TFS_ENABLE_BATCHING=true`` in the
  no-wait mode (``SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS=0``, ``SAGEMAKER_TFS_MAX_BATCH_SIZE=64``:
  :data:`BATCHING_ENV`), iris at concurrency 64 only (the issue's batching goal);
* **tfio-handlers, 2 workers**: ``tfio-handlers serve --workers 2`` pinned to the first two CPUs
  (the others get the first), iris at concurrency 16 and 64 on both routes, in alternation with
  the one-worker server (issue 17 item 4); the generator keeps its CPU, which it then shares with
  the second worker. ``run.py --groups workers`` runs these cells alone.
* **legacy**: ``legacy_server.py`` (Flask on gunicorn ``gthread``), the baseline of ``RESULTS.md``;
* **naive FastAPI**: ``peer_servers/naive_fastapi.py``, 20 lines, the model called on the event loop;
* **KServe** (V1): ``peer_servers/kserve_v1.py``, a ``kserve.Model`` calling the signature;
* **MLServer** (V2): ``peer_servers/mlserver_v2.py``, a custom runtime calling the signature.

KServe and MLServer are installed by this module in venvs of their own (KServe pins protobuf<7),
with the development venv's TensorFlow version, cached under ``~/.cache/tfio-handlers-bench/``
(``TFIO_BENCH_CACHE`` overrides) keyed by the versions; a peer whose install fails is skipped with a
note in the results. Servers start one at a time (cold start: from the process start to the first
200 answer to an iris predict request), all pinned to the first CPU, the load generator
(``loadgen.py``) to the second. Each cell (request, concurrency) runs every contender in an order
rotated per cell and repeat. Server CPU per request is the CPU time of the server's whole process
tree (``/proc/<pid>/stat``) over the generator's run, divided by every answer of that run (warm-up
included); RSS is the sum of the peak RSS (``VmHWM``) of the tree's processes at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import http_bench
import numpy as np
from harness import Goal, GroupResult, Table, fmt_ratio

HERE = Path(__file__).resolve().parent
SERVERS_DIR = HERE / "peer_servers"
PEER_PACKAGES = {"KServe": ["kserve==0.21.0"], "MLServer": ["mlserver==1.7.1"]}
OURS_ROUTES = ("tfio /v1", "tfio /invocations")
PEERS = ("KServe", "MLServer", "naive FastAPI")

# request label → (model, signature, input name, main float output, shape)
REQUESTS: dict[str, tuple[str, str, str, str, tuple[int, int]]] = {
    "iris 1×4": ("iris", "predict", "inputs", "probabilities", (1, 4)),
    "784 floats": ("dense784", "serving_default", "x", "scores", (1, 784)),
    "100×784": ("dense784", "serving_default", "x", "scores", (100, 784)),
}
CELLS = (("iris 1×4", 1), ("iris 1×4", 16), ("iris 1×4", 64), ("784 floats", 16), ("100×784", 16))


def _features(label: str) -> np.ndarray:
    shape = REQUESTS[label][4]
    if label.startswith("iris"):
        return np.array([[6.4, 3.2, 4.5, 1.5]], np.float32)
    return np.random.default_rng(784).random(shape, dtype=np.float32)


def _body(form: str, label: str) -> bytes:
    _, signature, argument, _, _ = REQUESTS[label]
    values = _features(label)
    if form == "tfs":
        return json.dumps({"signature_name": signature, "instances": values.tolist()}).encode()
    if form == "v1":
        return json.dumps({"instances": values.tolist()}).encode()
    inputs = [
        {
            "name": argument,
            "shape": list(values.shape),
            "datatype": "FP32",
            "data": values.ravel().tolist(),
        }
    ]
    return json.dumps({"inputs": inputs}).encode()


@dataclass
class Contender:
    """One way of asking one server: its route, body form and headers."""

    name: str
    server: str
    path: Callable[[str], str]
    form: str
    sagemaker_header: bool = False

    def headers(self, model: str) -> list[str]:
        headers = ["Content-Type: application/json"]
        if self.sagemaker_header:
            headers.append(f"X-Amzn-SageMaker-Custom-Attributes: tfs-model-name={model}")
        return headers


CONTENDERS = [
    Contender("tfio /v1", "tfio", lambda m: f"/v1/models/{m}:predict", "tfs"),
    Contender("tfio /invocations", "tfio", lambda m: "/invocations", "tfs", True),
    Contender("legacy", "legacy", lambda m: "/invocations", "tfs", True),
    Contender("naive FastAPI", "naive FastAPI", lambda m: f"/v1/models/{m}:predict", "tfs"),
    Contender("KServe", "KServe", lambda m: f"/v1/models/{m}:predict", "v1"),
    Contender("MLServer", "MLServer", lambda m: f"/v2/models/{m}/infer", "v2"),
]
BATCHING_ENV = {
    "SAGEMAKER_TFS_ENABLE_BATCHING": "true",
    "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS": "0",
    "SAGEMAKER_TFS_MAX_BATCH_SIZE": "64",
}
"""The batching server's settings: the no-wait mode, batches of up to 64 rows (SageMaker's
defaults, 8 rows after a 1000 µs wait, measured 0.8x of this at c=64 and 1.5 ms more at c=1)."""
BATCHING = Contender(
    "tfio /invocations + batching", "tfio+batching", lambda m: "/invocations", "tfs", True
)
WORKERS_SERVER = "tfio-2-workers"
WORKERS = [
    Contender("tfio /v1, 2 workers", WORKERS_SERVER, lambda m: f"/v1/models/{m}:predict", "tfs"),
    Contender(
        "tfio /invocations, 2 workers", WORKERS_SERVER, lambda m: "/invocations", "tfs", True
    ),
]
WORKERS_CELLS = (("iris 1×4", 16), ("iris 1×4", 64))


# -- peer venvs ----------------------------------------------------------------------------------------


def _cache_root() -> Path:
    default = Path.home() / ".cache" / "tfio-handlers-bench"
    return Path(os.environ.get("TFIO_BENCH_CACHE", str(default)))


def peer_python(peer: str, log: Callable[[str], None] = print) -> tuple[Path | None, str]:
    """The interpreter of ``peer``'s venv, installing it once; ``(None, why)`` when it fails."""
    from importlib import metadata

    tf_version = metadata.version("tensorflow")
    packages = [*PEER_PACKAGES[peer], f"tensorflow=={tf_version}"]
    python = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    key = hashlib.sha256(" ".join([python, *packages]).encode()).hexdigest()[:12]
    root = _cache_root() / f"{peer.lower()}-{PEER_PACKAGES[peer][0].split('==')[1]}-{key}"
    interpreter = root / "bin" / "python"
    marker = root / ".installed"
    if marker.exists():
        return interpreter, marker.read_text().strip()
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"installing {peer} into {root} ({' '.join(packages)}) ...")
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", str(root)],
        [str(interpreter), "-m", "pip", "install", "-q", *packages],
        [str(interpreter), "-c", f"import {PEER_PACKAGES[peer][0].split('==')[0]}, tensorflow"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            lines = [x for x in (done.stderr or done.stdout).splitlines() if "is ignored" not in x]
            shutil.rmtree(root, ignore_errors=True)
            return None, f"install failed ({' '.join(step[-3:])}): {' '.join(lines[-3:])[:300]}"
    freeze = subprocess.run(
        [str(interpreter), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    wanted = {p.split("==")[0] for p in packages} | {"protobuf", "fastapi", "uvicorn", "numpy"}
    versions = ", ".join(x for x in freeze if x.split("==")[0].lower() in wanted)
    marker.write_text(versions + "\n")
    return interpreter, versions


# -- servers -----------------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid``'s live process tree."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / ticks


def tree_peak_rss_mib(pid: int) -> float:
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024


@dataclass
class Started:
    server: http_bench.Server
    cold_start_s: float
    versions: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _post(url: str, body: bytes, headers: list[str], timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    for header in headers:
        name, _, value = header.partition(":")
        request.add_header(name.strip(), value.strip())
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.status, answer.read()


def _wait_first_answer(server: http_bench.Server, contender: Contender, timeout: float) -> float:
    """Seconds from now until ``contender``'s iris request is answered 200."""
    model = REQUESTS["iris 1×4"][0]
    url = server.url + contender.path(model)
    body = _body(contender.form, "iris 1×4")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        with contextlib.suppress(OSError):
            status, _ = _post(url, body, contender.headers(model), timeout=5)
            if status == 200:
                return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} not answering after {timeout:.0f} s:\n{server.log_tail()}")


def _argv(
    name: str, models: dict[str, Path], root: Path, pythons: dict[str, Path]
) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(http_bench.ROOT))
    with_signatures = {
        "iris": f"{models['iris']}:predict",
        "dense784": f"{models['dense784']}:serving_default",
    }
    if name in ("tfio", "tfio+batching", WORKERS_SERVER):
        argv = [sys.executable, "-m", "tfio_handlers", "serve", "--host", "127.0.0.1"]
        argv += ["--port", "{port}"]
        for model, path in models.items():
            argv += ["--model", f"{model}={path.parent}"]
        if name == "tfio+batching":
            env.update(BATCHING_ENV)
        if name == WORKERS_SERVER:
            argv += ["--workers", "2"]
        return argv, env
    if name == "legacy":
        argv = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "16", "-w", "1"]
        argv += ["-b", "127.0.0.1:{port}", "--chdir", str(HERE), "--log-level", "warning"]
        env["BENCH_MODELS"] = ",".join(f"{m}={p}" for m, p in models.items())
        return [*argv, "legacy_server:create_app()"], env
    if name == "naive FastAPI":
        env["BENCH_MODELS"] = ",".join(f"{m}={p}" for m, p in models.items())
        return [sys.executable, str(SERVERS_DIR / "naive_fastapi.py"), "{port}"], env
    if name == "KServe":
        env["BENCH_MODELS"] = ",".join(f"{m}={p}" for m, p in with_signatures.items())
        grpc = str(http_bench._free_port())
        return [str(pythons[name]), str(SERVERS_DIR / "kserve_v1.py"), "{port}", grpc], env
    if name == "MLServer":
        folder = root / "mlserver"
        env["PYTHONPATH"] = str(SERVERS_DIR)
        return [str(pythons[name].parent / "mlserver"), "start", str(folder)], env
    raise ValueError(name)


def _mlserver_settings(folder: Path, port: int, models: dict[str, Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "http_port": port,
        "grpc_port": http_bench._free_port(),
        "metrics_port": http_bench._free_port(),
        "host": "127.0.0.1",
        # MLServer 1.7.1's inference worker processes fail to start with the uvloop it installs
        # ("There is no current event loop", mlserver/parallel/worker.py): inference in the server
        # process instead, MLServer's documented alternative
        "parallel_workers": 0,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    signatures = {"iris": "predict", "dense784": "serving_default"}
    for model, path in models.items():
        (folder / model).mkdir(exist_ok=True)
        model_settings = {
            "name": model,
            "implementation": "mlserver_v2.SavedModelRuntime",
            "parameters": {"uri": str(path), "extra": {"signature": signatures[model]}},
        }
        (folder / model / "model-settings.json").write_text(json.dumps(model_settings))


def server_cpus(name: str) -> set[int] | None:
    """The CPUs ``name`` is pinned to: the first two for the 2-worker server, else the first."""
    server_cpu, generator_cpu = http_bench._cpus()
    if server_cpu is None or generator_cpu is None:
        return None
    return {server_cpu, generator_cpu} if name == WORKERS_SERVER else {server_cpu}


def _start_pinned(
    name: str, argv: list[str], env: dict[str, str], cpus: set[int] | None, logs: Path
) -> http_bench.Server:
    """``http_bench._start`` with a set of CPUs (the 2-worker server gets two)."""
    handle = (logs / f"{name}.log").open("wb")

    def pin() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        os.setsid()

    process = subprocess.Popen(
        argv, cwd=http_bench.ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=pin
    )
    return http_bench.Server(name, 0, process, logs / f"{name}.log")


def _wait_every_worker(server: http_bench.Server, contender: Contender, timeout: float) -> None:
    """Until 20 answers in a row on new connections are 200: every worker has its model (a
    connection goes to whichever worker accepts it, and a loading one answers 503)."""
    model = REQUESTS["iris 1×4"][0]
    url = server.url + contender.path(model)
    body = _body(contender.form, "iris 1×4")
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while in_a_row < 20:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name}: not every worker answers:\n{server.log_tail()}")
        try:
            status, _ = _post(url, body, contender.headers(model), timeout=5)
        except OSError:
            status = 0
        in_a_row = in_a_row + 1 if status == 200 else 0
        if status != 200:
            time.sleep(0.1)


def start(
    name: str, models: dict[str, Path], root: Path, pythons: dict[str, Path], logs: Path
) -> Started:
    """Start ``name`` alone on its CPUs; cold start = process start to the first answer."""
    argv, env = _argv(name, models, root, pythons)
    port = http_bench._free_port()
    if name == "MLServer":
        _mlserver_settings(root / "mlserver", port, models)
    argv = [a.replace("{port}", str(port)) for a in argv]
    contender = next(c for c in [*CONTENDERS, BATCHING, *WORKERS] if c.server == name)
    began = time.monotonic()
    server = _start_pinned(name, argv, env, server_cpus(name), logs)
    server.port = port
    try:
        answered = _wait_first_answer(server, contender, 150)
        if name == WORKERS_SERVER:
            _wait_every_worker(server, contender, 150)
    except BaseException:
        http_bench._stop(server)
        raise
    return Started(server, answered - began)


def _warm_imports(pythons: dict[str, Path]) -> None:
    """Import TensorFlow once per interpreter, so that no cold start pays for a cold page cache."""
    for python in {sys.executable, *map(str, pythons.values())}:
        subprocess.run([python, "-c", "import tensorflow"], capture_output=True, timeout=300)


# -- load --------------------------------------------------------------------------------------------


def run_load(
    started: Started,
    contender: Contender,
    label: str,
    body_file: Path,
    concurrency: int,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    model = REQUESTS[label][0]
    server = started.server
    _, generator_cpu = http_bench._cpus()
    argv = [sys.executable, str(HERE / "loadgen.py"), "--url", server.url + contender.path(model)]
    argv += ["--body-file", str(body_file), "--concurrency", str(concurrency)]
    argv += ["--warmup", str(warmup), "--duration", str(duration)]
    for header in contender.headers(model):
        argv += ["--header", header]
    if generator_cpu is not None:
        argv += ["--cpu", str(generator_cpu)]
    cpu_before = tree_cpu_seconds(server.process.pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=warmup + duration + 120)
    cpu = tree_cpu_seconds(server.process.pid) - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["error_count"] or set(result["statuses"]) - {"200"}:
        raise RuntimeError(
            f"{contender.name} {label} c={concurrency}: {result['statuses']} {result['errors']}\n"
            f"{server.log_tail()}"
        )
    result["server_cpu_per_request_ms"] = cpu / max(1, result["answered_total"]) * 1000
    return result


def main_output(text: str, output: str) -> np.ndarray:
    """The main float output of an answer in any of the servers' forms."""
    doc = json.loads(text)
    if "predictions" in doc:
        rows = doc["predictions"]
        if rows and isinstance(rows[0], dict):
            rows = [row[output] for row in rows]
        return np.array(rows, np.float64)
    if isinstance(doc.get("outputs"), list):  # V2
        for tensor in doc["outputs"]:
            if tensor["name"] == output:
                return np.array(tensor["data"], np.float64).reshape(tensor["shape"])
        raise KeyError(output)
    return http_bench._values(text)[output].astype(np.float64)  # legacy MessageToJson


# -- the group ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _servers(
    names: list[str], models: dict[str, Path], root: Path, pythons: dict[str, Path], logs: Path
) -> Iterator[tuple[dict[str, Started], dict[str, str]]]:
    started: dict[str, Started] = {}
    failed: dict[str, str] = {}
    try:
        for name in names:
            try:
                started[name] = start(name, models, root, pythons, logs)
            except RuntimeError as exc:
                failed[name] = str(exc).splitlines()[0] + " " + str(exc)[-300:].replace("\n", " ")
            print(f"  started {name}" + (f" ({failed[name][:200]})" if name in failed else ""))
        yield started, failed
    finally:
        for one in started.values():
            http_bench._stop(one.server)


def bench_peers(repeats: int, warmup: float, duration: float, cold_repeats: int) -> GroupResult:
    import models as bench_models

    result = GroupResult("peers")
    notes: list[str] = []
    pythons: dict[str, Path] = {}
    versions: dict[str, str] = {}
    for peer in PEER_PACKAGES:
        python, why = peer_python(peer)
        if python is None:
            notes.append(f"{peer} skipped: {why}")
        else:
            pythons[peer] = python
            versions[peer] = why
    names = ["tfio", "legacy", "naive FastAPI", *pythons, "tfio+batching", WORKERS_SERVER]
    with tempfile.TemporaryDirectory(prefix="tfio-bench-peers-") as tmp:
        root = Path(tmp)
        built = bench_models.build_all(root / "models")
        logs = root / "logs"
        logs.mkdir()
        bodies: dict[tuple[str, str], Path] = {}
        for label in REQUESTS:
            for form in ("tfs", "v1", "v2"):
                path = root / f"{form}-{len(bodies)}.json"
                path.write_bytes(_body(form, label))
                bodies[(form, label)] = path
        _warm_imports(pythons)
        cold: dict[str, list[float]] = {}
        # extra fresh starts for the cold-start median (full mode), each server alone
        for _ in range(cold_repeats - 1):
            for name in names:
                with contextlib.suppress(RuntimeError):
                    one = start(name, built, root, pythons, logs)
                    cold.setdefault(name, []).append(one.cold_start_s)
                    http_bench._stop(one.server)
        with _servers(names, built, root, pythons, logs) as (started, failed):
            for name, why in failed.items():
                notes.append(f"{name} did not start: {why}")
            for name, one in started.items():
                cold.setdefault(name, []).append(one.cold_start_s)
            contenders = [c for c in CONTENDERS if c.server in started]
            # same outputs first
            for label in REQUESTS:
                output = REQUESTS[label][3]
                answers = {}
                for contender in contenders:
                    one = run_load(
                        started[contender.server],
                        contender,
                        label,
                        bodies[(contender.form, label)],
                        1,
                        0.0,
                        0.2,
                    )
                    answers[contender.name] = main_output(one["first_body"], output)
                reference = answers["tfio /v1"]
                for name, values in answers.items():
                    if values.shape != reference.shape or not np.allclose(
                        values, reference, rtol=1e-5, atol=1e-6
                    ):
                        raise AssertionError(f"{label}: {name} answers differently from tfio")
                result.checks.append(f"peers, {label}: every server gives the same {output}")
            runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
            for repeat in range(repeats):
                for index, (label, concurrency) in enumerate(CELLS):
                    shift = (repeat + index) % len(contenders)
                    for contender in contenders[shift:] + contenders[:shift]:
                        one = run_load(
                            started[contender.server],
                            contender,
                            label,
                            bodies[(contender.form, label)],
                            concurrency,
                            warmup,
                            duration,
                        )
                        one["first_body"] = ""
                        runs.setdefault((contender.name, label, concurrency), []).append(one)
                if "tfio+batching" in started:
                    pair = [contenders[1], BATCHING]
                    for contender in pair if repeat % 2 == 0 else pair[::-1]:
                        one = run_load(
                            started[contender.server],
                            contender,
                            "iris 1×4",
                            bodies[("tfs", "iris 1×4")],
                            64,
                            warmup,
                            duration,
                        )
                        one["first_body"] = ""
                        key = (contender.name, "iris 1×4 batching", 64)
                        runs.setdefault(key, []).append(one)
                _workers_runs(started, bodies, repeat, warmup, duration, runs)
            rss = {name: tree_peak_rss_mib(one.server.process.pid) for name, one in started.items()}
    _tables(result, runs, cold, rss, versions, notes, repeats, warmup, duration)
    _workers_table(result, runs)
    return result


def _workers_runs(
    started: dict[str, Started],
    bodies: dict[tuple[str, str], Path],
    repeat: int,
    warmup: float,
    duration: float,
    runs: dict[tuple[str, str, int], list[dict[str, Any]]],
) -> None:
    """One repeat of the workers cells: 1 and 2 workers, both routes, in a rotated order."""
    if "tfio" not in started or WORKERS_SERVER not in started:
        return
    contenders = [CONTENDERS[0], CONTENDERS[1], *WORKERS]
    for index, (label, concurrency) in enumerate(WORKERS_CELLS):
        shift = (repeat + index) % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            one = run_load(
                started[contender.server],
                contender,
                label,
                bodies[("tfs", label)],
                concurrency,
                warmup,
                duration,
            )
            one["first_body"] = ""
            runs.setdefault((contender.name, f"{label} workers", concurrency), []).append(one)


def _workers_table(
    result: GroupResult, runs: dict[tuple[str, str, int], list[dict[str, Any]]]
) -> None:
    if not any(label.endswith(" workers") for _, label, _ in runs):
        return
    one_cpus, two_cpus = server_cpus("tfio"), server_cpus(WORKERS_SERVER)
    _, generator_cpu = http_bench._cpus()
    table = Table(
        "Workers: iris, `tfio-handlers serve` with 1 worker and with `--workers 2`",
        [
            "route, concurrency",
            "1 worker req/s",
            "2 workers req/s",
            "2 ÷ 1",
            "p50 / p99 (ms), 1 → 2",
            "server CPU per request, 1 → 2",
            "server CPU use, 1 → 2",
            "gen CPU, 1 → 2",
        ],
    )
    for label, concurrency in WORKERS_CELLS:
        for route, (one_name, two_name) in zip(
            ("/v1", "/invocations"),
            ((CONTENDERS[0].name, WORKERS[0].name), (CONTENDERS[1].name, WORKERS[1].name)),
            strict=True,
        ):
            one = runs.get((one_name, f"{label} workers", concurrency))
            two = runs.get((two_name, f"{label} workers", concurrency))
            if not one or not two:
                continue
            rps1, rps2 = _median(one, "rps"), _median(two, "rps")
            cpu1 = _median(one, "server_cpu_per_request_ms")
            cpu2 = _median(two, "server_cpu_per_request_ms")
            table.rows.append(
                [
                    f"{route}, c={concurrency}",
                    f"{rps1:.0f}",
                    f"{rps2:.0f}",
                    fmt_ratio(rps2 / rps1),
                    f"{_median(one, 'p50_ms'):.2f} / {_median(one, 'p99_ms'):.2f} → "
                    f"{_median(two, 'p50_ms'):.2f} / {_median(two, 'p99_ms'):.2f}",
                    f"{cpu1:.2f} → {cpu2:.2f} ms",
                    f"{rps1 * cpu1 / 1000:.2f} → {rps2 * cpu2 / 1000:.2f} CPUs",
                    f"{_median(one, 'cpu_share'):.0%} → {_median(two, 'cpu_share'):.0%}",
                ]
            )
            result.raw[f"workers 1 {route} c={concurrency}"] = one
            result.raw[f"workers 2 {route} c={concurrency}"] = two
            result.goals.append(
                Goal(
                    f"workers: iris {route}, c={concurrency}, 2 workers ÷ 1 worker req/s",
                    fmt_ratio(rps2 / rps1),
                    None,
                    "information: the generator shares the second worker's CPU",
                )
            )
    table.notes.append(
        f"1 worker pinned to CPU {sorted(one_cpus or [])}, 2 workers (`--workers 2`, a listening "
        f"socket each, prometheus-client's multi-process metrics) to CPUs {sorted(two_cpus or [])}; "
        f"the load generator on CPU {generator_cpu} in both, so with 2 workers it takes part of "
        "the second worker's CPU: 2x is out of reach on a 2-core machine, read the server CPU use "
        "(req/s × CPU per request) beside the ratio. Runs alternate between the two servers and "
        "routes in a rotated order; medians."
    )
    result.tables.append(table)


def bench_workers(repeats: int, warmup: float, duration: float) -> GroupResult:
    """The workers cells alone: ``tfio-handlers serve`` with 1 and 2 workers (``run.py --groups
    workers``)."""
    import models as bench_models

    result = GroupResult("workers")
    with tempfile.TemporaryDirectory(prefix="tfio-bench-workers-") as tmp:
        root = Path(tmp)
        built = bench_models.build_all(root / "models")
        logs = root / "logs"
        logs.mkdir()
        label = "iris 1×4"
        body = root / "iris.json"
        body.write_bytes(_body("tfs", label))
        bodies = {("tfs", label): body}
        _warm_imports({})
        runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        with _servers(["tfio", WORKERS_SERVER], built, root, {}, logs) as (started, failed):
            if failed:
                raise RuntimeError(f"did not start: {failed}")
            output = REQUESTS[label][3]
            answers = [
                main_output(
                    run_load(started[c.server], c, label, body, 1, 0.0, 0.2)["first_body"], output
                )
                for c in [CONTENDERS[0], CONTENDERS[1], *WORKERS]
            ]
            if not all(np.array_equal(a, answers[0]) for a in answers):
                raise AssertionError("1 and 2 workers answer differently")
            result.checks.append("workers: 1 and 2 workers give the same probabilities")
            for repeat in range(repeats):
                _workers_runs(started, bodies, repeat, warmup, duration, runs)
            cold = {name: one.cold_start_s for name, one in started.items()}
            rss = {name: tree_peak_rss_mib(one.server.process.pid) for name, one in started.items()}
    _workers_table(result, runs)
    table = Table("Cold start and peak RSS, 1 and 2 workers", ["server", "cold start (s)", "RSS"])
    for name in cold:
        table.rows.append([name, f"{cold[name]:.2f}", f"{rss[name]:.0f} MiB"])
    table.notes.append(
        f"Median of {repeats} runs of {duration:g} s after {warmup:g} s of warm-up. Cold start: to "
        "the first answer (the 2-worker server then waits until every worker answers)."
    )
    result.tables.append(table)
    return result


def _median(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results)


def _tables(
    result: GroupResult,
    runs: dict[tuple[str, str, int], list[dict[str, Any]]],
    cold: dict[str, list[float]],
    rss: dict[str, float],
    versions: dict[str, str],
    notes: list[str],
    repeats: int,
    warmup: float,
    duration: float,
) -> None:
    present = {name for name, _, _ in runs}
    peers = [p for p in (*PEERS, "legacy") if p in present]
    ratios = Table(
        "tfio-handlers req/s ÷ each peer's req/s (`/v1` / `/invocations`)",
        ["request, concurrency", *[f"÷ {p}" for p in peers]],
    )
    for label, concurrency in CELLS:
        row = [f"{label}, c={concurrency}"]
        worst: tuple[float, str] = (float("inf"), "")
        for peer in peers:
            theirs = _median(runs[(peer, label, concurrency)], "rps")
            cell = []
            for route in OURS_ROUTES:
                ratio = _median(runs[(route, label, concurrency)], "rps") / theirs
                cell.append(fmt_ratio(ratio))
                if peer in PEERS and ratio < worst[0]:
                    worst = (ratio, f"{route} ÷ {peer}")
            row.append(" / ".join(cell))
        ratios.rows.append(row)
        if worst[1]:
            result.goals.append(
                Goal(
                    f"peers: {label}, c={concurrency}, both routes ≥ 1.5x every peer's req/s",
                    f"lowest {fmt_ratio(worst[0])} ({worst[1]})",
                    worst[0] >= 1.5,
                    "" if worst[0] >= 1.5 else f"short by {1.5 / worst[0]:.2f}x",
                )
            )
    ratios.notes.append(
        "Peers: KServe (V1, a kserve.Model calling the signature), MLServer (V2, a custom runtime), "
        "the naive FastAPI server (model on the event loop), and the legacy Flask baseline."
    )
    result.tables.append(ratios)
    server_cpu, generator_cpu = http_bench._cpus()
    for label, concurrency in CELLS:
        table = Table(
            f"Peers: {label}, concurrency {concurrency}",
            ["server", "req/s", "p50 / p99 (ms)", "server CPU per request", "gen CPU"],
        )
        for name in [*OURS_ROUTES, *peers]:
            data = runs.get((name, label, concurrency))
            if not data:
                continue
            table.rows.append(
                [
                    name,
                    f"{_median(data, 'rps'):.0f}",
                    f"{_median(data, 'p50_ms'):.2f} / {_median(data, 'p99_ms'):.2f}",
                    f"{_median(data, 'server_cpu_per_request_ms'):.2f} ms",
                    f"{_median(data, 'cpu_share'):.0%}",
                ]
            )
            result.raw[f"{name} {label} c={concurrency}"] = data
        result.tables.append(table)
        if concurrency == 64:
            best = min((_median(runs[(p, label, 64)], "p99_ms"), p) for p in PEERS if p in present)
            ours = max(_median(runs[(route, label, 64)], "p99_ms") for route in OURS_ROUTES)
            result.goals.append(
                Goal(
                    f"peers: {label}, c=64, p99 of both routes ≤ the best peer's",
                    f"{ours:.2f} ms against {best[0]:.2f} ms ({best[1]})",
                    ours <= best[0],
                    "" if ours <= best[0] else f"over by {ours / best[0]:.2f}x",
                )
            )
    batched = runs.get(("tfio /invocations + batching", "iris 1×4 batching", 64))
    if batched and ("naive FastAPI", "iris 1×4", 64) in runs:
        plain = runs[("tfio /invocations", "iris 1×4 batching", 64)]
        naive = _median(runs[("naive FastAPI", "iris 1×4", 64)], "rps")
        ratio = _median(batched, "rps") / naive
        table = Table(
            "Batching: iris at concurrency 64, `/invocations`",
            ["server", "req/s", "p50 / p99 (ms)", "server CPU per request"],
        )
        for name, data in (("tfio", plain), ("tfio + batching", batched)):
            table.rows.append(
                [
                    name,
                    f"{_median(data, 'rps'):.0f}",
                    f"{_median(data, 'p50_ms'):.2f} / {_median(data, 'p99_ms'):.2f}",
                    f"{_median(data, 'server_cpu_per_request_ms'):.2f} ms",
                ]
            )
        table.notes.append(
            "Batching: "
            + ", ".join(f"`{k}={v}`" for k, v in BATCHING_ENV.items())
            + " (the no-wait mode: a batch runs as soon as the model is free); run in "
            "alternation with the plain server in each repeat."
        )
        result.tables.append(table)
        result.goals.append(
            Goal(
                "peers: iris at c=64 with batching on ≥ 3x the naive FastAPI server's req/s",
                fmt_ratio(ratio),
                ratio >= 3,
                "" if ratio >= 3 else f"short by {3 / ratio:.2f}x",
            )
        )
    start_table = Table(
        "Cold start to the first answer, and peak RSS",
        ["server", "cold start (s)", "peak RSS of the process tree"],
    )
    for name in ("tfio", "tfio+batching", WORKERS_SERVER, "legacy", *PEERS):
        if name in cold:
            values = cold[name]
            spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
            start_table.rows.append(
                [
                    name,
                    f"{statistics.median(values):.2f}{spread}",
                    f"{rss.get(name, float('nan')):.0f} MiB",
                ]
            )
    start_table.notes.append(
        f"Cold start: from the process start to the first 200 answer to an iris predict request, "
        f"each server started alone on the server CPU, after one `import tensorflow` per "
        f"interpreter (a warm page cache); median (min-max) of {len(next(iter(cold.values())))} "
        "fresh starts. RSS: the sum of VmHWM over the server's processes after the load runs."
    )
    result.tables.append(start_table)
    pinned = (
        f"servers pinned to CPU {server_cpu}, generator to CPU {generator_cpu}"
        if server_cpu is not None
        else "no CPU pinning (fewer than 2 CPUs)"
    )
    ratios.notes.append(
        f"Median of {repeats} runs of {duration:g} s after {warmup:g} s of warm-up, order of the "
        f"contenders rotated per cell and repeat; {pinned}; every server up at once, idle while "
        "another is measured. Server CPU per request: CPU time of the server's process tree over "
        "the generator's run / every answer of that run (warm-up included); gen CPU: the "
        "generator's CPU time over wall time (slack when well under 100%). Every server with its "
        "defaults (KServe: latency logging and its gRPC server on; MLServer: "
        "`parallel_workers: 0` (its worker processes fail to start with this uvloop), metrics on; tfio: `tfio-handlers serve`, metrics on)."
    )
    if versions:
        ratios.notes.append(
            "Peer venvs: " + "; ".join(f"{peer}: {text}" for peer, text in versions.items())
        )
    ratios.notes += notes
