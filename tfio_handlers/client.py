"""``Predictor``: the client side of an endpoint, so the seed document's example runs word for word.

    predictor = Predictor("http://localhost:8080")
    result = predictor.predict([6.4, 3.2, 4.5, 1.5])

It sends with the same codecs the server speaks (JSON, CSV, protobuf, npy), passes model, version,
method and signature as SageMaker custom attributes, and decodes the answer by its ``Content-Type``.
Only the standard library is used for HTTP, so the client adds no dependency.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf.message import Message

from .errors import HTTPError

__all__ = ["Predictor"]

_RESPONSE_TYPES = {
    "predict": "tensorflow.serving.PredictResponse",
    "classify": "tensorflow.serving.ClassificationResponse",
    "regress": "tensorflow.serving.RegressionResponse",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


class Predictor:
    """Send requests to an endpoint (``.../invocations`` is appended to a bare server URL)."""

    def __init__(
        self,
        endpoint: str,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        model_name: str | None = None,
        model_version: int | str | None = None,
        signature: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url = (
            endpoint
            if endpoint.rstrip("/").endswith("/invocations")
            else (endpoint.rstrip("/") + "/invocations")
        )
        self.content_type = content_type
        self.accept = accept
        self.model_name = model_name
        self.model_version = model_version
        self.signature = signature
        self.timeout = timeout

    def predict(self, data: Any, *, method: str | None = None) -> Any:
        """Send ``data`` and return the decoded answer."""
        body, content_type = self._serialize(data)
        headers = {"Content-Type": content_type, "Accept": self.accept}
        attributes = self._attributes(method)
        if attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                payload = answer.read()
                content_type = answer.headers.get("Content-Type", self.accept)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode("utf-8", "replace")
            raise HTTPError(message, status=exc.code) from None
        return self._deserialize(payload, content_type, method)

    def classify(self, data: Any) -> Any:
        """``predict`` with ``tfs-method=classify``."""
        return self.predict(data, method="classify")

    def regress(self, data: Any) -> Any:
        """``predict`` with ``tfs-method=regress``."""
        return self.predict(data, method="regress")

    def _attributes(self, method: str | None) -> str:
        pairs = []
        if method:
            pairs.append(f"tfs-method={method}")
        if self.model_name:
            pairs.append(f"tfs-model-name={self.model_name}")
        if self.model_version is not None:
            pairs.append(f"tfs-model-version={self.model_version}")
        if self.signature:
            pairs.append(f"tfs-signature={self.signature}")
        return ",".join(pairs)

    def _serialize(self, data: Any) -> tuple[bytes, str]:
        """The body for ``data`` and its content type (a bare tensor names its message type)."""
        kind = self.content_type.split(";")[0].strip().lower()
        if kind in ("application/x-protobuf", "application/octet-stream") and not isinstance(
            data, (bytes, bytearray)
        ):
            if not isinstance(data, Message):
                from .tensors import to_tensor_proto

                data = to_tensor_proto(data)
            return bytes(data.SerializeToString()), f"{kind}; proto={data.DESCRIPTOR.full_name}"
        return self._body(data), self.content_type

    def _body(self, data: Any) -> bytes:
        kind = self.content_type.split(";")[0].strip().lower()
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
        if isinstance(data, Message):
            if kind in ("application/json",):
                from google.protobuf import json_format

                from .protos import POOL

                return json_format.MessageToJson(data, descriptor_pool=POOL).encode()
            return bytes(data.SerializeToString())
        if kind == "application/json":
            return json.dumps(_jsonable(data)).encode()
        if kind == "application/jsonlines":
            rows = data if isinstance(data, (list, tuple, np.ndarray)) else [data]
            return "\n".join(json.dumps(_jsonable(r)) for r in rows).encode()
        if kind == "text/csv":
            array = np.asarray(data)
            rows = array.reshape(1, -1) if array.ndim <= 1 else array.reshape(array.shape[0], -1)
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(
                [[_jsonable(v) for v in row] for row in rows]
            )
            return out.getvalue().encode()
        if kind == "application/x-npy":
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(data), allow_pickle=False)
            return buffer.getvalue()
        raise ValueError(f"Predictor cannot serialize for {self.content_type}; pass bytes")

    def _deserialize(self, payload: bytes, content_type: str, method: str | None) -> Any:
        kind = content_type.split(";")[0].strip().lower()
        if "json" in kind and "lines" not in kind:
            return json.loads(payload) if payload else None
        if kind in ("application/jsonlines", "application/jsons"):
            return [json.loads(line) for line in payload.splitlines() if line.strip()]
        if kind == "text/csv":
            return list(csv.reader(io.StringIO(payload.decode("utf-8"))))
        if kind == "application/x-npy":
            return np.load(io.BytesIO(payload), allow_pickle=False)
        if kind in ("application/x-protobuf", "application/octet-stream"):
            from . import protos

            name = _RESPONSE_TYPES.get(method or "predict", "tensorflow.serving.PredictResponse")
            cls = getattr(protos, name.rsplit(".", 1)[1])
            return cls.FromString(payload)
        return payload
