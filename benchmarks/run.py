"""Every benchmark group of tfio-handlers, side by side with the code it replaces, in one run.

Run from the repository root (the development environment has the baselines: TensorFlow,
``tensorflow-serving-api``, Flask, gunicorn)::

    .venv/bin/python benchmarks/run.py            # everything, about 8 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --quick    # fewer and shorter repeats, about 3 minutes
    .venv/bin/python benchmarks/run.py --groups json,csv --no-write

It checks first, in every group, that every contender produces the same tensors, then times them
(interleaved repeats, medians and spread), prints the tables and writes ``benchmarks/RESULTS.md``:
machine, versions, method, the tables with ratios of our paths to the baselines, and each goal of
the performance issue met or missed, by how much and why. ``--json PATH`` also saves the raw
figures. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(HERE), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import bench_foundation  # noqa: E402
from harness import Goal, GroupResult, Table, fmt_ratio, fmt_time  # noqa: E402

GROUPS = (
    "imports",
    "conversion",
    "json",
    "protobuf",
    "response",
    "csv",
    "jsonlines",
    "registry",
    "pipeline",
    "http",
    "batching",
    "transform",
    "ray-transform",
    "peers",
    "workers",
    "tf-call",
)
# Run only when named: it installs KServe and MLServer in venvs of their own (cached) and writes to
# its own file: ``run.py --groups peers --output benchmarks/RESULTS-peers.md``. ``tf-call`` too:
# ``run.py --groups tf-call --output benchmarks/RESULTS-tf-call.md``. ``workers``: the peers
# group's 1-vs-2-workers cells alone (``--no-write`` to check them).
ON_REQUEST = ("peers", "workers", "tf-call")

# Statements whose cold import is measured (fresh interpreters): the foundation's three, plus what a
# request needs without TensorFlow.
EXTRA_IMPORTS = {
    "import tfio_handlers, numpy": "import tfio_handlers, numpy",
    "serving stack without TF (pipeline, registry, all codecs)": (
        "from tfio_handlers.pipeline import Pipeline\n"
        "from tfio_handlers.registry import Registry\n"
        "Registry().check()"
    ),
}


# -- groups ------------------------------------------------------------------------------------------


def group_imports(opts: argparse.Namespace) -> GroupResult:
    result = GroupResult("imports")
    bench_foundation.IMPORTS.update(EXTRA_IMPORTS)
    figures = bench_foundation.bench_imports(opts.import_repeats)
    baseline = figures[bench_foundation.BASELINE_IMPORT]
    table = Table(
        "Cold import: time of the import statement, peak RSS of the process",
        ["statement", "time", "peak RSS", "time ratio", "RSS ratio"],
    )
    for name, row in figures.items():
        if name == "(bare interpreter)":
            table.rows.append([name, "-", f"{row['rss_mib']:.1f} MiB", "", ""])
            continue
        table.rows.append(
            [
                f"`{name}`",
                f"{fmt_time(row['seconds'])} ({fmt_time(row['seconds_min'])}-"
                f"{fmt_time(row['seconds_max'])})",
                f"{row['rss_mib']:.1f} MiB",
                fmt_ratio(baseline["seconds"] / row["seconds"]),
                fmt_ratio(baseline["rss_mib"] / row["rss_mib"]),
            ]
        )
    table.notes.append(
        f"Fresh interpreters, {opts.import_repeats} per statement, interleaved; median (min-max). "
        "Peak RSS includes the bare interpreter. `import tfio_handlers` is lazy; "
        "`import tfio_handlers, numpy` is the goal's 'numpy included'."
    )
    result.tables.append(table)
    result.raw = figures
    goal_row = figures["import tfio_handlers, numpy"]
    result.goals.append(
        Goal(
            "`import tfio_handlers` (numpy included) ≤ 0.15 s",
            fmt_time(goal_row["seconds"]),
            goal_row["seconds"] <= 0.15,
        )
    )
    result.goals.append(
        Goal(
            "`import tfio_handlers` (numpy included) ≤ 40 MB peak RSS",
            f"{goal_row['rss_mib'] * 1.048576:.1f} MB",
            goal_row["rss_mib"] * 1.048576 <= 40,
        )
    )
    stack = figures["serving stack without TF (pipeline, registry, all codecs)"]
    result.goals.append(
        Goal(
            "(information, not a goal) the whole serving stack without TF",
            f"{fmt_time(stack['seconds'])}, {stack['rss_mib'] * 1.048576:.1f} MB",
            None,
            "what a server imports before it loads a model: pipeline, registry, every codec",
        )
    )
    return result


def group_conversion(opts: argparse.Namespace) -> GroupResult:
    result = GroupResult("conversion")
    figures = bench_foundation.bench_conversion(opts.repeats, 0.3 if opts.quick else 1.0)
    table = Table(
        "numpy ⇄ TensorProto (float32), TensorFlow loaded",
        ["case", "tfio_handlers", "TensorFlow", "ratio"],
    )
    for case, by_who in figures.items():
        ours, theirs = by_who["tfio_handlers"], by_who["tensorflow"]
        table.rows.append(
            [
                case,
                fmt_time(ours["median"]),
                fmt_time(theirs["median"]),
                fmt_ratio(theirs["median"] / ours["median"]),
            ]
        )
    table.notes.append("From `bench_foundation.bench_conversion` (see RESULTS-foundation.md).")
    result.tables.append(table)
    result.raw = figures
    return result


def _micro(name: str) -> Callable[[argparse.Namespace], GroupResult]:
    def run(opts: argparse.Namespace) -> GroupResult:
        import micro

        function: Callable[[int, float], GroupResult] = getattr(micro, f"bench_{name}")
        return function(opts.repeats, opts.target)

    return run


def group_http(opts: argparse.Namespace) -> list[GroupResult]:
    import http_bench

    return http_bench.bench_http(
        opts.http_repeats,
        opts.http_warmup,
        opts.http_duration,
        opts.batching,
        opts.repeats,
        opts.target,
    )


def group_batching_backend(opts: argparse.Namespace) -> GroupResult:
    import tempfile

    import http_bench
    import models

    with tempfile.TemporaryDirectory(prefix="tfio-bench-iris-") as tmp:
        model_dir = models.build_iris(Path(tmp)).parent
        return http_bench.bench_batching_backend(
            model_dir, 64, opts.http_duration, [(8, 1000), (64, 2000)]
        )


def group_pipeline(opts: argparse.Namespace) -> GroupResult:
    """Issue 12's goal: the library's own cost per request, this checkout against the commit before
    the redesign, in the same run (``pipeline_cost.py``)."""
    import tempfile

    import models
    import pipeline_cost

    result = GroupResult("pipeline")
    with tempfile.TemporaryDirectory(prefix="tfio-bench-pipeline-") as tmp:
        models.build_all(Path(tmp))
        figures = pipeline_cost.measure(Path(tmp), repeats=3 if opts.quick else 5)
    baseline = pipeline_cost.BASELINE_COMMIT
    if figures is None:
        result.goals.append(
            Goal(
                "our code per iris request ≤ ½ of " + baseline + "'s",
                "not measured",
                None,
                f"{baseline} is not in this checkout (a shallow clone?): nothing to compare with",
            )
        )
        return result
    table = Table(
        "The library's own cost per request: Pipeline.invoke with the model call answered from a "
        "cache",
        ["request", "this checkout", baseline, "ratio"],
    )
    for label in pipeline_cost.REQUESTS:
        ours, before = figures["this checkout"][label], figures[baseline][label]
        table.rows.append([label, fmt_time(ours), fmt_time(before), fmt_ratio(before / ours)])
    table.notes.append(
        f"Best of 7 batches per process, median of {3 if opts.quick else 5} fresh processes per "
        f"code, interleaved; {baseline} (the commit before issue 12's redesign) exported with "
        "`git archive` and imported in its own processes. The model's signature call is replaced "
        "by its own answer, computed once: what is timed is the library alone, from the body to "
        "the answer (decoding, the Context, signatures, the backend's checks and conversions, "
        "encoding)."
    )
    result.tables.append(table)
    with tempfile.TemporaryDirectory(prefix="tfio-bench-apps-") as tmp:
        models.build_all(Path(tmp))
        apps = pipeline_cost.measure_apps(Path(tmp), repeats=3 if opts.quick else 5)
    peer = Table(
        "Outside the model call, served: one iris `POST /v1/models/iris:predict` through the ASGI "
        "app, against the naive FastAPI server of the peers benchmark",
        ["app", "per request", "naive FastAPI ÷ this"],
    )
    for name, seconds in apps.items():
        peer.rows.append([name, fmt_time(seconds), fmt_ratio(apps["naive FastAPI"] / seconds)])
    peer.notes.append(
        "Each app's signature call is answered from a cache and the request is driven through "
        "its ASGI callable in memory (no socket, no HTTP parser: both serve on uvicorn), in a "
        f"fresh process pinned to one CPU; best of 7 batches, median of {3 if opts.quick else 5} "
        "interleaved processes. Below 1: the naive server's own work per request is smaller than "
        "ours, so at one connection the model call's share decides the peers table's iris cells."
    )
    result.tables.append(peer)
    result.raw = {"pipeline": figures, "apps": apps}
    ours, before = figures["this checkout"]["iris"], figures[baseline]["iris"]
    result.goals.append(
        Goal(
            f"iris request: the library's own cost ≤ ½ of {baseline}'s (issue 12)",
            f"{fmt_time(ours)} against {fmt_time(before)} ({fmt_ratio(before / ours)} less)",
            ours <= before / 2,
            "" if ours <= before / 2 else f"over by {ours / (before / 2):.2f}x",
        )
    )
    return result


def group_transform(opts: argparse.Namespace) -> GroupResult:
    """Issue 13's goals: ``tfio-handlers transform`` against one request per record and numpy batches
    (``transform_bench.py``); 60k records with ``--quick``, 300k otherwise."""
    import transform_bench

    if opts.quick:
        return transform_bench.bench_transform(60_000, 500, 1)
    return transform_bench.bench_transform(300_000, 2000, 3)


def group_ray_transform(opts: argparse.Namespace) -> GroupResult:
    """Issue 13's Ray goals: ``transform --ray`` at 1 and 2 actors against the local job and Ray
    Data by hand (``ray_transform_bench.py``); skipped without Ray."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return GroupResult("ray-transform", error="Ray is not installed (extra `ray`)")
    import ray_transform_bench

    if opts.quick:
        return ray_transform_bench.bench_ray_transform(60_000, 1)
    return ray_transform_bench.bench_ray_transform(300_000, 3)


def group_peers(opts: argparse.Namespace) -> GroupResult:
    """Issue 17's peers: KServe, MLServer and a naive FastAPI server next to the project and the
    legacy baseline, over HTTP (``peers.py``)."""
    import peers

    if opts.quick:
        return peers.bench_peers(1, 0.5, 2.0, cold_repeats=1)
    return peers.bench_peers(3, 1.0, 4.0, cold_repeats=3)


def group_workers(opts: argparse.Namespace) -> GroupResult:
    """Issue 17 item 4: ``tfio-handlers serve`` with 1 and 2 workers, iris over HTTP (the peers
    group runs the same cells next to the peers)."""
    import peers

    if opts.quick:
        return peers.bench_workers(1, 0.5, 2.0)
    return peers.bench_workers(3, 1.0, 4.0)


def group_tf_call(opts: argparse.Namespace) -> GroupResult:
    """Issue 17 item 3: what TensorFlow's own per-call cost is made of and what lowers it, a fresh
    process per setting (``tf_call.py``)."""
    import tf_call

    if opts.quick:
        return tf_call.bench_tf_call(1, 3, 0.02)
    return tf_call.bench_tf_call(3, 5, 0.05)


# -- report ------------------------------------------------------------------------------------------


def render(results: list[GroupResult], opts: argparse.Namespace, started: float) -> str:
    versions = bench_foundation.versions()
    from importlib import metadata

    for dist in (
        "pysimdjson",
        "orjson",
        "uvicorn",
        "gunicorn",
        "flask",
        "h11",
        "httptools",
        "uvloop",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    lines = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/run.py{' --quick' if opts.quick else ''}` on "
        f"{_dt.date.today().isoformat()} in {time.time() - started:.0f} s.",
        "",
        f"- Machine: {bench_foundation.machine()}; load average at the end "
        f"{os.getloadavg()[0]:.2f} (the cores are shared: absolute times drift, ratios hold best)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- Method: in-process groups time each contender in batches of about "
        f"{opts.target * 1000:.0f} ms, {opts.repeats} interleaved repeats (order rotated), "
        "median (min-max over repeats); TensorFlow is loaded in the process, as in a serving "
        "process of the embedded backend. Every group first checks that all contenders produce "
        "the same tensors. HTTP: see its table notes.",
        "",
        "## Goals",
        "",
        "| goal | measured | | note |",
        "|---|---:|---|---|",
    ]
    for result in results:
        for goal in result.goals:
            status = "met" if goal.met else ("info" if goal.met is None else "**missed**")
            lines.append(f"| {goal.goal} | {goal.measured} | {status} | {goal.note} |")
        if result.error:
            lines.append(
                f"| group `{result.name}` | failed | **not measured** | "
                f"{result.error.splitlines()[-1]} |"
            )
    lines.append("")
    for result in results:
        for table in result.tables:
            lines += [
                f"## {table.title}",
                "",
                "| " + " | ".join(table.columns) + " |",
                "|"
                + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns)))
                + "|",
            ]
            lines += ["| " + " | ".join(row) + " |" for row in table.rows]
            lines.append("")
            lines += [note + "\n" for note in table.notes]
    checks = [check for result in results for check in result.checks]
    if checks:
        lines += ["## Equality checks (all passed)", ""] + [f"- {c}" for c in checks] + [""]
    lines += (
        ["## Time per group", ""]
        + [f"- {r.name}: {r.seconds:.0f} s" + (" (failed)" if r.error else "") for r in results]
        + [""]
    )
    lines += [
        "What is fast and why, and the dependency choices: `docs/performance.md`. How to run: "
        "`benchmarks/README.md`.",
        "",
    ]
    return "\n".join(lines)


def print_result(result: GroupResult) -> None:
    print(f"\n== {result.name} ({result.seconds:.0f} s)", flush=True)
    if result.error:
        print(result.error)
    for table in result.tables:
        print(f"\n{table.title}")
        widths = [
            max(len(str(c)), *(len(r[i]) for r in table.rows)) if table.rows else len(c)
            for i, c in enumerate(table.columns)
        ]
        print("  ".join(c.ljust(w) for c, w in zip(table.columns, widths, strict=False)))
        for row in table.rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)))
    for goal in result.goals:
        status = "met" if goal.met else ("info" if goal.met is None else "MISSED")
        print(f"  [{status}] {goal.goal}: {goal.measured} {goal.note}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (~3 min)")
    parser.add_argument(
        "--groups",
        default=",".join(g for g in GROUPS if g not in ON_REQUEST),
        help=f"comma-separated subset of: {', '.join(GROUPS)} (default: all but "
        f"{', '.join(ON_REQUEST)})",
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, default=None, help="also save raw figures here")
    parser.add_argument(
        "--batching",
        default="64:2000",
        help="max_batch_size:timeout_us of the batching server (default 64:2000)",
    )
    opts = parser.parse_args(argv)
    quick = opts.quick
    opts.repeats = 3 if quick else 7
    opts.target = 0.02 if quick else 0.05
    opts.import_repeats = 3 if quick else 7
    opts.http_repeats = 1 if quick else 3
    opts.http_warmup = 0.5 if quick else 1.0
    opts.http_duration = 2.0 if quick else 4.0
    wanted = [g.strip() for g in opts.groups.split(",") if g.strip()]
    unknown = set(wanted) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")

    started = time.time()
    results: list[GroupResult] = []
    runners: dict[str, Callable[[argparse.Namespace], Any]] = {
        "imports": group_imports,
        "conversion": group_conversion,
        "json": _micro("json"),
        "protobuf": _micro("protobuf"),
        "response": _micro("response"),
        "csv": _micro("csv"),
        "jsonlines": _micro("jsonlines"),
        "registry": _micro("registry"),
        "pipeline": group_pipeline,
        "http": group_http,
        "batching": group_batching_backend,
        "transform": group_transform,
        "ray-transform": group_ray_transform,
        "peers": group_peers,
        "workers": group_workers,
        "tf-call": group_tf_call,
    }
    for name in GROUPS:
        if name not in wanted:
            continue
        t0 = time.time()
        try:
            produced = runners[name](opts)
        except Exception:
            produced = GroupResult(name, error=traceback.format_exc())
        for result in produced if isinstance(produced, list) else [produced]:
            result.seconds = time.time() - t0
            results.append(result)
            print_result(result)
    text = render(results, opts, started)
    if not opts.no_write:
        opts.output.write_text(text)
        print(f"\nwrote {opts.output}")
    if opts.json:
        opts.json.write_text(json.dumps({r.name: r.raw for r in results}, indent=1, default=str))
    print(f"total {time.time() - started:.0f} s")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
