"""An in-process backend: SavedModels loaded with TensorFlow, answering as TF Serving would.

``EmbeddedBackend("/opt/ml/model")`` finds the models (:mod:`.model_repository`), loads every version
of each, and serves Predict, Classify, Regress, GetModelMetadata and GetModelStatus with TF Serving's
rules and error texts (``predict_util.cc``, ``classifier.cc``, ``regressor.cc``, ``util.cc``,
``get_model_metadata_impl.cc``, ``get_model_status_impl.cc``, ``server_core.cc``), so the same
client code works against it and against ``tensorflow_model_server``.
``EmbeddedBackend(model_config_file="models.config")`` serves what TF Serving's ``--model_config_file``
says instead (version policies, labels; :mod:`.model_config`). Which versions serve, their states and
labels, polling for new versions and config reloads are :mod:`.manager`'s.

TensorFlow is imported when the backend is built, never when this module is imported.

Where it differs from TF Serving, on purpose:

* given model paths rather than a config, all versions found are loaded and served (TF Serving's
  ``all`` version policy; its ``--model_base_path`` serves the newest only); the newest answers
  requests that name no version. Labels come from configuration (``labels={"half": {"stable": 1}}``);
* the base paths are polled only when ``file_system_poll_wait_seconds`` is positive (the server's
  default is TF Serving's, 1 s; a backend built in code does not start a thread unless asked);
* an empty model name (or no ``model_spec``) means the default model (``default_model``, else the
  first model found), as SageMaker's containers route requests without ``tfs-model-name``;
* inputs are checked against the signature's dtype and shape before the model runs. TF Serving
  feeds TF 1 graphs whatever arrives; a TF 2 function refuses other shapes, so a wrong shape is a
  400 naming the input instead of an error from deep inside the graph;
* outputs are written in the typed ``*_val`` fields as TF Serving does by default
  (``output_layout="typed"``); ``output_layout="content"`` writes numeric tensors of more than one
  element to ``tensor_content`` instead (faster to build and to read, as TF Serving's
  ``kAsProtoContent`` option);
* a classification label that is not UTF-8 is decoded with replacement characters (the proto field
  is a ``string``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import numpy as np

from ..config import env_int
from ..errors import (
    BackendUnavailable,
    BadRequest,
    HTTPError,
    NotFound,
)
from ..protocol.arrays import PredictArrays, Prediction
from ..protocol.signatures import (
    DEFAULT_SIGNATURE,
    check_classify_signature,
    check_predict_inputs,
    check_predict_signature,
    check_regress_signature,
    find_signature,
    output_aliases,
)
from ..protos import (
    DT_FLOAT,
    DT_STRING,
    SIGNATURE_DEF_KEY,
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    Input,
    ModelServerConfig,
    ModelSpec,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    coerce,
    pack_signature_def_map,
)
from ..tensors import data_type_of
from .base import Backend
from .manager import ModelManager
from .model_calls import INLINE_BELOW_SECONDS, ModelCalls, usable_cpus
from .model_config import serving_config
from .model_repository import PathLike
from .savedmodel import (
    Runner,
    Servable,
    configure_threads,
    load_servable,
    quiet_tensorflow_startup,
    shape_text,
)

__all__ = [
    "INTER_OP_ENV",
    "INTRA_OP_ENV",
    "EmbeddedBackend",
    "OutputLayout",
]

log = logging.getLogger(__name__)

INTER_OP_ENV = "SAGEMAKER_TFS_INTER_OP_PARALLELISM"
INTRA_OP_ENV = "SAGEMAKER_TFS_INTRA_OP_PARALLELISM"

OutputLayout = Literal["typed", "content"]

T = TypeVar("T")


# -- the backend ------------------------------------------------------------------------------------


class EmbeddedBackend(Backend):
    """Serve SavedModels in this process with TensorFlow, with TF Serving's semantics.

    ``models`` is a path (a SavedModel directory, a TF Serving base path with numeric version
    directories, or a root holding several models) or a mapping of model name to such a path (see
    :mod:`.model_repository`), served under the ``all`` version policy; or a ``ModelServerConfig``
    (TF Serving's policies and labels). ``model_config_file`` reads that config from TF Serving's
    text format instead. ``default_model`` answers requests without a model name (default: the
    first model). ``labels`` maps model name to ``{label: version}``, added to the config's.
    ``file_system_poll_wait_seconds`` (TF Serving's flag; 0: no polling) looks for new and removed
    versions in a background thread; ``model_config_file_poll_wait_seconds`` re-reads the config
    file; ``allow_version_labels_for_unavailable_models`` is TF Serving's flag of that name.
    ``inter_op_threads``/``intra_op_threads`` size TensorFlow's thread pools (default: the
    ``SAGEMAKER_TFS_INTER_OP_PARALLELISM``/``SAGEMAKER_TFS_INTRA_OP_PARALLELISM`` environment
    variables, else TensorFlow's choice); they apply only if TensorFlow has not run anything yet.
    ``model_threads`` (default: the CPUs this process may run on) is how many model calls the async
    twins (:meth:`apredict_arrays`, :meth:`aclassify`, :meth:`aregress`) run at once, first come
    first served: TensorFlow spreads one call over the cores itself, and more threads than cores
    only make calls wait for each other and for the GIL in a random order (the tail latency). A
    call runs on the event loop instead, with no thread hop, when the pipeline says its request is
    the only one in progress, no other call is in flight, and calls of its kind took less than
    ``inline_below_seconds`` on average (0: never; :mod:`.model_calls`).
    ``method_name_check`` is TF Serving's ``--enable_signature_method_name_check``.
    ``output_layout`` chooses typed fields (TF Serving's default) or ``tensor_content`` for predict
    outputs. A version that fails to load at construction, like a missing path, raises
    :class:`~tfio_handlers.errors.BackendUnavailable` naming the path; later failures are reported
    by ``GetModelStatus``.
    """

    def __init__(
        self,
        models: Mapping[str, PathLike] | PathLike | ModelServerConfig | None = None,
        *,
        model_config_file: PathLike | None = None,
        default_model: str | None = None,
        labels: Mapping[str, Mapping[str, int]] | None = None,
        file_system_poll_wait_seconds: float = 0,
        model_config_file_poll_wait_seconds: float = 0,
        allow_version_labels_for_unavailable_models: bool = False,
        inter_op_threads: int | None = None,
        intra_op_threads: int | None = None,
        method_name_check: bool = False,
        output_layout: OutputLayout = "typed",
        model_threads: int | None = None,
        inline_below_seconds: float = INLINE_BELOW_SECONDS,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        threads = usable_cpus() if model_threads is None else model_threads
        self._model_calls = ModelCalls(threads, inline_below_seconds)
        self.model_threads = self._model_calls.threads
        environ = os.environ if env is None else env
        if output_layout not in ("typed", "content"):
            raise ValueError(f"output_layout must be 'typed' or 'content', not {output_layout!r}")
        self.output_layout: OutputLayout = output_layout
        self.method_name_check = method_name_check
        self._lock = threading.Lock()
        self._closed = False

        config = serving_config(models, model_config_file, labels)
        inter = (
            inter_op_threads
            if inter_op_threads is not None
            else env_int(environ, INTER_OP_ENV, None, error=BackendUnavailable)
        )
        intra = (
            intra_op_threads
            if intra_op_threads is not None
            else env_int(environ, INTRA_OP_ENV, None, error=BackendUnavailable)
        )
        names = [model.name for model in config.model_config_list.config]
        if default_model is not None and default_model not in names:
            raise BackendUnavailable(
                f"Default model {default_model!r} is not among the models found: "
                + ", ".join(sorted(names))
            )
        self.default_model = default_model or (names[0] if names else None)
        self._manager = ModelManager(
            config,
            load_servable,
            file_system_poll_wait_seconds=file_system_poll_wait_seconds,
            model_config_file=model_config_file,
            model_config_file_poll_wait_seconds=model_config_file_poll_wait_seconds,
            allow_version_labels_for_unavailable_models=allow_version_labels_for_unavailable_models,
            on_change=self.invalidate_signatures,
        )
        try:
            with quiet_tensorflow_startup(environ):  # TensorFlow is imported and starts here
                configure_threads(inter, intra)
                failed = self._manager.poll()
            if failed:
                raise BackendUnavailable(failed[0].error_message)
            self._manager.apply_labels()
        except BaseException:
            self._manager.close()
            raise
        self._manager.start()

    # -- models, versions, labels ----------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        """The names of the models served, in the order they were found or configured."""
        return self._manager.model_names

    @property
    def manager(self) -> ModelManager:
        """The versions' lifecycle: states, labels, polling, config reloads."""
        return self._manager

    def versions(self, model_name: str) -> list[int]:
        """The versions of ``model_name`` serving now (AVAILABLE), oldest first."""
        return sorted(self._manager.serving(model_name))

    def labels(self, model_name: str) -> dict[str, int]:
        """``model_name``'s version labels."""
        return dict(self._manager.labels(model_name))

    def set_label(self, model_name: str, label: str, version: int) -> None:
        """Point ``label`` of ``model_name`` at ``version``, which must be serving (else TF
        Serving's FAILED_PRECONDITION "Request to assign label to version ...")."""
        self._manager.set_label(model_name, label, version)

    def models_not_ready(self) -> dict[str, str]:
        """Configured models with no AVAILABLE version, each with why."""
        return {} if self._closed else self._manager.not_ready()

    def reload_config(self, config: ModelServerConfig) -> None:
        """TF Serving's ``ReloadConfig`` (``HandleReloadConfigRequest``): see :mod:`.manager`."""
        if self._closed:
            raise BackendUnavailable("The embedded backend is closed")
        self._manager.reload(coerce(config, ModelServerConfig))

    def _servable(self, spec: ModelSpec) -> Servable:
        """TF Serving's ``ServableRequestFromModelSpec`` and ``GetServableHandle``."""
        if self._closed:
            raise BackendUnavailable("The embedded backend is closed")
        name = spec.name or self.default_model
        if not name:
            raise BadRequest("ModelSpec has no name specified.")
        versions = self._manager.serving(name)
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            version = int(spec.version.value)
        elif choice == "version_label":
            label = spec.version_label
            labelled = self._manager.labels(name).get(label)
            if labelled is None:
                raise BadRequest(f"Unrecognized servable version label: {label}")
            version = labelled
        else:
            if not versions:
                raise NotFound(f"Servable not found for request: Latest({name})")
            servable: Servable = versions[max(versions)]
            return servable
        found: Servable | None = versions.get(version)
        if found is None:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return found

    @contextmanager
    def _using(self, spec: ModelSpec) -> Iterator[Servable]:
        """:meth:`_servable`, counted in flight while the block runs, so that a version leaving
        its policy is unloaded only after the requests on it have finished."""
        servable = self._servable(spec)
        with self._manager.using(servable.name, servable):
            yield servable

    @staticmethod
    def _response_spec(
        spec: ModelSpec, servable: Servable, signature_name: str | None, out: ModelSpec
    ) -> None:
        """TF Serving's ``MakeModelSpec``: name, signature name (default filled in), version."""
        out.name = spec.name or servable.name
        if signature_name is not None:
            out.signature_name = signature_name or DEFAULT_SIGNATURE
        out.version.value = servable.version

    # -- Predict ------------------------------------------------------------------------------------

    def predict(self, request: PredictRequest) -> PredictResponse:
        """TF Serving's ``RunPredict`` on a message: :meth:`predict_arrays` between conversions."""
        return self.predict_arrays(PredictArrays.from_message(request)).to_message()

    def predict_arrays(self, request: PredictArrays) -> Prediction:
        """TF Serving's ``RunPredict``: signature, inputs (with defaults), output filter, run.

        The arrays go to TensorFlow as they are and its outputs come back as arrays: no
        ``TensorProto`` is built unless a caller asks the answer for one.
        """
        spec = request.model_spec
        with self._using(spec) as servable:
            return self._predict_on(servable, request)

    def _predict_on(self, servable: Servable, request: PredictArrays) -> Prediction:
        spec = request.model_spec
        signature_name, signature = find_signature(
            servable.signature_defs, spec.signature_name, "predict"
        )
        response_spec = ModelSpec()
        self._response_spec(spec, servable, signature_name, response_spec)
        check_predict_signature(signature, method_name_check=self.method_name_check)
        runner = servable.runner(signature_name)

        request_inputs = request.inputs
        check_predict_inputs(request_inputs, signature)
        aliases = output_aliases(request.output_filter, signature)
        feeds: dict[str, Any] = {}
        for index, spec_input in enumerate(runner.inputs):
            alias = spec_input.alias
            array = request_inputs.get(alias)
            if array is None:
                feeds[alias] = runner.defaults[alias]
            else:
                runner.check(alias, index, array, _data_type(array, alias))
                feeds[alias] = array

        outputs = runner.run(feeds)
        return Prediction(
            {alias: outputs[alias].numpy() for alias in aliases},
            response_spec,
            typed_fields=self.output_layout == "typed",
        )

    # -- Classify / Regress ---------------------------------------------------------------------------

    @staticmethod
    def _serialized_examples(request_input: Input) -> np.ndarray[Any, Any]:
        """TF Serving's ``InputToSerializedExampleTensor``: one serialized Example per row; with a
        context, ``serialized(context) + serialized(example)`` (a protobuf merge: the example's
        features win)."""
        kind = request_input.WhichOneof("kind")
        if kind == "example_list":
            serialized = [ex.SerializeToString() for ex in request_input.example_list.examples]
        elif kind == "example_list_with_context":
            with_context = request_input.example_list_with_context
            context = with_context.context.SerializeToString()
            serialized = [context + ex.SerializeToString() for ex in with_context.examples]
        else:
            serialized = []
        if not serialized:
            raise BadRequest("Input is empty.")
        array = np.empty(len(serialized), dtype=object)
        array[:] = serialized
        return array

    def _run_examples(self, runner: Runner, request_input: Input) -> tuple[int, dict[str, Any]]:
        examples = self._serialized_examples(request_input)
        runner.check(runner.inputs[0].alias, 0, examples, DT_STRING)
        return len(examples), runner.run({runner.inputs[0].alias: examples})

    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        """TF Serving's ``RunClassify``: signature checks, examples, run, output checks."""
        request = coerce(request, ClassificationRequest)
        with self._using(request.model_spec) as servable:
            return self._classify_on(servable, request)

    def _classify_on(
        self, servable: Servable, request: ClassificationRequest
    ) -> ClassificationResponse:
        spec = request.model_spec
        signature_name, signature = find_signature(
            servable.signature_defs, spec.signature_name, "classify"
        )
        parts = check_classify_signature(signature, method_name_check=self.method_name_check)
        response = ClassificationResponse()
        self._response_spec(spec, servable, spec.signature_name, response.model_spec)
        runner = servable.runner(signature_name)
        n, outputs = self._run_examples(runner, request.input)

        classes = outputs[parts.classes] if parts.classes else None
        scores = outputs[parts.scores] if parts.scores else None
        if classes is not None:
            self._check_classify_output(classes, "classes", DT_STRING, n)
        if scores is not None:
            self._check_classify_output(scores, "scores", DT_FLOAT, n)
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise BadRequest(
                "Tensors class and score should match in dim_size(1). Got "
                f"{classes.shape[1]} vs. {scores.shape[1]}"
            )
        labels = classes.numpy() if classes is not None else None
        values = scores.numpy().tolist() if scores is not None else None
        width = classes if classes is not None else scores
        assert width is not None  # check_classify_signature guarantees one of them
        k = int(width.shape[1])
        result = response.result
        for i in range(n):
            row = result.classifications.add().classes
            for c in range(k):
                item = row.add()
                if labels is not None:
                    item.label = labels[i, c].decode("utf-8", "replace")
                if values is not None:
                    item.score = values[i][c]
        return response

    @staticmethod
    def _check_classify_output(tensor: Any, what: str, dtype: int, n: int) -> None:
        shape = tuple(tensor.shape)
        if len(shape) != 2:
            raise BadRequest(
                f"Expected Tensor shape: [batch_size num_classes] but got {shape_text(shape)}"
            )
        actual = int(tensor.dtype.as_datatype_enum)
        if actual != dtype:
            raise BadRequest(
                f"Expected {what} Tensor of {_enum_name(dtype)}. Got: {_enum_name(actual)}"
            )
        if shape[0] != n:
            raise BadRequest(f"Expected {what} output batch size of {n}. Got: {shape[0]}")

    def regress(self, request: RegressionRequest) -> RegressionResponse:
        """TF Serving's ``RunRegress``: signature checks, examples, run, output checks."""
        request = coerce(request, RegressionRequest)
        with self._using(request.model_spec) as servable:
            return self._regress_on(servable, request)

    def _regress_on(self, servable: Servable, request: RegressionRequest) -> RegressionResponse:
        spec = request.model_spec
        signature_name, signature = find_signature(
            servable.signature_defs, spec.signature_name, "regress"
        )
        parts = check_regress_signature(signature, method_name_check=self.method_name_check)
        response = RegressionResponse()
        self._response_spec(spec, servable, spec.signature_name, response.model_spec)
        runner = servable.runner(signature_name)
        n, outputs = self._run_examples(runner, request.input)

        tensor = outputs[parts.output_alias]
        shape = tuple(tensor.shape)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise BadRequest(
                "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but "
                f"got {shape_text(shape)}"
            )
        if shape[0] != n:
            raise BadRequest(
                f"Input batch size did not match output batch size: {n} vs. {shape[0]}"
            )
        actual = int(tensor.dtype.as_datatype_enum)
        if actual != DT_FLOAT:
            raise BadRequest(f"Expected output Tensor of DT_FLOAT.  Got: {_enum_name(actual)}")
        regressions = response.result.regressions
        for value in tensor.numpy().reshape(-1).tolist():
            regressions.add().value = value
        return response

    # -- metadata and status ------------------------------------------------------------------------

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        """TF Serving's ``GetModelMetadata``: only the ``signature_def`` field exists."""
        request = coerce(request, GetModelMetadataRequest)
        if not request.metadata_field:
            raise BadRequest("GetModelMetadataRequest must specify at least one metadata_field")
        for metadata_field in request.metadata_field:
            if metadata_field != SIGNATURE_DEF_KEY:
                raise BadRequest(f"Metadata field {metadata_field} is not supported")
        servable = self._servable(request.model_spec)
        response = GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        pack_signature_def_map(response, servable.signature_defs)
        return response

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        """TF Serving's ``GetModelStatus``: the named version, or every version seen, newest first,
        each with its state (START, LOADING, AVAILABLE, UNLOADING, END) and its last error.

        As in TF Serving, a version label is ignored: the answer lists every version.
        """
        request = coerce(request, GetModelStatusRequest)
        if self._closed:
            raise BackendUnavailable("The embedded backend is closed")
        spec = request.model_spec
        name = spec.name or self.default_model or ""
        states = self._manager.states(name) or {}
        response = GetModelStatusResponse()
        if spec.HasField("version"):
            version = int(spec.version.value)
            state = states.get(version)
            if state is None:
                raise NotFound(f"Could not find version {version} of model {name}")
            self._manager.add_status(response, state)
            return response
        if not states:
            raise NotFound(f"Could not find any versions of model {name}")
        for state in states.values():
            self._manager.add_status(response, state)
        return response

    # -- async twins: the model threads ------------------------------------------------------------

    async def apredict(self, request: PredictRequest) -> PredictResponse:
        """:meth:`predict` on a model thread, or inline (see ``model_threads``)."""
        return await self._call_model(self.predict, request)

    async def apredict_arrays(self, request: PredictArrays) -> Prediction:
        """:meth:`predict_arrays` on a model thread, or inline (see ``model_threads``)."""
        return await self._call_model(self.predict_arrays, request)

    async def aclassify(self, request: ClassificationRequest) -> ClassificationResponse:
        """:meth:`classify` on a model thread, or inline (see ``model_threads``)."""
        return await self._call_model(self.classify, request)

    async def aregress(self, request: RegressionRequest) -> RegressionResponse:
        """:meth:`regress` on a model thread, or inline (see ``model_threads``)."""
        return await self._call_model(self.regress, request)

    async def _call_model(self, function: Callable[[Any], T], request: Any) -> T:
        """``function(request)`` on a model thread, or inline when that is cheaper
        (:class:`.ModelCalls`); calls are timed by method, model and signature."""
        spec = request.model_spec
        kind = (function.__name__, spec.name, spec.signature_name)
        return await self._model_calls.run(kind, function, request)

    def close(self) -> None:
        """Stop polling and drop the loaded models; later calls raise :class:`BackendUnavailable`."""
        with self._lock:
            self._closed = True
        self._model_calls.close()
        self._manager.close()
        self.invalidate_signatures()

    def __repr__(self) -> str:
        if self._closed:
            return "EmbeddedBackend(closed)"
        models = ", ".join(f"{name}:{self.versions(name)}" for name in self.model_names)
        return f"EmbeddedBackend({models})"


def _enum_name(dtype: int) -> str:
    """``DT_FLOAT`` for 1, as TensorFlow's ``DataType_Name``."""
    from ..protos import DataType

    try:
        return DataType.Name(dtype)  # type: ignore[arg-type]
    except ValueError:
        return str(dtype)


def _data_type(array: np.ndarray[Any, Any], alias: str) -> int:
    """The ``DataType`` of a request array; an array of no TensorFlow dtype is TF Serving's
    ``tensor parsing error`` (what its message form would have been refused with)."""
    try:
        return data_type_of(array.dtype)
    except HTTPError as exc:
        raise BadRequest(f"tensor parsing error: {alias}") from exc
