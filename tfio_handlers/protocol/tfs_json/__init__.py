"""TF Serving's REST JSON, exactly: request bodies to requests, responses to TF Serving's text.

This package is ``tensorflow_serving/util/json_tensor.cc`` and the JSON side of
``http_rest_api_handler.cc`` in Python, one concept a module:

* :mod:`.parse`: the one entry that parses a body, offering it to a fast parser (orjson or the
  standard library) and confirming the result, with :mod:`.rapidjson_reader` (RapidJSON 1.1.0's
  exact acceptance and error texts) as the fallback; :mod:`.simd` parses numeric predict bodies
  straight into arrays with simdjson when it is installed;
* :mod:`.tensor`: one JSON value → one tensor's values, with TF Serving's shape and type checks;
* :mod:`.examples`: ``tf.Example`` from JSON objects (classify and regress);
* :mod:`.requests`: bodies → ``PredictRequest`` / ``ClassificationRequest`` / ``RegressionRequest``;
* :mod:`.responses` and :mod:`.text`: responses → TF Serving's response text, byte for byte
  (RapidJSON's ``PrettyWriter`` layout and ``WriteDecimal``); :mod:`.rapidjson_writer` writes the
  values TF Serving quotes in its error messages.
* :mod:`.client`: the client's end (the REST backend's): request messages → the bodies TF Serving
  reads, and TF Serving's answers → the response messages its gRPC API would return.
"""

from __future__ import annotations

from .examples import example_from_json_object
from .requests import (
    JsonFormat,
    classify_request_from_json,
    predict_arrays_from_json,
    predict_request_from_json,
    regress_request_from_json,
)
from .responses import (
    classification_result_to_json,
    predict_response_to_json,
    regression_result_to_json,
)

__all__ = [
    "JsonFormat",
    "classification_result_to_json",
    "classify_request_from_json",
    "example_from_json_object",
    "predict_arrays_from_json",
    "predict_request_from_json",
    "predict_response_to_json",
    "regress_request_from_json",
    "regression_result_to_json",
]
