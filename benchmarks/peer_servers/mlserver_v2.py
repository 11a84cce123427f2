"""MLServer (V2 protocol) on a TensorFlow SavedModel, for the peer benchmark: a custom runtime whose
``predict`` calls the signature, decoding and encoding with MLServer's ``NumpyCodec``. MLServer has
no TensorFlow runtime of its own; this is what its custom-runtime docs show. Runs in its own venv
with ``mlserver start DIR`` (``peers.py`` writes the settings files, ``implementation`` =
``mlserver_v2.SavedModelRuntime``, ``parameters.uri`` = the version directory,
``parameters.extra.signature``).
"""

from typing import Any

import numpy as np
import tensorflow as tf
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SavedModelRuntime(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        parameters: Any = self.settings.parameters
        function = tf.saved_model.load(parameters.uri).signatures[parameters.extra["signature"]]
        ((self.argument, spec),) = function.structured_input_signature[1].items()
        self.function, self.dtype = function, spec.dtype.as_numpy_dtype
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0]).astype(self.dtype, copy=False)
        outputs = self.function(**{self.argument: tf.constant(features)})
        encoded = []
        for name, tensor in outputs.items():
            array = tensor.numpy()
            if array.dtype.kind in "SO":
                strings = [b.decode() for b in array.ravel()]
                encoded.append(StringCodec.encode_output(name, strings))
            else:
                encoded.append(NumpyCodec.encode_output(name, np.ascontiguousarray(array)))
        return InferenceResponse(model_name=self.name, outputs=encoded)
