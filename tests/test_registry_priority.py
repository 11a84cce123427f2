"""The registry's per-type facts come from the codec that is asked first, not the first registered."""

from __future__ import annotations

from tfio_handlers.hookspecs import Register, hookimpl
from tfio_handlers.registry import Registry


class BinaryJSON:
    """A plugin that deliberately takes over application/json and says its bodies are bytes."""

    @hookimpl
    def register_codecs(self, register: Register) -> None:
        register(
            "application/json",
            decode=lambda body, media_type, context: None,
            aliases=("application/x-json-bytes",),
            text=False,
        )


def test_a_plugin_overriding_a_builtin_type_decides_its_text_flag() -> None:
    registry = Registry()
    assert registry.is_text("application/json")  # the built-in JSON codec's flag
    registry.register(BinaryJSON(), name="binary-json")
    # The plugin is asked before the built-in, so user code must see its bodies as it says: bytes.
    assert not registry.is_text("application/json")
    assert not registry.is_text("application/x-json-bytes")
    registry.unregister("binary-json")
    assert registry.is_text("application/json")
