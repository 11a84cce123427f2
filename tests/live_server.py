"""Real server processes for the HTTP tests: start, wait until ready, talk over HTTP, stop.

A :class:`LiveServer` is one command (``python -m tfio_handlers serve ...``, ``python -m uvicorn ...``,
``python -m gunicorn ...``) run as a subprocess on ``127.0.0.1`` and a free port, its output (stdout and
stderr together) written to a log file the tests read (access lines, tracebacks). Readiness is
``GET /ping`` answering 200; every answer seen before that is recorded, so a test can show that the
server said 503 while its model loaded. Requests use a fresh connection each (``http.client``), so
nothing is pooled between a test and the server's shutdown.

Several servers start in parallel with :func:`start_all` (each imports TensorFlow: seconds of CPU).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

_INHERITED_PREFIXES = ("SAGEMAKER_", "TFIO_HANDLERS_")


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without SageMaker/tfio settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
    env.update(
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    env.update(extra or {})
    return env


@dataclass
class Answer:
    """One HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class LiveServer:
    """A server subprocess; ``port`` is chosen by the caller and baked into ``argv``/``env``."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    port: int
    log_path: Path
    cwd: Path = ROOT
    process: subprocess.Popen[bytes] | None = None
    pings: list[int | str] = field(default_factory=list)
    """What ``/ping`` answered while the server started: ``"refused"`` or an HTTP status."""
    while_loading: Callable[[LiveServer], Any] | None = None
    """Called once with the server when ``/ping`` first answers 503 (see :meth:`wait_ready`)."""
    loading_answers: list[Answer] = field(default_factory=list)
    """Room for what ``while_loading`` saw."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(self.argv),
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 120.0) -> LiveServer:
        """Poll ``/ping`` until 200; fail with the log's tail if the process dies or time runs out.

        On the first 503, ``while_loading(self)`` runs (if set): a chance to send other requests
        while the model is still loading.
        """
        assert self.process is not None
        deadline = time.monotonic() + timeout
        hook = self.while_loading
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                status = self.request("GET", "/ping", timeout=5).status
            except OSError:
                status = None
            if status is None:
                if not self.pings or self.pings[-1] != "refused":
                    self.pings.append("refused")
            else:
                self.pings.append(status)
                if status == 200:
                    return self
                if status == 503 and hook is not None:
                    hook, _ = None, hook(self)
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.log()[-4000:]}")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 60.0,
    ) -> Answer:
        """One request on a new connection."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = body.encode() if isinstance(body, str) else body
            connection.request(method, path, body=payload, headers=dict(headers or {}))
            response = connection.getresponse()
            data = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            connection.close()

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: bytes | str, **kwargs: Any) -> Answer:
        return self.request("POST", path, body, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 10.0, count: int = 1) -> str:
        """The log, once it holds ``text`` ``count`` times (output comes from other processes)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if log.count(text) >= count or time.monotonic() > deadline:
                return log
            time.sleep(0.05)

    def wait_log_match(self, pattern: str, timeout: float = 10.0) -> re.Match[str] | None:
        """The first match of the regular expression ``pattern`` in the log, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL of the whole process group if it does not end in ``timeout``."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # workers a killed supervisor left behind
        return process.returncode


def start_all(servers: Iterable[LiveServer], timeout: float = 180.0) -> list[LiveServer]:
    """Start every server at once, then wait for each (they import TensorFlow side by side)."""
    started = [server.start() for server in servers]
    try:
        for server in started:
            server.wait_ready(timeout)
    except BaseException:
        for server in started:
            server.stop(5)
        raise
    return started


def serve_cli(
    name: str,
    tmp: Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    port_from_env: bool = False,
) -> LiveServer:
    """``python -m tfio_handlers serve ARGS --host 127.0.0.1 --port P`` (or ``SAGEMAKER_BIND_TO_PORT``)."""
    port = free_port()
    argv = [PYTHON, "-m", "tfio_handlers", "serve", *args, "--host", "127.0.0.1"]
    extra = dict(env or {})
    if port_from_env:
        extra["SAGEMAKER_BIND_TO_PORT"] = str(port)
    else:
        argv += ["--port", str(port)]
    return LiveServer(name, argv, clean_env(extra), port, tmp / f"{name}.log")


def serve_uvicorn(name: str, tmp: Path, env: Mapping[str, str]) -> LiveServer:
    """``python -m uvicorn tfio_handlers.adapters.asgi:app_from_env --factory`` configured by ``env``."""
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "uvicorn",
        "tfio_handlers.adapters.asgi:app_from_env",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    return LiveServer(name, argv, clean_env(env), port, tmp / f"{name}.log")


def serve_gunicorn(name: str, tmp: Path, env: Mapping[str, str], workers: int = 1) -> LiveServer:
    """``python -m gunicorn 'tfio_handlers.adapters.wsgi:app_from_env()'`` configured by ``env``."""
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "gunicorn",
        "tfio_handlers.adapters.wsgi:app_from_env()",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--graceful-timeout",
        "30",
    ]
    return LiveServer(name, argv, clean_env(env), port, tmp / f"{name}.log")


def raw_exchange(port: int, data: bytes, *, timeout: float = 10.0) -> tuple[bytes, float]:
    """Send raw bytes, read until the head and the body it announces arrive; (answer, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            head, sep, rest = received.partition(b"\r\n\r\n")
            if sep:
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value.strip())
                if len(rest) >= length:
                    return received, time.monotonic() - started
            chunk = sock.recv(65536)
            if not chunk:
                return received, time.monotonic() - started
            received += chunk


def build_tiny_wheel(
    directory: Path, name: str = "tfio_tiny_requirement", version: str = "0.1"
) -> Path:
    """A minimal pure-Python wheel, for ``SAGEMAKER_REQUIREMENTS`` tests that must not use a network.

    The package's ``__init__`` holds ``VERSION`` and ``MARKER``; pip installs a wheel file without
    building anything or fetching build tools.
    """
    import base64
    import hashlib
    import zipfile

    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\nMARKER = "{name} is installed"\n',
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tfio-handlers-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel
