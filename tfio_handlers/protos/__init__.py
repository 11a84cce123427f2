"""TensorFlow and TF Serving wire types, without TensorFlow.

``from tfio_handlers.protos import TensorProto, PredictRequest, ...`` gives message classes with
TensorFlow's and TF Serving's full names, field numbers, wire format and proto3 JSON form. They
are generated (``scripts/generate_protos.py``) from our own ``.proto`` sources in ``proto/`` into
a private descriptor pool, :data:`POOL`, so they coexist with TensorFlow's own classes whichever
is imported first, and importing them never imports TensorFlow.

Because the classes differ from TensorFlow's, protobuf will not mix the two in ``CopyFrom`` or
field assignment; :func:`coerce` converts (``coerce(tf_tensor_proto, TensorProto)``). The same
holds for the well-known types inside our messages: ``ModelSpec.version`` is our
:data:`Int64Value`, ``GetModelMetadataResponse.metadata`` holds our :data:`Any`; set their
fields (``spec.version.value = 3``) or ``Pack`` into them rather than assigning
``google.protobuf`` instances. :func:`to_json`/:func:`from_json` resolve ``Any`` through
:data:`POOL`.

The generated modules mirror TensorFlow's layout, e.g.
``tfio_handlers.protos.tensorflow.core.framework.tensor_pb2`` and
``tfio_handlers.protos.tensorflow_serving.apis.predict_pb2``; TF Serving's model server
configuration (``ModelServerConfig``, the text format of ``--model_config_file``) is under
``tfio_handlers.protos.tensorflow_serving.config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ._coerce import coerce
from ._json import from_json, to_json
from ._metadata import (
    DEFAULT_SIGNATURE,
    SIGNATURE_DEF_KEY,
    pack_signature_def_map,
    unpack_signature_def_map,
)
from ._pool import POOL, WELL_KNOWN
from .tensorflow.core.example.example_pb2 import Example, SequenceExample
from .tensorflow.core.example.feature_pb2 import (
    BytesList,
    Feature,
    FeatureList,
    FeatureLists,
    Features,
    FloatList,
    Int64List,
)
from .tensorflow.core.framework.resource_handle_pb2 import ResourceHandleProto
from .tensorflow.core.framework.tensor_pb2 import TensorProto, VariantTensorDataProto
from .tensorflow.core.framework.tensor_shape_pb2 import TensorShapeProto
from .tensorflow.core.framework.types_pb2 import (
    DT_BFLOAT16,
    DT_BOOL,
    DT_COMPLEX64,
    DT_COMPLEX128,
    DT_DOUBLE,
    DT_FLOAT,
    DT_FLOAT4_E2M1FN,
    DT_FLOAT8_E4M3B11FNUZ,
    DT_FLOAT8_E4M3FN,
    DT_FLOAT8_E4M3FNUZ,
    DT_FLOAT8_E5M2,
    DT_FLOAT8_E5M2FNUZ,
    DT_HALF,
    DT_INT2,
    DT_INT4,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_INVALID,
    DT_QINT8,
    DT_QINT16,
    DT_QINT32,
    DT_QUINT8,
    DT_QUINT16,
    DT_RESOURCE,
    DT_STRING,
    DT_UINT2,
    DT_UINT4,
    DT_UINT8,
    DT_UINT16,
    DT_UINT32,
    DT_UINT64,
    DT_VARIANT,
    DataType,
)
from .tensorflow.core.protobuf.error_codes_pb2 import Code as ErrorCode
from .tensorflow.core.protobuf.meta_graph_pb2 import SignatureDef, TensorInfo
from .tensorflow.core.protobuf.struct_pb2 import StructuredValue, TensorSpecProto, TypeSpecProto
from .tensorflow_serving.apis.classification_pb2 import (
    Class,
    ClassificationRequest,
    ClassificationResponse,
    ClassificationResult,
    Classifications,
)
from .tensorflow_serving.apis.get_model_metadata_pb2 import (
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    SignatureDefMap,
)
from .tensorflow_serving.apis.get_model_status_pb2 import (
    GetModelStatusRequest,
    GetModelStatusResponse,
    ModelVersionStatus,
)
from .tensorflow_serving.apis.inference_pb2 import (
    InferenceResult,
    InferenceTask,
    MultiInferenceRequest,
    MultiInferenceResponse,
)
from .tensorflow_serving.apis.input_pb2 import ExampleList, ExampleListWithContext, Input
from .tensorflow_serving.apis.model_management_pb2 import (
    ReloadConfigRequest,
    ReloadConfigResponse,
)
from .tensorflow_serving.apis.model_pb2 import ModelSpec
from .tensorflow_serving.apis.predict_pb2 import (
    PredictRequest,
    PredictResponse,
    PredictStreamedOptions,
)
from .tensorflow_serving.apis.regression_pb2 import (
    Regression,
    RegressionRequest,
    RegressionResponse,
    RegressionResult,
)
from .tensorflow_serving.apis.status_pb2 import StatusProto
from .tensorflow_serving.config.file_system_storage_path_source_pb2 import (
    FileSystemStoragePathSourceConfig,
)
from .tensorflow_serving.config.model_server_config_pb2 import (
    ModelConfig,
    ModelConfigList,
    ModelServerConfig,
)

if TYPE_CHECKING:
    from google.protobuf.any_pb2 import Any as _AnyType
    from google.protobuf.wrappers_pb2 import Int64Value as _Int64ValueType

# Our pool's copies of the well-known types our messages contain (typed as protobuf's classes,
# whose API they share). Imported by the generated modules above, so present by now.
Any = cast("type[_AnyType]", WELL_KNOWN["google.protobuf.Any"])
Int64Value = cast("type[_Int64ValueType]", WELL_KNOWN["google.protobuf.Int64Value"])

__all__ = [
    "DEFAULT_SIGNATURE",
    "DT_BFLOAT16",
    "DT_BOOL",
    "DT_COMPLEX64",
    "DT_COMPLEX128",
    "DT_DOUBLE",
    "DT_FLOAT",
    "DT_FLOAT4_E2M1FN",
    "DT_FLOAT8_E4M3B11FNUZ",
    "DT_FLOAT8_E4M3FN",
    "DT_FLOAT8_E4M3FNUZ",
    "DT_FLOAT8_E5M2",
    "DT_FLOAT8_E5M2FNUZ",
    "DT_HALF",
    "DT_INT2",
    "DT_INT4",
    "DT_INT8",
    "DT_INT16",
    "DT_INT32",
    "DT_INT64",
    "DT_INVALID",
    "DT_QINT8",
    "DT_QINT16",
    "DT_QINT32",
    "DT_QUINT8",
    "DT_QUINT16",
    "DT_RESOURCE",
    "DT_STRING",
    "DT_UINT2",
    "DT_UINT4",
    "DT_UINT8",
    "DT_UINT16",
    "DT_UINT32",
    "DT_UINT64",
    "DT_VARIANT",
    "POOL",
    "SIGNATURE_DEF_KEY",
    "Any",
    "BytesList",
    "Class",
    "ClassificationRequest",
    "ClassificationResponse",
    "ClassificationResult",
    "Classifications",
    "DataType",
    "ErrorCode",
    "Example",
    "ExampleList",
    "ExampleListWithContext",
    "Feature",
    "FeatureList",
    "FeatureLists",
    "Features",
    "FileSystemStoragePathSourceConfig",
    "FloatList",
    "GetModelMetadataRequest",
    "GetModelMetadataResponse",
    "GetModelStatusRequest",
    "GetModelStatusResponse",
    "InferenceResult",
    "InferenceTask",
    "Input",
    "Int64List",
    "Int64Value",
    "ModelConfig",
    "ModelConfigList",
    "ModelServerConfig",
    "ModelSpec",
    "ModelVersionStatus",
    "MultiInferenceRequest",
    "MultiInferenceResponse",
    "PredictRequest",
    "PredictResponse",
    "PredictStreamedOptions",
    "Regression",
    "RegressionRequest",
    "RegressionResponse",
    "RegressionResult",
    "ReloadConfigRequest",
    "ReloadConfigResponse",
    "ResourceHandleProto",
    "SequenceExample",
    "SignatureDef",
    "SignatureDefMap",
    "StatusProto",
    "StructuredValue",
    "TensorInfo",
    "TensorProto",
    "TensorShapeProto",
    "TensorSpecProto",
    "TypeSpecProto",
    "VariantTensorDataProto",
    "coerce",
    "from_json",
    "pack_signature_def_map",
    "to_json",
    "unpack_signature_def_map",
]
