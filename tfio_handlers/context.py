"""The per-request ``Context`` that decoders, encoders and user code receive.

It carries at least what SageMaker's TF Serving container gives ``input_handler``/``output_handler``
(model name and version, method, custom attributes, request content type, accept header, content
length, ``rest_uri``, ``grpc_port``), plus the signature metadata that typed decoding needs and the
response form the decoder chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .config import Limits, Settings
from .protos import DEFAULT_SIGNATURE

if TYPE_CHECKING:
    from .protos import SignatureDef

__all__ = ["Context", "Method", "ResponseForm", "parse_custom_attributes"]

Method = Literal["predict", "classify", "regress"]

ResponseForm = Literal["row", "columnar", "legacy", "tfs"]
"""How a JSON response is written: TF Serving's ``row`` (``predictions``) or ``columnar`` (``outputs``)
form for TF Serving REST bodies; for plain bodies ``legacy`` (proto3 JSON of the response) or ``tfs``
(TF Serving's REST form, row style), per :attr:`Settings.json_response_style` or an ``Accept`` parameter."""


def parse_custom_attributes(header: str | None) -> dict[str, str]:
    """Parse ``X-Amzn-SageMaker-Custom-Attributes``: comma-separated ``key=value`` pairs.

    Keys are case-sensitive as SageMaker sends them (``tfs-model-name``, ``tfs-model-version``,
    ``tfs-method``, ``tfs-signature``); entries without ``=`` are kept with an empty value.
    """
    attributes: dict[str, str] = {}
    if not header:
        return attributes
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key:
            attributes[key.strip()] = value.strip()
    return attributes


@dataclass(slots=True)
class Context:
    """What a request is about, beyond its body. One per request; codecs may write ``response_form``."""

    settings: Settings = field(default_factory=Settings)
    model_name: str | None = None
    model_version: int | None = None
    version_label: str | None = None
    method: Method | None = None
    """Set by the request (URL verb, a protobuf request type, ``tfs-method``), else chosen from the
    signature once it is known."""
    signature_name: str | None = None
    request_content_type: str = "application/json"
    accept_header: str = "application/json"
    content_length: int = 0
    custom_attributes: str = ""
    """The raw ``X-Amzn-SageMaker-Custom-Attributes`` value, as SageMaker's context has it."""
    attributes: dict[str, str] = field(default_factory=dict)
    """``custom_attributes`` parsed into a dict."""
    signature_defs: Mapping[str, SignatureDef] = field(default_factory=dict)
    """The model's signatures (name to ``SignatureDef``), when the pipeline knows them."""
    response_form: ResponseForm | None = None
    rest_uri: str | None = None
    """A TF Serving REST URL for this model and method, for handlers written for SageMaker's container."""
    grpc_port: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """The request headers, lower-cased names."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Free space for plugins and user code to pass things along one request."""
    request_id: str | None = None
    """The request's id (``X-Request-ID``, SageMaker's ``X-Amzn-RequestId``, or the one the
    observability middleware made): the same in every log line of the request and in its answer."""
    decode_seconds: float | None = None
    """Seconds the request body took to decode (codec or ``input_fn``), once decoded: for the
    stage metrics and the access log."""
    model_seconds: float | None = None
    """Seconds the backend call took (batching's wait included); summed over the calls of a
    ``transform_fn`` or ``handler`` that predicts more than once."""
    encode_seconds: float | None = None
    """Seconds the answer took to encode (codec or ``output_fn``), once encoded."""

    @property
    def signature(self) -> SignatureDef | None:
        """The chosen signature (``signature_name`` or ``serving_default``), if the model has it."""
        return self.signature_defs.get(self.signature_name or DEFAULT_SIGNATURE)

    @property
    def limits(self) -> Limits:
        """The settings' limits, for codecs."""
        return self.settings.limits
