"""An in-process backend: SavedModels loaded with TensorFlow, answering as TF Serving would.

``EmbeddedBackend("/opt/ml/model")`` finds the models (:mod:`.model_repository`), loads every version
of each, and serves Predict, Classify, Regress, GetModelMetadata and GetModelStatus with TF Serving's
rules and error texts (``predict_util.cc``, ``classifier.cc``, ``regressor.cc``, ``util.cc``,
``get_model_metadata_impl.cc``, ``get_model_status_impl.cc``, ``server_core.cc``), so the same
client code works against it and against ``tensorflow_model_server``.

TensorFlow is imported when the backend is built, never when this module is imported.

Where it differs from TF Serving, on purpose:

* all versions found are loaded and served (TF Serving's ``all`` version policy); the newest answers
  requests that name no version. Labels come from configuration (``labels={"half": {"stable": 1}}``);
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
from collections.abc import Mapping
from typing import Any, Literal

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
    ModelSpec,
    ModelVersionStatus,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    coerce,
    pack_signature_def_map,
)
from ..tensors import data_type_of
from .base import Backend
from .model_repository import ModelSource, PathLike, resolve_models
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


# -- the backend ------------------------------------------------------------------------------------


class EmbeddedBackend(Backend):
    """Serve SavedModels in this process with TensorFlow, with TF Serving's semantics.

    ``models`` is a path (a SavedModel directory, a TF Serving base path with numeric version
    directories, or a root holding several models) or a mapping of model name to such a path (see
    :mod:`.model_repository`). ``default_model`` answers requests without a model name (default:
    the first model found). ``labels`` maps model name to ``{label: version}``.
    ``inter_op_threads``/``intra_op_threads`` size TensorFlow's thread pools (default: the
    ``SAGEMAKER_TFS_INTER_OP_PARALLELISM``/``SAGEMAKER_TFS_INTRA_OP_PARALLELISM`` environment
    variables, else TensorFlow's choice); they apply only if TensorFlow has not run anything yet.
    ``method_name_check`` is TF Serving's ``--enable_signature_method_name_check``.
    ``output_layout`` chooses typed fields (TF Serving's default) or ``tensor_content`` for predict
    outputs. Loading failures raise :class:`~tfio_handlers.errors.BackendUnavailable` naming the path.
    """

    def __init__(
        self,
        models: Mapping[str, PathLike] | PathLike,
        *,
        default_model: str | None = None,
        labels: Mapping[str, Mapping[str, int]] | None = None,
        inter_op_threads: int | None = None,
        intra_op_threads: int | None = None,
        method_name_check: bool = False,
        output_layout: OutputLayout = "typed",
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        environ = os.environ if env is None else env
        if output_layout not in ("typed", "content"):
            raise ValueError(f"output_layout must be 'typed' or 'content', not {output_layout!r}")
        self.output_layout: OutputLayout = output_layout
        self.method_name_check = method_name_check
        self._lock = threading.Lock()
        self._closed = False

        sources = resolve_models(models)
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
        self.sources: dict[str, ModelSource] = sources
        with quiet_tensorflow_startup(environ):  # TensorFlow is imported and starts here
            configure_threads(inter, intra)
            self._servables: dict[str, dict[int, Servable]] = {
                name: {v: load_servable(name, v, path) for v, path in source.versions.items()}
                for name, source in sources.items()
            }
        if default_model is not None and default_model not in sources:
            raise BackendUnavailable(
                f"Default model {default_model!r} is not among the models found: "
                + ", ".join(sorted(sources))
            )
        self.default_model = default_model or next(iter(sources))
        self._labels: dict[str, dict[str, int]] = {}
        for model_name, model_labels in (labels or {}).items():
            for label, version in model_labels.items():
                self.set_label(model_name, label, version)

    # -- models, versions, labels ----------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        """The names of the models served, in the order they were found."""
        return list(self._servables)

    def versions(self, model_name: str) -> list[int]:
        """The versions of ``model_name`` served, oldest first."""
        return sorted(self._servables.get(model_name, {}))

    def labels(self, model_name: str) -> dict[str, int]:
        """``model_name``'s version labels."""
        return dict(self._labels.get(model_name, {}))

    def set_label(self, model_name: str, label: str, version: int) -> None:
        """Point ``label`` of ``model_name`` at ``version``, which must be served."""
        if version not in self._servables.get(model_name, {}):
            raise BackendUnavailable(
                f"Request to assign label {label!r} to version {version} of model "
                f"{model_name!r}, which is not currently available for inference"
            )
        with self._lock:
            self._labels.setdefault(model_name, {})[label] = int(version)
        self.invalidate_signatures(model_name)

    def _servable(self, spec: ModelSpec) -> Servable:
        """TF Serving's ``ServableRequestFromModelSpec`` and ``GetServableHandle``."""
        if self._closed:
            raise BackendUnavailable("The embedded backend is closed")
        name = spec.name or self.default_model
        if not name:
            raise BadRequest("ModelSpec has no name specified.")
        versions = self._servables.get(name)
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            version = int(spec.version.value)
        elif choice == "version_label":
            label = spec.version_label
            labelled = self._labels.get(name, {}).get(label)
            if labelled is None:
                raise BadRequest(f"Unrecognized servable version label: {label}")
            version = labelled
        else:
            if not versions:
                raise NotFound(f"Servable not found for request: Latest({name})")
            return versions[max(versions)]
        servable = versions.get(version) if versions else None
        if servable is None:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return servable

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
        servable = self._servable(spec)
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
        spec = request.model_spec
        servable = self._servable(spec)
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
        spec = request.model_spec
        servable = self._servable(spec)
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
        """TF Serving's ``GetModelStatus``: the named version, or every version, newest first.

        As in TF Serving, a version label is ignored: the answer lists every version.
        """
        request = coerce(request, GetModelStatusRequest)
        if self._closed:
            raise BackendUnavailable("The embedded backend is closed")
        spec = request.model_spec
        name = spec.name or self.default_model or ""
        versions = self._servables.get(name, {})
        response = GetModelStatusResponse()
        if spec.HasField("version"):
            version = int(spec.version.value)
            if version not in versions:
                raise NotFound(f"Could not find version {version} of model {name}")
            selected = [version]
        else:
            if not versions:
                raise NotFound(f"Could not find any versions of model {name}")
            selected = sorted(versions, reverse=True)
        for version in selected:
            status = response.model_version_status.add()
            status.version = version
            status.state = ModelVersionStatus.AVAILABLE
            status.status.error_code = 0  # type: ignore[assignment]
        return response

    def close(self) -> None:
        """Drop the loaded models; later calls raise :class:`BackendUnavailable`."""
        with self._lock:
            self._closed = True
            self._servables = {}
        self.invalidate_signatures()

    def __repr__(self) -> str:
        models = ", ".join(f"{name}:{self.versions(name)}" for name in self._servables)
        return f"EmbeddedBackend({models or 'closed'})"


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
