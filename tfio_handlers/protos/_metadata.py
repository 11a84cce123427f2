"""The ``signature_def`` entry of ``GetModelMetadataResponse.metadata``.

TF Serving returns a model's signatures as ``metadata["signature_def"]``: a ``google.protobuf.Any``
holding a ``tensorflow.serving.SignatureDefMap``. Packing and unpacking it by hand means knowing
the key, the type URL and the cross-pool rules; these two functions do it once.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message

from ._coerce import coerce
from .tensorflow.core.protobuf.meta_graph_pb2 import SignatureDef
from .tensorflow_serving.apis.get_model_metadata_pb2 import (
    GetModelMetadataResponse,
    SignatureDefMap,
)

__all__ = ["SIGNATURE_DEF_KEY", "pack_signature_def_map", "unpack_signature_def_map"]

SIGNATURE_DEF_KEY = "signature_def"
"""The metadata key TF Serving uses (and the only ``metadata_field`` it supports)."""

DEFAULT_SIGNATURE = "serving_default"
"""The signature a request naming none goes to (TensorFlow's ``DEFAULT_SERVING_SIGNATURE_DEF_KEY``)."""


def pack_signature_def_map(
    response: GetModelMetadataResponse,
    signatures: Message | Mapping[str, Message],
) -> GetModelMetadataResponse:
    """Store ``signatures`` as ``response.metadata["signature_def"]`` and return ``response``.

    ``signatures`` is a ``SignatureDefMap`` (ours or TF Serving's) or a mapping of signature name
    to ``SignatureDef`` (ours or TensorFlow's). An existing entry is replaced. The ``Any`` gets TF
    Serving's type URL, ``type.googleapis.com/tensorflow.serving.SignatureDefMap``.
    """
    if isinstance(signatures, Mapping):
        packed = SignatureDefMap()
        for name, signature in signatures.items():
            packed.signature_def[name].CopyFrom(coerce(signature, SignatureDef))
    else:
        packed = coerce(signatures, SignatureDefMap)
    response.metadata[SIGNATURE_DEF_KEY].Pack(packed)
    return response


def unpack_signature_def_map(response: GetModelMetadataResponse | Message) -> SignatureDefMap:
    """Return the ``SignatureDefMap`` in ``response.metadata["signature_def"]`` (as our class).

    ``response`` may be our ``GetModelMetadataResponse`` or TF Serving's. Raises :class:`KeyError`
    when the entry is absent and :class:`ValueError` when it holds another message type.
    """
    ours = coerce(response, GetModelMetadataResponse)
    if SIGNATURE_DEF_KEY not in ours.metadata:
        raise KeyError(f"model metadata has no {SIGNATURE_DEF_KEY!r} entry")
    entry = ours.metadata[SIGNATURE_DEF_KEY]
    result = SignatureDefMap()
    if not entry.Unpack(result):
        raise ValueError(
            f"model metadata {SIGNATURE_DEF_KEY!r} holds {entry.TypeName() or 'nothing'!r}, "
            f"not {SignatureDefMap.DESCRIPTOR.full_name}"
        )
    return result
