"""One table of status codes and HTTP statuses for the three backends."""

from __future__ import annotations

import pytest

from tfio_handlers.backends.status import (
    GRPC_TO_HTTP,
    grpc_code_for_status,
    http_error,
    http_status_for_code,
)
from tfio_handlers.errors import BackendTimeout, BadRequest, HTTPError, NotFound


def test_codes_by_number_and_by_name_agree() -> None:
    """TensorFlow's OpError carries the number, grpc the name: both give TF Serving's status."""
    for number, name in enumerate(GRPC_TO_HTTP):
        assert http_status_for_code(number) == http_status_for_code(name) == GRPC_TO_HTTP[name]
    assert http_status_for_code(3) == 400 and http_status_for_code("NOT_FOUND") == 404
    assert http_status_for_code(99) == http_status_for_code(-1) == http_status_for_code("X") == 500


def test_the_tensorflow_codes_are_in_order() -> None:
    tf = pytest.importorskip("tensorflow")
    for name, status in GRPC_TO_HTTP.items():
        if name != "OK":
            assert http_status_for_code(getattr(tf.errors, name)) == status


@pytest.mark.parametrize(
    ("status", "cls"), [(400, BadRequest), (404, NotFound), (504, BackendTimeout), (409, HTTPError)]
)
def test_http_error_is_the_class_of_its_status(status: int, cls: type[HTTPError]) -> None:
    error = http_error(status, "why")
    assert type(error) is cls and error.status_code == status and error.message == "why"
    assert http_status_for_code(grpc_code_for_status(status)) == status
