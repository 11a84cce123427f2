"""Where an async model call runs: on the event loop when that is cheaper, else on the model threads.

A model call handed to a thread costs its request the hop: the submit, waking a thread, and waking the
event loop again with the answer. For a call of ~100 µs (the iris model) that hop is a large part of
a request, and at one request at a time it is all loss: nothing else waits for the loop. So a call
runs **inline**, on the caller's thread (the event loop), when all of these hold:

* the caller said its request is the only one in progress in the process (:data:`sole_request`;
  the pipeline counts the requests holding its work pool's slots, after one turn of the loop so
  that requests which arrived together with this one have started): under concurrency the loop has
  other requests to read and answer, and a call inline would make them all wait for it, one call
  after another, and would leave a batching backend nothing to batch (its lone requests in the
  no-wait mode call this backend's async twins, and only a free loop lets others gather);
* no other call of this backend is in flight (inline or on a thread);
* the recent calls of the same kind (method, model, signature) took less than ``inline_below``
  seconds each on average: a slow model never blocks the loop, and a kind's first two calls go to
  a thread (the first is not timed: a signature's first call may trace its graph for seconds).

Measured with ``tfio-handlers serve``, iris on ``/v1``, one connection, one core (2026-12-02,
medians of 5 runs): 791 req/s with every call on a thread, 920 with this rule, the naive FastAPI
server (model always on the loop) 931; at 16 and 64 connections, with batching too, no worse than
every call on a thread (the runs' noise was larger than any difference).

Short calls inline under concurrency too, in a process of one CPU (where the hop cannot buy
parallelism), were tried on 2026-12-03 and dropped: without batching, 1.04x the req/s at 16
connections and 1.06x at 64 (iris on ``/v1``, one core, medians of 5 alternated runs with a spread
of ±15%), but with batching in the no-wait mode each lone call then ran on the loop, no other
request could join a batch, and iris at 64 connections fell from 1.50x to 1.03x the naive server.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["INLINE_BELOW_SECONDS", "ModelCalls", "sole_request", "usable_cpus"]

T = TypeVar("T")
R = TypeVar("R")

INLINE_BELOW_SECONDS = 0.001
"""The default ``inline_below``: a call this short blocks the loop for no longer than the time an
answer of 64 KiB takes to write."""

sole_request: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tfio_handlers_sole_request", default=False
)
"""Whether the calling request is the only one in progress in this process: set by the pipeline
around its backend calls; a call may run inline only when it is true (by default, never)."""

_WARMING_UP = float("inf")
"""The average of a kind whose only call so far was its first: not timed, as a signature's first
call may spend seconds tracing; the second call's time starts the average."""

_WEIGHT = 0.25
"""How much a call's time moves the average of its kind (an exponentially weighted mean)."""


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity where the platform tells (``taskset``,
    ``docker --cpuset-cpus``), else the machine's count. A CPU quota (``docker --cpus``, a
    Kubernetes limit) is not read: the process may still run on every CPU of its affinity."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ModelCalls:
    """Runs model calls for async callers: inline or on ``threads`` model threads, first come first
    served (see the module's docstring); ``inline_below=0`` sends every call to a thread, and so
    does a caller that did not set :data:`sole_request`.

    The thread pool is made per process, on first use: a pool inherited through ``fork`` has no
    threads.
    """

    def __init__(self, threads: int, inline_below: float = INLINE_BELOW_SECONDS) -> None:
        if threads < 1:
            raise ValueError(f"model_threads must be at least 1, not {threads}")
        self.threads = threads
        self.inline_below = inline_below
        self._seconds: dict[Hashable, float] = {}
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0

    async def run(self, kind: Hashable, function: Callable[[R], T], request: R) -> T:
        """``function(request)``, inline or on a model thread in the caller's context (its request
        id); ``kind`` names what the call's time is averaged with. A cancelled caller's thread call
        is dropped if it has not started."""
        with self._lock:
            inline = (
                sole_request.get()
                and self._in_flight == 0
                and self._seconds.get(kind, _WARMING_UP) < self.inline_below
            )
            self._in_flight += 1
        try:
            if inline:
                return self._timed(kind, function, request)
            context = contextvars.copy_context()
            future = self._thread_pool().submit(context.run, self._timed, kind, function, request)
            return await asyncio.wrap_future(future)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _timed(self, kind: Hashable, function: Callable[[R], T], request: R) -> T:
        started = time.perf_counter()
        try:
            return function(request)
        finally:
            took = time.perf_counter() - started
            average = self._seconds.get(kind)
            if average is None:
                self._seconds[kind] = _WARMING_UP  # a first call's time is its graph's tracing
            elif average == _WARMING_UP:
                self._seconds[kind] = took
            else:
                self._seconds[kind] = average + _WEIGHT * (took - average)

    def _thread_pool(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None or self._pool_pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pool_pid != os.getpid():
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tfio-model")
                    self._pool_pid = os.getpid()
                pool = self._pool
        return pool

    def close(self) -> None:
        """Stop the threads; calls not started are dropped."""
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
