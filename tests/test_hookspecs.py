"""Every hook is documented and tested (datasette's rule): a new hook cannot land without both."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tfio_handlers import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [
    name
    for name, value in vars(hookspecs).items()
    if callable(value) and hasattr(value, "tfio_handlers_spec")
]


def test_there_are_hooks() -> None:
    assert set(HOOKS) == {"register_codecs", "register_routes", "decode", "encode"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_contract_docstring(hook: str) -> None:
    assert len(inspect.getdoc(getattr(hookspecs, hook)) or "") > 80


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    assert re.search(rf"^### `{hook}\(", (ROOT / "docs" / "plugins.md").read_text(), re.M)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_in_a_test(hook: str) -> None:
    sources = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert re.search(rf"@hookimpl[^\n]*\n\s*def {hook}\(", sources)


# -- the hook types say what the registry and the pipeline do ----------------------------------


def _encoding_plugin(answer: object) -> object:
    class Plugin:
        @hookspecs.hookimpl
        def register_codecs(self, register: hookspecs.Register) -> None:
            def encoder(response: object, media_type: object, context: object) -> object:
                return answer

            register("application/x-test", encode=encoder)  # type: ignore[arg-type]

    return Plugin()


@pytest.mark.parametrize(
    ("answer", "sent"),
    [
        (b"body", (b"body", "application/x-test")),
        (bytearray(b"body"), (b"body", "application/x-test")),
        (memoryview(b"body"), (b"body", "application/x-test")),
        ("café", ("café".encode(), "application/x-test")),
        (("text", "text/plain; charset=utf-8"), (b"text", "text/plain; charset=utf-8")),
        ((b"raw", "application/octet-stream"), (b"raw", "application/octet-stream")),
    ],
    ids=["bytes", "bytearray", "memoryview", "str", "str-tuple", "bytes-tuple"],
)
def test_every_encoded_form_is_sent(answer: object, sent: tuple[bytes, str]) -> None:
    from tfio_handlers.context import Context
    from tfio_handlers.media import MediaType
    from tfio_handlers.registry import Registry

    registry = Registry(builtins=False)
    registry.register(_encoding_plugin(answer), name="test")
    assert registry.encode(None, MediaType("application/x-test"), Context()) == sent


def test_an_encoder_returning_no_body_is_a_500_and_none_a_406() -> None:
    from tfio_handlers.context import Context
    from tfio_handlers.errors import HTTPError, NotAcceptable
    from tfio_handlers.media import MediaType
    from tfio_handlers.registry import Registry

    registry = Registry(builtins=False)
    registry.register(_encoding_plugin(42), name="test")
    with pytest.raises(HTTPError, match="returned int, expected bytes or str") as caught:
        registry.encode(None, MediaType("application/x-test"), Context())
    assert caught.value.status_code == 500
    registry = Registry(builtins=False)
    registry.register(_encoding_plugin(None), name="test")
    with pytest.raises(NotAcceptable):
        registry.encode(None, MediaType("application/x-test"), Context())


@pytest.mark.tensorflow
def test_a_decoder_returning_bytes_is_read_as_a_tf_serving_json_body(
    embedded_backend: object,
) -> None:
    """``register_codecs``' contract: ``bytes``/``str`` from a decoder is a TF Serving REST JSON body."""
    import json

    from tfio_handlers.config import Settings
    from tfio_handlers.pipeline import Pipeline
    from tfio_handlers.registry import Registry

    class Rewriter:
        @hookspecs.hookimpl
        def register_codecs(self, register: hookspecs.Register) -> None:
            def decoder(body: bytes, media_type: object, context: object) -> str:
                numbers = [float(word) for word in body.split()]
                return json.dumps({"instances": numbers})

            register("text/x-words", decode=decoder)

    registry = Registry()
    registry.register(Rewriter(), name="rewriter")
    pipeline = Pipeline(embedded_backend, settings=Settings.from_env({}), registry=registry)  # type: ignore[arg-type]
    answer = pipeline.invoke(b"1 2 5", {"Content-Type": "text/x-words"})
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == {"predictions": [2.5, 3.0, 4.5]}
