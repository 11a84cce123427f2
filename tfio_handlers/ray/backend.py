"""``RayBackend``: a :class:`~tfio_handlers.backends.base.Backend` that forwards to a Serve deployment.

The deployment is :class:`~tfio_handlers.ray.deployments.ModelDeployment` (the embedded backend,
optionally with the project's dynamic batching), reached through a Serve ``DeploymentHandle``. What
crosses the handle is what the pipeline holds anyway: predict requests and answers as
:class:`~tfio_handlers.protocol.arrays.PredictArrays` and
:class:`~tfio_handlers.protocol.arrays.Prediction` (plain Python objects of numpy arrays and one
``ModelSpec``; Ray pickles them, numpy buffers out of band), classify, regress, metadata and status
as the library's messages (protobuf messages pickle as their serialized bytes). Nothing is turned
into a ``PredictRequest`` and back on the way.

Errors keep their status: an :class:`~tfio_handlers.errors.HTTPError` raised in the model deployment
reaches Ray as the cause of a ``RayTaskError``, and is raised here as it was (same class, status and
message). A replica that died or cannot be reached is :class:`~tfio_handlers.errors.BackendUnavailable`
(503), a call past ``timeout`` :class:`~tfio_handlers.errors.BackendTimeout` (504), anything else
:class:`~tfio_handlers.errors.InternalError` (500, the cause logged).

The sync methods block on ``DeploymentResponse.result``: call them from a thread, never from an event
loop (the pipeline calls backends from its work pool). The ``a``-prefixed twins await the response
on the caller's loop without a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar

import ray.exceptions
from ray.serve.handle import DeploymentHandle

from ..backends.base import Backend, model_spec
from ..errors import BackendTimeout, BackendUnavailable, HTTPError, InternalError
from ..protocol.arrays import PredictArrays, Prediction
from ..protos import (
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    ModelVersionStatus,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    coerce,
)

__all__ = ["RayBackend", "translate_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNAVAILABLE = (
    ray.exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
)


def translate_error(exc: BaseException, what: str) -> HTTPError:
    """The :class:`HTTPError` a failed handle call answers with (see the module docstring)."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, HTTPError):
            return cause
        exc = cause if isinstance(cause, BaseException) else exc
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, ray.exceptions.GetTimeoutError)):
        return BackendTimeout(f"The model deployment did not answer {what} in time")
    if isinstance(exc, _UNAVAILABLE):
        return BackendUnavailable(f"The model deployment is unavailable: {type(exc).__name__}")
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return BackendUnavailable(f"The model deployment cancelled {what}")
    log.error("%s through Ray Serve failed", what, exc_info=exc)
    return InternalError(f"Internal error: {type(exc).__name__}")


class RayBackend(Backend):
    """TF Serving's calls, forwarded through a Serve ``DeploymentHandle`` to a model deployment.

    ``handle`` is the model deployment's handle (in an application, the bound model deployment passed
    to the ingress's constructor; elsewhere ``serve.get_deployment_handle(name, app_name)``).
    ``timeout`` bounds each call in seconds; ``default_model`` is the model requests naming none go to
    (``None``: ask the deployment, which knows the first model it serves, at the first need).

    Thread-safe; the handle is shared by every caller.
    """

    def __init__(
        self,
        handle: DeploymentHandle[Any],
        *,
        timeout: float = 60.0,
        default_model: str | None = None,
    ) -> None:
        super().__init__()
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.handle = handle
        self.timeout = float(timeout)
        self.default_model = default_model

    def __repr__(self) -> str:
        name = getattr(self.handle, "deployment_name", "?")
        return f"RayBackend({name!r}, timeout={self.timeout:g})"

    # -- calls -------------------------------------------------------------------------------------

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.handle, method).remote(request).result(timeout_s=self.timeout)
        except Exception as exc:
            raise translate_error(exc, method) from None

    async def _acall(self, method: str, request: Any) -> Any:
        response = getattr(self.handle, method).remote(request)
        try:
            return await asyncio.wait_for(_awaited(response), self.timeout)
        except asyncio.TimeoutError:
            response.cancel()
            raise translate_error(TimeoutError(), method) from None
        except Exception as exc:
            raise translate_error(exc, method) from None

    # -- the five calls, and predict on arrays -------------------------------------------------------

    def predict(self, request: PredictRequest) -> PredictResponse:
        arrays = PredictArrays.from_message(coerce(request, PredictRequest))
        return self.predict_arrays(arrays).to_message()

    def predict_arrays(self, request: PredictArrays) -> Prediction:
        result: Prediction = self._call("predict_arrays", request)
        return result

    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        result: ClassificationResponse = self._call(
            "classify", coerce(request, ClassificationRequest)
        )
        return result

    def regress(self, request: RegressionRequest) -> RegressionResponse:
        result: RegressionResponse = self._call("regress", coerce(request, RegressionRequest))
        return result

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        result: GetModelMetadataResponse = self._call(
            "get_model_metadata", coerce(request, GetModelMetadataRequest)
        )
        return result

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        result: GetModelStatusResponse = self._call(
            "get_model_status", coerce(request, GetModelStatusRequest)
        )
        return result

    async def apredict(self, request: PredictRequest) -> PredictResponse:
        arrays = PredictArrays.from_message(coerce(request, PredictRequest))
        return (await self.apredict_arrays(arrays)).to_message()

    async def apredict_arrays(self, request: PredictArrays) -> Prediction:
        result: Prediction = await self._acall("predict_arrays", request)
        return result

    async def aclassify(self, request: ClassificationRequest) -> ClassificationResponse:
        result: ClassificationResponse = await self._acall(
            "classify", coerce(request, ClassificationRequest)
        )
        return result

    async def aregress(self, request: RegressionRequest) -> RegressionResponse:
        result: RegressionResponse = await self._acall(
            "regress", coerce(request, RegressionRequest)
        )
        return result

    async def aget_model_metadata(
        self, request: GetModelMetadataRequest
    ) -> GetModelMetadataResponse:
        result: GetModelMetadataResponse = await self._acall(
            "get_model_metadata", coerce(request, GetModelMetadataRequest)
        )
        return result

    async def aget_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        result: GetModelStatusResponse = await self._acall(
            "get_model_status", coerce(request, GetModelStatusRequest)
        )
        return result

    async def aclose(self) -> None:
        return None

    # -- start-up ----------------------------------------------------------------------------------

    def fetch_default_model(self) -> str | None:
        """Ask the deployment which model requests without a name go to; remember it."""
        if self.default_model is None:
            try:
                name = self.handle.default_model.remote().result(timeout_s=self.timeout)
            except Exception as exc:
                raise translate_error(exc, "default_model") from None
            self.default_model = name or None
        return self.default_model

    def wait_until_ready(self, model_name: str | None = None, timeout: float = 300.0) -> None:
        """Wait (at most ``timeout`` seconds) until the deployment answers that ``model_name`` (the
        default model when ``None``) has a version AVAILABLE; the last error when it never does."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                name = model_name or self.fetch_default_model()
                status = self.get_model_status(GetModelStatusRequest(model_spec=model_spec(name)))
                if any(
                    v.state == ModelVersionStatus.AVAILABLE for v in status.model_version_status
                ):
                    return
                problem: HTTPError = BackendUnavailable(f"Model {name!r} is not available yet")
            except HTTPError as exc:
                if exc.status_code not in (503, 504):
                    raise
                problem = exc
            if time.monotonic() >= deadline:
                raise problem
            time.sleep(0.2)


async def _awaited(response: Any) -> Any:
    return await response
