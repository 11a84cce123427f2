"""What TensorFlow's own per-call cost is made of, and what lowers it (issue 17 item 3): the
``tf-call`` group of ``benchmarks/run.py``, written to ``RESULTS-tf-call.md``.

``.venv/bin/python benchmarks/run.py --groups tf-call --output benchmarks/RESULTS-tf-call.md``
(about 6 minutes on 2 cores; ``--quick`` about 2).

One signature call of the benchmark models (``models.py``): iris ``predict`` 1×4, ``dense784``
1×784 and 100×784. Two kinds of contender:

* **process settings**, which must be set before TensorFlow starts or before the model is loaded:
  TensorFlow's thread pools (inter/intra-op 1, 2, default), oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``),
  XLA auto-clustering (``tf.config.optimizer.set_jit(True)``), Grappler off
  (``set_experimental_options({"disable_meta_optimizer": True})``), and the process pinned to one
  CPU (TensorFlow then sizes both pools 1). Each runs in a fresh process
  (``--child``), the settings in rotated order, ``rounds`` times; the ratio of a setting is its
  ``Runner.run`` median over the default process's of the same round, and the table shows the
  median of those ratios.
* **call paths**, in one process (unpinned, and pinned to one CPU as the HTTP benchmarks pin
  servers), interleaved: ``Runner.run`` as it is now (the direct call,
  ``convert_to_eager_tensor`` + ``context.call_function``); the flat call it made before
  (``convert_to_tensor`` + ``ConcreteFunction._call_flat``); the keyword call
  ``function(x=...)``; the direct call with ``convert_to_tensor``; the flat call and
  ``AtomicFunction.call_preflattened`` on a tensor made beforehand (what conversion costs);
  ``execute.execute`` with attributes read once and an ``EagerTensor`` without the copy; an XLA
  re-wrap (``tf.function(jit_compile=True)`` around the signature); a TF1
  ``Session.make_callable`` on the same SavedModel (where it loads).

Each timed batch reports wall and process CPU time per call; ``Runner.run`` is also timed from
4 threads at once (a server's pool at concurrency).

Every contender's outputs are compared with ``Runner.run``'s in the default process: bit for bit,
or the largest absolute difference is reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from harness import GroupResult, Table, fmt_ratio, fmt_time

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# case → (model, signature, alias, shape)
CASES: dict[str, tuple[str, str, str, tuple[int, int]]] = {
    "iris 1×4": ("iris", "predict", "inputs", (1, 4)),
    "dense784 1×784": ("dense784", "serving_default", "x", (1, 784)),
    "dense784 100×784": ("dense784", "serving_default", "x", (100, 784)),
}

PINNED = "pinned to 1 CPU (pools sized 1 by TF)"
PATHS_IN = ("default", PINNED)
"""The settings whose processes time every call path, not only ``Runner.run``."""

# setting → (environment, threads (inter, intra) or None, optimizer call or None)
SETTINGS: dict[str, tuple[dict[str, str], tuple[int, int] | None, str | None]] = {
    "default": ({}, None, None),
    "threads 1/1": ({}, (1, 1), None),
    "threads 2/2": ({}, (2, 2), None),
    "threads 1/2": ({}, (1, 2), None),
    PINNED: ({}, None, "pin"),
    "oneDNN off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, None, None),
    "XLA auto-clustering": ({}, None, "jit"),
    "Grappler off": ({}, None, "no-grappler"),
}
THREADS = 4
"""Callers at once in the concurrent contender (a server's pool at concurrency)."""


def features(case: str) -> np.ndarray:
    shape = CASES[case][3]
    if case.startswith("iris"):
        return np.array([[6.4, 3.2, 4.5, 1.5]], np.float32)
    return np.random.default_rng(784).random(shape, dtype=np.float32)


# -- the child: one process, one setting ----------------------------------------------------------


def _numpy(outputs: Any) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in dict(outputs).items()}


def _direct(runner: Any) -> Callable[[dict[str, np.ndarray]], dict[str, Any]]:
    """The function's op executed directly: what ``_call_flat`` runs when no tape watches."""
    import tensorflow as tf
    from tensorflow.python.eager import context, execute
    from tensorflow.python.framework import ops

    atomic = runner.function._inference_function
    name = atomic.name.decode()
    count = len(atomic.function_type.flat_outputs)
    names = tf.nest.flatten({key: key for key in runner.function.structured_outputs})
    captured = list(runner.function.captured_inputs)
    ctx = context.context()
    attrs = tuple(item for pair in ctx.function_call_options.as_attrs().items() for item in pair)
    enums = [dtype.as_datatype_enum for dtype in runner.tf_dtypes]
    aliases = [spec.alias for spec in runner.inputs]

    def call(feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        device = ctx.device_name
        tensors = [
            ops.EagerTensor(feeds[alias], device, enum)
            for alias, enum in zip(aliases, enums, strict=True)
        ]
        flat = execute.execute(name, count, tensors + captured, attrs, ctx)
        return dict(zip(names, flat, strict=True))

    return call


def _xla(runner: Any, case: str) -> Callable[[dict[str, np.ndarray]], Any]:
    import tensorflow as tf

    function = runner.function
    alias = runner.inputs[0].alias
    spec = tf.TensorSpec([None, CASES[case][3][1]], tf.float32)

    @tf.function(input_signature=[spec], jit_compile=True)
    def compiled(x: Any) -> Any:
        return function(**{alias: x})

    concrete = compiled.get_concrete_function()
    return lambda feeds: concrete(tf.constant(feeds[alias]))


def _session(path: Path, signature: str, setting: tuple[int, int] | None) -> Any:
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    config = v1.ConfigProto()
    if setting:
        config.inter_op_parallelism_threads, config.intra_op_parallelism_threads = setting
    session = v1.Session(graph=graph, config=config)
    with graph.as_default():
        meta = v1.saved_model.loader.load(session, ["serve"], str(path))
    sig = meta.signature_def[signature]
    aliases = sorted(sig.inputs)
    outputs = sorted(sig.outputs)
    call = session.make_callable(
        [sig.outputs[o].name for o in outputs],
        feed_list=[graph.get_tensor_by_name(sig.inputs[a].name) for a in aliases],
    )

    def run(feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        return dict(zip(outputs, call(*(feeds[a] for a in aliases)), strict=True))

    return run


def _contenders(
    runner: Any,
    case: str,
    path: Path,
    threads: tuple[int, int] | None,
    every_path: bool,
    failed: dict[str, str],
) -> dict[str, Callable[[], Any]]:
    import tensorflow as tf

    alias = runner.inputs[0].alias
    x = features(case)
    feeds = {alias: x}
    contenders: dict[str, Callable[[], Any]] = {
        "Runner.run": lambda: runner.run(feeds),
        f"Runner.run × {THREADS} threads": lambda: runner.run(feeds),
    }
    if not every_path:
        return contenders
    function = runner.function
    made = tf.constant(x)
    captured = function.captured_inputs
    atomic = function._inference_function
    dtype = runner.tf_dtypes[0]

    def before() -> Any:
        tensors = [tf.convert_to_tensor(x, dtype=dtype)]
        return dict(function._call_flat(tensors, function.captured_inputs))

    direct = _direct(runner)
    atomic_name = atomic.name

    def direct_converted() -> Any:
        from tensorflow.python.eager import context

        tensors = [tf.convert_to_tensor(x, dtype=dtype), *captured]
        flat = context.context().call_function(atomic_name, tensors, runner.direct.count)
        return dict(zip(runner.direct.output_names, flat, strict=True))

    contenders |= {
        "direct call, convert_to_tensor": direct_converted,
        "flat call (before)": before,
        "keyword call": lambda: function(**feeds),
        "flat call, tensor made beforehand": lambda: dict(function._call_flat([made], captured)),
        "AtomicFunction.call_preflattened, tensor made beforehand": (
            lambda: atomic.call_preflattened([made, *captured])
        ),
        "execute.execute + EagerTensor without copy": lambda: direct(feeds),
    }
    builders: dict[str, Callable[[], Callable[[dict[str, np.ndarray]], Any]]] = {
        "XLA re-wrap (jit_compile=True)": lambda: _xla(runner, case),
        "TF1 Session.make_callable": lambda: _session(path, runner.name, threads),
    }
    for label, build in builders.items():
        try:
            call = build()
            call(feeds)
        except Exception as exc:
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            found = re.search(r"Could not find variable \S+|Detected unsupported operations", text)
            failed[f"{case}|{label}"] = found.group(0) if found else text[:200]
            continue
        contenders[label] = lambda call=call: call(feeds)
    return contenders


def _concurrently(call: Callable[[], Any], number: int) -> None:
    """``number`` calls of ``call`` spread over :data:`THREADS` threads."""
    import threading

    def work() -> None:
        for _ in range(number // THREADS):
            call()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _time(
    contenders: dict[str, Callable[[], Any]], repeats: int, target: float
) -> dict[str, dict[str, float]]:
    """Median wall and process CPU seconds per call, contenders interleaved (rotated) per repeat;
    a ``… × N threads`` contender's batch is spread over :data:`THREADS` threads."""
    numbers: dict[str, int] = {}
    for name, fn in contenders.items():
        fn()
        began = time.perf_counter()
        fn()
        numbers[name] = max(THREADS, int(target / max(time.perf_counter() - began, 1e-7)))
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            fn, number = contenders[name], numbers[name]
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            if name.endswith("threads"):
                number -= number % THREADS
                _concurrently(fn, number)
            else:
                for _ in range(number):
                    fn()
            walls[name].append((time.perf_counter() - wall) / number)
            cpus[name].append((time.process_time() - cpu) / number)
    return {
        name: {"wall": statistics.median(walls[name]), "cpu": statistics.median(cpus[name])}
        for name in names
    }


def child(setting: str, models: Path, out: Path, repeats: int, target: float) -> dict[str, Any]:
    _, threads, optimizer = SETTINGS[setting]
    if optimizer == "pin":
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import tensorflow as tf

    from tfio_handlers.backends import savedmodel

    if threads:
        savedmodel.configure_threads(*threads)
    if optimizer == "jit":
        tf.config.optimizer.set_jit(True)
    elif optimizer == "no-grappler":
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    servables = {
        model: savedmodel.load_servable(model, 1, models / model / "1")
        for model in ("iris", "dense784")
    }
    figures: dict[str, Any] = {"timings": {}, "failed": {}}
    arrays: dict[str, np.ndarray] = {}
    for case, (model, signature, _, _) in CASES.items():
        runner = servables[model].runners[signature]
        contenders = _contenders(
            runner, case, models / model / "1", threads, setting in PATHS_IN, figures["failed"]
        )
        for label, fn in contenders.items():
            for output, value in _numpy(fn()).items():
                arrays[f"{case}|{label}|{output}"] = value
        figures["timings"][case] = _time(contenders, repeats, target)
    np.savez(out, **arrays)
    return figures


# -- the parent ----------------------------------------------------------------------------------------


def _run_child(setting: str, models: Path, out: Path, repeats: int, target: float) -> Any:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=f"{ROOT}{os.pathsep}{HERE}")
    env.update(SETTINGS[setting][0])
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", setting]
    argv += ["--models", str(models), "--out", str(out), "--repeats", str(repeats)]
    argv += ["--target", str(target)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{setting}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _same(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"differs ({a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)})"
    if a.dtype == object:  # strings: the values, not the pointers
        return "identical" if a.tolist() == b.tolist() else "differs"
    if a.tobytes() == b.tobytes():
        return "identical"
    if a.dtype.kind in "fc":
        return f"max abs diff {float(np.max(np.abs(a.astype(np.float64) - b))):.1e}"
    return "differs"


def bench_tf_call(rounds: int, repeats: int, target: float) -> GroupResult:
    import models as bench_models

    result = GroupResult("tf-call")
    with tempfile.TemporaryDirectory(prefix="tfio-bench-tf-call-") as tmp:
        root = Path(tmp)
        bench_models.build_all(root / "models")
        runs: dict[str, list[Any]] = {}
        arrays: dict[str, dict[str, np.ndarray]] = {}
        names = list(SETTINGS)
        for round_ in range(rounds):
            shift = round_ % len(names)
            for setting in names[shift:] + names[:shift]:
                out = root / f"{setting.replace('/', '-').replace(' ', '_')}-{round_}.npz"
                runs.setdefault(setting, []).append(
                    _run_child(setting, root / "models", out, repeats, target)
                )
                with np.load(out, allow_pickle=True) as loaded:
                    arrays[setting] = {key: loaded[key] for key in loaded.files}
    reference = {
        key.split("|")[0] + "|" + key.split("|")[2]: value
        for key, value in arrays["default"].items()
        if key.split("|")[1] == "Runner.run"
    }

    def outputs_of(setting: str, case: str, label: str) -> str:
        found = [
            _same(value, reference[f"{case}|{key.split('|')[2]}"])
            for key, value in arrays[setting].items()
            if key.startswith(f"{case}|{label}|")
        ]
        if not found:
            return "n/a"
        worst = [f for f in found if f != "identical"]
        return worst[0] if worst else "identical"

    def median_of(setting: str, case: str, label: str, metric: str = "wall") -> float:
        return statistics.median(r["timings"][case][label][metric] for r in runs[setting])

    def ratio_of(setting: str, case: str, label: str) -> float:
        """Default's time over this setting's, the median over rounds of the in-round ratio."""
        return 1 / statistics.median(
            r["timings"][case][label]["wall"] / d["timings"][case][label]["wall"]
            for r, d in zip(runs[setting], runs["default"], strict=True)
        )

    concurrent = f"Runner.run × {THREADS} threads"
    for where in PATHS_IN:
        paths = Table(
            f"Call paths, one process ({where}): wall time per call (ratio), CPU time per call",
            ["call path", *CASES, "outputs"],
        )
        where_runs = runs[where]
        labels = [
            *where_runs[0]["timings"]["iris 1×4"],
            *(
                label
                for label in where_runs[0]["timings"]["dense784 1×784"]
                if label not in where_runs[0]["timings"]["iris 1×4"]
            ),
        ]
        for label in labels:
            if label == concurrent:
                continue
            row = [label]
            sameness = []
            for case in CASES:
                if label not in where_runs[0]["timings"][case]:
                    row.append("n/a")
                    continue
                ours = median_of(where, case, label)
                base = median_of(where, case, "flat call (before)")
                cpu = median_of(where, case, label, "cpu")
                row.append(f"{fmt_time(ours)} ({fmt_ratio(base / ours)}), CPU {fmt_time(cpu)}")
                sameness.append(
                    f"{case.split()[0]} {case.split()[-1]}: {outputs_of(where, case, label)}"
                )
            distinct = {s.split(": ", 1)[1] for s in sameness}
            row.append("identical" if distinct == {"identical"} else "; ".join(sameness))
            paths.rows.append(row)
        paths.notes.append(
            f"Medians over {rounds} rounds of the median of {repeats} interleaved repeats; in "
            "brackets, the old flat call's wall time over this one's (above 1: faster than the "
            "flat call `Runner.run` made before this change). CPU: the process's CPU time per "
            "call (TensorFlow's pool threads included)."
        )
        for key, why in sorted(where_runs[0]["failed"].items()):
            case, label = key.split("|")
            paths.notes.append(f"{label} on {case}: fails: `{why}`")
        result.tables.append(paths)

    settings = Table(
        "Process settings: `Runner.run` in a fresh process per setting, wall time per call "
        "(ratio to the default process), CPU time per call",
        [
            "setting",
            *(f"{case}, {who}" for case in CASES for who in ("1 caller", f"{THREADS} threads")),
            "outputs",
        ],
    )
    for setting in names:
        row = [setting]
        for case in CASES:
            for label in ("Runner.run", concurrent):
                row.append(
                    f"{fmt_time(median_of(setting, case, label))} "
                    f"({fmt_ratio(ratio_of(setting, case, label))}), "
                    f"CPU {fmt_time(median_of(setting, case, label, 'cpu'))}"
                )
        sameness = [
            f"{case.split()[0]} {case.split()[-1]}: {outputs_of(setting, case, 'Runner.run')}"
            for case in CASES
        ]
        distinct = {s.split(": ", 1)[1] for s in sameness}
        row.append("identical" if distinct == {"identical"} else "; ".join(sameness))
        settings.rows.append(row)
    settings.notes.append(
        f"{rounds} rounds, the settings' processes in an order rotated per round; in brackets, the "
        "default process's wall time over this setting's, the median over rounds of the ratio "
        f"within a round (above 1: faster). {THREADS} threads: {THREADS} threads calling "
        "`Runner.run` at once (a server's pool at concurrency), time per call = wall time / "
        "calls. Outputs compared with the default process's `Runner.run`, bit for bit."
    )
    result.tables.append(settings)
    result.raw = {"runs": runs}
    for case in CASES:
        result.checks.append(f"tf-call, {case}: every contender's outputs compared (table)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", default=None)
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--target", type=float, default=0.05)
    opts = parser.parse_args(argv)
    if opts.child is None:
        import run

        return run.main(["--groups", "tf-call", "--output", str(HERE / "RESULTS-tf-call.md")])
    figures = child(opts.child, opts.models, opts.out, opts.repeats, opts.target)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
