"""``serve --workers N`` under uvicorn (:mod:`tfio_handlers.adapters.uvicorn_workers`): real
supervisor and worker processes on 127.0.0.1, serving a tiny app that answers its process id."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")

from servers import free_port

from tfio_handlers.adapters.uvicorn_workers import (
    BALANCES_CONNECTIONS,
    EARLY_DEATHS_ALLOWED,
    WorkerSupervisor,
    reuse_port_socket,
)

pytestmark = pytest.mark.skipif(
    not BALANCES_CONNECTIONS, reason="SO_REUSEPORT balancing is Linux's"
)

TESTS = Path(__file__).resolve().parents[1]


def supervisor_command(
    app: str, workers: int, port: int, silent_seconds: float | None = None
) -> list[str]:
    silent = "" if silent_seconds is None else f", silent_seconds={silent_seconds}"
    code = (
        "import logging, sys; from tfio_handlers.adapters.uvicorn_workers import WorkerSupervisor; "
        "logging.basicConfig(level=logging.INFO); "
        f"sys.exit(WorkerSupervisor({app!r}, {workers}, "
        f"dict(host='127.0.0.1', port={port}, log_level='info', timeout_graceful_shutdown=5)"
        f"{silent}).run())"
    )
    return [sys.executable, "-c", code]


def start_supervisor(
    app: str, workers: int, port: int, silent_seconds: float | None = None, **extra_env: str
) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        **extra_env,
    )
    return subprocess.Popen(
        supervisor_command(app, workers, port, silent_seconds),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@contextlib.contextmanager
def supervising(
    app: str, workers: int, port: int, silent_seconds: float | None = None, **extra_env: str
) -> Iterator[subprocess.Popen[str]]:
    """:func:`start_supervisor`; on the way out its whole process group is killed (workers a
    killed supervisor left behind included) and the supervisor reaped."""
    process = start_supervisor(app, workers, port, silent_seconds, **extra_env)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def stopped_output(process: subprocess.Popen[str]) -> str:
    """SIGTERM to the supervisor's process group; everything the supervisor and workers wrote."""
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return output


def pid_of(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/")
    return int(connection.getresponse().read())


def wait_for_pids(port: int, count: int, timeout: float = 60.0) -> set[int]:
    """The worker pids seen on fresh connections, once ``count`` different ones answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            seen.add(pid_of(connection))
            connection.close()
        except OSError:
            time.sleep(0.1)
    return seen


@pytest.fixture
def two_workers() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    with supervising("servers:pid_app", 2, port) as process:
        assert len(wait_for_pids(port, 2)) == 2
        yield process, port


def test_a_burst_of_keep_alive_connections_spreads_over_the_workers(
    two_workers: tuple[subprocess.Popen[str], int],
) -> None:
    """64 connections opened at once, each kept alive: with one shared listening socket the worker
    that woke first accepted most of a burst (26 of 32, twice in three tries with uvicorn's
    supervisor); with a socket each, the kernel splits them by a hash, close to evenly."""
    _, port = two_workers
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(64)]
    for connection in connections:
        connection.connect()
    holders = Counter(pid_of(connection) for connection in connections)
    for _ in range(3):  # a kept-alive connection stays with its worker
        assert Counter(pid_of(connection) for connection in connections) == holders
    for connection in connections:
        connection.close()
    assert len(holders) == 2, holders
    assert min(holders.values()) >= 17, holders  # a fair split of 64: 16 or fewer is ~8e-5 likely


def test_a_worker_that_dies_is_replaced(two_workers: tuple[subprocess.Popen[str], int]) -> None:
    _, port = two_workers
    first = wait_for_pids(port, 2)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    seen = wait_for_pids(port, 2)
    assert victim not in seen, seen
    assert len(seen) == 2


def test_a_hung_worker_is_killed_and_replaced() -> None:
    """A worker stopped with SIGSTOP holds its socket and its connections but runs nothing: its
    event loop's beats stop, and after ``silent_seconds`` the supervisor kills and replaces it."""
    port = free_port()
    with supervising("servers:pid_app", 2, port, silent_seconds=2) as process:
        first = wait_for_pids(port, 2)
        assert len(first) == 2
        victim = min(first)
        os.kill(victim, signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while alive(victim) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(victim)
        seen = wait_for_pids(port, 2)
        assert len(seen) == 2 and victim not in seen, seen
        output = stopped_output(process)
        assert f"Worker [{victim}] has not run its event loop" in output, output
        assert process.returncode == 0


def test_a_busy_loop_that_still_turns_is_not_taken_for_hung() -> None:
    """Four clients on requests that each hold the loop 0.3 s: the loop turns about once a second
    and beats at each turn, well within ``silent_seconds`` (beating every tenth turn, as uvicorn's
    once-a-second notification does, looked like 13 s of silence and killed it)."""
    port = free_port()
    with supervising("servers:loop_blocking_app", 1, port, silent_seconds=3) as process:
        (first,) = wait_for_pids(port, 1)
        stop = time.monotonic() + 8
        seen: set[int] = set()

        def client() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while time.monotonic() < stop:
                seen.add(pid_of(connection))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(60)
        assert seen == {first}
        output = stopped_output(process)
        assert "has not run its event loop" not in output, output


def test_kills_for_hangs_do_not_count_as_deaths_at_start_up() -> None:
    """A client that keeps sending a request that wedges the loop: each worker hangs within
    seconds of its start and is killed, more times than the deaths at start-up allowed; the
    supervisor goes on replacing them (a hang is not a crash that restarting cannot fix)."""
    port = free_port()
    with supervising("servers:loop_blocking_app", 1, port, silent_seconds=1) as process:
        wedged: set[int] = set()
        for _ in range(EARLY_DEATHS_ALLOWED + 1):
            (worker,) = wait_for_pids(port, 1, timeout=30) - wedged
            wedged.add(worker)
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/wedge")
                connection.getresponse()  # the worker is killed while it holds this request
        assert len(wait_for_pids(port, 1, timeout=30) - wedged) == 1
        assert process.poll() is None
        output = stopped_output(process)
        assert output.count("has not run its event loop") == EARLY_DEATHS_ALLOWED + 1, output
        assert "keep dying" not in output


def test_workers_stopped_with_their_supervisor_are_not_taken_for_hung() -> None:
    """``Ctrl-Z`` stops the whole process group; after ``fg`` the supervisor may look before the
    workers beat again: it gives them ``silent_seconds`` from its own resumption."""
    port = free_port()
    with supervising("servers:pid_app", 2, port, silent_seconds=2) as process:
        first = wait_for_pids(port, 2)
        assert len(first) == 2
        os.killpg(process.pid, signal.SIGSTOP)
        time.sleep(4)
        os.killpg(process.pid, signal.SIGCONT)
        time.sleep(3)
        assert wait_for_pids(port, 2) == first
        output = stopped_output(process)
        assert "has not run its event loop" not in output, output


def test_a_worker_is_not_watched_before_its_loop_runs() -> None:
    """Start-up (imports, the app factory) may outlast ``silent_seconds``: a worker is watched from
    its first beat on, so a slow start is not taken for a hang."""
    port = free_port()
    with supervising("servers:slow_start_app", 2, port, silent_seconds=3) as process:
        first = wait_for_pids(port, 2)
        assert len(first) == 2
        time.sleep(4)  # beating now: still the same two workers
        assert wait_for_pids(port, 2) == first
        output = stopped_output(process)
        assert "has not run its event loop" not in output, output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_stops_every_worker_and_exits_0(
    two_workers: tuple[subprocess.Popen[str], int], signum: int
) -> None:
    process, port = two_workers
    pids = wait_for_pids(port, 2)
    process.send_signal(signum)
    assert process.wait(20) == 0
    output = process.stdout.read() if process.stdout else ""
    assert "Stopped supervisor" in output, output
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_worker_that_cannot_start_stops_the_supervisor() -> None:
    process = start_supervisor("no_such_module:app", 2, free_port())
    assert process.wait(60) == 1
    output = process.stdout.read() if process.stdout else ""
    assert "Worker [" in output and "could not start; stopping" in output, output


def test_a_port_taken_by_another_server_is_refused_before_any_worker_starts() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        supervisor = WorkerSupervisor("servers:pid_app", 2, {"host": "127.0.0.1", "port": port})
        with pytest.raises(OSError):
            supervisor.run()
        # Another SO_REUSEPORT server (a second ``serve --workers``) is refused too, not let share it.
        with reuse_port_socket("127.0.0.1", 0) as shared:
            shared.listen()
            supervisor = WorkerSupervisor(
                "servers:pid_app", 2, {"host": "127.0.0.1", "port": shared.getsockname()[1]}
            )
            with pytest.raises(OSError):
                supervisor.run()


def test_an_app_that_fails_to_start_stops_the_supervisor() -> None:
    """Whatever the app factory raises (uvicorn itself turns only a TypeError into its start-up
    failure status), a worker that could not start stops the server instead of restarting."""
    process = start_supervisor("servers:raising_app", 2, free_port())
    assert process.wait(60) == 1
    output = process.stdout.read() if process.stdout else ""
    assert "the model store is unreachable" in output, output
    assert "could not start; stopping" in output, output


def test_workers_that_keep_dying_young_are_given_up_on() -> None:
    """A worker that dies at once (a native crash at start-up, say) is restarted after a growing
    pause, and after EARLY_DEATHS_ALLOWED such deaths in a row the supervisor stops: no loop of
    restarts burning the CPU for ever."""
    process = start_supervisor("servers:dying_app", 2, free_port())
    assert process.wait(90) == 1
    output = process.stdout.read() if process.stdout else ""
    assert f"{EARLY_DEATHS_ALLOWED} in a row" in output, output
    assert output.count("starting another in") == EARLY_DEATHS_ALLOWED - 1, output


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    """kill -9 of the supervisor cannot stop its workers: they notice and stop by themselves,
    freeing the port."""
    port = free_port()
    with supervising("servers:pid_app", 2, port) as process:
        pids = wait_for_pids(port, 2)
        assert len(pids) == 2
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(pid) for pid in pids):
            time.sleep(0.2)
        assert not any(alive(pid) for pid in pids)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_hang_up_of_the_process_group_lets_requests_in_flight_finish() -> None:
    """SIGHUP to the whole group (a terminal closing): the supervisor stops the workers gracefully;
    the workers themselves do not die of it (its default action) mid-request."""
    port = free_port()
    with supervising("servers:slow_app", 2, port) as process:
        assert len(wait_for_pids(port, 2)) == 2
        answers: list[int] = []

        def ask() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            answers.append(response.status)

        asking = [threading.Thread(target=ask) for _ in range(4)]
        for thread in asking:
            thread.start()
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGHUP)
        for thread in asking:
            thread.join(30)
        assert answers == [200] * 4
        assert process.wait(30) == 0


def test_a_killed_workers_gauges_leave_the_metrics_folder(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    port = free_port()
    with supervising("servers:gauge_app", 2, port, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)):
        pids = wait_for_pids(port, 2)
        victim = min(pids)
        assert (tmp_path / f"gauge_livesum_{victim}.db").exists()
        os.kill(victim, signal.SIGKILL)
        assert len(wait_for_pids(port, 2) - {victim}) == 2  # replaced
        assert not (tmp_path / f"gauge_livesum_{victim}.db").exists()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
