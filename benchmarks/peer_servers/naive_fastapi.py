"""The naive FastAPI server of the peer benchmark: what a user writes in 20 lines. The model is called
on the event loop, JSON by FastAPI, numbers through ``tolist``. Runs in the development venv::

    BENCH_MODELS='iris=/m/iris/1,dense784=/m/dense784/1' python naive_fastapi.py PORT
"""

import os
import sys

import numpy as np
import tensorflow as tf
import uvicorn
from fastapi import FastAPI, Request

models = {
    name: tf.saved_model.load(path)
    for name, _, path in (item.partition("=") for item in os.environ["BENCH_MODELS"].split(","))
}
app = FastAPI()


@app.post("/v1/models/{name}:predict")
async def predict(name: str, request: Request) -> dict[str, object]:
    body = await request.json()
    function = models[name].signatures[body.get("signature_name", "serving_default")]
    ((argument, spec),) = function.structured_input_signature[1].items()
    features = np.asarray(body["instances"], spec.dtype.as_numpy_dtype)
    outputs = {
        k: v.numpy().tolist() for k, v in function(**{argument: tf.constant(features)}).items()
    }
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values()))}
    return {
        "predictions": [
            dict(zip(outputs, row, strict=True)) for row in zip(*outputs.values(), strict=True)
        ]
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
