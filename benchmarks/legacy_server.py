"""The legacy-style baseline server: Flask, ``json.loads`` + ``tf.make_tensor_proto``, TensorFlow in
process, ``MessageToJson`` — what SageMaker's legacy TensorFlow serving stack did per request, minus
the gRPC hop to a separate TF Serving process (which would only make it slower).

Served by gunicorn's threaded worker (``gthread``), the WSGI server those containers used::

    BENCH_MODELS='iris=/tmp/m/iris/1,dense784=/tmp/m/dense784/1' \\
        python -m gunicorn -k gthread --threads 16 -w 1 -b 127.0.0.1:8081 \\
        --chdir benchmarks 'legacy_server:create_app()'

``POST /invocations`` takes a TF Serving REST predict body (``{"instances": ...}``, optional
``signature_name``) for the model named by the SageMaker custom attribute ``tfs-model-name`` (else
the first model) and answers with ``MessageToJson`` of the ``PredictResponse``. ``GET /ping`` is 200.
"""

from __future__ import annotations

import json
import os
from typing import Any


def create_app() -> Any:
    """The Flask app, with every model of ``BENCH_MODELS`` loaded."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from flask import Flask, Response, request
    from google.protobuf import json_format
    from tensorflow_serving.apis import predict_pb2

    models: dict[str, Any] = {}
    for item in os.environ["BENCH_MODELS"].split(","):
        name, _, path = item.partition("=")
        models[name] = tf.saved_model.load(path)
    default = next(iter(models))
    app = Flask("legacy")

    @app.get("/ping")
    def ping() -> Response:
        return Response("", status=200)

    @app.post("/invocations")
    def invocations() -> Response:
        attributes = request.headers.get("X-Amzn-SageMaker-Custom-Attributes", "")
        pairs = dict(item.strip().partition("=")[::2] for item in attributes.split(",") if item)
        model_name = pairs.get("tfs-model-name", default)
        data = json.loads(request.get_data())
        signature_name = data.get("signature_name", "serving_default")
        function = models[model_name].signatures[signature_name]
        ((input_name, spec),) = function.structured_input_signature[1].items()
        predict_request = predict_pb2.PredictRequest()
        predict_request.model_spec.name = model_name
        predict_request.model_spec.signature_name = signature_name
        predict_request.inputs[input_name].CopyFrom(
            tf.make_tensor_proto(data["instances"], dtype=spec.dtype)
        )
        feed = tf.constant(tf.make_ndarray(predict_request.inputs[input_name]))
        outputs = function(**{input_name: feed})
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(predict_request.model_spec)
        for alias, tensor in outputs.items():
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
        return Response(json_format.MessageToJson(response), mimetype="application/json")

    return app
