"""The registry: hooks, priorities, conflicts, caching, entry points."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from tfio_handlers.hookspecs import hookimpl
from tfio_handlers.media import MediaType
from tfio_handlers.registry import Kind, PluginConflict, Registry


def codec_plugin(
    media_type: str, tag: str, *, aliases: tuple[str, ...] = (), passes: bool = False
) -> Any:
    """A plugin object that decodes to ``(tag, body)`` and encodes to ``tag`` bytes."""

    class Plugin:
        @hookimpl
        def register_codecs(self, register: Any) -> None:
            register(
                media_type,
                decode=lambda body, mt, ctx: None if passes else (tag, body, mt.essence),
                encode=lambda response, mt, ctx: None if passes else f"{tag}:{response}",
                aliases=aliases,
            )

    return Plugin()


class AnyDecoder:
    def __init__(self, tag: str, only: str | None = None) -> None:
        self.tag, self.only = tag, only

    @hookimpl
    def decode(self, body: bytes, media_type: MediaType, context: Context) -> Any:
        if self.only is not None and media_type.essence != self.only:
            return None
        return (self.tag, body)

    @hookimpl
    def encode(self, response: Any, media_type: MediaType, context: Context) -> Any:
        if self.only is not None and media_type.essence != self.only:
            return None
        return f"{self.tag}:{response}".encode(), "application/x-custom"


def decode(registry: Registry, body: bytes, media_type: str) -> Any:
    return registry.decode(body, MediaType(media_type), Context())


def test_builtin_third_party_user_order() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("text/csv", "builtin"), name="b", kind=Kind.BUILTIN)
    assert decode(registry, b"x", "text/csv")[0] == "builtin"
    registry.register(codec_plugin("text/csv", "third"), name="t", kind=Kind.PLUGIN)
    assert decode(registry, b"x", "text/csv")[0] == "third"
    registry.register(AnyDecoder("user"), name="u", kind=Kind.USER)
    assert decode(registry, b"x", "text/csv")[0] == "user"


def test_registration_order_does_not_change_priority() -> None:
    registry = Registry(builtins=False)
    registry.register(AnyDecoder("user"), name="u", kind=Kind.USER)
    registry.register(codec_plugin("text/csv", "third"), name="t", kind=Kind.PLUGIN)
    registry.register(codec_plugin("text/csv", "builtin"), name="b", kind=Kind.BUILTIN)
    assert decode(registry, b"x", "text/csv")[0] == "user"


def test_none_falls_through_to_the_next() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("text/csv", "builtin"), name="b", kind=Kind.BUILTIN)
    registry.register(codec_plugin("text/csv", "third", passes=True), name="t")
    registry.register(
        AnyDecoder("user", only="application/python-pickle"), name="u", kind=Kind.USER
    )
    assert decode(registry, b"x", "text/csv")[0] == "builtin"


def test_unknown_media_type_is_415_listing_supported() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("text/csv", "b"), name="b", kind=Kind.BUILTIN)
    with pytest.raises(UnsupportedMediaType) as info:
        decode(registry, b"x", "image/gif")
    assert info.value.status_code == 415
    assert "text/csv" in info.value.message


def test_aliases_resolve_to_the_canonical_codec() -> None:
    registry = Registry(builtins=False)
    registry.register(
        codec_plugin("application/x-protobuf", "pb", aliases=("application/octet-stream",)),
        name="pb",
        kind=Kind.BUILTIN,
    )
    tag, _, essence = decode(registry, b"x", "application/octet-stream")
    assert (tag, essence) == ("pb", "application/x-protobuf")
    assert registry.canonical("application/octet-stream") == "application/x-protobuf"


def test_a_specific_claim_beats_an_alias_of_the_same_kind() -> None:
    registry = Registry(builtins=False)
    registry.register(
        codec_plugin("application/x-protobuf", "pb", aliases=("application/octet-stream",)),
        name="pb",
    )
    registry.register(codec_plugin("application/octet-stream", "raw"), name="raw")
    assert decode(registry, b"x", "application/octet-stream")[0] == "raw"


def test_same_kind_same_type_is_a_conflict_reported_at_check() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("text/csv", "one"), name="one")
    registry.register(codec_plugin("text/csv", "two"), name="two")
    with pytest.raises(PluginConflict) as info:
        registry.check()
    assert "'one'" in info.value.message and "'two'" in info.value.message


def test_cache_is_invalidated_when_plugins_change() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("text/csv", "builtin"), name="b", kind=Kind.BUILTIN)
    assert decode(registry, b"x", "text/csv")[0] == "builtin"
    registry.register(codec_plugin("text/csv", "third"), name="t")
    assert decode(registry, b"x", "text/csv")[0] == "third"
    registry.unregister("t")
    assert decode(registry, b"x", "text/csv")[0] == "builtin"


def test_encode_returns_body_and_content_type() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("text/csv", "csv"), name="b", kind=Kind.BUILTIN)
    media = registry.negotiate("text/csv", "application/json")
    assert registry.encode("r", media, Context()) == (b"csv:r", "text/csv")


def test_encode_tuple_sets_content_type() -> None:
    registry = Registry(builtins=False)
    registry.register(AnyDecoder("user"), name="u", kind=Kind.USER)
    assert registry.encode("r", MediaType("text/csv"), Context()) == (
        b"user:r",
        "application/x-custom",
    )


def test_wildcard_encoder_gets_the_clients_concrete_type() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("application/json", "json"), name="b", kind=Kind.BUILTIN)
    registry.register(
        AnyDecoder("user", only="application/python-pickle"), name="u", kind=Kind.USER
    )
    media = registry.negotiate("application/python-pickle", "application/json")
    assert media.essence == "application/python-pickle"
    assert registry.encode("r", media, Context())[0] == b"user:r"
    with pytest.raises(NotAcceptable):
        registry.encode("r", MediaType("image/png"), Context())


def test_errors_from_codecs_propagate_with_their_status() -> None:
    def broken(body: bytes, mt: MediaType, ctx: Context) -> None:
        raise BadRequest("line 3: bad")

    plugin = SimpleNamespace(
        register_codecs=hookimpl(lambda register: register("text/csv", decode=broken))
    )
    registry = Registry(builtins=False)
    registry.register(plugin, name="p")
    with pytest.raises(BadRequest, match="line 3"):
        decode(registry, b"x", "text/csv")


def test_table_lists_direction_plugin_priority() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("text/csv", "builtin"), name="b", kind=Kind.BUILTIN)
    registry.register(codec_plugin("text/csv", "third", aliases=("text/x-csv",)), name="t")
    rows = [(r.media_type, r.direction, r.plugin, r.kind, r.order) for r in registry.table()]
    assert ("text/csv", "decode", "t", "plugin", 0) in rows
    assert ("text/csv", "decode", "b", "builtin", 1) in rows
    assert ("text/x-csv", "encode", "t", "plugin", 0) in rows


def test_entry_point_plugin_loads_and_allow_list_filters() -> None:
    pytest.importorskip("tfio_handlers_raw_image", reason="the example plugin is not installed")
    registry = Registry(builtins=False)
    assert registry.load_entry_points(allowed=["someone-else"]) == []
    assert "raw-image" in registry.load_entry_points()
    batch = decode(registry, b"\x89PNG...", "image/png")
    assert batch.shape == (1,) and batch[0] == b"\x89PNG..."


def test_plugins_command_prints_the_table() -> None:
    pytest.importorskip("tfio_handlers_raw_image", reason="the example plugin is not installed")
    out = subprocess.run(
        [sys.executable, "-m", "tfio_handlers", "plugins"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "application/x-image" in out and "raw-image" in out
    assert "builtin" in out
    disabled = subprocess.run(
        [sys.executable, "-m", "tfio_handlers", "plugins"],
        check=True,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD": "1"},
    ).stdout
    assert "raw-image" not in disabled


def test_negotiation_cache_follows_plugin_changes() -> None:
    registry = Registry(builtins=False)
    registry.register(codec_plugin("application/json", "json"), name="b", kind=Kind.BUILTIN)
    with pytest.raises(NotAcceptable):
        registry.negotiate("text/csv", "application/json")
    assert (
        registry.negotiate("text/*, application/json;q=0.5", "application/json").essence
        == "application/json"
    )
    registry.register(codec_plugin("text/csv", "csv"), name="csv")
    assert (
        registry.negotiate("text/*, application/json;q=0.5", "application/json").essence
        == "text/csv"
    )
    registry.unregister("csv")
    assert (
        registry.negotiate("text/*, application/json;q=0.5", "application/json").essence
        == "application/json"
    )


def test_from_settings_loads_the_entry_points_the_settings_allow() -> None:
    """The one way a server builds its registry: built-ins, then the allowed entry-point plugins."""
    pytest.importorskip("tfio_handlers_raw_image")
    from tfio_handlers.config import Settings

    assert "application/x-image" in Registry.from_settings(Settings()).decodable()
    off = Registry.from_settings(Settings(load_plugins=False))
    assert "application/x-image" not in off.decodable() and "application/json" in off.decodable()
    others = Registry.from_settings(Settings(allowed_plugins=frozenset({"someone-else"})))
    assert "application/x-image" not in others.decodable()
