"""The standing reliability campaign (issue 11): one command, real servers on 127.0.0.1, four parts.

    .venv/bin/python reliability/campaign.py            # every part, 3-4 minutes on 2 cores
    .venv/bin/python reliability/campaign.py --quick    # a smaller version of every part, ~3 minutes

1. **hostile** — the hostile-input table: every malformed, oversized or amplifying request the issue
   lists, and more, over real HTTP to ``tfio-handlers serve`` (pickle on, a 5 s request timeout): the
   status, whether the body is JSON with an ``"error"``, the time, the server's peak extra RSS (its
   process tree's ``VmRSS`` sampled every 10 ms from a thread) and whether ``/ping`` answers right after.
2. **load** — 10,000 requests at concurrency 64 against ``--workers 2`` with ``benchmarks/loadgen.py``
   in count mode: errors, p50/p99, the workers' RSS at start, middle and end.
3. **faults** — (a) ``serve --backend grpc://...`` in front of ``grpc-serve`` under a light steady load
   while the gRPC server is killed (``SIGKILL``), restarted, stopped (``SIGSTOP``) and continued: the
   statuses per phase, the longest request, the time from the backend being back to the first 200;
   (b) an ``inference.py`` whose ``input_fn`` raises, returns garbage, calls ``sys.exit``, raises
   ``KeyboardInterrupt`` or blocks past the timeout, while other connections send normal requests.
4. **slow** — silent connections, header tricklers (one byte a second), bodies that stop short of their
   ``Content-Length`` and idle keep-alives, 200 of them, while normal requests run: their p99 against the
   same server idle, and how many slow connections the server keeps open past its configured deadline.

The campaign writes ``reliability/RESULTS.md`` (``--output``): a table per part, the issue's goals with
the measured values and met/missed, the date, the machine and the exact command. It reports; it does not
pass or fail on goals: the exit status is 1 only when a part could not run (its error is in the file).

Everything is bounded: each loop has a count and a deadline, and every process the campaign starts (in
a session of its own) is killed, group and all, when its part ends, on failure and on SIGINT/SIGTERM.
Servers listen on 127.0.0.1 only. The iris model is built into a temporary directory with
``benchmarks/models.py`` (default signature classify, a ``predict`` signature).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import datetime as _dt
import gzip
import http.client
import io
import itertools
import json
import os
import pickle
import platform
import random
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
LOADGEN = BENCHMARKS / "loadgen.py"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"
PYTHON = sys.executable
HOST = "127.0.0.1"
"""Every server the campaign starts listens here, and only here."""

SEED_BODY = b"[6.4, 3.2, 4.5, 1.5]"
"""The seed document's request: one iris example, answered by the default (classify) signature."""
REQUEST_TIMEOUT = 5.0
"""``SAGEMAKER_MODEL_SERVER_TIMEOUT`` for the hostile, fault and user-code servers (short, so that
work beyond it shows within the run)."""
TIMEOUT_GRACE = 1.0
"""A request counts as beyond its timeout when it took longer than the timeout plus this (scheduling,
the answer's own transfer)."""
MIB = 1024 * 1024
CONN_ERROR = "conn-error"
RECOVERY_CAP = 30.0
"""Seconds the fault parts wait for a first 200 after a fault ends before they move on."""


# -- the plan: what --quick shrinks ------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Sizes and time bounds of one run; :func:`plan` gives the full and the quick one."""

    quick: bool
    hostile_answer_cap: float
    """Seconds a hostile case's client waits for the whole answer before it gives up."""
    hostile_settle_cap: float
    """Seconds to wait after a case for ``/ping`` and for the server's CPU to go quiet."""
    load_total: int
    load_concurrency: int
    load_time_limit: float
    probe_connections: int
    fault_healthy: float
    fault_down: float
    fault_stopped: float
    fault_after: float
    usercode_burst: int
    slow_connections: int
    slow_normal_total: int
    slow_hold_cap: float
    cases: tuple[str, ...] = ()
    """Only the hostile cases whose names contain one of these (all when empty)."""
    fuzz_count: int | None = None
    """Inputs per decoder for the fuzz part; ``None``: :data:`FUZZ_COUNTS`."""


def plan(quick: bool, cases: Sequence[str] = ()) -> Plan:
    """The full plan fits about 10 minutes on two cores; the quick one a few. The hostile part's
    waits are the same in both: cutting them would let one case's leftover work spill into the
    next case's figures."""
    names = tuple(cases)
    if quick:
        return Plan(
            quick=True,
            hostile_answer_cap=15.0,
            hostile_settle_cap=40.0,
            load_total=1000,
            load_concurrency=64,
            load_time_limit=90.0,
            probe_connections=8,
            fault_healthy=2.0,
            fault_down=2.5,
            fault_stopped=7.0,
            fault_after=2.0,
            usercode_burst=6,
            slow_connections=50,
            slow_normal_total=600,
            slow_hold_cap=20.0,
            cases=names,
        )
    return Plan(
        quick=False,
        hostile_answer_cap=35.0,
        hostile_settle_cap=40.0,
        load_total=10_000,
        load_concurrency=64,
        load_time_limit=300.0,
        probe_connections=8,
        fault_healthy=3.0,
        fault_down=4.0,
        fault_stopped=8.0,
        fault_after=3.0,
        usercode_burst=16,
        slow_connections=200,
        slow_normal_total=2000,
        slow_hold_cap=30.0,
        cases=names,
    )


# -- processes ----------------------------------------------------------------------------------------


class Processes:
    """Every process the campaign starts, each the leader of its own session, so that a kill reaches
    its children (uvicorn's workers) too. :meth:`stop_all` runs at exit and on SIGINT/SIGTERM."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()

    def start(self, argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as handle:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with self.lock:
            self.started.append(proc)
        return proc

    @staticmethod
    def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        """Send ``sig`` to the process's group (its session, which only the campaign started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGCONT (a stopped process cannot exit), SIGTERM, then SIGKILL after ``grace`` seconds;
        the group gets a final SIGKILL in any case, for children the leader left behind."""
        if proc.poll() is None:
            self.signal_group(proc, signal.SIGCONT)
            self.signal_group(proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        self.signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def stop_all(self) -> None:
        with self.lock:
            procs = list(self.started)
            self.started.clear()
        for proc in procs:
            self.stop(proc, grace=3.0)


PROCESSES = Processes()


def _on_signal(signum: int, _frame: Any) -> None:
    PROCESSES.stop_all()
    raise SystemExit(128 + signum)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without SageMaker/tfio settings (so the host's cannot leak in),
    TensorFlow quiet, entry-point plugins off (the built-in codecs are what is measured), plus
    ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "TFIO_HANDLERS_"))
    }
    env.update(
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
        TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    env.update(extra or {})
    return env


@dataclass
class Server:
    """A ``tfio-handlers serve`` (or ``grpc-serve``) process on 127.0.0.1."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.proc = PROCESSES.start(self.argv, self.env, self.log)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            PROCESSES.stop(self.proc)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Poll ``GET /ping`` until 200 (bounded); the seconds it took. Raises with the log's tail
        when the process exits or time runs out."""
        begin = time.monotonic()
        while time.monotonic() - begin < timeout:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            if ping(self.port, 1.0) == 200:
                return time.monotonic() - begin
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")


def model_args(model: Path) -> list[str]:
    """``serve``'s arguments for the iris model, named ``iris`` (its ``/v1/models/iris`` routes)."""
    return ["--model", f"iris={model}"]


def serve_server(
    name: str,
    logs: Path,
    arguments: list[str],
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Server:
    """A ``tfio-handlers serve`` on 127.0.0.1 and a free port (not yet started)."""
    port = free_port()
    argv = [PYTHON, "-m", "tfio_handlers", "serve", *arguments]
    argv += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    argv += ["--log-level", "warning", *extra_args]
    return Server(name, argv, server_env(env), port, logs / f"{name}.log")


def grpc_server(name: str, logs: Path, model: Path, port: int) -> Server:
    """A ``tfio-handlers grpc-serve`` of the iris model on 127.0.0.1:``port`` (not yet started)."""
    argv = [PYTHON, "-m", "tfio_handlers", "grpc-serve", "--model", f"iris={model}"]
    argv += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    return Server(name, argv, server_env(), port, logs / f"{name}.log")


def port_open(port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


# -- memory -------------------------------------------------------------------------------------------


def children_of(root: int) -> list[int]:
    """Every descendant of ``root`` (from ``/proc/*/stat``'s parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def is_helper(pid: int) -> bool:
    """Whether a process is multiprocessing's resource tracker (a helper, not a server worker)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"resource_tracker" in handle.read()
    except OSError:
        return False


def rss_bytes(pid: int) -> int:
    """``VmRSS`` of one process in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cpu_ticks(pids: Sequence[int]) -> int:
    """User and system clock ticks used so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total


class RssSampler(threading.Thread):
    """Samples a server's process tree every ``interval`` seconds: the sum of ``VmRSS`` over the root
    and its descendants (children re-listed every 0.25 s), the workers' sum (descendants other than
    multiprocessing's resource tracker), the peak since :meth:`reset_peak`, and a timeline."""

    def __init__(self, root: int, interval: float = 0.01) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.root = root
        self.interval = interval
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.pids: list[int] = [root]
        self.workers: list[int] = []
        self.current = 0
        self.peak = 0
        self.timeline: list[tuple[float, int, int]] = []

    def sample(self) -> tuple[int, int]:
        sizes = {pid: rss_bytes(pid) for pid in self.pids}
        return sum(sizes.values()), sum(sizes.get(pid, 0) for pid in self.workers)

    def relist(self) -> None:
        """Find the root's descendants again (workers start, die and are replaced)."""
        children = children_of(self.root)
        self.pids = [self.root, *children]
        self.workers = [pid for pid in children if not is_helper(pid)]

    def run(self) -> None:
        listed = 0.0
        while not self.stopped.is_set():
            now = time.monotonic()
            if now - listed > 0.25:
                self.relist()
                listed = now
            total, workers = self.sample()
            with self.lock:
                self.current = total
                self.peak = max(self.peak, total)
                if len(self.timeline) < 200_000:
                    self.timeline.append((now, total, workers))
            self.stopped.wait(self.interval)

    def reset_peak(self) -> int:
        """Start a new peak from the current total; returns that total."""
        total, _ = self.sample()
        with self.lock:
            self.current = total
            self.peak = total
        return total

    def peak_now(self) -> int:
        with self.lock:
            return self.peak

    def workers_at(self, when: float) -> int:
        """The workers' RSS in the sample nearest ``when`` (a ``time.monotonic()`` value)."""
        with self.lock:
            if not self.timeline:
                return 0
            return min(self.timeline, key=lambda row: abs(row[0] - when))[2]

    def stop(self) -> None:
        self.stopped.set()
        self.join(2)


@contextlib.contextmanager
def sampling(root: int) -> Iterator[RssSampler]:
    sampler = RssSampler(root)
    sampler.relist()
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


# -- one HTTP exchange ----------------------------------------------------------------------------------


@dataclass
class Reply:
    """What a request got: ``status`` None when no answer came (``error`` says why)."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    size: int
    seconds: float
    error: str = ""

    def json_error(self) -> bool:
        """Whether the body is a JSON object with an ``"error"`` key (for an answer longer than the
        bytes kept, whether it starts as one: ``{"error":``)."""
        if self.size > len(self.body):
            return self.body.lstrip().startswith(b'{"error":')
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(value, dict) and "error" in value


READ_CAP = 512 * MIB
"""An answer is read (and counted) up to this many bytes, then cut."""
KEEP = 64 * 1024
"""The first bytes of an answer kept to read its JSON."""


def exchange(
    port: int,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    body: bytes = b"",
    *,
    cap: float = 30.0,
    declared_length: int | None = None,
    chunked_total: int | None = None,
) -> Reply:
    """Send one request on a fresh connection (``Connection: close``) and read the whole answer,
    within ``cap`` seconds.

    ``declared_length`` sends that ``Content-Length`` with ``body`` (shorter); ``chunked_total`` sends
    ``Transfer-Encoding: chunked`` chunks of ``body`` repeated up to that many bytes. The body is sent
    from a thread, so that an answer given before the body is read (413) is seen at once.
    """
    began = time.monotonic()
    deadline = began + cap
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if chunked_total is not None:
        lines.append("Transfer-Encoding: chunked")
    elif method != "GET" or body:
        lines.append(
            f"Content-Length: {declared_length if declared_length is not None else len(body)}"
        )
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        sock = socket.create_connection((HOST, port), timeout=min(cap, 5.0))
    except OSError as exc:
        return Reply(None, {}, b"", 0, time.monotonic() - began, f"{type(exc).__name__}: {exc}")

    def send() -> None:
        try:
            sock.sendall(head)
            if chunked_total is None:
                sock.sendall(body)
                return
            sent = 0
            while sent < chunked_total and time.monotonic() < deadline:
                sock.sendall(b"%x\r\n%s\r\n" % (len(body), body))
                sent += len(body)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered (413) and closed before the body was sent: read the answer

    sender = threading.Thread(target=send, daemon=True)
    with sock:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        sender.start()
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
        except (OSError, http.client.HTTPException) as exc:
            seconds = time.monotonic() - began
            why = "timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            return Reply(None, {}, b"", 0, seconds, why)
        status = response.status
        headers_in = {k.lower(): v for k, v in response.getheaders()}
        kept = bytearray()
        size = 0
        error = ""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    error = "answer cut: client time limit"
                    break
                sock.settimeout(left)
                chunk = (
                    response.read1(1 << 20)
                    if hasattr(response, "read1")
                    else response.read(1 << 20)
                )
                if not chunk:
                    break
                size += len(chunk)
                if len(kept) < KEEP:
                    kept += chunk[: KEEP - len(kept)]
                if size > READ_CAP:
                    error = f"answer cut after {READ_CAP // MIB} MiB"
                    break
        except (OSError, http.client.HTTPException) as exc:
            error = "answer cut: timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        seconds = time.monotonic() - began
    sender.join(1.0)
    return Reply(status, headers_in, bytes(kept), size, seconds, error)


def ping(port: int, cap: float = 2.0) -> int | None:
    """``GET /ping``'s status, None when nothing answered within ``cap`` seconds."""
    return exchange(port, "GET", "/ping", (), cap=cap).status


# -- part 1: hostile input ------------------------------------------------------------------------------


def _npy(header: str, data: bytes = b"") -> bytes:
    """An npy version 1.0 file with this header text (padded as numpy pads it) and data."""
    text = header.encode("latin-1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * (pad % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def _npy_array(shape: tuple[int, ...], dtype: str = "<f4", data: bytes = b"") -> bytes:
    return _npy(f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}", data)


def _npz(members: dict[str, bytes], compressed: bool = True) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def npz_corrupt_deflate() -> bytes:
    """A one-member npz whose deflate stream starts with a reserved block type (zlib.error)."""
    data = bytearray(_npz({"x.npy": _npy_array((64, 4), data=b"\0" * 1024)}))
    name_len, extra_len = struct.unpack("<HH", data[26:30])
    start = 30 + name_len + extra_len
    data[start : start + 16] = b"\xff" * 16
    return bytes(data)


def npz_extract_version() -> bytes:
    """A one-member npz whose central directory says 'version needed to extract: 17.3'."""
    data = bytearray(_npz({"x.npy": _npy_array((1, 4), data=b"\0" * 16)}))
    central = data.find(b"PK\x01\x02")
    data[central + 6 : central + 8] = struct.pack("<H", 173)
    return bytes(data)


def npz_empty_name() -> bytes:
    """An npz with one member whose name is empty."""
    return _npz({"": _npy_array((1, 4), data=b"\0" * 16)})


def pickle_bytearray8() -> bytes:
    """Twelve bytes of pickle claiming a 4 GiB ``BYTEARRAY8``."""
    return b"\x80\x05\x96" + struct.pack("<Q", 4 << 30) + b"."


class _StrOfShared:
    """Pickles as ``builtins.str`` applied to a list of shared references (a few KB that expand to
    hundreds of MB of text when built)."""

    def __reduce__(self) -> tuple[Any, ...]:
        leaf = [1.5] * 100
        middle = [leaf] * 1000
        top = [middle] * 1000
        return (str, (top,))


def pickle_str_shared() -> bytes:
    return pickle.dumps(_StrOfShared(), protocol=4)


class _OsSystem:
    """Pickles as ``os.system('true')``: a restricted unpickler must refuse the global."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("true",))


def pickle_os_system() -> bytes:
    return pickle.dumps(_OsSystem(), protocol=2)


def gzip_bomb(size: int = 1 << 30) -> bytes:
    """``size`` bytes of zeros, gzipped (about 1 MB for 1 GiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * MIB
    parts = [compressor.compress(block) for _ in range(size // MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


def deep_tfs_json(depth: int = 100_000) -> bytes:
    return b'{"signature_name": "predict", "instances": ' + b"[" * depth + b"]" * depth + b"}"


@dataclass(frozen=True)
class Case:
    """One hostile request; ``body`` is built lazily (some are large)."""

    name: str
    what: str
    source: str
    """``issue`` (a case issue 11 lists) or ``ours``."""
    content_type: str | None
    body: Callable[[], bytes]
    path: str = "/invocations"
    headers: tuple[tuple[str, str], ...] = ()
    expect: str = "4xx"
    """``4xx`` or statuses joined by ``|``."""
    declared_length: int | None = None
    chunked_total: int | None = None

    def expected(self, status: int | None) -> bool:
        if status is None:
            return False
        if self.expect == "4xx":
            return 400 <= status < 500
        return str(status) in self.expect.split("|")


PREDICT = (("X-Amzn-SageMaker-Custom-Attributes", "tfs-signature=predict"),)
TFS_ACCEPT = (("Accept", "application/json; format=tfs"),)
ZERO_DIM = b'{"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"100000000"},{"size":"0"}]}}'


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def hostile_cases(max_body: int) -> list[Case]:
    """The issue's cases first, then ours; ``max_body`` is the server's body limit."""
    npy_zero = _const(_npy_array((10**6, 0)))
    five_thousand = "9" * 5000
    return [
        Case("zero-dim tfs, predict", "TensorProto JSON [1e8, 0], Accept format=tfs, predict signature", "issue", "application/json", _const(ZERO_DIM), headers=TFS_ACCEPT + PREDICT),
        Case("zero-dim tfs, classify", "TensorProto JSON [1e8, 0], Accept format=tfs, classify default", "issue", "application/json", _const(ZERO_DIM), headers=TFS_ACCEPT),
        Case("npy (1e6, 0) → jsonlines, predict", "128-byte npy of shape (10**6, 0), Accept application/jsonlines", "issue", "application/x-npy", npy_zero, headers=(("Accept", "application/jsonlines"), *PREDICT)),
        Case("npy (1e6, 0), classify", "the same npy to the classify default (10**6 examples)", "issue", "application/x-npy", npy_zero, headers=(("Accept", "application/jsonlines"),)),
        Case("pickle BYTEARRAY8 4 GiB", "12 bytes of pickle claiming a 4 GiB bytearray", "issue", "application/python-pickle", pickle_bytearray8),
        Case("pickle str(shared refs)", "builtins.str over a list of 10**6 shared references to 100 floats", "issue", "application/python-pickle", pickle_str_shared),
        Case("JSON invalid UTF-8 key", '{"\\xff":[1.0]}', "issue", "application/json", _const(b'{"\xff":[1.0]}')),
        Case('JSON {"a": ×1e5', '{"a": nested 10**5 deep', "issue", "application/json", _const(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)),
        Case("npy shape (-2, -2)", "npy header with a negative shape", "issue", "application/x-npy", _const(_npy_array((-2, -2)))),
        Case("npy unterminated shape", "npy header whose shape tuple never closes", "issue", "application/x-npy", _const(_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, "))),
        Case("npy <U1 0xFFFFFFFF", "npy <U1 holding code point 0xFFFFFFFF", "issue", "application/x-npy", _const(_npy_array((1,), "<U1", b"\xff\xff\xff\xff"))),
        Case("npz corrupt deflate", "npz whose deflate stream is invalid", "issue", "application/x-npz", npz_corrupt_deflate),
        Case("npz extract version 17.3", "npz whose member needs zip version 17.3", "issue", "application/x-npz", npz_extract_version),
        Case("npz empty member name", "npz with a member named ''", "issue", "application/x-npz", npz_empty_name),
        Case("jsonlines lone surrogate, classify", '{"\\ud800x":2.0} to the classify default', "issue", "application/jsonlines", _const(b'{"\\ud800x":2.0}')),
        Case("CSV 1e999", "1e999,3.2,4.5,1.5 (beyond float32: 400 promised)", "issue", "text/csv", _const(b"1e999,3.2,4.5,1.5")),
        Case("CSV 5000-digit integer", "a 5000-digit integer as the first value", "issue", "text/csv", _const(f"{five_thousand},3.2,4.5,1.5".encode())),
        Case("gzip valid", "Content-Encoding: gzip of the seed request (decoded: 200; refused: 415)", "issue", "application/json", _const(gzip.compress(SEED_BODY)), headers=(("Content-Encoding", "gzip"),), expect="200|415"),
        Case("gzip bomb 1 GiB", "Content-Encoding: gzip, ~1 MB expanding to 1 GiB of zeros (413 or 415)", "issue", "application/json", gzip_bomb, headers=(("Content-Encoding", "gzip"),), expect="413|415"),
        Case("declared body over limit", f"Content-Length {max_body + MIB} declared, 64 KiB sent", "ours", "application/json", _const(b"[" * 65536), declared_length=max_body + MIB, expect="413"),
        Case("chunked body over limit", f"chunked body of {max_body // MIB + 1} MiB", "ours", "application/json", _const(b"1" * MIB), chunked_total=max_body + MIB, expect="413"),
        Case("unknown media type", "Content-Type: application/x-unknown", "ours", "application/x-unknown", _const(SEED_BODY), expect="415"),
        Case("bad Accept", "Accept: application/x-nothing", "ours", "application/json", _const(SEED_BODY), headers=(("Accept", "application/x-nothing"),), expect="406"),
        Case("garbage protobuf", "64 KiB of random bytes as application/x-protobuf", "ours", "application/x-protobuf", lambda: random.Random(11).randbytes(65536)),
        Case("huge string", "TF Serving JSON with one 50 MB string for a float input", "ours", "application/json", lambda: b'{"signature_name":"predict","instances":[["' + b"x" * (50 * 10**6) + b'",1,2,3]]}', path="/v1/models/iris:predict"),
        Case("deep TF Serving JSON", "instances nested 10**5 deep on :predict", "ours", "application/json", deep_tfs_json, path="/v1/models/iris:predict"),
        Case("TensorProto negative dim", 'tensorShape dim size "-5"', "ours", "application/json", _const(b'{"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"-5"},{"size":"4"}]},"floatVal":[1]}'), headers=PREDICT),
        Case("TensorProto dims overflow", "dims 2**62 x 2**62", "ours", "application/json", _const(b'{"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"4611686018427387904"},{"size":"4611686018427387904"}]}}'), headers=PREDICT),
        Case("TensorProto short content", "shape [1e6, 4] with 3 bytes of tensorContent", "ours", "application/json", _const(b'{"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"1000000"},{"size":"4"}]},"tensorContent":"AAAA"}'), headers=PREDICT),
        Case("NaN where ints expected", "DT_INT64 TensorProto JSON with NaN values", "ours", "application/json", _const(b'{"dtype":"DT_INT64","tensorShape":{"dim":[{"size":"1"},{"size":"4"}]},"int64Val":[NaN,1,2,3]}'), headers=PREDICT),
        Case("npy huge shape, no data", "npy shape (10**9, 4) with 16 bytes of data", "ours", "application/x-npy", _const(_npy_array((10**9, 4), data=b"\0" * 16)), headers=PREDICT),
        Case("jsonlines 1e6 empty rows", '"[]\\n" x 10**6 to the classify default', "ours", "application/jsonlines", _const(b"[]\n" * 10**6)),
        Case("jsonlines 1e999", "[1e999, 3.2, 4.5, 1.5] as JSON lines (400 promised)", "ours", "application/jsonlines", _const(b"[1e999, 3.2, 4.5, 1.5]")),
        Case("CSV ragged", "rows of 2 and 4 values", "ours", "text/csv", _const(b"1,2\n1,2,3,4\n")),
        Case("truncated JSON", "[6.4, 3.2, 4.5, 1.5 (no closing bracket)", "ours", "application/json", _const(SEED_BODY[:-1])),
        Case("empty JSON body", "Content-Type application/json, no body", "ours", "application/json", _const(b"")),
        Case("pickle os.system", "a pickle calling os.system('true'): must be refused, not run", "ours", "application/python-pickle", pickle_os_system),
        Case("bad custom attributes", "tfs-model-version=abc", "ours", "application/json", _const(SEED_BODY), headers=(("X-Amzn-SageMaker-Custom-Attributes", "tfs-model-version=abc"),)),
        Case("unknown model", "POST /v1/models/nope:predict", "ours", "application/json", _const(b'{"instances":[[1,2,3,4]]}'), path="/v1/models/nope:predict", expect="404"),
        Case("100 KB header", "one header of 100,000 bytes (accepting it is fine)", "ours", "application/json", _const(SEED_BODY), headers=(("X-Big", "a" * 100_000),), expect="200|400|431"),
        Case("2000 headers", "2000 small headers (accepting them is fine)", "ours", "application/json", _const(SEED_BODY), headers=tuple((f"X-H{i}", "v") for i in range(2000)), expect="200|400|431"),
        Case("64 MiB of headers", "1024 headers of 64 KiB each: headers must be bounded somewhere", "ours", "application/json", _const(SEED_BODY), headers=tuple((f"X-H{i}", "a" * 65536) for i in range(1024))),
    ]  # fmt: skip


def _ping_after(server: Server, cap: float) -> tuple[int | None, float | None]:
    """``/ping`` at once (2 s), and the seconds until it answered 200 (None: not within ``cap``)."""
    began = time.monotonic()
    first = ping(server.port, 2.0)
    if first == 200:
        return first, 0.0
    while time.monotonic() - began < cap and server.alive():
        if ping(server.port, 1.0) == 200:
            return first, time.monotonic() - began
        time.sleep(0.1)
    return first, None


def wait_quiet(server: Server, cap: float) -> tuple[float, bool]:
    """Wait (at most ``cap`` seconds) until the server's process tree has used under 10% of a core
    for 0.3 s; the seconds it stayed busy, and whether it went quiet. Work that outlived its
    request shows here, and the next case does not start on a server still busy with the last."""
    pids = [server.pid, *children_of(server.pid)]
    hz = os.sysconf("SC_CLK_TCK")
    began = busy_until = time.monotonic()
    last = cpu_ticks(pids)
    while time.monotonic() - began < cap:
        time.sleep(0.1)
        ticks = cpu_ticks(pids)
        if (ticks - last) / hz > 0.01:
            busy_until = time.monotonic()
        elif time.monotonic() - busy_until >= 0.3:
            return busy_until - began, True
        last = ticks
    return busy_until - began, False


def part_hostile(model: Path, logs: Path, p: Plan) -> dict[str, Any]:
    """Every hostile case (those ``p.cases`` names, if given) against one server (restarted if a
    case kills it)."""
    env = {
        "TFIO_HANDLERS_ENABLE_PICKLE": "1",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(REQUEST_TIMEOUT),
    }
    max_body = _settings(server_env(env)).get("max_body_bytes", 100 * MIB)
    rows: list[dict[str, Any]] = []
    restarts = 0
    server = serve_server("hostile", logs, model_args(model), env=env).start()
    try:
        server.wait_ready()
        for case in hostile_cases(max_body):
            if p.cases and not any(name.lower() in case.name.lower() for name in p.cases):
                continue
            if not server.alive():
                server.stop()
                restarts += 1
                server = serve_server(
                    f"hostile-{restarts}", logs, model_args(model), env=env
                ).start()
                server.wait_ready()
            body = case.body()
            headers = list(case.headers)
            if case.content_type is not None:
                headers.insert(0, ("Content-Type", case.content_type))
            _, quiet_before = wait_quiet(server, p.hostile_settle_cap)
            with sampling(server.pid) as sampler:
                base = sampler.reset_peak()
                reply = exchange(
                    server.port,
                    "POST",
                    case.path,
                    headers,
                    body,
                    cap=p.hostile_answer_cap,
                    declared_length=case.declared_length,
                    chunked_total=case.chunked_total,
                )
                first_ping, recovered = _ping_after(server, p.hostile_settle_cap)
                busy, quiet = wait_quiet(server, p.hostile_settle_cap)
                extra = max(0, sampler.peak_now() - base)
            message = ""
            if reply.status is not None and reply.json_error():
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    message = str(json.loads(reply.body)["error"])
                if not message:  # an answer longer than the bytes kept: its first characters
                    message = reply.body[:200].decode("utf-8", "replace")
            rows.append(
                {
                    "case": case.name,
                    "what": case.what,
                    "source": case.source,
                    "body_bytes": case.chunked_total or len(body),
                    "expect": case.expect,
                    "status": reply.status,
                    "json_error": reply.json_error()
                    if reply.status and reply.status >= 400
                    else None,
                    "as_expected": case.expected(reply.status)
                    and (reply.status is None or reply.status < 400 or reply.json_error()),
                    "seconds": reply.seconds,
                    "answer_bytes": reply.size,
                    "client_error": reply.error,
                    "extra_rss": extra,
                    "ping_after": first_ping,
                    "ping_recovered_s": recovered,
                    "busy_after_s": busy,
                    "quiet_after": quiet,
                    "quiet_before": quiet_before,
                    "alive_after": server.alive(),
                    "message": message[:160],
                }
            )
    finally:
        server.stop()
    limit = REQUEST_TIMEOUT + TIMEOUT_GRACE
    return {
        "rows": rows,
        "max_body_bytes": max_body,
        "timeout": REQUEST_TIMEOUT,
        "restarts": restarts,
        "count_500": sum(1 for r in rows if r["status"] == 500),
        "count_5xx": sum(1 for r in rows if r["status"] is not None and r["status"] >= 500),
        "count_unexpected": sum(1 for r in rows if not r["as_expected"]),
        "count_beyond_timeout": sum(1 for r in rows if r["status"] is None or r["seconds"] > limit),
        "count_rss_over": sum(1 for r in rows if r["extra_rss"] > 2 * max_body),
        "count_ping_failed": sum(1 for r in rows if r["ping_after"] != 200),
        "count_not_json": sum(1 for r in rows if r["json_error"] is False),
        "count_big_error": sum(1 for r in rows if _big_error(r)),
        "count_work_outlived": sum(
            1 for r in rows if r["seconds"] + r["busy_after_s"] > REQUEST_TIMEOUT + TIMEOUT_GRACE
        ),
    }


def _big_error(row: dict[str, Any]) -> bool:
    """An error answer longer than the bytes kept: one that carries the input back, most likely."""
    return row["status"] is not None and row["status"] >= 400 and row["answer_bytes"] > KEEP


def _settings(env: dict[str, str]) -> dict[str, Any]:
    """The settings a server started with ``env`` reads (``tfio_handlers.config.Settings``), the
    fields that exist in this checkout only; empty when they cannot be read."""
    try:
        from tfio_handlers.config import Settings

        settings = Settings.from_env(env)
    except Exception:  # reported as 'not configured', never fatal
        return {}
    found: dict[str, Any] = {"max_body_bytes": settings.limits.max_body_bytes}
    for name in (
        "request_timeout",
        "max_concurrent_requests",
        "header_timeout",
        "body_timeout",
        "keep_alive_timeout",
        "max_connections",
    ):
        if hasattr(settings, name):
            found[name] = getattr(settings, name)
    return found


# -- part 2: load -------------------------------------------------------------------------------------


def loadgen(
    port: int,
    body: bytes,
    headers: Sequence[str],
    *,
    total: int,
    concurrency: int,
    time_limit: float,
    work: Path,
    warmup: float = 0.0,
) -> dict[str, Any]:
    """``benchmarks/loadgen.py`` in count mode, a process of its own (started and reaped here)."""
    body_file = work / f"body-{len(body)}-{hash(body) & 0xFFFF:x}.bin"
    body_file.write_bytes(body)
    argv = [PYTHON, str(LOADGEN), "--url", f"http://{HOST}:{port}/invocations"]
    argv += ["--body-file", str(body_file), "--concurrency", str(concurrency)]
    argv += ["--warmup", str(warmup), "--total", str(total), "--time-limit", str(time_limit)]
    for header in headers:
        argv += ["--header", header]
    log = work / "loadgen.err"
    out = work / "loadgen.out"
    out.write_bytes(b"")
    with out.open("wb") as stdout, log.open("ab") as stderr:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, start_new_session=True)
    with PROCESSES.lock:
        PROCESSES.started.append(proc)
    try:
        proc.wait(time_limit + warmup + 30)
    except subprocess.TimeoutExpired:
        PROCESSES.stop(proc)
        raise RuntimeError(
            f"loadgen did not stop within {time_limit + warmup + 30:.0f} s"
        ) from None
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {log.read_text()[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


JSON_HEADERS = ("Content-Type: application/json",)


def part_load(model: Path, logs: Path, p: Plan) -> dict[str, Any]:
    """``p.load_total`` seed requests at ``p.load_concurrency`` against ``--workers 2``."""
    server = serve_server("load", logs, model_args(model), workers=2).start()
    try:
        server.wait_ready()
        # Every worker answers a few hundred requests before RSS is measured (lazy imports, caches).
        warm = loadgen(
            server.port, SEED_BODY, JSON_HEADERS, total=max(256, p.load_total // 20),
            concurrency=p.load_concurrency, time_limit=60, work=logs,
        )  # fmt: skip
        with sampling(server.pid) as sampler:
            time.sleep(0.5)
            start_rss = sampler.sample()[1]
            workers = len(sampler.workers)
            began = time.monotonic()
            result = loadgen(
                server.port, SEED_BODY, JSON_HEADERS, total=p.load_total,
                concurrency=p.load_concurrency, time_limit=p.load_time_limit, work=logs,
            )  # fmt: skip
            ended = time.monotonic()
            middle_rss = sampler.workers_at((began + ended) / 2)
            end_rss = sampler.sample()[1]
            peak_workers = max((row[2] for row in sampler.timeline if row[0] >= began), default=0)
    finally:
        server.stop()
    non_200 = sum(v for k, v in result["statuses"].items() if k != "200")
    drift = max(abs(middle_rss - start_rss), abs(end_rss - start_rss)) / max(1, start_rss)
    return {
        "total": p.load_total,
        "concurrency": p.load_concurrency,
        "workers": workers,
        "completed": result["completed"],
        "statuses": result["statuses"],
        "conn_errors": result["error_count"],
        "error_samples": result["errors"],
        "errors": non_200 + result["error_count"],
        "timed_out": result.get("timed_out", False),
        "seconds": result["seconds"],
        "rps": result["rps"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "max_ms": result.get("max_ms"),
        "warmup_requests": warm["completed"],
        "rss_start": start_rss,
        "rss_middle": middle_rss,
        "rss_end": end_rss,
        "rss_peak": peak_workers,
        "rss_drift": drift,
        "generator_cpu_share": result["cpu_share"],
    }


# -- part 3: faults ------------------------------------------------------------------------------------


@dataclass
class Record:
    """One probe request: when it started and ended (monotonic), its status or ``conn-error``."""

    start: float
    end: float
    status: int | str
    source: str = "normal"
    json_error: bool | None = None
    """For answers of 400 and more: whether the body is JSON with an ``"error"`` key."""


class Probe:
    """A light steady load for timelines: ``connections`` threads, each a keep-alive connection
    sending ``body`` to /invocations with a pause between requests, recording every request.

    ``benchmarks/loadgen.py`` aggregates; the fault parts need every request's start, end and status
    to place it in a phase, so this is a recorder, not a load generator: it runs at a few tens of
    requests a second. Each thread stops at :meth:`stop` or after ``max_seconds``, and after
    ``max_requests`` requests.
    """

    def __init__(
        self,
        port: int,
        connections: int,
        *,
        body: bytes = SEED_BODY,
        pause: float = 0.02,
        request_cap: float = 30.0,
        max_seconds: float = 300.0,
        max_requests: int = 100_000,
    ) -> None:
        self.port = port
        self.body = body
        self.pause = pause
        self.request_cap = request_cap
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, daemon=True, name=f"probe-{i}")
            for i in range(connections)
        ]

    def start(self) -> Probe:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> list[Record]:
        self.stopped.set()
        for thread in self.threads:
            thread.join(self.request_cap + 5)
        with self.lock:
            return list(self.records)

    def wait_for_200(self, after: float, cap: float) -> bool:
        """Wait (at most ``cap`` seconds) for a 200 to a request started at or after ``after``."""
        ends = time.monotonic() + cap
        while time.monotonic() < ends:
            with self.lock:
                if any(r.status == 200 and r.start >= after for r in self.records[-200:]):
                    return True
            time.sleep(0.05)
        return False

    def _loop(self) -> None:
        ends = time.monotonic() + self.max_seconds
        conn: http.client.HTTPConnection | None = None
        sent = 0
        while not self.stopped.is_set() and time.monotonic() < ends and sent < self.max_requests:
            sent += 1
            began = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=self.request_cap)
                conn.request(
                    "POST", "/invocations", self.body, {"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                response.read()
                status: int | str = response.status
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                status = CONN_ERROR
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.records.append(Record(began, time.monotonic(), status))
            self.stopped.wait(self.pause if status != CONN_ERROR else 0.05)
        if conn is not None:
            conn.close()


def _phase_rows(
    records: Sequence[Record], marks: Sequence[tuple[str, float]], end: float
) -> list[dict[str, Any]]:
    """Statuses, counts and latencies of the records that started in each phase."""
    rows = []
    bounds = [*marks, ("", end)]
    for (name, since), (_, until) in itertools.pairwise(bounds):
        inside = [r for r in records if since <= r.start < until]
        latencies = sorted(r.end - r.start for r in inside)
        rows.append(
            {
                "phase": name,
                "seconds": until - since,
                "requests": len(inside),
                "statuses": dict(Counter(str(r.status) for r in inside)),
                "p50_s": statistics.median(latencies) if latencies else None,
                "max_s": latencies[-1] if latencies else None,
            }
        )
    return rows


def _first_200_after(records: Sequence[Record], when: float) -> float | None:
    """Seconds from ``when`` to the end of the first 200 among requests that started after it."""
    ends = [r.end for r in records if r.start >= when and r.status == 200]
    return min(ends) - when if ends else None


def part_backend(model: Path, logs: Path, p: Plan) -> dict[str, Any]:
    """(a) the remote backend killed, restarted, stopped and continued under a steady light load."""
    grpc_port = free_port()
    backend = grpc_server("grpc-backend", logs, model, grpc_port).start()
    front = serve_server(
        "front",
        logs,
        ["--model", f"iris={model}", "--backend", f"grpc://{HOST}:{grpc_port}"],
        env={
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(REQUEST_TIMEOUT),
            "SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "iris",
        },
    )
    restarted: Server | None = None
    probe: Probe | None = None
    try:
        _wait(lambda: port_open(grpc_port), 180, "the gRPC server to listen", backend)
        front.start().wait_ready()
        probe = Probe(front.port, p.probe_connections, request_cap=REQUEST_TIMEOUT * 3 + 10).start()
        marks: list[tuple[str, float]] = [("healthy", time.monotonic())]
        time.sleep(p.fault_healthy)
        marks.append(("backend killed (SIGKILL)", time.monotonic()))
        assert backend.proc is not None
        Processes.signal_group(backend.proc, signal.SIGKILL)
        backend.proc.wait(10)
        time.sleep(p.fault_down)
        marks.append(("backend restarting", time.monotonic()))
        restarted = grpc_server("grpc-backend-2", logs, model, grpc_port).start()
        _wait(lambda: port_open(grpc_port, 0.1), 180, "the restarted gRPC server", restarted)
        back_at = time.monotonic()
        marks.append(("backend back", back_at))
        # The next fault waits for the front's first 200 (bounded), so that it cannot hide a slow
        # recovery.
        probe.wait_for_200(back_at, RECOVERY_CAP)
        time.sleep(p.fault_after)
        marks.append(("backend stopped (SIGSTOP)", time.monotonic()))
        assert restarted.proc is not None
        Processes.signal_group(restarted.proc, signal.SIGSTOP)
        time.sleep(p.fault_stopped)
        cont_at = time.monotonic()
        marks.append(("backend continued (SIGCONT)", cont_at))
        Processes.signal_group(restarted.proc, signal.SIGCONT)
        probe.wait_for_200(cont_at, RECOVERY_CAP)
        time.sleep(p.fault_after)
        end = time.monotonic()
        records = probe.stop()
        probe = None
    finally:
        if probe is not None:
            probe.stop()
        for server in (front, restarted, backend):
            if server is not None:
                server.stop()
    phases = _phase_rows(records, marks, end)
    outage = {"backend killed (SIGKILL)", "backend restarting", "backend stopped (SIGSTOP)"}
    bad_outage = Counter[str]()
    for row in phases:
        if row["phase"] in outage:
            for status, count in row["statuses"].items():
                if status not in ("200", "503", "504"):
                    bad_outage[status] += count
    longest = max((r.end - r.start for r in records), default=0.0)
    return {
        "phases": phases,
        "longest_s": longest,
        "beyond_deadline": sum(
            1 for r in records if r.end - r.start > REQUEST_TIMEOUT + TIMEOUT_GRACE
        ),
        "outage_other_statuses": dict(bad_outage),
        "healthy_other_statuses": {k: v for k, v in phases[0]["statuses"].items() if k != "200"},
        "first_200_after_restart_s": _first_200_after(records, back_at),
        "first_200_after_sigcont_s": _first_200_after(records, cont_at),
        "deadline": REQUEST_TIMEOUT,
    }


def _wait(check: Callable[[], bool], timeout: float, what: str, server: Server) -> None:
    begin = time.monotonic()
    while time.monotonic() - begin < timeout:
        if check():
            return
        if not server.alive():
            raise RuntimeError(
                f"{server.name} exited while waiting for {what}:\n{server.log_tail()}"
            )
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


INFERENCE_PY = '''\
"""User code for the campaign: input_fn misbehaves as the body asks, else lets the codecs decode."""

import sys
import time

BLOCK_SECONDS = {block}


def input_fn(data, content_type):
    text = data if isinstance(data, str) else bytes(data).decode("latin-1")
    if "mode-raise" in text:
        raise ValueError("input_fn raised on purpose")
    if "mode-garbage" in text:
        return {{1, 2, 3}}
    if "mode-exit" in text:
        sys.exit(3)
    if "mode-keyboard" in text:
        raise KeyboardInterrupt
    if "mode-block" in text:
        time.sleep(BLOCK_SECONDS)
    return None
'''

USERCODE_KINDS = ("raise", "garbage", "keyboard", "exit", "block")


def _burst(port: int, body: bytes, count: int, cap: float) -> list[Record]:
    """``count`` requests at once, each on its own connection; every answer (or none) recorded."""
    records: list[Record] = []
    lock = threading.Lock()

    def one() -> None:
        reply = exchange(
            port, "POST", "/invocations", [("Content-Type", "application/json")], body, cap=cap
        )
        began = time.monotonic() - reply.seconds
        with lock:
            status = reply.status or CONN_ERROR
            json_error = reply.json_error() if reply.status and reply.status >= 400 else None
            records.append(Record(began, time.monotonic(), status, "hostile", json_error))

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(cap + 5)
    return records


def part_usercode(model: Path, logs: Path, p: Plan) -> dict[str, Any]:
    """(b) input_fn raising, returning garbage, exiting, interrupted, blocking; normal traffic beside."""
    block = REQUEST_TIMEOUT + 3
    code = logs / "inference.py"
    code.write_text(INFERENCE_PY.format(block=block))
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": str(REQUEST_TIMEOUT)}
    settings = _settings(server_env(env))
    pool = settings.get("max_concurrent_requests")
    args = [*model_args(model), "--entry-point", str(code)]
    rows: list[dict[str, Any]] = []
    restarts = 0
    server = serve_server("usercode", logs, args, env=env).start()
    probe: Probe | None = None
    try:
        server.wait_ready()
        for kind in USERCODE_KINDS:
            if not server.alive():
                restarts += 1
                server.stop()
                server = serve_server(f"usercode-{restarts}", logs, args, env=env).start()
                server.wait_ready()
            count = p.usercode_burst
            if kind == "block":
                # More blocked calls than the work pool holds (when it is bounded), or than the
                # default thread pool's threads (6 on 2 cores) when it is not.
                count = max(count, (pool or 6) + 8)
            probe = Probe(server.port, 4, request_cap=REQUEST_TIMEOUT * 3 + 10).start()
            time.sleep(1.0)
            burst_at = time.monotonic()
            hostile = _burst(
                server.port, b'{"mode": "mode-' + kind.encode() + b'"}', count, block + 15
            )
            burst_end = max((r.end for r in hostile), default=time.monotonic())
            probe.wait_for_200(burst_end, RECOVERY_CAP)
            time.sleep(1.0)
            normal = probe.stop()
            probe = None
            during = [r for r in normal if burst_at <= r.start < burst_end]
            after_burst = [r for r in normal if r.start >= burst_end]
            disrupted = any(r.status != 200 for r in during + after_burst)
            recover = _first_200_after(normal, burst_end) if disrupted else 0.0
            latencies = sorted(r.end - r.start for r in during)
            rows.append(
                {
                    "kind": kind,
                    "hostile": count,
                    "hostile_statuses": dict(Counter(str(r.status) for r in hostile)),
                    "hostile_max_s": max((r.end - r.start for r in hostile), default=None),
                    "hostile_not_json": sum(1 for r in hostile if r.json_error is False),
                    "normal_during": len(during),
                    "normal_statuses": dict(Counter(str(r.status) for r in during)),
                    "normal_p50_s": statistics.median(latencies) if latencies else None,
                    "normal_max_s": latencies[-1] if latencies else None,
                    "recover_s": recover,
                    "normal_after_statuses": dict(Counter(str(r.status) for r in after_burst)),
                    "normal_unanswered": sum(
                        1
                        for r in normal
                        if r.status == CONN_ERROR
                        or r.end - r.start > REQUEST_TIMEOUT + TIMEOUT_GRACE
                    ),
                    "alive_after": server.alive(),
                    "ping_after": ping(server.port, 2.0) if server.alive() else None,
                }
            )
    finally:
        if probe is not None:
            probe.stop()
        server.stop()
    return {"rows": rows, "restarts": restarts, "pool": pool, "block_seconds": block}


# -- part 4: slow clients ------------------------------------------------------------------------------


SLOW_KINDS = ("silent", "trickle", "short body", "idle keep-alive")


@dataclass
class SlowConn:
    """One slow connection: when its deadline clock started, when the server closed it (None: not
    while held) and the first bytes it answered."""

    kind: str
    opened: float = 0.0
    reference: float = 0.0
    closed: float | None = None
    answer: bytes = b""
    open_error: str = ""


async def _slow_conn(conn: SlowConn, port: int, hold_until: float) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
    except (OSError, asyncio.TimeoutError) as exc:
        conn.open_error = type(exc).__name__
        return
    conn.opened = conn.reference = time.monotonic()
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
    )
    try:
        if conn.kind == "short body":
            writer.write((head + "Content-Length: 1000\r\n\r\n").encode() + b"[6.4, 3.2,")
            conn.reference = time.monotonic()
        elif conn.kind == "idle keep-alive":
            writer.write((head + f"Content-Length: {len(SEED_BODY)}\r\n\r\n").encode() + SEED_BODY)
            first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = 0
            for line in first.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await asyncio.wait_for(reader.readexactly(length), 30)
            conn.answer = first[:12]
            conn.reference = time.monotonic()
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
        conn.closed = time.monotonic()
        writer.close()
        return

    async def watch() -> None:
        data = await reader.read(256)
        while data:
            if not conn.answer or (conn.kind == "idle keep-alive" and len(conn.answer) <= 12):
                conn.answer += data[:12]
            data = await reader.read(4096)
        conn.closed = time.monotonic()

    watcher = asyncio.ensure_future(watch())
    trickle = (head + "Content-Length: 20\r\n\r\n").encode()
    sent = 0
    try:
        while not watcher.done() and time.monotonic() < hold_until:
            if conn.kind == "trickle" and sent < len(trickle):
                writer.write(trickle[sent : sent + 1])
                sent += 1
                with contextlib.suppress(OSError):
                    await writer.drain()
            await asyncio.wait({watcher}, timeout=min(1.0, max(0.0, hold_until - time.monotonic())))
    except OSError:
        pass
    finally:
        if not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await watcher
        elif conn.closed is None:
            conn.closed = time.monotonic()
        writer.close()


def _run_slow(conns: list[SlowConn], port: int, hold_until: float, opened: threading.Event) -> None:
    async def main() -> None:
        tasks = []
        for conn in conns:
            tasks.append(asyncio.ensure_future(_slow_conn(conn, port, hold_until)))
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.5)
        opened.set()
        await asyncio.wait(tasks, timeout=max(1.0, hold_until - time.monotonic() + 15))
        for task in tasks:
            task.cancel()

    try:
        asyncio.run(main())
    finally:
        opened.set()


def part_slow(model: Path, logs: Path, p: Plan) -> dict[str, Any]:
    """Slow and silent connections against one worker, normal requests' p99 beside an idle run."""
    env: dict[str, str] = {}
    settings = _settings(server_env(env))
    # The body deadline defaults to 60 s: shortened so that the run can see it enforced.
    if "body_timeout" in settings:
        env["TFIO_HANDLERS_BODY_TIMEOUT"] = "5"
        settings = _settings(server_env(env))
    deadlines: dict[str, float | None] = {
        "silent": settings.get("header_timeout") or None,
        "trickle": settings.get("header_timeout") or None,
        "short body": settings.get("body_timeout") or None,
        "idle keep-alive": settings.get("keep_alive_timeout") or None,
    }
    known = [d for d in deadlines.values() if d]
    hold = (
        min(p.slow_hold_cap, max(known) + TIMEOUT_GRACE + 4)
        if known
        else (15.0 if not p.quick else 8.0)
    )
    server = serve_server("slow", logs, model_args(model), env=env).start()
    conns = [SlowConn(SLOW_KINDS[i % len(SLOW_KINDS)]) for i in range(p.slow_connections)]
    thread: threading.Thread | None = None
    try:
        server.wait_ready()
        loadgen(
            server.port, SEED_BODY, JSON_HEADERS, total=200, concurrency=4, time_limit=60, work=logs
        )
        idle = loadgen(
            server.port, SEED_BODY, JSON_HEADERS, total=p.slow_normal_total, concurrency=4,
            time_limit=120, work=logs,
        )  # fmt: skip
        idle["load_average"] = os.getloadavg()[0]
        opened = threading.Event()
        hold_until = time.monotonic() + hold + 2
        thread = threading.Thread(
            target=_run_slow, args=(conns, server.port, hold_until, opened), daemon=True
        )
        thread.start()
        opened.wait(30)
        busy = loadgen(
            server.port, SEED_BODY, JSON_HEADERS, total=p.slow_normal_total, concurrency=4,
            time_limit=120, work=logs,
        )  # fmt: skip
        busy["load_average"] = os.getloadavg()[0]
        busy_done = time.monotonic()
        thread.join(hold + 40)
        alive_after = server.alive()
        ping_after = ping(server.port) if alive_after else None
    finally:
        server.stop()
    rows = []
    for kind in SLOW_KINDS:
        mine = [c for c in conns if c.kind == kind]
        deadline = deadlines[kind]
        limit = (deadline + TIMEOUT_GRACE) if deadline else None
        closed = [c for c in mine if c.closed is not None and c.opened]
        after = [c.closed - c.reference for c in closed if c.closed is not None]
        open_past = (
            sum(
                1 for c in mine if c.opened and (c.closed is None or c.closed - c.reference > limit)
            )
            if limit is not None
            else None
        )
        answers = Counter(_status_of(c.answer, kind) for c in closed)
        rows.append(
            {
                "kind": kind,
                "connections": len(mine),
                "open_failed": sum(1 for c in mine if c.open_error),
                "deadline": deadline,
                "closed": len(closed),
                "median_close_s": statistics.median(after) if after else None,
                "open_past_deadline": open_past,
                "still_open_at_end": sum(1 for c in mine if c.opened and c.closed is None),
                "answers": dict(answers),
            }
        )
    ratio = busy["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else float("nan")
    open_at_busy_end = sum(
        1 for c in conns if c.opened and (c.closed is None or c.closed > busy_done)
    )
    return {
        "rows": rows,
        "hold_s": hold,
        "deadlines": deadlines,
        "settings_found": bool(known),
        "idle": _brief(idle),
        "busy": _brief(busy),
        "p99_ratio": ratio,
        "open_when_normal_run_ended": open_at_busy_end,
        "alive_after": alive_after,
        "ping_after": ping_after,
        "body_timeout_env": env.get("TFIO_HANDLERS_BODY_TIMEOUT"),
    }


def _status_of(answer: bytes, kind: str) -> str:
    """What a slow connection was answered before it was closed: a status, or 'closed silently'."""
    if kind == "idle keep-alive":
        answer = answer[12:]
    if answer.startswith(b"HTTP/1."):
        return answer[9:12].decode("latin-1", "replace")
    return "closed silently" if not answer else "other bytes"


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "completed": result["completed"],
        "statuses": result["statuses"],
        "conn_errors": result["error_count"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "max_ms": result.get("max_ms"),
        "rps": result["rps"],
        "load_average": result.get("load_average"),
    }


# -- the report ---------------------------------------------------------------------------------------


def _mb(n: int | float | None) -> str:
    return "–" if n is None else f"{n / MIB:.1f} MiB"


def _s(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f} s"


def _statuses(d: dict[str, int]) -> str:
    return ", ".join(f"{k}×{v}" for k, v in sorted(d.items())) or "–"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def machine() -> list[str]:
    """Facts about this machine and checkout, for the results file."""
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "tfio_handlers")
    versions = []
    for package in ("numpy", "tensorflow", "uvicorn", "grpcio"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
    return [
        f"{platform.system()} {platform.release()}, {cpu}, {cores} usable cores, {memory} memory",
        f"Python {platform.python_version()}; {', '.join(versions)}",
        f"checkout {commit}"
        + (
            f", with uncommitted changes to {len(dirty.splitlines())} file(s) under tfio_handlers/ "
            "(work in progress of other engineers: what was measured is the working tree)"
            if dirty
            else ", tfio_handlers/ clean"
        ),
        f"load average at the end {os.getloadavg()[0]:.2f}",
    ]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def render(results: dict[str, Any], command: str, seconds: float, quick: bool) -> str:
    """The results file: goals first, then a table per part."""
    out: list[str] = []
    add = out.append
    add("# Reliability campaign: results\n")
    add(
        "Written by `reliability/campaign.py` (see [README.md](README.md)). Servers on 127.0.0.1, "
        "the iris model built by `benchmarks/models.py`. The goals are issue 11's; a missed goal is a "
        "result, not a failure of the run.\n"
    )
    add(f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    add(f"- Command: `{command}`{' (quick: a smaller version of every part)' if quick else ''}")
    add(f"- Run time: {seconds:.0f} s")
    for fact in machine():
        add(f"- {fact}")
    add("")
    add("## Goals\n")
    add("| goal | measured | |")
    add("|---|---|---|")
    for goal, measured, ok in goals(results):
        add(f"| {goal} | {_cell(measured)} | {_met(ok)} |")
    add("")
    for name, title in (
        ("hostile", "1. Hostile input"),
        ("load", "2. Load"),
        ("backend", "3a. Faults: remote backend"),
        ("usercode", "3b. Faults: user code"),
        ("slow", "4. Slow clients"),
        ("fuzz", "5. Fuzzing"),
    ):
        if name not in results:
            continue
        add(f"## {title}\n")
        part = results[name]
        if "error" in part:
            add(f"**The part could not run**: `{_cell(part['error'])}`\n")
            add("```text\n" + part.get("traceback", "")[-3000:] + "\n```\n")
            continue
        globals()[f"_render_{name}"](part, add)
        add("")
    return "\n".join(out) + "\n"


def _render_hostile(part: dict[str, Any], add: Callable[[str], None]) -> None:
    limit = part["max_body_bytes"]
    add(
        f"One `tfio-handlers serve` (1 worker, `TFIO_HANDLERS_ENABLE_PICKLE=1`, "
        f"`SAGEMAKER_MODEL_SERVER_TIMEOUT={part['timeout']:g}`, body limit {_mb(limit)}); one request per "
        "case on a fresh connection. *extra RSS*: the peak of the server's process tree over its RSS "
        "before the case, sampled every 10 ms until the server is quiet again. *busy after*: how long "
        "the server kept using CPU after it answered (work that outlived the request). *ping*: `/ping` "
        "right after the answer (2 s), and when it was not 200, how long until it was. Server "
        f"restarts after a case killed it: {part['restarts']}.\n"
    )
    add(
        f"Headline: **{part['count_500']}** answers of 500 and **{part['count_5xx']}** of 5xx in all "
        "(500/503/504) for client input, "
        f"**{part['count_unexpected']}** of {len(part['rows'])} cases not answered as expected, "
        f"**{part['count_beyond_timeout']}** beyond the timeout (+{TIMEOUT_GRACE:g} s) or unanswered, "
        f"**{part['count_work_outlived']}** whose work kept the server busy past the timeout, "
        f"**{part['count_rss_over']}** over 2× the body limit in extra RSS, "
        f"**{part['count_ping_failed']}** with `/ping` not 200 right after, "
        f'**{part["count_not_json"]}** error answers that are not JSON `{{"error"}}`, '
        f"**{part['count_big_error']}** error answers over {KEEP // 1024} KiB (an error that echoes "
        "the input back).\n"
    )
    add(
        "| case | source | expected | status | JSON error | ok | time | answer | extra RSS | ping | "
        "busy after | error message (first 160 chars) |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in part["rows"]:
        status = r["status"] if r["status"] is not None else f"none ({r['client_error']})"
        if r["status"] is not None and r["client_error"]:
            status = f"{status} ({r['client_error']})"
        json_error = {None: "–", True: "yes", False: "**no**"}[r["json_error"]]
        ping_text = str(r["ping_after"])
        if r["ping_after"] != 200:
            ping_text = f"**{r['ping_after']}**, 200 after {_s(r['ping_recovered_s'])}"
        if not r["alive_after"]:
            ping_text += ", **server died**"
        slow = r["status"] is None or r["seconds"] > part["timeout"] + TIMEOUT_GRACE
        time_text = f"**{r['seconds']:.2f} s**" if slow else f"{r['seconds']:.2f} s"
        rss_text = _mb(r["extra_rss"])
        if r["extra_rss"] > 2 * limit:
            rss_text = f"**{rss_text}**"
        add(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    r["case"],
                    r["source"],
                    r["expect"],
                    f"**{status}**" if not r["as_expected"] else status,
                    json_error,
                    "yes" if r["as_expected"] else "**no**",
                    time_text,
                    f"**{r['answer_bytes']:,} B**" if _big_error(r) else f"{r['answer_bytes']:,} B",
                    rss_text,
                    ping_text,
                    _s(r["busy_after_s"], 1),
                    r["message"],
                )
            )
            + " |"
        )
    add("\nWhat each case sends:\n")
    for r in part["rows"]:
        add(f"- *{_cell(r['case'])}*: {_cell(r['what'])} ({r['body_bytes']:,} bytes)")


def _render_load(part: dict[str, Any], add: Callable[[str], None]) -> None:
    add(
        f"`tfio-handlers serve --workers 2`, the seed request `[6.4, 3.2, 4.5, 1.5]` to `/invocations`, "
        f"{part['total']:,} requests shared by {part['concurrency']} keep-alive connections "
        f"(`benchmarks/loadgen.py --total`), after {part['warmup_requests']:,} warm-up requests. RSS is "
        f"the sum over the {part['workers']} worker processes (the uvicorn supervisor excluded).\n"
    )
    add("| requests | answered | statuses | connection errors | req/s | p50 | p99 | max |")
    add("|---|---|---|---|---|---|---|---|")
    add(
        f"| {part['total']:,} | {part['completed']:,} | {_statuses(part['statuses'])} | "
        f"{part['conn_errors']} | {part['rps']:.0f} | {part['p50_ms']:.1f} ms | "
        f"{part['p99_ms']:.1f} ms | {part['max_ms'] or float('nan'):.1f} ms |"
    )
    add("")
    add("| workers' RSS | start | middle | end | peak | largest drift from start |")
    add("|---|---|---|---|---|---|")
    add(
        f"| | {_mb(part['rss_start'])} | {_mb(part['rss_middle'])} | {_mb(part['rss_end'])} | "
        f"{_mb(part['rss_peak'])} | {part['rss_drift'] * 100:.1f}% |"
    )
    if part["error_samples"]:
        add(f"\nFirst connection errors: `{_cell('; '.join(part['error_samples']))}`")
    if part["timed_out"]:
        add("\n**The run hit its time limit** before every request was sent.")


def _render_backend(part: dict[str, Any], add: Callable[[str], None]) -> None:
    add(
        "`tfio-handlers serve --backend grpc://127.0.0.1:P` (1 worker, "
        f"`SAGEMAKER_MODEL_SERVER_TIMEOUT={part['deadline']:g}`) in front of `tfio-handlers grpc-serve "
        "--port P`; 8 keep-alive connections send the seed request with 20 ms pauses. The gRPC "
        "server is killed (SIGKILL), started again on the same port ('back' when its port accepts: "
        "it loads the model before it listens), stopped (SIGSTOP) and continued (SIGCONT). Each "
        "request belongs to the phase in which it started.\n"
    )
    add("| phase | seconds | requests | statuses | p50 | longest |")
    add("|---|---|---|---|---|---|")
    for row in part["phases"]:
        add(
            f"| {row['phase']} | {row['seconds']:.1f} | {row['requests']} | "
            f"{_statuses(row['statuses'])} | {_s(row['p50_s'], 3)} | {_s(row['max_s'])} |"
        )
    add("")
    add(
        f"Longest request {part['longest_s']:.2f} s; {part['beyond_deadline']} beyond the "
        f"{part['deadline']:g} s deadline (+{TIMEOUT_GRACE:g} s); answers other than 200/503/504 "
        f"during the outage: {_statuses(part['outage_other_statuses'])}; first 200 "
        f"{_s(part['first_200_after_restart_s'])} after the restarted backend listened, "
        f"{_s(part['first_200_after_sigcont_s'])} after SIGCONT. Answers other than 200 while the "
        f"backend was healthy (first phase): {_statuses(part['healthy_other_statuses'])}."
    )


def _render_usercode(part: dict[str, Any], add: Callable[[str], None]) -> None:
    pool = part["pool"]
    add(
        "`tfio-handlers serve` (1 worker, "
        f"`SAGEMAKER_MODEL_SERVER_TIMEOUT={REQUEST_TIMEOUT:g}`) with an `inference.py` whose `input_fn` "
        "raises `ValueError`, returns a set, raises `KeyboardInterrupt`, calls `sys.exit(3)` or "
        f"sleeps {part['block_seconds']:g} s, as the body asks. For each kind a burst of such requests "
        "is sent at once, each on its own connection, while 4 other connections send the seed "
        "request in a loop. *Normal during*: the normal requests that started during the burst; "
        "*recovered*: seconds from the burst's last answer to the next normal 200 (0: never "
        f"disrupted). Work pool setting (`max_concurrent_requests`): {pool if pool else 'not found'}. "
        f"Server restarts after a kind killed it: {part['restarts']}.\n"
    )
    add(
        "| input_fn | burst | burst statuses | not JSON | burst longest | normal during | "
        "normal statuses | normal p50 | normal longest | normal after the burst | recovered | "
        "server after |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in part["rows"]:
        after = "alive, ping 200" if r["alive_after"] and r["ping_after"] == 200 else (
            f"alive, ping {r['ping_after']}" if r["alive_after"] else "**died**"
        )  # fmt: skip
        add(
            f"| {r['kind']} | {r['hostile']} | {_statuses(r['hostile_statuses'])} | "
            f"{r['hostile_not_json']} | {_s(r['hostile_max_s'])} | {r['normal_during']} | "
            f"{_statuses(r['normal_statuses'])} | {_s(r['normal_p50_s'], 3)} | "
            f"{_s(r['normal_max_s'])} | {_statuses(r['normal_after_statuses'])} | "
            f"{_s(r['recover_s'])} | {after} |"
        )


def _render_slow(part: dict[str, Any], add: Callable[[str], None]) -> None:
    deadlines = part["deadlines"]
    if part["settings_found"]:
        where = (
            "deadlines from `tfio_handlers.config.Settings`: header "
            f"{deadlines['silent']} s, body {deadlines['short body']} s"
            + (
                f" (`TFIO_HANDLERS_BODY_TIMEOUT={part['body_timeout_env']}` set for this run)"
                if part["body_timeout_env"]
                else ""
            )
            + f", keep-alive {deadlines['idle keep-alive']} s"
        )
    else:
        where = "no deadline configured (no such settings in `tfio_handlers.config.Settings`)"
    add(
        f"`tfio-handlers serve` (1 worker; {where}). Slow connections, a quarter of each kind: "
        "*silent* (connect, send nothing), *trickle* (a request head, one byte a second), *short "
        "body* (`Content-Length: 1000`, 10 bytes sent), *idle keep-alive* (one request answered, then "
        f"nothing). Held {part['hold_s']:.0f} s; a connection counts as open past its deadline when "
        f"the server had not closed it {TIMEOUT_GRACE:g} s after it (from the connection's opening, the "
        "end of its headers or its answer). Normal requests: `loadgen.py --total` at concurrency 4, "
        "once on the idle server, once while the slow connections are held.\n"
    )
    add(
        "| kind | connections | deadline | closed by server | median time to close | "
        "open past deadline | open at the end | what they got |"
    )
    add("|---|---|---|---|---|---|---|---|")
    for r in part["rows"]:
        open_past = (
            "n/a (no deadline)" if r["open_past_deadline"] is None else r["open_past_deadline"]
        )
        add(
            f"| {r['kind']} | {r['connections']} ({r['open_failed']} failed to open) | "
            f"{_s(r['deadline'], 0) if r['deadline'] else 'none'} | {r['closed']} | "
            f"{_s(r['median_close_s'])} | {open_past} | {r['still_open_at_end']} | "
            f"{_statuses(r['answers'])} |"
        )
    add("")
    add(
        "| normal requests | answered | statuses | connection errors | p50 | p99 | max | "
        "machine load average (1 min) |"
    )
    add("|---|---|---|---|---|---|---|---|")
    for label, run in (("idle server", part["idle"]), ("with slow connections", part["busy"])):
        add(
            f"| {label} | {run['completed']} | {_statuses(run['statuses'])} | {run['conn_errors']} | "
            f"{run['p50_ms']:.1f} ms | {run['p99_ms']:.1f} ms | {run['max_ms'] or float('nan'):.1f} ms | "
            f"{run['load_average']:.2f} |"
        )
    add(
        f"\np99 ratio {part['p99_ratio']:.2f}×; slow connections still open when the normal run "
        f"ended: {part['open_when_normal_run_ended']} of {sum(r['connections'] for r in part['rows'])}"
        f"; server alive after: {part['alive_after']}, "
        f"`/ping` {part['ping_after']}."
    )


def goals(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Issue 11's goals that these parts measure: (goal, measured, met)."""
    rows: list[tuple[str, str, bool | None]] = []
    hostile = results.get("hostile", {})
    if "rows" in hostile:
        n = len(hostile["rows"])
        rows.append(
            ("0 answers of 500 for client input", f"{hostile['count_500']} of {n} hostile cases answered 500; {hostile['count_5xx']} answered 5xx in all", hostile["count_500"] == 0)
        )  # fmt: skip
        rows.append(
            ("hostile input answered as expected (4xx JSON `{error}`, or the listed statuses)", f"{hostile['count_unexpected']} of {n} not", hostile["count_unexpected"] == 0)
        )  # fmt: skip
        rows.append(
            (f"no request beyond its timeout ({hostile['timeout']:g} s + {TIMEOUT_GRACE:g} s)", f"{hostile['count_beyond_timeout']} of {n} beyond or unanswered", hostile["count_beyond_timeout"] == 0)
        )  # fmt: skip
        rows.append(
            ("every request's work bounded: none keeps the server busy past the timeout (answer + work after it)", f"{hostile['count_work_outlived']} of {n}; longest {max((r['seconds'] + r['busy_after_s'] for r in hostile['rows']), default=0):.1f} s", hostile["count_work_outlived"] == 0)
        )  # fmt: skip
        rows.append(
            (f"no hostile request above 2× the body limit ({_mb(2 * hostile['max_body_bytes'])}) in extra RSS", f"{hostile['count_rss_over']} of {n} above; largest {_mb(max((r['extra_rss'] for r in hostile['rows']), default=0))}", hostile["count_rss_over"] == 0)
        )  # fmt: skip
        rows.append(
            ("health route answers right after every hostile request", f"/ping not 200 after {hostile['count_ping_failed']} of {n}", hostile["count_ping_failed"] == 0)
        )  # fmt: skip
    load = results.get("load", {})
    if "total" in load:
        rows.append(
            (f"{load['total']:,} requests at c={load['concurrency']}: 0 errors", f"{load['errors']} errors ({_statuses(load['statuses'])}, {load['conn_errors']} connection errors); p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms", load["errors"] == 0 and not load["timed_out"])
        )  # fmt: skip
        rows.append(
            ("RSS flat within 5% (workers, start/middle/end)", f"{_mb(load['rss_start'])} / {_mb(load['rss_middle'])} / {_mb(load['rss_end'])}: {load['rss_drift'] * 100:.1f}%", load["rss_drift"] <= 0.05)
        )  # fmt: skip
    backend = results.get("backend", {})
    if "phases" in backend:
        rows.append(
            ("backend outage: only 503/504 (no 500, no dropped connection)", f"others: {_statuses(backend['outage_other_statuses'])}", not backend["outage_other_statuses"])
        )  # fmt: skip
        rows.append(
            (f"backend outage: no request past the deadline ({backend['deadline']:g} s + {TIMEOUT_GRACE:g} s)", f"longest {backend['longest_s']:.2f} s, {backend['beyond_deadline']} beyond", backend["beyond_deadline"] == 0)
        )  # fmt: skip
        restart, cont = backend["first_200_after_restart_s"], backend["first_200_after_sigcont_s"]
        rows.append(
            ("first 200 within 1 s of the backend being back", f"{_s(restart)} after restart, {_s(cont)} after SIGCONT", restart is not None and cont is not None and restart <= 1 and cont <= 1)
        )  # fmt: skip
    usercode = results.get("usercode", {})
    if "rows" in usercode:
        unanswered = sum(r["normal_unanswered"] for r in usercode["rows"])
        worst = max((r["normal_max_s"] or 0 for r in usercode["rows"]), default=0)
        rows.append(
            ("misbehaving user code: other connections keep being answered (no dropped connection, none past the timeout)", f"{unanswered} normal requests unanswered or late; longest normal request {worst:.2f} s", unanswered == 0)
        )  # fmt: skip
        hurt = {
            r["kind"]: r["normal_statuses"]
            for r in usercode["rows"]
            if any(k != "200" for k in r["normal_statuses"])
        }
        recover = max((r["recover_s"] or 0 for r in usercode["rows"]), default=0)
        never = [r["kind"] for r in usercode["rows"] if r["recover_s"] is None]
        # Blocked calls hold their slots until they end (block_seconds, past the timeout): then, and
        # not before, normal requests may be 200 again; meanwhile a saturated pool answers 503 at once.
        overhang = usercode["block_seconds"] - REQUEST_TIMEOUT
        only_503 = all(set(s) <= {"200", "503"} for s in hurt.values())
        rows.append(
            ("misbehaving user code: normal requests answered 200, or 503 at once while blocked calls fill the work pool; 200 again within 1 s of the blocked work ending", f"not 200 during: {hurt or 'none'}; back to 200 at most {recover:.2f} s after the burst's answers (the blocked calls end {overhang:g} s after them)" + (f"; never within {RECOVERY_CAP:g} s after: {', '.join(never)}" if never else ""), only_503 and not never and recover <= overhang + 1.0)
        )  # fmt: skip
        fives = {
            r["kind"]: r["hostile_statuses"]
            for r in usercode["rows"]
            if any(k not in ("500", "503", "504") for k in r["hostile_statuses"])
            or r["hostile_not_json"]
        }
        died = [r["kind"] for r in usercode["rows"] if not r["alive_after"]]
        rows.append(
            ("user-code failures answered (JSON 500/503/504), worker survives", f"other answers: {fives or 'none'}; worker died after: {', '.join(died) or 'none'}", not fives and not died)
        )  # fmt: skip
    slow = results.get("slow", {})
    if "rows" in slow:
        rows.append(
            (f"normal p99 with {sum(r['connections'] for r in slow['rows'])} slow connections within 2× of idle", f"{slow['idle']['p99_ms']:.1f} ms idle, {slow['busy']['p99_ms']:.1f} ms with them: {slow['p99_ratio']:.2f}×", slow["p99_ratio"] <= 2 and slow["busy"]["conn_errors"] == 0)
        )  # fmt: skip
        if slow["settings_found"]:
            past = sum(r["open_past_deadline"] or 0 for r in slow["rows"])
            total = sum(r["connections"] for r in slow["rows"])
            rows.append(
                (
                    "no slow connection open past the configured deadline",
                    f"{past} of {total}",
                    past == 0,
                )
            )
        else:
            rows.append(
                (
                    "no slow connection open past the configured deadline",
                    "no deadline configured",
                    None,
                )
            )
    fuzz = results.get("fuzz", {})
    if "rows" in fuzz:
        crashed = {r["target"]: r["crashers"] for r in fuzz["rows"] if r["crashers"]}
        least = min(r["inputs"] for r in fuzz["rows"])
        rows.append(
            ("0 exceptions outside HTTPError from fuzzed inputs, every decoder", f"{least:,} inputs or more per decoder ({len(fuzz['rows'])} decoders): crashers {crashed or 'none'}", not crashed)
        )  # fmt: skip
        rows.append(
            ("≥ 10**6 fuzzed inputs per decoder", f"{least:,} in this run (the long run is `reliability/fuzz.py --count 1000000`)", least >= 10**6)
        )  # fmt: skip
    return rows


# -- the command ---------------------------------------------------------------------------------------


PARTS = ("hostile", "load", "faults", "slow", "fuzz")

FUZZ_COUNTS = {False: 20_000, True: 1_000}
"""Inputs per decoder that the campaign's fuzz part runs (full, quick). The issue's long run
(10**6 per decoder) is ``reliability/fuzz.py --count 1000000``, by itself: hours on two cores."""


def part_fuzz(model: Path, logs: Path, p: Plan) -> dict[str, Any]:
    """Every decoder fuzzed by ``reliability/fuzz.py`` (its Hypothesis engine, which runs wherever
    the suite does): inputs and exceptions outside the HTTPError family, per decoder."""
    count = p.fuzz_count or FUZZ_COUNTS[p.quick]
    done = subprocess.run(
        [PYTHON, str(ROOT / "reliability" / "fuzz.py"), "--count", str(count), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=600 + count // 50,  # about 1,000 inputs a second per decoder, with room to spare
        check=False,
        cwd=ROOT,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not rows:
        raise RuntimeError(f"reliability/fuzz.py answered nothing:\n{done.stderr[-3000:]}")
    return {"rows": sorted(rows, key=lambda r: r["target"]), "count": count}


def _render_fuzz(part: dict[str, Any], add: Callable[[str], None]) -> None:
    add(
        f"`reliability/fuzz.py --count {part['count']}`, its default engine (Hypothesis for the first "
        "500 inputs, then mutations of the seeds and the corpus: not coverage-guided; "
        "`--engine atheris` is): every built-in decoder and the TF Serving JSON parser, each input "
        "decoded as a request would be; a crasher is an exception outside the library's HTTPError "
        "family, kept in `tests/fuzz_corpus/`.\n"
    )
    add("| decoder | inputs | crashers | kinds |")
    add("|---|---|---|---|")
    for row in part["rows"]:
        kinds = ", ".join(row.get("kinds", [])) or "–"
        add(f"| {row['target']} | {row['inputs']:,} | {row['crashers']} | {_cell(kinds)} |")


def build_model(work: Path) -> Path:
    """The iris model, built by ``benchmarks/models.py`` in a child process (TensorFlow stays out of
    this one); returns the TF Serving base path ``<work>/iris``."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import models; "
        "print(models.build_iris(Path(sys.argv[2])))"
    )
    done = subprocess.run(
        [PYTHON, "-c", code, str(BENCHMARKS), str(work)],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the iris model failed:\n{done.stderr[-3000:]}")
    return work / "iris"


def run(parts: Sequence[str], p: Plan, work: Path) -> dict[str, Any]:
    """Run ``parts`` in order; a part that fails is recorded with its error and the rest go on."""
    results: dict[str, Any] = {}
    model = build_model(work)
    steps: list[tuple[str, Callable[[Path, Path, Plan], dict[str, Any]]]] = []
    if "hostile" in parts:
        steps.append(("hostile", part_hostile))
    if "load" in parts:
        steps.append(("load", part_load))
    if "faults" in parts:
        steps += [("backend", part_backend), ("usercode", part_usercode)]
    if "slow" in parts:
        steps.append(("slow", part_slow))
    if "fuzz" in parts:
        steps.append(("fuzz", part_fuzz))
    for name, step in steps:
        began = time.monotonic()
        print(f"[campaign] {name} ...", file=sys.stderr, flush=True)
        try:
            results[name] = step(model, work, p)
        except Exception as exc:  # a failed part is reported, the others still run
            results[name] = {
                "error": f"{type(exc).__name__}: {str(exc)[:2000]}",
                "traceback": traceback.format_exc(),
            }
        finally:
            PROCESSES.stop_all()
        results[name]["part_seconds"] = time.monotonic() - began
        print(
            f"[campaign] {name} done in {time.monotonic() - began:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller version of every part")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the results file")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument(
        "--cases",
        default="",
        help="hostile part: only the cases whose names contain one of these comma-separated texts",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir (server logs)")
    parser.add_argument(
        "--fuzz-count",
        type=int,
        default=None,
        help="inputs per decoder for the fuzz part (default 20,000; 1,000 with --quick; the "
        "issue's long run is 1000000)",
    )
    args = parser.parse_args(argv)
    parts = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    atexit.register(PROCESSES.stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(ROOT)
    words = argv if argv is not None else sys.argv[1:]
    command = shlex.join([str(python), "reliability/campaign.py", *words])
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tfio-reliability-"))
    try:
        cases = [name.strip() for name in args.cases.split(",") if name.strip()]
        results = run(parts, replace(plan(args.quick, cases), fuzz_count=args.fuzz_count), work)
    finally:
        PROCESSES.stop_all()
        if args.keep_logs:
            print(f"[campaign] logs kept in {work}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - began
    text = render(results, command, seconds, args.quick)
    args.output.write_text(text)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"[campaign] wrote {args.output} in {seconds:.0f} s", file=sys.stderr)
    for goal, measured, ok in goals(results):
        print(f"  {_met(ok).strip('*'):7} {goal}: {measured}", file=sys.stderr)
    return 1 if any("error" in part for part in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
