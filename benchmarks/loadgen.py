"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending the next request as
soon as the previous answer arrived, for a fixed time. Run in a process of its own::

    python benchmarks/loadgen.py --url http://127.0.0.1:8080/invocations --body-file body.json \\
        --header 'Content-Type: application/json' --concurrency 16 --warmup 1 --duration 5

It prints one JSON object: completed requests and req/s in the measured window, latency percentiles
(ms), status counts, the first response body (for correctness checks) and the CPU seconds this
process used, so that the caller can tell whether the generator itself was the bottleneck.

Count mode (``--total N``, used by ``reliability/campaign.py``): instead of a timed window, exactly N
requests are sent after the warm-up, shared by the connections (each takes the next ticket until none
is left), and ``--time-limit`` bounds the run in time too. A connection that fails (refused, reset,
closed without an answer) counts its request as an error and reconnects, so every ticket ends as an
answer or an error: ``completed + error_count == total`` unless the time limit struck
(``timed_out``). Time mode keeps its behaviour: a failed connection ends.

Why not httpx: on a two-core machine the generator competes with the server for CPU. A bare
``asyncio`` stream client costs about a third of httpx's CPU per request (measured: ~60 us against
~200 us), which leaves the server its core. Only what these benchmarks need is implemented:
``Content-Length`` and chunked responses, keep-alive, no TLS, no redirects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from urllib.parse import urlsplit


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = -1
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts)
    if length < 0:
        return status, await reader.read()
    return status, await reader.readexactly(length)


async def _connection(
    host: str,
    port: int,
    request: bytes,
    start: float,
    measure_from: float,
    stop_at: float,
    latencies: list[float],
    statuses: dict[int, int],
    first: list[bytes],
    errors: list[str],
    tickets: list[int] | None = None,
    answered: list[int] | None = None,
) -> None:
    if tickets is not None:
        await _counted_connection(
            host, port, request, measure_from, stop_at, latencies, statuses, first, errors, tickets
        )
        return
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            writer.write(request)
            await writer.drain()
            status, body = await _read_response(reader)
            done = time.perf_counter()
            if answered is not None:
                answered[0] += 1
            if not first:
                first.append(body)
            if sent >= measure_from:
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


async def _counted_connection(
    host: str,
    port: int,
    request: bytes,
    measure_from: float,
    stop_at: float,
    latencies: list[float],
    statuses: dict[int, int],
    first: list[bytes],
    errors: list[str],
    tickets: list[int],
) -> None:
    """Count mode: take tickets (``tickets[0]`` is how many are left) until none is left or time is up.

    Requests sent before ``measure_from`` are warm-up and take no ticket. A failure costs the ticket
    (an error) and the connection, which is opened again for the next one.
    """
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    try:
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            counted = sent >= measure_from
            if counted:
                if tickets[0] <= 0:
                    return
                tickets[0] -= 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(request)
                await writer.drain()
                left = None if stop_at == float("inf") else stop_at - time.perf_counter()
                status, body = await asyncio.wait_for(
                    _read_response(reader), None if left is None else max(0.001, left)
                )
            except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.TimeoutError) as exc:
                if counted:
                    errors.append(f"{type(exc).__name__}: {exc}")
                if writer is not None:
                    writer.close()
                writer = reader = None
                if isinstance(exc, asyncio.TimeoutError):
                    return
                await asyncio.sleep(0.01)  # a refused connection is not retried in a hot loop
                continue
            done = time.perf_counter()
            if not first:
                first.append(body)
            if counted:
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        if writer is not None:
            writer.close()


async def run(
    url: str,
    body: bytes,
    headers: list[tuple[str, str]],
    concurrency: int,
    warmup: float,
    duration: float,
    total: int | None = None,
    time_limit: float | None = None,
) -> dict[str, object]:
    """Time mode (``total`` None): ``duration`` seconds measured after ``warmup``. Count mode:
    ``total`` requests after ``warmup``, the whole run cut at ``time_limit`` seconds (if given)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers]
    request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    first: list[bytes] = []
    errors: list[str] = []
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    tickets: list[int] | None = None
    answered = [0]
    if total is not None:
        tickets = [total]
        stop_at = start + time_limit if time_limit is not None else float("inf")
    cpu_before = _cpu_seconds()
    await asyncio.gather(
        *(
            _connection(
                host,
                port,
                request,
                start,
                measure_from,
                stop_at,
                latencies,
                statuses,
                first,
                errors,
                tickets,
                answered,
            )
            for _ in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - measure_from
    cpu = _cpu_seconds() - cpu_before
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    result: dict[str, object] = {
        "concurrency": concurrency,
        "completed": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": sum(latencies) / len(latencies) * 1000 if latencies else float("nan"),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors[:5],
        "error_count": len(errors),
        "cpu_seconds": cpu,
        "cpu_share": cpu / (time.perf_counter() - start),
        "first_body": (first[0] if first else b"").decode("utf-8", "replace"),
        # every answer, warm-up included (time mode): what the server's CPU time is divided by
        "answered_total": answered[0] if tickets is None else len(latencies),
    }
    if tickets is not None:
        result["total"] = total
        result["max_ms"] = latencies[-1] * 1000 if latencies else float("nan")
        result["timed_out"] = time.perf_counter() >= stop_at
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--total",
        type=int,
        default=None,
        help="count mode: send exactly this many requests after the warm-up (--duration unused)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="count mode: stop after this many seconds even if requests are left",
    )
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    headers = []
    for item in args.header:
        name, _, value = item.partition(":")
        headers.append((name.strip(), value.strip()))
    result = asyncio.run(
        run(
            args.url,
            body,
            headers,
            args.concurrency,
            args.warmup,
            args.duration,
            total=args.total,
            time_limit=args.time_limit,
        )
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
