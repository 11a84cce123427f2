"""Dynamic batching on the arrays path, in process: iris ``predict_arrays`` from threads and from
asyncio tasks at 1, 16 and 64 concurrent callers, the embedded backend alone against
``BatchingBackend`` in the no-wait mode (``batch_timeout_micros=0``) and with SageMaker's defaults.

What the pipeline calls (``predict_arrays`` / ``apredict_arrays``), with no HTTP and no codec, so
the figures are the backend's. Contenders are interleaved (the order rotates each repeat) and each
cell is the median of the repeats; the machine is shared, so compare ratios from one run. Every
answer is checked to be the caller's own row.

    .venv/bin/python benchmarks/batching_inprocess.py [--seconds 1] [--repeats 3]
        [--concurrency 1,16,64] [--callers threads,asyncio] [--c1-rounds 100]
        [--settings SIZE:MICROS:THREADS,...]

First the added latency of one caller, finely interleaved (see :func:`added_latency_c1`), then
req/s, mean and p99 latency at each concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import build_iris

from tfio_handlers.backends.base import Backend
from tfio_handlers.backends.batching import BatchingBackend
from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.protocol.arrays import PredictArrays
from tfio_handlers.protos import ModelSpec

Result = tuple[float, float, float]
"""req/s, mean latency (ms), p99 latency (ms)."""


def _requests(count: int) -> list[PredictArrays]:
    rng = np.random.default_rng(5)
    spec = ModelSpec(name="iris", signature_name="predict")
    return [
        PredictArrays(
            {"inputs": rng.uniform([4, 2, 1, 0], [8, 4.5, 7, 2.5], (1, 4)).astype(np.float32)},
            spec,
        )
        for _ in range(count)
    ]


def _summary(latencies: list[float], elapsed: float) -> Result:
    flat = sorted(latencies)
    return (
        len(flat) / elapsed,
        1000 * statistics.fmean(flat),
        1000 * flat[int(0.99 * (len(flat) - 1))],
    )


def drive_threads(
    backend: Backend, requests: list[PredictArrays], expected: list[Any], seconds: float
) -> Result:
    """``len(requests)`` threads in a closed loop of ``predict_arrays``."""
    n = len(requests)
    latencies: list[list[float]] = [[] for _ in range(n)]
    wrong: list[int] = []
    barrier = threading.Barrier(n + 1)
    stop = [0.0]

    def work(i: int) -> None:
        barrier.wait()
        request, want, mine = requests[i], expected[i], latencies[i]
        while time.perf_counter() < stop[0]:
            t0 = time.perf_counter()
            answer = backend.predict_arrays(request)
            mine.append(time.perf_counter() - t0)
            if answer.outputs["class_ids"].tolist() != want:
                wrong.append(i)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for thread in pool:
        thread.start()
    stop[0] = time.perf_counter() + seconds
    start = time.perf_counter()
    barrier.wait()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    if wrong:
        raise AssertionError(f"{len(wrong)} answers were not the caller's own row")
    return _summary([x for lat in latencies for x in lat], elapsed)


def drive_asyncio(
    backend: Backend, requests: list[PredictArrays], expected: list[Any], seconds: float
) -> Result:
    """``len(requests)`` asyncio tasks in a closed loop of ``apredict_arrays``, one event loop."""
    latencies: list[float] = []
    wrong: list[int] = []

    async def work(i: int, stop: float) -> None:
        request, want = requests[i], expected[i]
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            answer = await backend.apredict_arrays(request)
            latencies.append(time.perf_counter() - t0)
            if answer.outputs["class_ids"].tolist() != want:
                wrong.append(i)

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(work(i, start + seconds) for i in range(len(requests))))
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    if wrong:
        raise AssertionError(f"{len(wrong)} answers were not the caller's own row")
    return _summary(latencies, elapsed)


def added_latency_c1(
    contenders: dict[str, Backend], request: PredictArrays, rounds: int, chunk: int = 20
) -> None:
    """One caller, finely interleaved: ``rounds`` times, each contender (in rotated order) answers
    ``chunk`` calls in a row, sync from this thread and async from one event loop; per call, the
    median over rounds and the difference of medians to unbatched. Load that comes and goes hits
    every contender alike at this grain, which 1-second runs do not."""
    names = list(contenders)

    async def achunk(backend: Backend) -> float:
        t0 = time.perf_counter()
        for _ in range(chunk):
            await backend.apredict_arrays(request)
        return time.perf_counter() - t0

    def schunk(backend: Backend) -> float:
        t0 = time.perf_counter()
        for _ in range(chunk):
            backend.predict_arrays(request)
        return time.perf_counter() - t0

    for caller in ("threads", "asyncio"):
        times: dict[str, list[float]] = {name: [] for name in names}
        loop = asyncio.new_event_loop()
        try:
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    backend = contenders[name]
                    took = (
                        schunk(backend)
                        if caller == "threads"
                        else loop.run_until_complete(achunk(backend))
                    )
                    times[name].append(1e6 * took / chunk)
        finally:
            loop.close()
        base = statistics.median(times["unbatched"])
        print(f"\n{caller}, one caller, {rounds} x {chunk} calls interleaved: µs per call")
        print(f"  {'backend':<24} {'median':>8} {'min':>8} {'added':>8} {'ratio':>6}")
        for name in names:
            med = statistics.median(times[name])
            print(
                f"  {name:<24} {med:8.1f} {min(times[name]):8.1f} {med - base:+8.1f} "
                f"{base / med:5.2f}x"
            )
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--callers", default="threads,asyncio")
    parser.add_argument(
        "--c1-rounds", type=int, default=100, help="rounds of the interleaved one-caller run"
    )
    parser.add_argument(
        "--settings",
        default="8:0:1,8:0:2,64:0:1,8:1000:0",
        help="batching contenders, SIZE:MICROS:THREADS (THREADS 0: the default)",
    )
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    callers = args.callers.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        inner = EmbeddedBackend({"iris": build_iris(Path(tmp)).parent})
        contenders: dict[str, Backend] = {"unbatched": inner}
        for setting in args.settings.split(","):
            size, micros, threads = (int(x) for x in setting.split(":"))
            backend = BatchingBackend(
                inner,
                max_batch_size=size,
                batch_timeout_micros=micros,
                num_batch_threads=threads or None,
                close_inner=False,
            )
            contenders[f"batch {size}/{micros}us/{backend.num_batch_threads}t"] = backend
        for backend in contenders.values():
            backend.signatures("iris")  # as the pipeline does before it predicts
        requests = _requests(max(concurrencies))
        expected = [inner.predict_arrays(r).outputs["class_ids"].tolist() for r in requests]
        drivers: dict[str, Callable[..., Result]] = {
            "threads": drive_threads,
            "asyncio": drive_asyncio,
        }
        added_latency_c1(contenders, requests[0], args.c1_rounds)
        names = list(contenders)
        for caller in callers:
            for c in concurrencies:
                runs: dict[str, list[Result]] = {name: [] for name in names}
                for repeat in range(args.repeats):
                    order = names[repeat % len(names) :] + names[: repeat % len(names)]
                    for name in order:
                        drivers[caller](  # warm-up, unrecorded
                            contenders[name], requests[:c], expected[:c], 0.1
                        )
                        runs[name].append(
                            drivers[caller](
                                contenders[name], requests[:c], expected[:c], args.seconds
                            )
                        )
                base = statistics.median(r[0] for r in runs["unbatched"])
                base_mean = statistics.median(r[1] for r in runs["unbatched"])
                print(f"\n{caller}, concurrency {c}")
                print(
                    f"  {'backend':<24} {'req/s':>8} {'ratio':>6} {'mean ms':>8} "
                    f"{'+mean µs':>9} {'p99 ms':>7}  (req/s of each repeat)"
                )
                for name in names:
                    rps = statistics.median(r[0] for r in runs[name])
                    mean = statistics.median(r[1] for r in runs[name])
                    p99 = statistics.median(r[2] for r in runs[name])
                    each = " ".join(f"{r[0]:.0f}" for r in runs[name])
                    print(
                        f"  {name:<24} {rps:8.0f} {rps / base:5.2f}x {mean:8.3f} "
                        f"{1000 * (mean - base_mean):+9.0f} {p99:7.2f}  ({each})"
                    )
                sys.stdout.flush()
        for name, backend in contenders.items():
            if isinstance(backend, BatchingBackend):
                stats = backend.stats()
                print(
                    f"{name}: {stats.requests} requests, {stats.batches} batches, "
                    f"mean batch {stats.mean_batch_size:.1f}, solo {stats.solo}"
                )
                backend.close()
        inner.close()


if __name__ == "__main__":
    main()
