"""The Serve deployments and the applications built from them.

:class:`Ingress` serves the project's ASGI app (:class:`~tfio_handlers.adapters.asgi.ASGIApp`), one
pipeline per replica. The pipeline is built in the replica's constructor, so a replica is ready (and
Serve sends it traffic) only once its model has loaded; its ``check_health`` is the pipeline's
``/ping``. Besides HTTP through Serve's proxy, the deployment answers ``handle.request.remote(method,
path, body, headers)`` with ``(status, headers, body)``, the same ASGI app run in process: Python
callers (and tests with the proxy off) get exactly the bytes an HTTP client would.

:class:`ModelDeployment` holds the embedded backend (and the project's dynamic batching when
``SAGEMAKER_TFS_ENABLE_BATCHING`` is set) and answers TF Serving's calls on arrays and messages. In
split mode the ingress replicas decode and encode, and call it through a
:class:`~tfio_handlers.ray.backend.RayBackend`: decoding and the model scale separately.

Configuration is the environment the rest of the library reads (``TFIO_HANDLERS_MODEL_DIR``,
``TFIO_HANDLERS_MODELS``, ``TFIO_HANDLERS_ENTRY_POINT``, ``TFIO_HANDLERS_BACKEND``, ``SAGEMAKER_*``):
:func:`app` writes its options into a dict passed to every replica, laid over the replica's own
environment.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from ..adapters.asgi import ASGIApp
from ..backends.base import Backend
from ..errors import BadRequest, HTTPError
from ..pipeline import Pipeline
from ..protocol.arrays import PredictArrays, Prediction
from ..protos import (
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    RegressionRequest,
    RegressionResponse,
)
from .backend import RayBackend

__all__ = [
    "DEFAULT_ACTOR_OPTIONS",
    "INGRESS_NAME",
    "MODEL_NAME",
    "Ingress",
    "ModelDeployment",
    "app",
    "build_app",
    "config_env",
]

INGRESS_NAME = "TfioHandlers"
"""The ingress deployment's name."""
MODEL_NAME = "TfioModel"
"""The model deployment's name (split mode)."""

DEFAULT_ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0.5}
"""Each replica's resources unless ``ray_actor_options`` says otherwise: half a CPU, so two replicas
(or an ingress and a model replica) fit one core. Ray's default of one CPU per actor leaves a
two-core machine with no room for a second replica, and a deployment that cannot place its replicas
waits for ever without an error. This is a scheduling claim only: TensorFlow still uses the
threads it wants."""

MODEL_MAX_ONGOING_REQUESTS = 32
"""Requests one model replica takes at once (Serve's default is 5): enough for dynamic batching to
find requests to merge."""

ENV_PREFIXES = ("TFIO_HANDLERS_", "SAGEMAKER_")
"""Variables :func:`config_env` copies from the caller's environment."""

ResponseTuple = tuple[int, list[tuple[str, str]], bytes]


def config_env(
    model_dir: str | os.PathLike[str] | None = None,
    *,
    models: Mapping[str, str] | str | None = None,
    entry_point: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    env: Mapping[str, str] | None = None,
    inherit: bool = False,
) -> dict[str, str]:
    """The environment replicas read: the options as ``TFIO_HANDLERS_*`` variables over ``env``.

    ``models`` is ``{name: path}`` or ``"name=path,name=path"``. Paths are made absolute here: they
    must exist at the same place on the nodes that run the replicas. ``inherit`` first copies this
    process's ``TFIO_HANDLERS_*`` and ``SAGEMAKER_*`` variables (what ``tfio-handlers serve`` reads).
    """
    result: dict[str, str] = {}
    if inherit:
        result.update({k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)})
    result.update(env or {})
    if models:
        if isinstance(models, str):
            items = [item.partition("=") for item in models.split(",") if item.strip()]
            pairs = [(name.strip(), path.strip()) for name, _, path in items]
        else:
            pairs = list(models.items())
        result["TFIO_HANDLERS_MODELS"] = ",".join(
            f"{name}={os.path.abspath(path) if path else path}" for name, path in pairs
        )
        result.pop("TFIO_HANDLERS_MODEL_DIR", None)
    if model_dir:
        result["TFIO_HANDLERS_MODEL_DIR"] = os.path.abspath(model_dir)
    if entry_point:
        result["TFIO_HANDLERS_ENTRY_POINT"] = os.path.abspath(entry_point)
    if backend:
        result["TFIO_HANDLERS_BACKEND"] = backend
    return result


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, **env}


def _front_pipeline(env: Mapping[str, str], model: DeploymentHandle[Any]) -> Pipeline:
    """The ingress's pipeline in split mode: the user's code and codecs here, the model behind
    ``model``. The model files are not read here (the model replicas hold them)."""
    from ..bootstrap import apply_process_limits, find_entry_point, models_from_env
    from ..config import Settings
    from ..registry import Registry
    from ..usercode import load_user_code

    settings = Settings.from_env(env)
    apply_process_limits(settings)  # the ingress reads the request bodies into tensors
    registry = Registry.from_settings(settings)
    registry.check()
    entry_point = find_entry_point(env, models_from_env(env))
    user_code = load_user_code(entry_point, is_text=registry.is_text) if entry_point else None
    backend = RayBackend(
        model, timeout=settings.request_timeout, default_model=settings.default_model_name
    )
    backend.wait_until_ready(model_name=settings.default_model_name)
    return Pipeline(backend, settings=settings, registry=registry, user_code=user_code)


def replica_pipeline(
    env: Mapping[str, str], model: DeploymentHandle[Any] | None = None
) -> Pipeline:
    """A replica's (or a Ray Data actor's) pipeline from its whole environment; with ``model``,
    the split mode's front, calling the model deployment."""
    from ..bootstrap import configure_logging, load_config, pipeline_from_config

    configure_logging(env)
    if model is not None:
        return _front_pipeline(env, model)
    return pipeline_from_config(load_config(env))


class _ReplicaApp:
    """The ASGI app Serve runs: this replica's :class:`ASGIApp`, set by :class:`Ingress`'s
    constructor. Each replica is a process of its own, so one slot per process is one per replica;
    it also works whether Serve builds the app before or after calling the constructor."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = _ReplicaApp.app
        if app is None:  # pragma: no cover - Serve routes to a replica only after its constructor
            raise RuntimeError("tfio-handlers: the replica's pipeline is not built")
        await app(scope, receive, send)


def _replica_app() -> _ReplicaApp:
    return _ReplicaApp()


class Ingress:
    """One replica of the ASGI app (see the module docstring); ``model`` is the model deployment's
    handle in split mode, else ``None`` (the pipeline's own backend, from ``env``)."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self, env: Mapping[str, str], model: DeploymentHandle[Any] | None = None
    ) -> None:
        environment = _environment(env)
        # Off the event loop: a model server that is still starting is waited for in there.
        self.pipeline = await asyncio.to_thread(replica_pipeline, environment, model)
        self.asgi = ASGIApp(self.pipeline)
        _ReplicaApp.app = self.asgi

    async def check_health(self) -> None:
        """Serve's health check: the pipeline's ``/ping`` (the default model answers AVAILABLE)."""
        response = await asyncio.to_thread(self.pipeline.ping)
        if response.status != 200:
            raise RuntimeError(response.body.decode("utf-8", "replace"))

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> ResponseTuple:
        """One HTTP request through this replica's ASGI app, without the proxy: ``(status, headers,
        body)``. ``path`` may carry a query string."""
        return await call_asgi(self.asgi, method, path, body, headers)


async def call_asgi(
    asgi: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> ResponseTuple:
    """Run one request through an ASGI app in process; ``(status, headers, body)``."""
    raw_path, _, query = path.partition("?")
    from urllib.parse import unquote

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "root_path": "",
        "query_string": query.encode("latin-1"),
        "headers": [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ],
        "client": None,
        "server": None,
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client never disconnects
        sent = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    status = 500
    out_headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            out_headers.extend(
                (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", ())
            )
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await asgi(scope, receive, send)
    return status, out_headers, b"".join(chunks)


class ModelDeployment:
    """The model in split mode: the embedded backend for the models ``env`` names, with dynamic
    batching when ``SAGEMAKER_TFS_ENABLE_BATCHING`` is set. Every method raises the library's
    :class:`~tfio_handlers.errors.HTTPError`; :class:`RayBackend` raises it again on the other side."""

    def __init__(self, env: Mapping[str, str]) -> None:
        from ..backends.batching import from_env as with_batching
        from ..bootstrap import (
            apply_process_limits,
            configure_logging,
            labels_from_env,
            make_backend,
            models_from_env,
        )
        from ..config import Settings

        environment = _environment(env)
        configure_logging(environment)
        kind = environment.get("TFIO_HANDLERS_BACKEND", "embedded")
        if kind != "embedded":
            raise BadRequest(f"Split mode serves the embedded backend only, not {kind!r}")
        settings = Settings.from_env(environment)
        apply_process_limits(settings)
        inner = make_backend(
            "embedded",
            models_from_env(environment),
            settings,
            labels=labels_from_env(environment),
        )
        self.backend: Backend = with_batching(inner, environment)
        self._default = settings.default_model_name or self.backend.default_model
        self.backend.signatures(self._default)  # loaded and answering before the replica is ready

    def default_model(self) -> str | None:
        return self._default

    async def check_health(self) -> None:
        try:
            await asyncio.to_thread(self.backend.signatures, self._default)
        except HTTPError as exc:
            raise RuntimeError(exc.message) from None

    async def predict_arrays(self, request: PredictArrays) -> Prediction:
        return await self.backend.apredict_arrays(request)

    async def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        return await self.backend.aclassify(request)

    async def regress(self, request: RegressionRequest) -> RegressionResponse:
        return await self.backend.aregress(request)

    async def get_model_metadata(
        self, request: GetModelMetadataRequest
    ) -> GetModelMetadataResponse:
        return await self.backend.aget_model_metadata(request)

    async def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        return await self.backend.aget_model_status(request)


_IngressDeployment = serve.deployment(name=INGRESS_NAME)(serve.ingress(_replica_app)(Ingress))
_ModelDeployment = serve.deployment(name=MODEL_NAME)(ModelDeployment)


def _options(
    num_replicas: int | str | None,
    autoscaling_config: Mapping[str, Any] | None,
    ray_actor_options: Mapping[str, Any] | None,
    max_ongoing_requests: int | None,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ray_actor_options": dict(
            DEFAULT_ACTOR_OPTIONS if ray_actor_options is None else ray_actor_options
        )
    }
    if autoscaling_config is not None:
        options["autoscaling_config"] = dict(autoscaling_config)
        if num_replicas is not None:
            raise ValueError("give num_replicas or autoscaling_config, not both")
    elif num_replicas is not None:
        options["num_replicas"] = num_replicas
    if max_ongoing_requests is not None:
        options["max_ongoing_requests"] = max_ongoing_requests
    return options


def app(
    model_dir: str | os.PathLike[str] | None = None,
    *,
    models: Mapping[str, str] | str | None = None,
    entry_point: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    env: Mapping[str, str] | None = None,
    num_replicas: int | str | None = None,
    autoscaling_config: Mapping[str, Any] | None = None,
    ray_actor_options: Mapping[str, Any] | None = None,
    max_ongoing_requests: int | None = None,
    split: bool = False,
    model_num_replicas: int | str | None = None,
    model_autoscaling_config: Mapping[str, Any] | None = None,
    model_ray_actor_options: Mapping[str, Any] | None = None,
    model_max_ongoing_requests: int | None = MODEL_MAX_ONGOING_REQUESTS,
) -> serve.Application:
    """The project's app on Ray Serve: ``serve.run(tfio_handlers.ray.app("export/iris"))``.

    The options mirror ``tfio-handlers serve``: ``model_dir`` or ``models`` (``{name: path}``),
    ``entry_point`` (the user's ``inference.py``), ``backend`` (``embedded``, ``grpc://host:port``,
    ``http://host:port``), and ``env`` for any other setting (``SAGEMAKER_*``, ``TFIO_HANDLERS_*``).
    ``num_replicas``, ``autoscaling_config``, ``ray_actor_options`` and ``max_ongoing_requests``
    go to the ingress deployment as Serve takes them (``None``: Serve's default, one replica);
    ``ray_actor_options`` defaults to
    :data:`DEFAULT_ACTOR_OPTIONS` (half a CPU).

    ``split=True`` serves the model in a deployment of its own (:class:`ModelDeployment`, options
    ``model_*``): the ingress replicas decode and encode and call it through a
    :class:`~tfio_handlers.ray.backend.RayBackend`. Only the embedded backend can be split.
    """
    replica_env = config_env(
        model_dir, models=models, entry_point=entry_point, backend=backend, env=env
    )
    ingress = _IngressDeployment.options(
        **_options(num_replicas, autoscaling_config, ray_actor_options, max_ongoing_requests)
    )
    if not split:
        return ingress.bind(replica_env)
    if replica_env.get("TFIO_HANDLERS_BACKEND", "embedded") != "embedded":
        raise ValueError("split mode serves the embedded backend only")
    model = _ModelDeployment.options(
        **_options(
            model_num_replicas,
            model_autoscaling_config,
            model_ray_actor_options,
            model_max_ongoing_requests,
        )
    )
    return ingress.bind(replica_env, model.bind(replica_env))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{key}={value!r} is not a boolean (true/false)")


def _replicas(value: Any) -> int | str:
    if isinstance(value, int):
        return value
    if value == "auto":
        return "auto"
    return int(str(value))


def _cpus(value: Any) -> dict[str, Any]:
    return {"num_cpus": float(value)}


_ARGS = {
    "model_dir",
    "models",
    "entry_point",
    "backend",
    "env",
    "num_replicas",
    "replicas",
    "autoscaling_config",
    "ray_actor_options",
    "num_cpus",
    "max_ongoing_requests",
    "split",
    "model_num_replicas",
    "model_replicas",
    "model_autoscaling_config",
    "model_ray_actor_options",
    "model_num_cpus",
    "model_max_ongoing_requests",
}


def build_app(args: Mapping[str, Any]) -> serve.Application:
    """The application builder for ``serve run`` and Serve's config files.

    ``serve run tfio_handlers.ray:build_app model_dir=/models/iris num_replicas=2`` passes strings;
    a YAML config's ``args:`` may pass typed values. Keys are :func:`app`'s parameters, plus the
    short forms ``replicas`` / ``model_replicas`` (for ``num_replicas``) and ``num_cpus`` /
    ``model_num_cpus`` (for ``ray_actor_options={"num_cpus": ...}``); ``models`` is
    ``name=path,name=path`` or a mapping, ``env`` a mapping, ``split`` true or false.
    """
    unknown = sorted(set(args) - _ARGS)
    if unknown:
        raise ValueError(f"tfio_handlers.ray:build_app does not take {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key in ("model_dir", "models", "entry_point", "backend", "env"):
        if args.get(key) not in (None, ""):
            kwargs[key] = args[key]
    for prefix in ("", "model_"):
        replicas = args.get(f"{prefix}num_replicas", args.get(f"{prefix}replicas"))
        if replicas is not None:
            kwargs[f"{prefix}num_replicas"] = _replicas(replicas)
        for key in ("autoscaling_config", "ray_actor_options"):
            if args.get(prefix + key) is not None:
                kwargs[prefix + key] = dict(args[prefix + key])
        if args.get(f"{prefix}num_cpus") is not None:
            options = dict(kwargs.get(f"{prefix}ray_actor_options", DEFAULT_ACTOR_OPTIONS))
            options.update(_cpus(args[f"{prefix}num_cpus"]))
            kwargs[f"{prefix}ray_actor_options"] = options
        if args.get(f"{prefix}max_ongoing_requests") is not None:
            kwargs[f"{prefix}max_ongoing_requests"] = int(args[f"{prefix}max_ongoing_requests"])
    if "split" in args:
        kwargs["split"] = _flag(args["split"], "split")
    return app(**kwargs)
