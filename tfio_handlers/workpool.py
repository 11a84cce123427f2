"""The bounded pool that runs each worker's user code and model work.

One request's work (decoding, user code, the model call, encoding) takes one slot; a worker with no
slot free answers 503 at once instead of queueing, so a few blocked requests never starve the rest
and the routes that need no such work (``/ping``, model status) keep answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from .errors import ServerBusy

__all__ = ["Held", "WorkPool"]

T = TypeVar("T")


class WorkPool:
    """The bounded pool that runs user code and model work: a saturated worker answers 503 at once.

    ``size`` requests' work (``TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS``) may run at once; one more is
    refused with :class:`~tfio_handlers.errors.ServerBusy` (503, ``Retry-After``) before any of its
    work starts, so routes that do no such work (``/ping``, model status) keep answering. A slot is
    held until the work really ends: a request answered 504 whose user code still runs keeps its
    slot, so work that cannot be interrupted is still bounded. The threads are made per process (a
    pool inherited through ``fork`` has no threads).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a work pool needs at least one slot")
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._busy = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0

    @property
    def busy(self) -> int:
        """Slots taken now."""
        return self._busy

    def _take(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise ServerBusy(
                f"Server is busy: all {self.size} request slots are taken "
                "(TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS); retry later"
            )
        with self._lock:
            self._busy += 1

    def _give(self, *_: object) -> None:
        with self._lock:
            self._busy -= 1
        self._slots.release()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot while running work in the calling thread (raises ServerBusy when none)."""
        self._take()
        try:
            yield
        finally:
            self._give()

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``function(*args)`` in the pool; its slot is given back when it ends.

        It runs in a copy of the caller's :mod:`contextvars` context, as ``asyncio.to_thread``
        does, so the request being handled (its id, for the log lines) goes with it.
        """
        self._take()
        try:
            future = self._pool().submit(contextvars.copy_context().run, function, *args)
        except BaseException:
            self._give()
            raise
        future.add_done_callback(self._give)
        return future

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the pool, awaited; cancelling the await does not free the slot
        until the function has returned."""
        return await asyncio.wrap_future(self.submit(function, *args))

    def hold(self) -> Held:
        """Take a slot (raises ServerBusy when none) for a request worked partly on the event loop
        and partly in the pool's threads (:meth:`Held.run`); :meth:`Held.release` gives it back,
        or, when work of the request still runs in a thread, once that work ends."""
        self._take()
        return Held(self)

    def _pool(self) -> ThreadPoolExecutor:
        executor = self._executor
        if executor is not None and self._pid == os.getpid():
            return executor
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="tfio-work")
                self._pid = os.getpid()
            return self._executor


class Held:
    """A slot of a :class:`WorkPool` held by one request worked on the event loop (see
    :meth:`WorkPool.hold`): its thread work runs under this slot, and the slot stays taken until
    that work really ends, even when the request was answered 504 before."""

    __slots__ = ("_pool", "_released", "_running")

    def __init__(self, pool: WorkPool) -> None:
        self._pool = pool
        self._running: Future[Any] | None = None
        self._released = False

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the pool's threads under this slot (no second slot), awaited;
        a cancelled await drops the work if it has not started."""
        future = self._pool._pool().submit(contextvars.copy_context().run, function, *args)
        self._running = future
        return await asyncio.wrap_future(future)

    def release(self) -> None:
        """Give the slot back now, or when the thread work running under it ends (idempotent)."""
        if self._released:
            return
        self._released = True
        running = self._running
        if running is not None and not running.done():
            running.add_done_callback(self._pool._give)
        else:
            self._pool._give()
