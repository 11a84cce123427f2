"""``tfio-handlers``: serve a model, run a batch transform job, list the plugin table.

``tfio-handlers serve --model-dir export/iris`` serves a SavedModel on the embedded backend with
SageMaker's routes (``/ping``, ``/invocations``) and TF Serving's REST routes (``/v1/models/...``).
Options fall back to SageMaker's environment: ``SAGEMAKER_BIND_TO_PORT``, ``SAGEMAKER_PROGRAM``,
``SAGEMAKER_MODEL_SERVER_WORKERS``, ``SAGEMAKER_MODEL_SERVER_TIMEOUT``, ``SAGEMAKER_REQUIREMENTS``,
``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, ``SAGEMAKER_MAX_PAYLOAD_IN_MB``.

``tfio-handlers transform data.jsonl --model-dir export/iris --output out/`` runs SageMaker Batch
Transform's job on one machine, with the same model options as ``serve`` (``docs/transform.md``).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .transform import JobResult, TransformOptions

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfio-handlers", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="serve a model over HTTP (SageMaker + TF Serving routes)"
    )
    _add_model_options(serve)
    _add_model_management_options(serve)
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument(
        "--port", type=int, default=None, help="default: SAGEMAKER_BIND_TO_PORT, else 8080"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: SAGEMAKER_MODEL_SERVER_WORKERS, else 1)",
    )
    serve.add_argument("--server", choices=("uvicorn", "gunicorn"), default="uvicorn")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="the log's form: text, or JSON lines (default: TFIO_HANDLERS_LOG_FORMAT, else text)",
    )
    serve.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Prometheus metrics at GET /metrics (default: TFIO_HANDLERS_METRICS, else on)",
    )
    ray_serve = _add_ray_options(
        serve,
        "Ray Serve (pip install 'tfio-handlers[ray]')",
        "serve on Ray Serve (docs/ray.md)",
        claimer="replica",
        object_store_mb=256,
    )
    ray_serve.add_argument(
        "--replicas", type=int, default=None, help="replicas of the app (default 1)"
    )
    ray_serve.add_argument(
        "--model-replicas",
        type=int,
        default=None,
        metavar="N",
        help="split mode: serve the model in a deployment of its own with N replicas",
    )
    ray_serve.add_argument(
        "--ray-dashboard", action="store_true", help="start a local Ray with its dashboard"
    )

    commands.add_parser("plugins", help="print the codec resolution table")

    grpc_serve = commands.add_parser(
        "grpc-serve",
        help="serve TF Serving's gRPC API (PredictionService, ModelService) over a backend",
        description="Serve TF Serving's gRPC API (PredictionService, ModelService) over a backend.",
    )
    grpc_serve.add_argument(
        "--model-dir", help="a SavedModel, a TF Serving base path, or a folder of models"
    )
    grpc_serve.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a named model (repeatable)",
    )
    grpc_serve.add_argument(
        "--backend",
        default="embedded",
        help="embedded (default), grpc://host:port or http://host:port",
    )
    _add_model_management_options(grpc_serve)
    grpc_serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)",
    )
    grpc_serve.add_argument("--port", type=int, default=8500, help="default 8500, as TF Serving")
    grpc_serve.add_argument("--max-workers", type=int, default=None, help="server threads")
    grpc_serve.add_argument(
        "--grace",
        type=float,
        default=5.0,
        help="seconds calls in flight may finish on SIGTERM/SIGINT",
    )
    grpc_serve.add_argument("--log-level", default="info")

    _add_transform_parser(commands)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model, user code and backend options, shared by ``serve`` and ``transform``."""
    parser.add_argument("--model-dir", help="a SavedModel, or a TF Serving base path of versions")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a named model (repeatable)",
    )
    parser.add_argument("--entry-point", help="the user's inference.py")
    parser.add_argument(
        "--backend", default=None, help="embedded (default), grpc://host:port or http://host:port"
    )


def _add_model_management_options(parser: argparse.ArgumentParser) -> None:
    """TF Serving's model management flags, under its names (docs/models.md); embedded backend."""
    group = parser.add_argument_group("model management (TF Serving's flags; docs/models.md)")
    group.add_argument(
        "--model-config-file",
        metavar="PATH",
        help="TF Serving's ModelServerConfig text file: models, version policies, labels "
        "(instead of the model directory options)",
    )
    group.add_argument(
        "--file-system-poll-wait-seconds",
        type=float,
        default=1.0,
        metavar="N",
        help="seconds between looks for new and removed versions (default 1; 0: none)",
    )
    group.add_argument(
        "--model-config-file-poll-wait-seconds",
        type=float,
        default=0.0,
        metavar="N",
        help="seconds between re-reads of --model-config-file (default 0: read once)",
    )
    group.add_argument(
        "--allow-version-labels-for-unavailable-models",
        action="store_true",
        help="a new label may point at a version that is not available yet",
    )


def _model_management_env(args: argparse.Namespace) -> dict[str, str]:
    """The model management options as the environment variables a pipeline reads."""
    env = {
        "TFIO_HANDLERS_FILE_SYSTEM_POLL_WAIT_SECONDS": str(args.file_system_poll_wait_seconds),
        "TFIO_HANDLERS_MODEL_CONFIG_FILE_POLL_WAIT_SECONDS": str(
            args.model_config_file_poll_wait_seconds
        ),
    }
    if args.model_config_file:
        env["TFIO_HANDLERS_MODEL_CONFIG_FILE"] = os.path.abspath(args.model_config_file)
    if args.allow_version_labels_for_unavailable_models:
        env["TFIO_HANDLERS_ALLOW_VERSION_LABELS_FOR_UNAVAILABLE_MODELS"] = "true"
    return env


def _add_transform_parser(commands: Any) -> None:
    """``transform``: SageMaker Batch Transform's options under its names (docs/transform.md)."""
    transform = commands.add_parser(
        "transform",
        help="run a batch transform job over files (SageMaker Batch Transform on one machine)",
        description=(
            "Send every record of the input files through the model, as SageMaker Batch Transform "
            "does, and write <input name>.out (and <input name>.err.jsonl for failed records) to "
            "--output. A rerun skips inputs whose .out is complete. See docs/transform.md."
        ),
    )
    transform.add_argument("inputs", nargs="+", metavar="INPUT", help="a file or a directory")
    transform.add_argument("--output", "-o", required=True, help="the output directory")
    _add_model_options(transform)
    transform.add_argument(
        "--content-type",
        help="ContentType of the records (default: by extension .csv .jsonl .json .npy, "
        "else application/json)",
    )
    transform.add_argument(
        "--accept",
        help="Accept (default: the content type for CSV and JSON lines, else "
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT)",
    )
    transform.add_argument(
        "--split-type", choices=("Line", "RecordIO", "None"), default="Line", help="default Line"
    )
    transform.add_argument(
        "--batch-strategy",
        choices=("SingleRecord", "MultiRecord"),
        default="MultiRecord",
        help="default MultiRecord",
    )
    transform.add_argument(
        "--max-payload-mb", type=float, default=6, help="MaxPayloadInMB of a body (default 6)"
    )
    transform.add_argument(
        "--max-records",
        type=int,
        default=1000,
        help="records a body at most (default 1000; 0: any)",
    )
    transform.add_argument(
        "--assemble-with", choices=("Line", "None"), default="Line", help="default Line"
    )
    transform.add_argument(
        "--join-source", choices=("Input", "None"), default="None", help="default None"
    )
    transform.add_argument("--input-filter", help="JSONPath of the record to send (default $)")
    transform.add_argument("--output-filter", help="JSONPath of the output to keep (default $)")
    transform.add_argument(
        "--max-errors",
        type=int,
        default=0,
        help="failed records allowed before the job stops with status 1 (default 0; -1: any)",
    )
    transform.add_argument(
        "--concurrency", type=int, default=1, help="bodies in flight (MaxConcurrentTransforms)"
    )
    transform.add_argument(
        "--invocations-max-retries",
        type=int,
        default=3,
        help="times a body answered 503 (busy, unavailable) is sent again after its Retry-After "
        "(InvocationsMaxRetries; default 3)",
    )
    transform.add_argument(
        "--custom-attributes",
        help="X-Amzn-SageMaker-Custom-Attributes of every body (e.g. tfs-signature=predict)",
    )
    transform.add_argument(
        "--progress",
        choices=("auto", "bar", "log", "off"),
        default="auto",
        help="auto: a bar on a terminal with tqdm installed, else a log line every 10 s",
    )
    transform.add_argument("--log-level", default="info")
    on_ray = _add_ray_options(
        transform,
        "Ray Data (pip install 'tfio-handlers[ray]')",
        "run the job on Ray Data: bodies answered by a pool of actors (docs/ray.md)",
        claimer="actor",
        object_store_mb=512,
    )
    on_ray.add_argument(
        "--ray-actors",
        type=int,
        default=2,
        metavar="N",
        help="actors answering bodies, each with its own pipeline and model (default 2)",
    )


def _add_ray_options(
    parser: argparse.ArgumentParser,
    title: str,
    ray_help: str,
    *,
    claimer: str,
    object_store_mb: int,
) -> Any:
    """The Ray options ``serve`` and ``transform`` share, in a group of their own (defined here:
    building the parser must not import Ray); the group, for the command's own Ray options."""
    group = parser.add_argument_group(title)
    group.add_argument("--ray", action="store_true", help=ray_help)
    group.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="join a running Ray cluster ('auto', or ray://host:10001); default: start a local Ray",
    )
    group.add_argument(
        "--ray-num-cpus",
        type=float,
        default=0.5,
        metavar="CPUS",
        help=f"CPUs each {claimer} claims from Ray's scheduler (default 0.5)",
    )
    group.add_argument(
        "--ray-object-store-mb",
        type=int,
        default=object_store_mb,
        metavar="MB",
        help=f"a local Ray's object store (default {object_store_mb})",
    )
    return group


def _model_env(args: argparse.Namespace) -> dict[str, str]:
    """``--model NAME=PATH`` and ``--model-dir`` as the environment variables a pipeline reads."""
    env: dict[str, str] = {}
    if args.model:
        env["TFIO_HANDLERS_MODELS"] = ",".join(args.model)
    if args.model_dir:
        env["TFIO_HANDLERS_MODEL_DIR"] = os.path.abspath(args.model_dir)
    return env


def _serve(args: argparse.Namespace) -> int:
    if args.ray:
        try:
            from .ray import serve_with_ray
        except ImportError as exc:
            return _cannot_start(str(exc))
        return serve_with_ray(args)
    from .bootstrap import configure_logging, find_entry_point, install_requirements, load_config
    from .errors import HTTPError

    env = os.environ
    env.update(_model_env(args))  # worker processes read them
    env.update(_model_management_env(args))
    if args.entry_point:
        env["TFIO_HANDLERS_ENTRY_POINT"] = os.path.abspath(args.entry_point)
    if args.backend:
        env["TFIO_HANDLERS_BACKEND"] = args.backend
    try:
        port = _count_of("--port", args.port, env, "SAGEMAKER_BIND_TO_PORT", 8080, 0, 65535)
        workers = _count_of(
            "--workers", args.workers, env, "SAGEMAKER_MODEL_SERVER_WORKERS", 1, 1, 1024
        )
    except ValueError as exc:
        return _cannot_start(str(exc))
    timeout = int(float(env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT") or 60))
    # A worker silent for longer is hung: killed and replaced. A margin over the request timeout,
    # so that the app's 504 answers before a worker busy with a request is killed (gunicorn's sync
    # workers are silent during a request; uvicorn's event loops never should be).
    silent_seconds = timeout + 5
    models = env.get("TFIO_HANDLERS_MODELS") or env.get("TFIO_HANDLERS_MODEL_DIR")
    # Workers are new processes: they read the level from the environment.
    env["TFIO_HANDLERS_LOG_LEVEL"] = args.log_level.upper()
    if args.log_format:
        env["TFIO_HANDLERS_LOG_FORMAT"] = args.log_format
    if args.metrics is not None:
        env["TFIO_HANDLERS_METRICS"] = "1" if args.metrics else "0"
    try:
        configure_logging(env)
    except HTTPError as exc:
        return _cannot_start(exc.message)
    # Everything that waiting cannot fix is checked here, once, before any worker starts: a worker
    # that fails on it would only crash-loop or answer 503 for ever.
    try:
        install_requirements(env, find_entry_point(env, models))
        config = load_config(env)
        _check_server_installed(args.server)
    except HTTPError as exc:
        return _cannot_start(exc.message)
    from .observability.metrics import MULTIPROC_ENV

    metrics_folder: str | None = None  # made for this run, removed at its end
    if config.settings.metrics and (args.server == "gunicorn" or workers > 1):
        # Every worker counts: prometheus-client's multi-process mode, in a folder of this run's.
        given = env.get(MULTIPROC_ENV)
        if given is None:
            metrics_folder = env[MULTIPROC_ENV] = _metrics_folder_for_this_run()
        elif not os.path.isdir(given):
            return _cannot_start(f"{MULTIPROC_ENV}={given!r} is not a folder")
    if args.server == "gunicorn":
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "tfio_handlers.observability.apps:wsgi_app_from_env()",
            "--bind",
            f"{args.host}:{port}",
            "--workers",
            str(workers),
            "--timeout",
            str(silent_seconds),
            "--graceful-timeout",
            str(timeout),
            # Header and body deadlines (TFIO_HANDLERS_HEADER_TIMEOUT, _BODY_TIMEOUT).
            "--worker-class",
            "tfio_handlers.adapters.gunicorn_worker.DeadlineWorker",
            "--log-level",
            args.log_level,
        ]
        logging.shutdown()  # the log is written in batches: the lines still waiting go out first
        os.execv(sys.executable, argv)
    import uvicorn

    options: dict[str, Any] = {
        "host": args.host,
        "port": port,
        "log_level": args.log_level,
        "access_log": False,  # the middleware writes the access line, with the codec used
        "timeout_graceful_shutdown": timeout,
        # Connection deadlines uvicorn lacks (headers, a connection cap), and its keep-alive idle
        # timeout: TFIO_HANDLERS_HEADER_TIMEOUT, _MAX_CONNECTIONS, _KEEP_ALIVE_TIMEOUT. The body
        # deadline is the app's.
        "http": "tfio_handlers.adapters.uvicorn_protocol:DeadlineProtocol",
        "timeout_keep_alive": config.settings.keep_alive_timeout,
    }
    if workers == 1:
        # One worker is this process: it serves the configuration just checked (the user's code
        # is not imported twice) and loads the model in the background.
        from .adapters.asgi import ASGIApp
        from .bootstrap import pipeline_from_config
        from .observability.apps import observe_asgi

        app = ASGIApp(functools.partial(pipeline_from_config, config), registry=config.registry)
        # SIGHUP (a terminal hanging up) stops gracefully, as SIGTERM: uvicorn handles only SIGINT
        # and SIGTERM, and SIGHUP's default would drop the requests in flight.
        signal.signal(signal.SIGHUP, lambda *_: signal.raise_signal(signal.SIGTERM))
        uvicorn.run(observe_asgi(app, config.settings), **options)
        return 0
    from .adapters.uvicorn_workers import BALANCES_CONNECTIONS, WorkerSupervisor

    app_factory = "tfio_handlers.observability.apps:asgi_app_from_env"
    try:
        if not BALANCES_CONNECTIONS:
            uvicorn.run(app_factory, factory=True, workers=workers, **options)
            return 0
        # A listening socket per worker (SO_REUSEPORT), so the kernel spreads connections over them.
        return WorkerSupervisor(app_factory, workers, options, silent_seconds=silent_seconds).run()
    except OSError as exc:
        return _cannot_start(f"cannot listen on {args.host}:{port}: {exc}")
    finally:
        if metrics_folder is not None:
            import shutil

            shutil.rmtree(metrics_folder, ignore_errors=True)


_RUN_FOLDER_PREFIX = "tfio-handlers-metrics-"
_RUN_FOLDER = re.compile(re.escape(_RUN_FOLDER_PREFIX) + r"(\d+)-")


def _metrics_folder_for_this_run() -> str:
    """A new temporary folder for the metrics of this run's workers, named with this process's id,
    after removing the folders of earlier runs whose process is gone.

    The uvicorn paths remove their folder when they stop; ``--server gunicorn`` cannot (this
    process becomes gunicorn's arbiter by ``os.execv``, and gunicorn has no hook that runs on every
    way out), and a run killed with SIGKILL cannot either: the next run cleans up after them. The
    arbiter keeps this process's id, so a folder whose process is alive is never touched.
    """
    import shutil
    import tempfile

    temp = tempfile.gettempdir()
    for name in os.listdir(temp):
        match = _RUN_FOLDER.match(name)
        path = os.path.join(temp, name)
        if match is None or not os.path.isdir(path) or os.stat(path).st_uid != os.geteuid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (PermissionError, OverflowError):
            pass  # alive, another user's; or not a process id
    return tempfile.mkdtemp(prefix=f"{_RUN_FOLDER_PREFIX}{os.getpid()}-")


def _transform(args: argparse.Namespace) -> int:
    """Run the batch transform job; 0 when it finished, 1 when it stopped on errors, 2 when it
    could not start."""

    from .bootstrap import (
        configure_logging,
        find_entry_point,
        install_requirements,
        load_config,
        pipeline_from_config,
    )
    from .config import Settings
    from .errors import HTTPError
    from .transform import TransformJob, TransformOptions, find_inputs, make_progress

    env = dict(os.environ)
    env.update(_model_env(args))
    if args.entry_point:
        env["TFIO_HANDLERS_ENTRY_POINT"] = os.path.abspath(args.entry_point)
    if args.backend:
        env["TFIO_HANDLERS_BACKEND"] = args.backend
    env["TFIO_HANDLERS_LOG_LEVEL"] = args.log_level.upper()
    configure_logging(env)
    options = TransformOptions(
        content_type=args.content_type,
        accept=args.accept,
        split_type=args.split_type,
        batch_strategy=args.batch_strategy,
        max_payload_mb=args.max_payload_mb,
        max_records=args.max_records,
        assemble_with=args.assemble_with,
        join_source=args.join_source,
        input_filter=args.input_filter,
        output_filter=args.output_filter,
        max_errors=args.max_errors,
        concurrency=args.concurrency,
        invocations_max_retries=args.invocations_max_retries,
        custom_attributes=args.custom_attributes,
    )
    inputs = [Path(p) for p in args.inputs]
    output = Path(args.output)
    try:
        options.check()
        files = [path for path, _ in find_inputs(inputs, output)]
        options.check_files(files, Settings.from_env(env).default_accept)
        models = env.get("TFIO_HANDLERS_MODELS") or env.get("TFIO_HANDLERS_MODEL_DIR")
        install_requirements(env, find_entry_point(env, models))
        config = load_config(env)
        if args.ray:  # the actors build their pipelines; checked here, as serve --ray does
            return _transform_on_ray(args, options, inputs, output)
        pipeline = pipeline_from_config(config)
    except HTTPError as exc:
        return _cannot_start(exc.message, "transform")
    job = TransformJob(pipeline, options, progress=make_progress(args.progress))
    try:
        result = job.run(inputs, output)
    finally:
        pipeline.backend.close()
    return _transform_summary(result)


def _transform_on_ray(
    args: argparse.Namespace, options: TransformOptions, inputs: list[Path], output: Path
) -> int:
    """``transform --ray``: the job's batches answered by Ray Data actors (docs/ray.md)."""
    from .transform import make_progress

    try:
        from .ray.transform import ray_transform_job
    except ImportError as exc:
        return _cannot_start(str(exc), "transform")
    import ray

    job = ray_transform_job(args, options, make_progress(args.progress))
    try:
        result = job.run(inputs, output)
    except ray.exceptions.RayError as exc:
        print(f"tfio-handlers transform: failed on Ray: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        job.close()
    return _transform_summary(result)


def _transform_summary(result: JobResult) -> int:
    """Print the job's totals on stderr; the exit status (1 when it stopped on errors)."""
    skipped = sum(1 for f in result.files if f.skipped)
    rate = result.records / result.seconds if result.seconds else 0.0
    print(
        f"tfio-handlers transform: {len(result.files)} files ({skipped} skipped as complete), "
        f"{result.records} records, {result.errors} errors in {result.seconds:.1f} s "
        f"({rate:.0f} records/s)" + ("; stopped: too many errors" if result.stopped else ""),
        file=sys.stderr,
        flush=True,
    )
    return 1 if result.stopped else 0


def _check_server_installed(server: str) -> None:
    """Refuse a server that is not installed, saying which extra brings it."""
    from .errors import InternalError

    if importlib.util.find_spec(server) is None:
        raise InternalError(
            f"{server} is not installed; install it with: pip install 'tfio-handlers[server]'"
        )


def _count_of(
    flag: str,
    given: int | None,
    env: Mapping[str, str],
    variable: str,
    default: int,
    low: int,
    high: int,
) -> int:
    """``given`` (the flag's value), else the variable's, else ``default``; ``ValueError`` naming
    the flag or variable when it is not a whole number from ``low`` to ``high``."""
    if given is not None:
        value, source = given, flag
    else:
        text = (env.get(variable) or "").strip()
        if not text:
            return default
        source = variable
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{variable}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{source} {value} is out of range: {low} to {high}")
    return value


def _cannot_start(message: str, command: str = "serve") -> int:
    """Say on stderr, in one paragraph, why the command cannot start; the exit status (2)."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"tfio-handlers {command}: cannot start: {text}", file=sys.stderr, flush=True)
    return 2


def _plugins() -> int:
    """Print the codec table, then the routes table (no blank line between: one table a block)."""
    from .config import Settings
    from .registry import Registry

    registry = Registry.from_settings(Settings.from_env())
    rows = registry.table()
    _print_table(
        ("media type", "direction", "plugin", "priority", "order", "alias of"),
        [
            (r.media_type, r.direction, r.plugin, r.kind, str(r.order), r.alias_of or "")
            for r in rows
        ],
    )
    _print_table(
        ("method", "path", "plugin", "priority", "order", "work"),
        [
            (r.method, r.path, r.plugin, r.kind, str(r.order), r.work)
            for r in registry.route_table()
        ],
    )
    return 0


def _print_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> None:
    lines = [header, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _grpc_serve(args: argparse.Namespace) -> int:
    """Build the backend, serve TF Serving's gRPC API until SIGTERM or SIGINT, then stop gracefully."""
    import threading

    from .adapters.grpc import serve
    from .backends.grpc import MODEL_SERVICE, PREDICTION_SERVICE
    from .bootstrap import ModelManagement, apply_process_limits, make_backend, models_from_env
    from .config import Settings
    from .errors import HTTPError

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        settings = Settings.from_env()
        apply_process_limits(settings)
        management = ModelManagement.from_env(_model_management_env(args))
        models = None if management.model_config_file else models_from_env(_model_env(args))
        backend = make_backend(args.backend, models, settings, management=management)
    except HTTPError as exc:
        print(f"tfio-handlers grpc-serve: cannot start: {exc.message}", file=sys.stderr)
        return 2
    try:
        server, port = serve(backend, args.host, args.port, max_workers=args.max_workers)
    except OSError as exc:
        backend.close()
        print(f"tfio-handlers grpc-serve: cannot listen: {exc}", file=sys.stderr)
        return 1
    logging.getLogger(__name__).info(
        "Serving %s and %s on %s:%d", PREDICTION_SERVICE, MODEL_SERVICE, args.host, port
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop(args.grace).wait()
        backend.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "grpc-serve":
        return _grpc_serve(args)
    if args.command == "transform":
        return _transform(args)
    return _plugins()


if __name__ == "__main__":
    raise SystemExit(main())
