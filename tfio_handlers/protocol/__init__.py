"""TF Serving request semantics: REST JSON ⇄ requests and responses, and ``tf.Example`` building.

:mod:`.rest_json` converts TF Serving REST bodies exactly as TF Serving does; :mod:`.examples`
builds ``tf.Example`` messages from TF Serving JSON or from plain values.
"""

from __future__ import annotations

from .examples import example_from_json_object, example_from_values
from .rest_json import (
    JsonFormat,
    classification_result_to_json,
    classify_request_from_json,
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
