"""KServe's own REST client against a running server: run by ``test_openinference_kserve.py`` with the
Python of a separate venv holding ``kserve`` (it needs protobuf < 7; the dev venv has 7).

``python kserve_client_script.py BASE_URL`` prints one JSON document: what each call answered.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


def _v2_request(model: str, binary: bool) -> InferRequest:
    x = InferInput("x", [4], "FP32")
    x.set_data_from_numpy(np.array([1.0, 2.0, 5.0, -3.5], dtype=np.float32), binary_data=binary)
    outputs = [RequestedOutput("y", parameters={"binary_data": binary})]
    return InferRequest(model, [x], request_id=f"req-{binary}", request_outputs=outputs)


def _mixed_request(binary: bool) -> InferRequest:
    a = InferInput("a", [2, 2], "FP32")
    a.set_data_from_numpy(np.array([[1.5, 2.0], [3.0, 4.25]], np.float32), binary_data=binary)
    b = InferInput("b", [2], "INT64")
    b.set_data_from_numpy(np.array([7, -2], np.int64), binary_data=binary)
    c = InferInput("c", [2], "BYTES")
    c.set_data_from_numpy(np.array([b"abc", b"de"], dtype=np.object_), binary_data=binary)
    return InferRequest("multi_input", [a, b, c], request_id="mixed")


def _outputs(response: Any) -> dict[str, Any]:
    answered = {}
    for output in response.outputs:
        array = output.as_numpy()
        values = [v.decode() if isinstance(v, bytes) else v for v in array.reshape(-1).tolist()]
        answered[output.name] = {
            "datatype": output.datatype,
            "shape": list(output.shape),
            "dtype": str(array.dtype),
            "data": values,
        }
    return answered


async def main(base: str) -> dict[str, Any]:
    report: dict[str, Any] = {}
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=60))
    try:
        report["live"] = await v2.is_server_live(base)
        report["ready"] = await v2.is_server_ready(base)
        report["model_ready"] = await v2.is_model_ready(base, "half_plus_two")
        report["unknown_model_ready"] = await v2.is_model_ready(base, "no_such_model")
        for binary in (False, True):
            headers: dict[str, str] = {}
            response = await v2.infer(
                base,
                _v2_request("half_plus_two", binary),
                "half_plus_two",
                response_headers=headers,
            )
            report[f"infer_{'binary' if binary else 'json'}"] = {
                "content_type": headers.get("content-type"),
                "model_name": response.model_name,
                "id": response.id,
                "outputs": _outputs(response),
            }
            mixed = await v2.infer(base, _mixed_request(binary), "multi_input")
            report[f"mixed_{'binary' if binary else 'json'}"] = _outputs(mixed)
        try:
            await v2.infer(base, _v2_request("no_such_model", False), "no_such_model")
            report["unknown_model"] = "answered"
        except httpx.HTTPStatusError as exc:
            report["unknown_model"] = {"status": exc.response.status_code, "message": str(exc)}
    finally:
        await v2.close()
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=60))
    try:
        body = {"instances": [1.0, 2.0, 5.0, -3.5]}
        report["v1_predict"] = await v1.infer(base, body, "half_plus_two")
    finally:
        await v1.close()
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
