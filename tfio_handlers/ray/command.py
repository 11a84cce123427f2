"""``tfio-handlers serve --ray``: the same options as ``serve``, the app on Ray Serve.

:func:`serve_with_ray` runs the command (its options are defined in ``tfio_handlers/cli.py``,
whose parser must build without importing Ray): it checks the configuration as ``serve`` does
(before Ray starts), starts or joins Ray, runs :func:`~tfio_handlers.ray.deployments.app` behind
Serve's HTTP proxy on ``--host``/``--port`` and serves until SIGINT or SIGTERM (Ctrl-C while it
starts stops it too, with status 130).

A local Ray (no ``--ray-address``) starts with the small-machine defaults: no dashboard, an object
store of ``--ray-object-store-mb`` (256 MiB), and every replica claiming ``--ray-num-cpus`` (0.5).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import ray
from ray import serve

from .deployments import app, config_env

__all__ = [
    "APP_NAME",
    "DEFAULT_OBJECT_STORE_MB",
    "app_from_args",
    "init_ray",
    "serve_with_ray",
]

log = logging.getLogger(__name__)

APP_NAME = "tfio-handlers"
"""The Serve application's name."""
DEFAULT_OBJECT_STORE_MB = 256
"""A local Ray's object store (Ray's default is 30 % of memory). Serve's requests and answers
travel inline or in small objects; batch jobs with Ray Data want more."""


def app_from_args(args: argparse.Namespace, env: dict[str, str]) -> serve.Application:
    """The application the options describe; ``env`` is :func:`replica_env`'s."""
    actor_options = {"num_cpus": args.ray_num_cpus}
    split = args.model_replicas is not None
    return app(
        env=env,
        num_replicas=args.replicas,
        ray_actor_options=actor_options,
        split=split,
        model_num_replicas=args.model_replicas if split else None,
        model_ray_actor_options=actor_options,
    )


def replica_env(args: argparse.Namespace) -> dict[str, str]:
    """What the replicas read: this process's ``TFIO_HANDLERS_*``/``SAGEMAKER_*`` variables and the
    options, as ``serve`` sets them."""
    env = config_env(
        args.model_dir,
        models=",".join(args.model) if args.model else None,
        entry_point=args.entry_point,
        backend=args.backend,
        inherit=True,
    )
    env["TFIO_HANDLERS_LOG_LEVEL"] = str(getattr(args, "log_level", "info")).upper()
    return env


def init_ray(
    address: str | None,
    *,
    object_store_mb: int = DEFAULT_OBJECT_STORE_MB,
    dashboard: bool = False,
) -> None:
    """Join the cluster at ``address``, or start a local Ray with the small-machine defaults."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(
            object_store_memory=object_store_mb * 2**20,
            include_dashboard=dashboard,
            logging_level=logging.WARNING,
        )


def _check(env: dict[str, str], split: bool) -> str | None:
    """Why the configuration cannot serve, as ``serve`` checks it; ``None`` when it can."""
    from ..bootstrap import find_entry_point, install_requirements, load_config, models_from_env
    from ..errors import HTTPError

    environment = {**os.environ, **env}
    try:
        if split and environment.get("TFIO_HANDLERS_BACKEND", "embedded") != "embedded":
            return "--model-replicas (split mode) serves the embedded backend only"
        install_requirements(
            environment, find_entry_point(environment, models_from_env(environment))
        )
        load_config(environment)
    except HTTPError as exc:
        return exc.message
    return None


def serve_with_ray(args: argparse.Namespace, *, block: bool = True) -> int:
    """Run ``tfio-handlers serve --ray``; the exit status. ``block=False`` returns once the app
    is deployed and leaves it running (for tests and embedding)."""
    from ..bootstrap import configure_logging

    env = replica_env(args)
    configure_logging(env)
    local = args.ray_address in (None, "", "auto", "local")
    # On this machine's files: what waiting cannot fix stops the command before Ray starts. A
    # remote cluster's paths are its own (a replica that cannot start makes serve.run fail).
    problem = _check(env, args.model_replicas is not None) if local else None
    if problem is not None:
        text = " ".join(line.strip() for line in problem.splitlines() if line.strip())
        print(f"tfio-handlers serve: cannot start: {text}", file=sys.stderr, flush=True)
        return 2
    port = args.port or int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or 8080)
    started = time.perf_counter()
    interrupted = _defer_interrupts()
    try:
        init_ray(
            args.ray_address,
            object_store_mb=args.ray_object_store_mb,
            dashboard=args.ray_dashboard,
        )
        serve.start(http_options={"host": args.host, "port": port})
        serve.run(app_from_args(args, env), name=APP_NAME, route_prefix="/")
    except Exception as exc:
        print(f"tfio-handlers serve: cannot start on Ray: {exc}", file=sys.stderr, flush=True)
        _stop(args.ray_address)
        return 1
    finally:
        interrupted.restore()
    if interrupted.is_set():
        _stop(args.ray_address)
        return 130
    log.info(
        "Serving on Ray Serve at http://%s:%d (ready in %.1f s)",
        args.host,
        port,
        time.perf_counter() - started,
    )
    if not block:
        return 0
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop(args.ray_address)
    return 0


class _DeferredInterrupt(threading.Event):
    """Ctrl-C while Ray and the replicas start, noted rather than raised (see
    :func:`_defer_interrupts`)."""

    previous: Any = None

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _defer_interrupts() -> _DeferredInterrupt:
    """Hold SIGINT off while Ray starts: a KeyboardInterrupt inside ``ray.init`` or ``serve.run``
    left Ray half started, and tearing that down crashed the process (SIGSEGV) once in CI. The
    first Ctrl-C says the command will stop once Ray is up, and it then stops cleanly with status
    130; a second one quits at once."""
    interrupted = _DeferredInterrupt()
    if threading.current_thread() is not threading.main_thread():
        return interrupted  # signals are the main thread's; nothing to defer

    def note(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            os._exit(130)
        interrupted.set()
        print(
            "tfio-handlers serve: interrupted while starting; stopping once Ray is up "
            "(Ctrl-C again to quit at once)",
            file=sys.stderr,
            flush=True,
        )

    interrupted.previous = signal.signal(signal.SIGINT, note)
    return interrupted


def _stop(address: str | None) -> None:
    """Take the app down: the whole of Serve and Ray when this command started them (also when
    interrupted half-way: Ray may not be up yet)."""
    if not ray.is_initialized():
        return
    if address:
        serve.delete(APP_NAME)
    else:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
