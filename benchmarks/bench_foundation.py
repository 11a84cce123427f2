"""Foundation benchmark: import cost, and numpy ⇄ TensorProto conversion, against TensorFlow.

Run from the repository root::

    .venv/bin/python benchmarks/bench_foundation.py            # full run, writes the results file
    .venv/bin/python benchmarks/bench_foundation.py --quick    # fewer repeats, for a smoke test

It prints one table per part and writes ``benchmarks/RESULTS-foundation.md`` (``--output`` to
change, ``--no-write`` to skip):

1. **Import**: a fresh interpreter per measurement, interleaved, median of ``--import-repeats``:
   the seconds the import statement takes (``time.perf_counter`` around it, interpreter start-up
   excluded) and the process's peak RSS afterwards (``ru_maxrss``), for ``import tfio_handlers``,
   ``from tfio_handlers import tensors`` (what conversion needs: numpy and our protos) and
   ``from tensorflow_serving.apis import predict_pb2`` (which loads all of TensorFlow).
2. **Conversion**: float32 arrays of 1x4 and 1000x784; ``to_tensor_proto`` against
   ``tf.make_tensor_proto`` and ``to_ndarray`` against ``tf.make_ndarray``, both in one process
   with TensorFlow loaded, interleaved: each repeat times every contender in turn, the table shows
   the median per call and the spread (min-max over repeats).

The goals (from the issue) are checked and printed as met/missed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "benchmarks" / "RESULTS-foundation.md"

IMPORTS = {
    "import tfio_handlers": "import tfio_handlers",
    "from tfio_handlers import tensors": "from tfio_handlers import tensors",
    "from tensorflow_serving.apis import predict_pb2": (
        "from tensorflow_serving.apis import predict_pb2"
    ),
}
BASELINE_IMPORT = "from tensorflow_serving.apis import predict_pb2"

# One fresh interpreter: time the statement, then report the process's peak RSS.
_PROBE = """
import resource, sys, time
t0 = time.perf_counter()
exec(compile(sys.argv[1], "<import>", "exec"))
t1 = time.perf_counter()
print(t1 - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure_import(statement: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one cold import in a fresh interpreter."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, statement],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    ).stdout.split()
    seconds, max_rss_kib = float(out[-2]), float(out[-1])
    return seconds, max_rss_kib / 1024


def bench_imports(repeats: int) -> dict[str, dict[str, float]]:
    """Median import time and peak RSS per statement, runs interleaved across statements."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in IMPORTS}
    bare = [measure_import("pass") for _ in range(max(3, repeats // 2))]
    for _ in range(repeats):
        for name, statement in IMPORTS.items():
            samples[name].append(measure_import(statement))
    results: dict[str, dict[str, float]] = {}
    for name, runs in samples.items():
        times = [t for t, _ in runs]
        rss = [r for _, r in runs]
        results[name] = {
            "seconds": statistics.median(times),
            "seconds_min": min(times),
            "seconds_max": max(times),
            "rss_mib": statistics.median(rss),
        }
    results["(bare interpreter)"] = {
        "seconds": 0.0,
        "seconds_min": 0.0,
        "seconds_max": 0.0,
        "rss_mib": statistics.median(r for _, r in bare),
    }
    return results


def per_call(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call over ``number`` calls."""
    return timeit.timeit(fn, number=number) / number


def bench_conversion(repeats: int, scale: float) -> dict[str, dict[str, dict[str, float]]]:
    """Median/min/max seconds per call of each contender, for each case."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    from tfio_handlers import tensors
    from tfio_handlers.protos import TensorProto

    rng = np.random.default_rng(0)
    cases: dict[str, dict[str, tuple[Callable[[], Any], int]]] = {}
    for label, shape, number in (("1x4", (1, 4), 20000), ("1000x784", (1000, 784), 100)):
        arr = rng.random(shape, dtype=np.float32)
        ours_proto = tensors.to_tensor_proto(arr)
        tf_proto = tf.make_tensor_proto(arr)
        assert ours_proto.SerializeToString() == tf_proto.SerializeToString()
        assert isinstance(ours_proto, TensorProto)
        assert np.array_equal(tensors.to_ndarray(ours_proto), tf.make_ndarray(tf_proto))
        n = max(1, int(number * scale))
        cases[f"write {label}"] = {
            "tfio_handlers": (lambda a=arr: tensors.to_tensor_proto(a), n),
            "tensorflow": (lambda a=arr: tf.make_tensor_proto(a), n),
        }
        cases[f"read {label}"] = {
            "tfio_handlers": (lambda p=ours_proto: tensors.to_ndarray(p), n),
            "tfio_handlers writable": (
                lambda p=ours_proto: tensors.to_ndarray(p, writable=True),
                n,
            ),
            "tensorflow": (lambda p=tf_proto: tf.make_ndarray(p), n),
        }
    samples: dict[str, dict[str, list[float]]] = {
        case: {who: [] for who in contenders} for case, contenders in cases.items()
    }
    for contenders in cases.values():  # warm-up
        for fn, number in contenders.values():
            per_call(fn, max(1, number // 10))
    for repeat in range(repeats):
        for case, contenders in cases.items():
            # alternate who goes first, so neither always pays for the other's garbage
            order = list(contenders.items())
            for who, (fn, number) in order if repeat % 2 else reversed(order):
                samples[case][who].append(per_call(fn, number))
    return {
        case: {
            who: {"median": statistics.median(s), "min": min(s), "max": max(s)}
            for who, s in by_who.items()
        }
        for case, by_who in samples.items()
    }


def versions() -> dict[str, str]:
    """Versions of everything measured, read without importing TensorFlow here."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("numpy", "protobuf", "tensorflow", "tensorflow-serving-api", "ml_dtypes"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    from google.protobuf.internal import api_implementation

    out["protobuf backend"] = api_implementation.Type()
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.system()} {platform.release()}, {cpu}, {cores} usable cores"


def fmt_time(seconds: float) -> str:
    if seconds >= 0.1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} µs"


def goals(
    imports: dict[str, dict[str, float]], conv: dict[str, dict[str, dict[str, float]]]
) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each goal of the issue."""
    base = imports[BASELINE_IMPORT]
    out: list[tuple[str, str, bool]] = []
    for name in ("import tfio_handlers", "from tfio_handlers import tensors"):
        t_ratio = base["seconds"] / imports[name]["seconds"]
        m_ratio = base["rss_mib"] / imports[name]["rss_mib"]
        out.append((f"`{name}` ≥ 15x faster than predict_pb2", f"{t_ratio:.0f}x", t_ratio >= 15))
        out.append(
            (f"`{name}` ≥ 15x smaller peak RSS than predict_pb2", f"{m_ratio:.1f}x", m_ratio >= 15)
        )

    def ratio(case: str, who: str = "tfio_handlers") -> float:
        return conv[case]["tensorflow"]["median"] / conv[case][who]["median"]

    r = ratio("write 1x4")
    out.append(("write 1x4 ≥ 3x faster than tf.make_tensor_proto", f"{r:.1f}x", r >= 3))
    r = ratio("write 1000x784")
    # "no slower": within the 5% these medians wander between runs
    out.append(("write 1000x784 no slower than tf.make_tensor_proto", f"{r:.2f}x", r >= 0.95))
    for label in ("1x4", "1000x784"):
        r = ratio(f"read {label}")
        out.append((f"read {label} ≥ 2x faster than tf.make_ndarray", f"{r:.1f}x", r >= 2))
    return out


def render(
    imports: dict[str, dict[str, float]],
    conv: dict[str, dict[str, dict[str, float]]],
    args: argparse.Namespace,
) -> str:
    lines = [
        "# Foundation benchmark results",
        "",
        f"Written by `benchmarks/bench_foundation.py` on {_dt.date.today().isoformat()}.",
        "",
        f"- Machine: {machine()}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- Import: {args.import_repeats} fresh interpreters per statement, interleaved; median "
        "(min-max) of the import statement alone; peak RSS of the whole process (median).",
        f"- Conversion: {args.repeats} interleaved repeats, TensorFlow loaded in the same process; "
        "median per call (min-max over repeats); ratio = TensorFlow's median / ours.",
        "",
        "## Import",
        "",
        "| statement | time | peak RSS | time ratio | RSS ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    base = imports[BASELINE_IMPORT]
    for name, r in imports.items():
        if name == "(bare interpreter)":
            lines.append(f"| {name} | - | {r['rss_mib']:.1f} MiB | | |")
            continue
        span = (
            f"{fmt_time(r['seconds'])} ({fmt_time(r['seconds_min'])}-{fmt_time(r['seconds_max'])})"
        )
        lines.append(
            f"| `{name}` | {span} | {r['rss_mib']:.1f} MiB | "
            f"{base['seconds'] / r['seconds']:.1f}x | {base['rss_mib'] / r['rss_mib']:.1f}x |"
        )
    lines += [
        "",
        "## numpy ⇄ TensorProto (float32)",
        "",
        "| case | tfio_handlers | tfio_handlers, writable | TensorFlow | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, by_who in conv.items():

        def cell(who: str, by_who: dict[str, dict[str, float]] = by_who) -> str:
            if who not in by_who:
                return "-"
            s = by_who[who]
            return f"{fmt_time(s['median'])} ({fmt_time(s['min'])}-{fmt_time(s['max'])})"

        ratio = by_who["tensorflow"]["median"] / by_who["tfio_handlers"]["median"]
        lines.append(
            f"| {case} | {cell('tfio_handlers')} | {cell('tfio_handlers writable')} | "
            f"{cell('tensorflow')} | {ratio:.1f}x |"
        )
    lines += [
        "",
        "`to_tensor_proto` writes a multi-element numeric array as one `tensor_content` "
        "assignment plus a cached shape; the 1000x784 write is bound by the 3 MB copy into "
        "the message that both sides make. `to_ndarray` returns a read-only `np.frombuffer` view "
        "of `tensor_content` (no copy); `writable=True` adds the one copy `tf.make_ndarray` "
        "always makes (shown for information; the goals compare the default read).",
        "",
        "## Goals",
        "",
        "| goal | measured | |",
        "|---|---:|---|",
    ]
    for goal, measured, met in goals(imports, conv):
        lines.append(f"| {goal} | {measured} | {'met' if met else '**missed**'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="conversion repeats (default 9)")
    parser.add_argument(
        "--import-repeats", type=int, default=7, help="fresh interpreters per import (default 7)"
    )
    parser.add_argument("--quick", action="store_true", help="3 repeats, 1/10 of the calls")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = parser.parse_args(argv)
    scale = 1.0
    if args.quick:
        args.repeats, args.import_repeats, scale = 3, 3, 0.1

    imports = bench_imports(args.import_repeats)
    conv = bench_conversion(args.repeats, scale)
    report = render(imports, conv, args)
    print(report)
    if args.json:
        print(json.dumps({"imports": imports, "conversion": conv}, indent=2))
    if not args.no_write:
        args.output.write_text(report, encoding="utf-8")
        print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
