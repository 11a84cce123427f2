"""Settings from the environment, and the error family."""

from __future__ import annotations

import json

import pytest

from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import parse_custom_attributes
from tfio_handlers.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    HTTPError,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServerBusy,
    Unimplemented,
    UnsupportedMediaType,
    UserCodeError,
)


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.default_accept == "application/json"
    assert settings.json_response_style == "legacy"
    assert not settings.enable_pickle and not settings.unsafe_pickle
    assert settings.load_plugins and settings.allowed_plugins is None
    assert settings.program == "inference.py"


def test_sagemaker_and_own_variables() -> None:
    settings = Settings.from_env(
        {
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "6",
            "SAGEMAKER_PROGRAM": "entry.py",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "7",
            "TFIO_HANDLERS_JSON_RESPONSE": "tfs",
            "TFIO_HANDLERS_ENABLE_PICKLE": "true",
            "TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD": "1",
            "TFIO_HANDLERS_PLUGINS": "a, b",
            "TFIO_HANDLERS_MAX_ELEMENTS": "10",
        }
    )
    assert settings.default_accept == "text/csv"
    assert settings.limits.max_body_bytes == 6 * 1024 * 1024
    assert settings.limits.max_elements == 10
    assert settings.program == "entry.py" and settings.request_timeout == 7.0
    assert settings.json_response_style == "tfs" and settings.enable_pickle
    assert not settings.load_plugins and settings.allowed_plugins == frozenset({"a", "b"})


def test_bad_values_are_refused_with_the_name() -> None:
    with pytest.raises(BadRequest, match="SAGEMAKER_MAX_PAYLOAD_IN_MB"):
        Settings.from_env({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "lots"})
    with pytest.raises(BadRequest, match="SAGEMAKER_MAX_PAYLOAD_IN_MB"):
        Settings.from_env({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "-1"})
    with pytest.raises(BadRequest, match="TFIO_HANDLERS_JSON_RESPONSE"):
        Settings.from_env({"TFIO_HANDLERS_JSON_RESPONSE": "xml"})


LIMIT_VARIABLES = {
    "TFIO_HANDLERS_MAX_ELEMENTS": "max_elements",
    "TFIO_HANDLERS_MAX_DEPTH": "max_depth",
    "TFIO_HANDLERS_MAX_STRING_BYTES": "max_string_bytes",
    "TFIO_HANDLERS_MAX_RESPONSE_BYTES": "max_response_bytes",
    "TFIO_HANDLERS_MAX_EXAMPLES": "max_examples",
    "TFIO_HANDLERS_MAX_FILL_BYTES": "max_fill_bytes",
}


@pytest.mark.parametrize("name", sorted(LIMIT_VARIABLES))
def test_a_limit_variable_is_read_zero_keeps_the_default_and_negative_stops(name: str) -> None:
    field = LIMIT_VARIABLES[name]
    default = getattr(Limits(), field)
    assert getattr(Settings.from_env({name: "7"}, load_plugins=False).limits, field) == 7
    assert getattr(Settings.from_env({name: "0"}, load_plugins=False).limits, field) == default
    with pytest.raises(BadRequest, match=name):
        Settings.from_env({name: "-1"}, load_plugins=False)


def test_limits() -> None:
    limits = Limits(max_body_bytes=10, max_elements=5)
    limits.check_body(10)
    with pytest.raises(PayloadTooLarge):
        limits.check_body(11)
    with pytest.raises(PayloadTooLarge):
        limits.check_elements(6)


def test_response_limit_default_environment_and_check() -> None:
    assert Limits().max_response_bytes == 100 * 1024 * 1024
    settings = Settings.from_env({"TFIO_HANDLERS_MAX_RESPONSE_BYTES": "1000"})
    assert settings.limits.max_response_bytes == 1000
    with pytest.raises(BadRequest, match="TFIO_HANDLERS_MAX_RESPONSE_BYTES"):
        Settings.from_env({"TFIO_HANDLERS_MAX_RESPONSE_BYTES": "big"})
    limits = Limits(max_response_bytes=100)
    limits.check_response(100, "output 'y'", [50, 0], "text/csv")
    with pytest.raises(PayloadTooLarge) as info:
        limits.check_response(101, "output 'y'", [50, 0], "text/csv")
    assert "output 'y' of shape [50, 0]" in info.value.message
    assert "limit of 100 bytes" in info.value.message


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (BadRequest, 400),
        (NotFound, 404),
        (NotAcceptable, 406),
        (PayloadTooLarge, 413),
        (UnsupportedMediaType, 415),
        (UserCodeError, 500),
        (Unimplemented, 501),
        (BackendUnavailable, 503),
        (BackendTimeout, 504),
        (RequestTimeout, 408),
        (ServerBusy, 503),
    ],
)
def test_each_error_carries_its_status_and_json_body(cls: type[HTTPError], status: int) -> None:
    error = cls("what went wrong: ünïcode")
    assert error.status_code == status
    assert json.loads(error.to_json()) == {"error": "what went wrong: ünïcode"}


def test_http_error_with_own_status() -> None:
    assert HTTPError("teapot", status=418).status_code == 418


def test_busy_and_request_timeout_carry_their_headers() -> None:
    assert ("retry-after", "1") in ServerBusy("busy").headers
    assert ("connection", "close") in RequestTimeout("slow").headers
    assert BadRequest("bad").headers == ()


def test_custom_attributes() -> None:
    assert parse_custom_attributes("tfs-model-name=iris, tfs-method=classify,flag") == {
        "tfs-model-name": "iris",
        "tfs-method": "classify",
        "flag": "",
    }
    assert parse_custom_attributes(None) == {}


def test_serving_limits_from_the_environment_and_their_defaults() -> None:
    defaults = Settings.from_env({})
    assert (
        defaults.max_concurrent_requests,
        defaults.header_timeout,
        defaults.body_timeout,
        defaults.keep_alive_timeout,
        defaults.max_connections,
    ) == (64, 10.0, 60.0, 5.0, 1000)
    settings = Settings.from_env(
        {
            "TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS": "3",
            "TFIO_HANDLERS_HEADER_TIMEOUT": "1.5",
            "TFIO_HANDLERS_BODY_TIMEOUT": "0",
            "TFIO_HANDLERS_KEEP_ALIVE_TIMEOUT": "75",
            "TFIO_HANDLERS_MAX_CONNECTIONS": "20",
        }
    )
    assert (
        settings.max_concurrent_requests,
        settings.header_timeout,
        settings.body_timeout,
        settings.keep_alive_timeout,
        settings.max_connections,
    ) == (3, 1.5, 0.0, 75.0, 20)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS", "0"),
        ("TFIO_HANDLERS_MAX_CONCURRENT_REQUESTS", "many"),
        ("TFIO_HANDLERS_HEADER_TIMEOUT", "-1"),
        ("TFIO_HANDLERS_BODY_TIMEOUT", "soon"),
        ("TFIO_HANDLERS_KEEP_ALIVE_TIMEOUT", "nan"),
        ("TFIO_HANDLERS_MAX_CONNECTIONS", "0"),
    ],
)
def test_serving_limits_refuse_nonsense_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(BadRequest, match=name):
        Settings.from_env({name: value})


def test_from_env_defaults_are_the_fields_defaults() -> None:
    """Each default is named once, on its field: reading an empty environment changes nothing."""
    assert Settings.from_env({}) == Settings()
