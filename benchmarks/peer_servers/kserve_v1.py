"""KServe's Python model server (V1 protocol) on a TensorFlow SavedModel, for the peer benchmark: a
``kserve.Model`` whose ``predict`` calls the signature, as KServe's custom-model docs show. Runs in
its own venv (kserve pins protobuf<7), KServe's defaults otherwise::

    BENCH_MODELS='iris=/m/iris/1:predict,dense784=/m/dense784/1:serving_default' \\
        python kserve_v1.py HTTP_PORT GRPC_PORT
"""

import os
import sys
from typing import Any

import kserve
import numpy as np
import tensorflow as tf


class SavedModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str, signature: str) -> None:
        super().__init__(name)
        self.path, self.signature = path, signature
        self.load()

    def load(self) -> bool:
        self.function = tf.saved_model.load(self.path).signatures[self.signature]
        ((self.argument, spec),) = self.function.structured_input_signature[1].items()
        self.dtype = spec.dtype.as_numpy_dtype
        self.ready = True
        return True

    def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        features = np.asarray(payload["instances"], self.dtype)
        outputs = self.function(**{self.argument: tf.constant(features)})
        arrays = {
            k: (
                np.char.decode(v.numpy().astype(np.bytes_)) if v.dtype == tf.string else v.numpy()
            ).tolist()
            for k, v in outputs.items()
        }  # KServe answers with orjson, which refuses bytes
        if len(arrays) == 1:
            return {"predictions": next(iter(arrays.values()))}
        return {
            "predictions": [
                dict(zip(arrays, row, strict=True)) for row in zip(*arrays.values(), strict=True)
            ]
        }


if __name__ == "__main__":
    served = []
    for item in os.environ["BENCH_MODELS"].split(","):
        name, _, rest = item.partition("=")
        path, _, signature = rest.rpartition(":")
        served.append(SavedModel(name, path, signature))
    http_port, grpc_port = int(sys.argv[1]), int(sys.argv[2])
    del sys.argv[1:]  # kserve parses the command line too
    kserve.ModelServer(http_port=http_port, grpc_port=grpc_port).start(served)
