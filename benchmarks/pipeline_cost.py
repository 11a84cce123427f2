"""What the library itself costs per request: the pipeline with the model call answered from a cache.

Issue 12 asked the redesign (arrays inside, protobuf at the edges) to halve the per-request cost
outside the model call. Subtracting a separately timed model call from a whole request mixes in how
the two disturb each other's caches; here the model's signature call is replaced by its own answer,
computed once, so what is timed is the library's code alone: ``Pipeline.invoke`` from the body to the
answer, with every conversion, check, dispatch and writer it makes.

Run as a script it measures the ``tfio_handlers`` that ``sys.path`` finds and prints one JSON line;
:func:`measure` runs it, interleaved, for this checkout and for an older commit exported with
``git archive`` (the baseline of the same run: same machine, same moment, same models).

    python benchmarks/pipeline_cost.py MODELS_DIR
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

        runner.flat = False  # the keyword call, so the cache below can stand in for it
        runner.function = remember
        pipeline.invoke(body, headers)
        runner.function = lambda cached=seen["answer"], **feeds: cached
        if pipeline.invoke(body, headers).body != expected:
            raise AssertionError(f"{label}: the cached model answer changed the response")
        out[label] = _best_per_call(lambda b=body, h=headers: pipeline.invoke(b, h))
    backend.close()
    return out


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


def _run(code_root: Path | None, models_dir: Path) -> dict[str, Any]:
    env = dict(os.environ)
    if code_root is not None:
        env["PYTHONPATH"] = str(code_root)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Built-in codecs only: an installed plugin may need a newer library than the baseline.
    env["TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(models_dir)],
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


if __name__ == "__main__":
    print(json.dumps(_script(Path(sys.argv[1]))))
