"""Measure what Ray Serve costs the iris model: ``python tests/ray/bench_serve.py [--n 500]``.

Not a test (pytest does not collect it). Prints, for one local Ray (two CPUs, 80 MB object store, no
dashboard):

* ``ray.init``'s time, and the memory of this process and every process Ray started (RSS and PSS,
  from /proc), before and after Serve and one replica;
* requests/s and the mean latency of one iris JSON request, one at a time and with 8 in flight:
  the plain pipeline in process (``Pipeline.invoke``), the plain ASGI app under uvicorn over HTTP,
  Ray Serve through the app's handle, through Serve's HTTP proxy, and the split mode's handle.

The docs' numbers (docs/ray.md) come from this script.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

IRIS = json.dumps([6.4, 3.2, 4.5, 1.5]).encode()
HEADERS = {"content-type": "application/json"}


def memory_mb() -> tuple[float, float]:
    """(RSS, PSS) in MB of this process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    todo, rss, pss = [os.getpid()], 0, 0
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, pss / 1024


def rate(label: str, call: Callable[[], Any], n: int, concurrency: int = 1) -> None:
    for _ in range(min(50, n)):  # warm up
        call()
    latencies: list[float] = []

    def one(_: int) -> None:
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            one(i)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - started
    print(
        f"  {label:<44} {n / elapsed:8.0f} req/s   mean {statistics.mean(latencies) * 1e3:7.2f} ms"
        f"   p50 {statistics.median(latencies) * 1e3:7.2f} ms"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    options = parser.parse_args()
    n = options.n

    import httpx
    import saved_models
    import uvicorn

    from tfio_handlers.adapters.asgi import ASGIApp
    from tfio_handlers.bootstrap import load_config, pipeline_from_config

    model = Path(tempfile.mkdtemp()) / "iris"
    saved_models.build_iris(model, 1)
    logging.getLogger("tfio_handlers.access").setLevel(logging.WARNING)

    print(f"iris, one JSON row; {os.cpu_count()} CPUs; n={n}")
    import tfio_handlers.ray as tray

    env = tray.config_env(model)
    pipeline = pipeline_from_config(load_config(env))
    print("plain (this process)")
    rate("Pipeline.invoke", lambda: pipeline.invoke(IRIS, HEADERS), n * 4)
    rate("Pipeline.invoke, 8 threads", lambda: pipeline.invoke(IRIS, HEADERS), n * 4, 8)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(ASGIApp(pipeline), port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:

        def uv() -> None:
            assert client.post("/invocations", content=IRIS, headers=HEADERS).status_code == 200

        rate("ASGI app under uvicorn, HTTP (in this process)", uv, n)
    server.should_exit = True
    thread.join()

    import ray
    from ray import serve

    before = memory_mb()
    started = time.perf_counter()
    ray.init(
        num_cpus=2,
        object_store_memory=80 * 2**20,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    init_s = time.perf_counter() - started
    after_init = memory_mb()
    print(
        f"ray.init: {init_s:.1f} s; memory of this process and Ray's: "
        f"RSS {before[0]:.0f} -> {after_init[0]:.0f} MB, PSS {before[1]:.0f} -> {after_init[1]:.0f} MB"
    )
    ray_port = free_port()
    started = time.perf_counter()
    serve.start(http_options={"host": "127.0.0.1", "port": ray_port})
    handle = serve.run(tray.app(model), name="bench", route_prefix="/")
    after_app = memory_mb()
    print(
        f"serve.start + one replica ready: {time.perf_counter() - started:.1f} s; "
        f"RSS {after_app[0]:.0f} MB, PSS {after_app[1]:.0f} MB"
    )
    print("Ray Serve, one replica (0.5 CPU)")

    def via_handle() -> None:
        status, _, _ = handle.request.remote("POST", "/invocations", IRIS, HEADERS).result()
        assert status == 200

    rate("handle.request", via_handle, n)
    rate("handle.request, 8 threads", via_handle, n, 8)
    with httpx.Client(base_url=f"http://127.0.0.1:{ray_port}") as client:

        def via_proxy() -> None:
            assert client.post("/invocations", content=IRIS, headers=HEADERS).status_code == 200

        rate("HTTP through Serve's proxy", via_proxy, n)
        local = threading.local()

        def via_proxy_pooled() -> None:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=f"http://127.0.0.1:{ray_port}")
            response = local.client.post("/invocations", content=IRIS, headers=HEADERS)
            assert response.status_code == 200

        rate("HTTP through Serve's proxy, 8 clients", via_proxy_pooled, n, 8)
    serve.delete("bench")

    split = serve.run(tray.app(model, split=True), name="split", route_prefix="/")
    print("Ray Serve, split mode (one ingress replica, one model replica)")

    def via_split() -> None:
        status, _, _ = split.request.remote("POST", "/invocations", IRIS, HEADERS).result()
        assert status == 200

    rate("handle.request", via_split, n)
    rate("handle.request, 8 threads", via_split, n, 8)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
