"""What the library itself costs per request: the pipeline with the model call answered from a cache.

Issue 12 asked the redesign (arrays inside, protobuf at the edges) to halve the per-request cost
outside the model call. Subtracting a separately timed model call from a whole request mixes in how
the two disturb each other's caches; here the model's signature call is replaced by its own answer,
computed once, so what is timed is the library's code alone: ``Pipeline.invoke`` from the body to the
answer, with every conversion, check, dispatch and writer it makes.

Run as a script it measures the ``tfio_handlers`` that ``sys.path`` finds and prints one JSON line;
:func:`measure` runs it, interleaved, for this checkout and for an older commit exported with
``git archive`` (the baseline of the same run: same machine, same moment, same models).

:func:`measure_apps` puts the same question to the served app and to a peer (issue 17): what one
``POST /v1/models/iris:predict`` costs outside the model call, through the ASGI app that ``serve``
runs (``ASGIApp(Pipeline(EmbeddedBackend))``, as ``serve_ours.py``) and through the naive FastAPI
server of the peers benchmark (``peer_servers/naive_fastapi.py``), each with its signature call
answered from a cache, driven in process (no sockets, no HTTP parser: both run on uvicorn, whose
cost is the same for both) on one CPU, in interleaved fresh processes.

    python benchmarks/pipeline_cost.py MODELS_DIR
    python benchmarks/pipeline_cost.py --app tfio|naive MODELS_DIR
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BASELINE_COMMIT = "18e2288"
"""The last commit before issue 12's redesign."""

REQUESTS = {
    "iris": ("iris", b'{"signature_name": "predict", "instances": [[6.4, 3.2, 4.5, 1.5]]}'),
    "784 floats": ("dense784", None),
}


def _dense_body() -> bytes:
    import numpy as np

    values = np.random.default_rng(0).random((1, 784), dtype=np.float32)
    return json.dumps({"instances": values.tolist()}).encode()


def _best_per_call(call: Callable[[], Any], target: float = 0.05, repeats: int = 7) -> float:
    for _ in range(50):
        call()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            call()
        if time.perf_counter() - start >= target / 4:
            break
        n *= 2
    n = max(1, int(n * target / max(time.perf_counter() - start, 1e-9) / 4))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def _script(models_dir: Path) -> dict[str, Any]:
    """The measurement, in this interpreter, of the ``tfio_handlers`` on ``sys.path``."""
    import tfio_handlers
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline
    from tfio_handlers.protos import ModelSpec

    models = {name: models_dir / name for name in ("iris", "dense784")}
    backend = EmbeddedBackend(models)
    pipeline = Pipeline(backend)
    out: dict[str, Any] = {"code": str(Path(tfio_handlers.__file__).parent)}
    for label, (model, body) in REQUESTS.items():
        body = body or _dense_body()
        headers = {
            "content-type": "application/json",
            "x-amzn-sagemaker-custom-attributes": f"tfs-model-name={model}",
        }
        expected = pipeline.invoke(body, headers).body
        signature = "predict" if model == "iris" else "serving_default"
        runner = backend._servable(ModelSpec(name=model)).runner(signature)
        seen: dict[str, Any] = {}

        def remember(
            function: Any = runner.function, seen: dict[str, Any] = seen, **feeds: Any
        ) -> Any:
            seen["answer"] = function(**feeds)
            return seen["answer"]

        # the keyword call (neither the direct nor the flat one), so the cache below can stand in
        if hasattr(runner, "direct"):  # the baseline has no direct call
            runner.direct = None
        runner.flat = False
        runner.function = remember
        pipeline.invoke(body, headers)
        runner.function = lambda cached=seen["answer"], **feeds: cached
        if pipeline.invoke(body, headers).body != expected:
            raise AssertionError(f"{label}: the cached model answer changed the response")
        out[label] = _best_per_call(lambda b=body, h=headers: pipeline.invoke(b, h))
    backend.close()
    return out


APP_BODY = REQUESTS["iris"][1]
APP_PATH = "/v1/models/iris:predict"
APPS = ("tfio", "naive FastAPI")


async def _asgi_post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """One ``POST path`` through an ASGI app, in memory: its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _tfio_app(models_dir: Path) -> Any:
    """``serve``'s app for iris, its signature call answered from a cache."""
    import numpy as np

    from tfio_handlers.adapters.asgi import ASGIApp
    from tfio_handlers.backends.embedded import EmbeddedBackend
    from tfio_handlers.pipeline import Pipeline
    from tfio_handlers.protos import ModelSpec

    backend = EmbeddedBackend({"iris": models_dir / "iris"})
    runner = backend._servable(ModelSpec(name="iris")).runner("predict")
    answer = runner.run({"inputs": np.zeros((1, 4), "float32")})
    # the keyword call (neither the direct nor the flat one), so the cache can stand in for it
    runner.direct = None
    runner.flat = False
    runner.function = lambda cached=answer, **feeds: cached
    return ASGIApp(Pipeline(backend))


def _naive_app(models_dir: Path) -> Any:
    """The naive FastAPI server's app, its signature call answered from a cache."""
    import importlib.util

    os.environ["BENCH_MODELS"] = f"iris={models_dir / 'iris' / '1'}"
    spec = importlib.util.spec_from_file_location(
        "naive_fastapi", HERE / "peer_servers" / "naive_fastapi.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Cached:
        def __init__(self, function: Any) -> None:
            self.structured_input_signature = function.structured_input_signature
            self.function = function
            self.answer: Any = None

        def __call__(self, **feeds: Any) -> Any:
            if self.answer is None:
                self.answer = self.function(**feeds)
            return self.answer

    class Model:
        def __init__(self, real: Any) -> None:
            self.signatures = {name: Cached(f) for name, f in real.signatures.items()}

    module.models["iris"] = Model(module.models["iris"])
    return module.app


def _app_script(which: str, models_dir: Path) -> dict[str, Any]:
    """Seconds per ``POST /v1/models/iris:predict`` through ``which`` app, in this process pinned
    to one CPU, best of 7 batches of about 50 ms."""
    import asyncio

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    app = _tfio_app(models_dir) if which == "tfio" else _naive_app(models_dir)

    async def main() -> float:
        for _ in range(50):
            status, body = await _asgi_post(app, APP_PATH, APP_BODY)
            if status != 200:
                raise AssertionError(f"{which}: {status} {body[:300]!r}")
            await asyncio.sleep(0)  # lets a factory's background load finish
        n = 1
        while True:
            started = time.perf_counter()
            for _ in range(n):
                await _asgi_post(app, APP_PATH, APP_BODY)
            took = time.perf_counter() - started
            if took >= 0.0125:
                break
            n *= 2
        n = max(1, int(n * 0.05 / took))
        best = float("inf")
        for _ in range(7):
            started = time.perf_counter()
            for _ in range(n):
                await _asgi_post(app, APP_PATH, APP_BODY)
            best = min(best, (time.perf_counter() - started) / n)
        return best

    try:
        import uvloop

        seconds = uvloop.run(main())
    except ImportError:
        seconds = asyncio.run(main())
    return {"app": which, "iris": seconds}


def _export(commit: str, into: Path) -> Path | None:
    """``tfio_handlers/`` of ``commit`` under ``into`` (``git archive``), or None outside a git
    checkout or when the commit is unknown (a shallow clone)."""
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "tfio_handlers"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = into / "tar"
    path.write_bytes(archive)
    with tarfile.open(path) as tar:
        tar.extractall(into, filter="data")
    return into


def _run(code_root: Path | None, models_dir: Path, app: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if code_root is not None:
        env["PYTHONPATH"] = str(code_root)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Built-in codecs only: an installed plugin may need a newer library than the baseline.
    env["TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    argv = [sys.executable, str(Path(__file__).resolve()), str(models_dir)]
    if app is not None:
        argv[2:2] = ["--app", app]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"pipeline_cost.py with {code_root or 'this checkout'}: {done.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(models_dir: Path, repeats: int = 3) -> dict[str, dict[str, float]] | None:
    """Median per-request cost (seconds) per request kind, ``{"this checkout": ..., BASELINE: ...}``,
    from ``repeats`` interleaved fresh processes each; None when the baseline cannot be exported."""
    with tempfile.TemporaryDirectory() as tmp:
        old = _export(BASELINE_COMMIT, Path(tmp))
        if old is None:
            return None
        runs: dict[str, list[dict[str, Any]]] = {"this checkout": [], BASELINE_COMMIT: []}
        for repeat in range(repeats):
            order = [(None, "this checkout"), (old, BASELINE_COMMIT)]
            for root, name in order if repeat % 2 == 0 else reversed(order):
                runs[name].append(_run(root, models_dir))
    if not runs[BASELINE_COMMIT][0]["code"].startswith(str(old)):
        raise AssertionError("the baseline run imported this checkout's code")
    return {
        name: {label: statistics.median(r[label] for r in results) for label in REQUESTS}
        for name, results in runs.items()
    }


def measure_apps(models_dir: Path, repeats: int = 3) -> dict[str, float]:
    """Median seconds per iris request outside the model call, per app of :data:`APPS`, from
    ``repeats`` interleaved fresh processes each."""
    runs: dict[str, list[float]] = {name: [] for name in APPS}
    for repeat in range(repeats):
        for name in APPS if repeat % 2 == 0 else reversed(APPS):
            runs[name].append(_run(None, models_dir, "tfio" if name == "tfio" else "naive")["iris"])
    return {name: statistics.median(values) for name, values in runs.items()}


if __name__ == "__main__":
    if sys.argv[1] == "--app":
        print(json.dumps(_app_script(sys.argv[2], Path(sys.argv[3]))))
    else:
        print(json.dumps(_script(Path(sys.argv[1]))))
