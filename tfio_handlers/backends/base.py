"""The backend interface: TF Serving's PredictionService and ModelService, in Python.

A backend answers TF Serving's requests with TF Serving's responses: an in-process SavedModel
(:mod:`.embedded`), TF Serving over gRPC or over REST. Every method takes and returns the library's
message classes (:mod:`tfio_handlers.protos`) and also accepts TensorFlow's / TF Serving's classes of
the same messages (implementations pass requests through :func:`tfio_handlers.protos.coerce`).

:meth:`Backend.predict_arrays` is Predict on named numpy arrays
(:mod:`tfio_handlers.protocol.arrays`), the form requests have inside the library: by default it
converts to and from the messages, and the embedded backend feeds the arrays to TensorFlow as they are.

Methods are synchronous; each has an ``a``-prefixed async twin which by default runs the sync method
in a worker thread (:func:`asyncio.to_thread`), so an ASGI server's event loop never waits on a model.
A backend with a native async client overrides the twins.

Failures raise :mod:`tfio_handlers.errors` classes with TF Serving's wording and status:
:class:`~tfio_handlers.errors.NotFound` for an unknown model or version ("Servable not found for
request: Latest(half)"), :class:`~tfio_handlers.errors.BadRequest` for requests that do not fit the
model (and, as in TF Serving, for an unknown signature or version label),
:class:`~tfio_handlers.errors.BackendUnavailable` and :class:`~tfio_handlers.errors.BackendTimeout`
when the model server cannot answer.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from dataclasses import dataclass, field
from types import TracebackType

from ..protocol.arrays import PredictArrays, Prediction
from ..protos import (
    SIGNATURE_DEF_KEY,
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    ModelServerConfig,
    ModelSpec,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    SignatureDef,
    unpack_signature_def_map,
)

__all__ = ["Backend", "ResolvedModel", "model_spec"]

_CacheKey = tuple[str | None, int | None, str | None]
_INIT_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model version as the backend resolved it, with its signatures."""

    name: str
    """The model's name (the default model's when the caller gave none)."""
    version: int | None
    """The version that answered (the newest when the caller asked for none), when known."""
    signature_defs: dict[str, SignatureDef] = field(default_factory=dict)
    """Signature name to ``SignatureDef``, as ``GetModelMetadata`` returned them."""


def model_spec(name: str | None, version: int | None = None, label: str | None = None) -> ModelSpec:
    """A ``ModelSpec`` for ``name`` and ``version`` or ``label`` (a version wins over a label)."""
    spec = ModelSpec(name=name or "")
    if version is not None:
        spec.version.value = int(version)
    elif label:
        spec.version_label = label
    return spec


class Backend(abc.ABC):
    """A model server: TF Serving's Predict, Classify, Regress, GetModelMetadata, GetModelStatus.

    Subclasses implement the five sync methods. :meth:`signatures` (cached) and the async twins
    are built on them. A backend is shared by all requests of a process: implementations must be
    safe to call from many threads at once.
    """

    default_model: str | None = None
    """The model a request without a model name goes to, if the backend knows one."""

    _signature_cache: dict[_CacheKey, ResolvedModel]
    _signature_lock: threading.Lock

    def __init__(self) -> None:
        self._signature_cache = {}
        self._signature_lock = threading.Lock()

    def _cache(self) -> dict[_CacheKey, ResolvedModel]:
        # Subclasses that skip ``super().__init__()`` still get a cache.
        try:
            return self._signature_cache
        except AttributeError:
            with _INIT_LOCK:
                if "_signature_cache" not in self.__dict__:
                    self._signature_lock = threading.Lock()
                    self._signature_cache = {}
            return self._signature_cache

    # -- PredictionService / ModelService --------------------------------------------------------

    @abc.abstractmethod
    def predict(self, request: PredictRequest) -> PredictResponse:
        """Run a signature on named input tensors (TF Serving's ``Predict``)."""

    @abc.abstractmethod
    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        """Classify ``tf.Example`` inputs (TF Serving's ``Classify``)."""

    @abc.abstractmethod
    def regress(self, request: RegressionRequest) -> RegressionResponse:
        """Regress ``tf.Example`` inputs (TF Serving's ``Regress``)."""

    @abc.abstractmethod
    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        """The model's signatures, as a ``SignatureDefMap`` packed in ``metadata["signature_def"]``."""

    @abc.abstractmethod
    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        """The state of the model's versions (TF Serving's ``GetModelStatus``)."""

    def predict_arrays(self, request: PredictArrays) -> Prediction:
        """:meth:`predict` on arrays: what the pipeline calls for every predict request.

        The default converts at this edge (arrays to a ``PredictRequest``, the ``PredictResponse``
        read lazily back), which is what a remote backend must do anyway; a backend that runs the
        model in process overrides it to feed the arrays as they are.
        """
        return Prediction.from_message(self.predict(request.to_message()))

    def models_not_ready(self) -> dict[str, str]:
        """Configured models with no version available, each with why (``/ping`` answers 503
        while any is). The default knows of none: a remote model server is judged by its answers.
        """
        return {}

    def reload_config(self, config: ModelServerConfig) -> None:
        """TF Serving's ``ReloadConfig`` (``ModelService/HandleReloadConfigRequest``): serve the
        models ``config`` lists from now on. Raises the error of TF Serving's status code when it
        refuses; the default refuses with UNIMPLEMENTED (only the embedded backend manages models).
        """
        from .status import status_error

        raise status_error(
            "UNIMPLEMENTED",
            f"{type(self).__name__} does not manage models: HandleReloadConfigRequest is answered "
            "by the embedded backend only",
        )

    def close(self) -> None:  # noqa: B027 - a no-op default is the point
        """Release connections, threads and models. The default does nothing."""

    # -- async twins -------------------------------------------------------------------------------

    async def apredict(self, request: PredictRequest) -> PredictResponse:
        """:meth:`predict` without blocking the event loop."""
        return await asyncio.to_thread(self.predict, request)

    async def apredict_arrays(self, request: PredictArrays) -> Prediction:
        """:meth:`predict_arrays` without blocking the event loop."""
        return await asyncio.to_thread(self.predict_arrays, request)

    async def aclassify(self, request: ClassificationRequest) -> ClassificationResponse:
        """:meth:`classify` without blocking the event loop."""
        return await asyncio.to_thread(self.classify, request)

    async def aregress(self, request: RegressionRequest) -> RegressionResponse:
        """:meth:`regress` without blocking the event loop."""
        return await asyncio.to_thread(self.regress, request)

    async def aget_model_metadata(
        self, request: GetModelMetadataRequest
    ) -> GetModelMetadataResponse:
        """:meth:`get_model_metadata` without blocking the event loop."""
        return await asyncio.to_thread(self.get_model_metadata, request)

    async def aget_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        """:meth:`get_model_status` without blocking the event loop."""
        return await asyncio.to_thread(self.get_model_status, request)

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    # -- signatures, cached ------------------------------------------------------------------------

    def _cache_key(
        self, model_name: str | None, version: int | None, label: str | None
    ) -> _CacheKey:
        return (model_name or self.default_model, version, None if version is not None else label)

    def signatures(
        self, model_name: str | None = None, version: int | None = None, label: str | None = None
    ) -> ResolvedModel:
        """The model version's name, number and signatures, from :meth:`get_model_metadata`.

        ``model_name`` ``None`` means :attr:`default_model`; ``version`` and ``label`` ``None`` mean
        the newest version. The answer is cached per ``(model, version, label)`` until
        :meth:`invalidate_signatures`; errors are not cached.
        """
        key = self._cache_key(model_name, version, label)
        cache = self._cache()
        cached = cache.get(key)
        if cached is not None:
            return cached
        request = GetModelMetadataRequest(
            model_spec=model_spec(key[0], version, label), metadata_field=[SIGNATURE_DEF_KEY]
        )
        response = self.get_model_metadata(request)
        signature_map = unpack_signature_def_map(response)
        spec = response.model_spec
        resolved = ResolvedModel(
            name=spec.name or key[0] or "",
            version=spec.version.value if spec.HasField("version") else version,
            signature_defs=dict(signature_map.signature_def),
        )
        with self._signature_lock:
            cache[key] = resolved
        return resolved

    async def asignatures(
        self, model_name: str | None = None, version: int | None = None, label: str | None = None
    ) -> ResolvedModel:
        """:meth:`signatures`; answers from the cache at once, else asks in a worker thread."""
        cached = self._cache().get(self._cache_key(model_name, version, label))
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.signatures, model_name, version, label)

    def signatures_cached(
        self, model_name: str | None = None, version: int | None = None, label: str | None = None
    ) -> bool:
        """Whether :meth:`signatures` would answer from its cache (no model server call)."""
        return self._cache_key(model_name, version, label) in self._cache()

    def invalidate_signatures(self, model_name: str | None = None) -> None:
        """Forget cached signatures: of ``model_name`` (every version and label), or of all models."""
        cache = self._cache()
        with self._signature_lock:
            if model_name is None:
                cache.clear()
            else:
                for key in [k for k in cache if k[0] == model_name]:
                    del cache[key]

    # -- context manager ---------------------------------------------------------------------------

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
