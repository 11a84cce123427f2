"""A gRPC ``PredictionService`` and ``ModelService`` over any backend: TF Serving's gRPC API without it.

``tfio-handlers grpc-serve --model-dir export/half_plus_two --port 8500`` serves a
SavedModel on the embedded backend with TF Serving's gRPC API, so clients written for
``tensorflow_model_server`` (``PredictionServiceStub``, :class:`~tfio_handlers.backends.grpc.GrpcBackend`)
can be developed and tested without it. ``--backend grpc://host:port`` or ``http://host:port`` puts
the same API in front of a remote TF Serving instead.

Served methods: ``PredictionService`` ``Predict``, ``Classify``, ``Regress``, ``GetModelMetadata`` and
``MultiInference`` (each task run as its own Classify or Regress call), and ``ModelService``
``GetModelStatus`` and ``HandleReloadConfigRequest`` (the embedded backend serves the new
``ModelServerConfig`` as TF Serving's ``ReloadConfig`` does; other backends answer UNIMPLEMENTED).
Handlers are generic (``grpc.method_handlers_generic_handler``) over our own message classes, so no
generated stubs are needed. A backend's :class:`~tfio_handlers.errors.HTTPError` becomes the gRPC code
TF Serving would have used (:func:`~tfio_handlers.backends.status.grpc_code_of`) with the same message,
and the exact HTTP status travels in the trailing metadata ``tfio-http-status`` for our own client.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any, NoReturn

from google.protobuf.message import Message

from ..backends.grpc import (
    HTTP_STATUS_METADATA,
    MAX_MESSAGE_BYTES,
    MODEL_SERVICE,
    PREDICTION_SERVICE,
)
from ..backends.model_config import ONLY_MODEL_CONFIG_LIST
from ..backends.status import grpc_code_of
from ..errors import BadRequest, HTTPError, InternalError
from ..protos import (
    DEFAULT_SIGNATURE,
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    MultiInferenceRequest,
    MultiInferenceResponse,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    ReloadConfigRequest,
    ReloadConfigResponse,
)

if TYPE_CHECKING:
    import grpc

    from ..backends.base import Backend

__all__ = ["generic_handlers", "multi_inference", "reload_config", "serve"]

log = logging.getLogger(__name__)

_CLASSIFY_METHOD = "tensorflow/serving/classify"
_REGRESS_METHOD = "tensorflow/serving/regress"


def _abort(context: grpc.ServicerContext, error: HTTPError) -> NoReturn:
    import grpc

    context.set_trailing_metadata(((HTTP_STATUS_METADATA, str(error.status_code)),))
    context.abort(getattr(grpc.StatusCode, grpc_code_of(error)), error.message)
    raise AssertionError("unreachable: ServicerContext.abort raises")  # pragma: no cover


def _unary(
    call: Callable[[Any], Message],
    request_class: type[Message],
    response_class: type[Message],
    name: str,
) -> grpc.RpcMethodHandler:
    import grpc

    def handle(request: Message, context: grpc.ServicerContext) -> Message:
        try:
            return call(request)
        except HTTPError as exc:
            _abort(context, exc)
        except Exception as exc:
            log.exception("Unexpected error in %s", name)
            _abort(context, InternalError(f"Internal error: {type(exc).__name__}"))

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_class.FromString,
        response_serializer=response_class.SerializeToString,
    )


def multi_inference(backend: Backend, request: MultiInferenceRequest) -> MultiInferenceResponse:
    """TF Serving's ``MultiInference``: several Classify/Regress tasks over one ``Input``.

    TF Serving's rules are checked first: at least one task, one model name for all, no signature
    twice, and only the classify and regress methods. Each task is then one backend call.
    """
    if not request.tasks:
        raise BadRequest("Tasks must be specified.")
    model_name = request.tasks[0].model_spec.name
    signatures: set[str] = set()
    for task in request.tasks:
        if task.model_spec.name != model_name:
            raise BadRequest(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        signature = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature in signatures:
            raise BadRequest(f"Duplicate evaluation of signature: {signature}")
        signatures.add(signature)
        if task.method_name not in (_CLASSIFY_METHOD, _REGRESS_METHOD):
            raise BadRequest(f"Unsupported signature method_name: {task.method_name}")
    response = MultiInferenceResponse()
    for task in request.tasks:
        result = response.results.add()
        if task.method_name == _CLASSIFY_METHOD:
            classified = backend.classify(
                ClassificationRequest(model_spec=task.model_spec, input=request.input)
            )
            result.model_spec.CopyFrom(classified.model_spec)
            result.classification_result.CopyFrom(classified.result)
        else:
            regressed = backend.regress(
                RegressionRequest(model_spec=task.model_spec, input=request.input)
            )
            result.model_spec.CopyFrom(regressed.model_spec)
            result.regression_result.CopyFrom(regressed.result)
    return response


def reload_config(backend: Backend, request: ReloadConfigRequest) -> ReloadConfigResponse:
    """TF Serving's ``HandleReloadConfigRequest``: only a ``model_config_list`` is accepted; the
    backend reloads (:meth:`~tfio_handlers.backends.base.Backend.reload_config`) and an OK status
    comes back. A refusal raises (the RPC fails with TF Serving's code and message, as
    ``tensorflow_model_server``'s does). ``metric_names`` are answered with no metrics."""
    if request.config.WhichOneof("config") != "model_config_list":
        raise BadRequest(ONLY_MODEL_CONFIG_LIST)
    for index, config in enumerate(request.config.model_config_list.config):
        log.info(
            "Config entry index: %d path: %s name: %s platform: %s",
            index,
            config.base_path,
            config.name,
            config.model_platform,
        )
    try:
        backend.reload_config(request.config)
    except HTTPError as exc:
        log.error("ReloadConfig failed: %s", exc.message)
        raise
    response = ReloadConfigResponse()
    response.status.error_code = 0  # type: ignore[assignment]
    return response


def generic_handlers(backend: Backend) -> list[grpc.GenericRpcHandler]:
    """The ``PredictionService`` and ``ModelService`` handlers over ``backend``."""
    import grpc

    prediction = {
        "Predict": _unary(backend.predict, PredictRequest, PredictResponse, "Predict"),
        "Classify": _unary(
            backend.classify, ClassificationRequest, ClassificationResponse, "Classify"
        ),
        "Regress": _unary(backend.regress, RegressionRequest, RegressionResponse, "Regress"),
        "GetModelMetadata": _unary(
            backend.get_model_metadata,
            GetModelMetadataRequest,
            GetModelMetadataResponse,
            "GetModelMetadata",
        ),
        "MultiInference": _unary(
            lambda request: multi_inference(backend, request),
            MultiInferenceRequest,
            MultiInferenceResponse,
            "MultiInference",
        ),
    }
    model = {
        "GetModelStatus": _unary(
            backend.get_model_status,
            GetModelStatusRequest,
            GetModelStatusResponse,
            "GetModelStatus",
        ),
        "HandleReloadConfigRequest": _unary(
            lambda request: reload_config(backend, request),
            ReloadConfigRequest,
            ReloadConfigResponse,
            "HandleReloadConfigRequest",
        ),
    }
    return [
        grpc.method_handlers_generic_handler(PREDICTION_SERVICE, prediction),
        grpc.method_handlers_generic_handler(MODEL_SERVICE, model),
    ]


def serve(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_workers: int | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    options: Sequence[tuple[str, Any]] = (),
) -> tuple[grpc.Server, int]:
    """Start a gRPC server for ``backend`` on ``host:port`` (0: a free port); return it and the port.

    The server runs on a thread pool of ``max_workers`` (default ``min(32, CPUs + 4)``) and accepts
    messages of up to ``max_message_bytes`` both ways. Binding a port another process holds fails
    (``SO_REUSEPORT`` is off) instead of silently sharing it. Stop it with ``server.stop(grace)``.
    """
    import grpc

    workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
    merged: dict[str, Any] = {
        "grpc.max_send_message_length": max_message_bytes,
        "grpc.max_receive_message_length": max_message_bytes,
        "grpc.so_reuseport": 0,
    }
    merged.update(dict(options))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tfio-grpc"),
        handlers=generic_handlers(backend),
        options=list(merged.items()),
    )
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"Cannot listen on {address}: {exc}") from None
    if bound == 0:
        raise OSError(f"Cannot listen on {address}")
    server.start()
    return server, bound
