"""TF Serving request semantics, without TensorFlow.

* :mod:`.tfs_json`: TF Serving's REST JSON, read and written exactly as TF Serving does;
* :mod:`.requests`: plain values (a JSON list, CSV rows, an npy array, ``input_fn``'s answer) →
  TF Serving requests for a signature; :mod:`.examples`: ``tf.Example`` from plain values;
* :mod:`.signatures`: which method a signature serves, and TF Serving's lookup rules;
* :mod:`.responses`: responses in the proto3 JSON form SageMaker's legacy container answered;
* :mod:`.answer_size`: what an answer will cost to write, checked before writing it.
"""

from __future__ import annotations

from .examples import example_from_values
from .tfs_json import (
    JsonFormat,
    classification_result_to_json,
    classify_request_from_json,
    example_from_json_object,
    predict_request_from_json,
    predict_response_to_json,
    regress_request_from_json,
    regression_result_to_json,
)

__all__ = [
    "JsonFormat",
    "classification_result_to_json",
    "classify_request_from_json",
    "example_from_json_object",
    "example_from_values",
    "predict_request_from_json",
    "predict_response_to_json",
    "regress_request_from_json",
    "regression_result_to_json",
]
