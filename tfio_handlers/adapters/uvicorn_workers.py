"""``serve --workers N`` under uvicorn: N worker processes, each listening on a socket of its own.

uvicorn's own supervisor hands all its workers one listening socket. Whichever worker wakes first
accepts a whole burst of new keep-alive connections and keeps them for their lifetime: with 16
connections and 2 workers, one worker often held all 16 (counted with ``ss``; 1,217-1,333 req/s
against 3,014 when they split 8/8). Here every worker binds its own socket with ``SO_REUSEPORT``,
and Linux hands each new connection to one of the listening sockets by a hash of its addresses, so
connections spread over the workers whichever of them is awake.

Before any worker starts, the supervisor checks that no socket at all holds the port (a second
server on it is refused, not quietly let share it), then holds one more ``SO_REUSEPORT`` socket
on the port, bound but never listening: it turns port 0 into the port the workers share and keeps
the port for a worker that is restarted. Only listening sockets receive connections, so this one
never takes a connection from a worker.

Each worker's event loop beats on every one of uvicorn's housekeeping ticks (every 0.1 s of a
free loop; a loop slowed by other threads holding the GIL still beats within its slowest turn): a
worker whose loop has been silent for ``silent_seconds`` is hung (stopped with SIGSTOP, stuck in
native code holding the GIL, a loop blocked by a bug) and is killed and replaced, as gunicorn's
``--timeout`` does. A thread answering pings, as uvicorn's supervisor has, would miss a blocked
loop. A worker is watched from its first beat on: before it, it is importing and starting its app,
which may take long (a worker that hangs before its first beat is not replaced). A kill for a hang
does not count as a death at start-up, and a worker that cannot die at once (in the kernel's
uninterruptible sleep) is replaced without waiting for it.

Where the kernel does not balance ``SO_REUSEPORT`` sockets (:data:`BALANCES_CONNECTIONS` is
false: not Linux), ``serve`` keeps uvicorn's supervisor.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE  # a worker that could not start: a restart fails alike

from ..observability.metrics import mark_process_dead

__all__ = [
    "BALANCES_CONNECTIONS",
    "EARLY_DEATHS_ALLOWED",
    "EARLY_DEATH_SECONDS",
    "SILENT_SECONDS",
    "WorkerSupervisor",
    "reuse_port_socket",
]

log = logging.getLogger(__name__)

BALANCES_CONNECTIONS = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
"""Whether the kernel spreads connections over ``SO_REUSEPORT`` sockets (Linux 3.9 and later)."""


_spawn = multiprocessing.get_context("spawn")  # a fork of a process with threads is unsafe

EARLY_DEATH_SECONDS = 10.0
"""A worker that dies sooner than this after its start died young: the next start waits longer
(0.1 s, doubling up to 5 s), so a worker that cannot live does not burn the CPU in restarts."""
EARLY_DEATHS_ALLOWED = 6
"""Workers dying young in a row before the supervisor gives up and stops (exit status 1): a crash
at start-up (native code, the OOM killer) that restarting cannot fix."""


SILENT_SECONDS = 65.0
"""The default ``silent_seconds``: a worker whose event loop has not beaten for this long is killed
and replaced (``serve`` passes ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` + 5, as it passes gunicorn's
``--timeout``)."""


_SUPERVISOR_STALLED_SECONDS = 5.0
"""A gap this long between two of the supervisor's half-second checks (or half of
``silent_seconds``, if shorter, but at least a second) means it was stopped itself."""


def _bound_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv6 for a host with a colon, as uvicorn decides),
    ``SO_REUSEADDR`` and, if asked, ``SO_REUSEPORT``; not listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening.

    Raises ``OSError`` when the port is taken by a socket without ``SO_REUSEPORT`` or another user's.
    """
    return _bound_socket(host, port, reuse_port=True)


def _free_port(host: str, port: int) -> int:
    """``port``, or a free one for 0, after checking that no socket at all holds it.

    A bind without ``SO_REUSEPORT`` fails on a port that any socket holds, so another server
    started on the same port (``SO_REUSEPORT`` or not) is refused instead of quietly sharing it.
    """
    with _bound_socket(host, port, reuse_port=False) as probe:
        return int(probe.getsockname()[1])


def _run_worker(app: str, options: Mapping[str, Any], heartbeat: Any) -> None:
    """A worker process: uvicorn serving the app factory ``app`` on a socket of its own, its event
    loop writing the time (``time.monotonic``, the same clock in every process) into the shared
    ``heartbeat`` once a second.

    It leaves SIGHUP to the supervisor (which stops every worker gracefully on it; the default
    would kill this one mid-request when a terminal hangs up its process group), stops gracefully
    when the supervisor is gone (killed, it cannot stop this process, which would hold the port
    for ever), and exits :data:`STARTUP_FAILURE` when the app cannot start, whatever it raised.
    """
    errors = logging.getLogger("uvicorn.error")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    threading.Thread(
        target=_stop_when_orphaned, args=(os.getppid(),), name="tfio-orphan-watch", daemon=True
    ).start()

    config = uvicorn.Config(app, factory=True, **options)
    try:
        sock = reuse_port_socket(config.host, config.port)
    except OSError as exc:
        errors.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
        raise SystemExit(STARTUP_FAILURE) from None
    server = _BeatingServer(config, heartbeat)
    try:
        server.run(sockets=[sock])
    except Exception:
        if server.started:
            raise
        errors.exception("The app could not start")
        raise SystemExit(STARTUP_FAILURE) from None


class _BeatingServer(uvicorn.Server):
    """uvicorn's server, its event loop writing ``time.monotonic()`` (the same clock in every
    process, and one that never steps back) into the shared ``heartbeat`` on each housekeeping
    tick."""

    def __init__(self, config: uvicorn.Config, heartbeat: Any) -> None:
        super().__init__(config)
        self.heartbeat = heartbeat

    async def on_tick(self, counter: int) -> bool:
        self.heartbeat.value = time.monotonic()
        return await super().on_tick(counter)


ORPHAN_CHECK_SECONDS = 1.0
"""How often a worker checks that its supervisor is alive."""


def _stop_when_orphaned(parent: int) -> None:
    """SIGTERM to this process (uvicorn's graceful stop) once ``parent`` is no longer its parent."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    logging.getLogger("uvicorn.error").warning("The supervisor [%d] is gone; stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


class WorkerSupervisor:
    """Starts ``workers`` uvicorn processes serving the app factory ``app`` (an import string) on
    ``options["host"]``/``options["port"]``, restarts one that dies, and stops them all on SIGINT,
    SIGTERM or SIGHUP, each finishing its requests in flight (uvicorn's graceful shutdown).

    ``options`` are ``uvicorn.Config``'s keyword arguments; they travel to the workers pickled.
    A worker whose event loop has been silent for ``silent_seconds`` is killed and replaced.
    """

    def __init__(
        self,
        app: str,
        workers: int,
        options: Mapping[str, Any],
        *,
        silent_seconds: float = SILENT_SECONDS,
    ) -> None:
        self.app = app
        self.workers = workers
        self.options = dict(options)
        self.silent_seconds = silent_seconds
        self._heartbeats: dict[int | None, Any] = {}
        """Each worker's (by pid) last beat, ``time.monotonic()`` in shared memory; 0 until its
        loop runs."""
        self._dying: list[SpawnProcess] = []
        """Workers killed for a hang that had not died yet: reaped as they do."""
        self._resumed = 0.0
        """When this supervisor last found itself resumed after a stop (``Ctrl-Z``, then ``fg``):
        the workers, stopped with it, get ``silent_seconds`` from then to beat again."""
        self._stop = threading.Event()
        self._processes: list[SpawnProcess] = []
        self._started: dict[int | None, float] = {}
        """When each worker (by pid) was started, to tell a worker that dies young."""

    def run(self) -> int:
        """Serve until a signal to stop; 0 after a clean stop, 1 when a worker could not start.

        Raises ``OSError`` before any worker starts when the port cannot be bound.
        """
        host = str(self.options.get("host", "127.0.0.1"))
        port = _free_port(host, int(self.options.get("port", 8000)))
        with reuse_port_socket(host, port) as reserved:
            self.options["port"] = reserved.getsockname()[1]
            # SIGHUP too: uvicorn's supervisor restarted its workers on it; here it stops them
            # gracefully, rather than the default of killing this process and orphaning them.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, lambda *_: self._stop.set())
            log.info(
                "Started supervisor [%d], %d workers on %s:%d",
                os.getpid(),
                self.workers,
                host,
                self.options["port"],
            )
            try:
                self._processes = [self._start() for _ in range(self.workers)]
                code = self._watch()
            except OSError as exc:  # no process could be made (fork limits, memory)
                log.error("Could not start a worker: %s; stopping", exc)
                code = 1
            finally:
                self._stop_all()
        return code

    def _start(self) -> SpawnProcess:
        heartbeat = _spawn.RawValue("d", 0.0)
        process = _spawn.Process(
            target=_run_worker, args=(self.app, self.options, heartbeat), daemon=False
        )
        process.start()
        self._started[process.pid] = time.monotonic()
        self._heartbeats[process.pid] = heartbeat
        return process

    def _kill_if_silent(self, process: SpawnProcess) -> bool:
        """Kill ``process`` if its event loop has beaten before but not for ``silent_seconds``;
        whether it did."""
        heartbeat = self._heartbeats.get(process.pid)
        beat = 0.0 if heartbeat is None else heartbeat.value
        silent = time.monotonic() - max(beat, self._resumed)
        if not beat or silent < self.silent_seconds:
            return False
        log.error(
            "Worker [%s] has not run its event loop for %.0f s (hung); killed", process.pid, silent
        )
        process.kill()
        process.join(1.0)  # a process in uninterruptible sleep dies later: reaped by _watch
        if process.is_alive():
            self._dying.append(process)
        else:
            mark_process_dead(process.pid)
        return True

    def _watch(self) -> int:
        """Wait for a signal, replacing each worker that dies; 1 when one could not start, or
        when workers keep dying young (:data:`EARLY_DEATHS_ALLOWED` in a row)."""
        early_deaths = 0
        checked = time.monotonic()
        while not self._stop.is_set():
            wait([process.sentinel for process in self._processes], timeout=0.5)
            now = time.monotonic()
            if now - checked > max(1.0, min(_SUPERVISOR_STALLED_SECONDS, self.silent_seconds / 2)):
                self._resumed = now
            checked = now
            self._reap_dying()
            for index, process in enumerate(self._processes):
                if self._stop.is_set():
                    break
                if process.is_alive():
                    if not self._kill_if_silent(process):
                        continue
                    hung = True  # killed: its gauges leave when it is reaped
                else:
                    hung = False
                    mark_process_dead(process.pid)  # its gauges (requests in flight) leave with it
                self._heartbeats.pop(process.pid, None)
                if process.exitcode == STARTUP_FAILURE:
                    log.error("Worker [%s] could not start; stopping", process.pid)
                    return 1
                lived = time.monotonic() - self._started.pop(process.pid, 0.0)
                if not hung:  # a hang is not a crash at start-up: it does not count
                    early_deaths = early_deaths + 1 if lived < EARLY_DEATH_SECONDS else 0
                if early_deaths >= EARLY_DEATHS_ALLOWED:
                    log.error(
                        "Workers keep dying within %g s of starting (%d in a row, the last with "
                        "exit code %s); stopping",
                        EARLY_DEATH_SECONDS,
                        early_deaths,
                        process.exitcode,
                    )
                    return 1
                pause = min(0.1 * 2 ** max(early_deaths - 1, 0), 5.0)
                log.warning(
                    "Worker [%s] exited with code %s; starting another in %g s",
                    process.pid,
                    process.exitcode,
                    pause,
                )
                if self._stop.wait(pause):
                    break
                self._processes[index] = self._start()
        return 0

    def _reap_dying(self) -> None:
        """Forget the killed workers that have died since, and their gauges."""
        for process in [p for p in self._dying if not p.is_alive()]:
            self._dying.remove(process)
            mark_process_dead(process.pid)

    def _stop_all(self) -> None:
        """SIGTERM to every worker, then wait: each drains within uvicorn's graceful timeout."""
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        grace = self.options.get("timeout_graceful_shutdown") or 30
        deadline = time.monotonic() + float(grace) + 5
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("Worker [%s] did not stop in time; killed", process.pid)
                process.kill()
                process.join(5.0)  # not for ever: one in uninterruptible sleep dies later
            mark_process_dead(process.pid)  # a no-op for a worker that stopped cleanly
        self._reap_dying()
        log.info("Stopped supervisor [%d]", os.getpid())
