"""The pytest plugin of :mod:`tfio_handlers.testing` (entry point ``pytest11``: ``tfio_handlers``).

A test that takes the argument ``tfio_codec`` runs once per codec (plugin and media type) found in
the registry a server builds: the built-ins and every installed ``tfio_handlers`` entry point::

    @pytest.mark.tfio_codecs("msgpack")  # only this plugin's codecs; without the mark: every plugin
    def test_conformance(tfio_codec):
        tfio_codec.check()  # tfio_handlers.testing.check_codec on this codec

``@pytest.mark.tfio_codecs(kind="builtin")`` takes the built-in codecs instead, ``kind="all"``
both. A plugin named in the mark and not installed fails its test, rather than leaving none to run.

A test that takes ``tfio_routes`` runs once per route plugin (one that implements
``register_routes``), chosen the same way with the mark ``tfio_routes``; the test gives the pipeline
its requests go through (a real one, over a model its examples name)::

    @pytest.mark.tfio_routes("openinference")
    def test_route_conformance(tfio_routes, pipeline):
        tfio_routes.check(pipeline=pipeline)  # tfio_handlers.testing.check_routes

This module imports neither Hypothesis nor :mod:`tfio_handlers.testing` until a check runs, so
installing tfio-handlers never breaks a test run that lacks the ``testing`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tfio_handlers.registry import Kind, Registry

__all__ = ["CodecCase", "RouteCase", "codec_cases", "route_cases"]

_MARK = "tfio_codecs"
_ROUTES_MARK = "tfio_routes"


@dataclass(frozen=True)
class CodecCase:
    """One codec to check: the plugin's registered name and one media type it registers."""

    plugin: str
    media_type: str
    kind: str
    missing: bool = False

    @property
    def id(self) -> str:
        return f"{self.plugin}:{self.media_type}"

    def check(self, **options: Any) -> None:
        """``check_codec(media_type, plugin=...)`` on the installed registry; ``options`` go to it
        (``examples``, ``fuzz_examples``, ``declaration``)."""
        if self.missing:
            pytest.fail(f"plugin {self.plugin!r} is not installed (no tfio_handlers entry point)")
        from tfio_handlers.testing import check_codec, installed_registry

        check_codec(self.media_type, plugin=self.plugin, registry=installed_registry(), **options)


def _installed(
    names: tuple[str, ...], kind: str
) -> tuple[Registry, dict[str, Kind], dict[str, Kind]]:
    """The installed registry (entry points loaded), all its plugins, and those of ``kind``
    (``"plugin"``, ``"builtin"`` or ``"all"``), only ``names`` when given."""
    from tfio_handlers.registry import Kind, Registry

    registry = Registry()
    registry.load_entry_points()
    kinds = {
        "plugin": {Kind.PLUGIN},
        "builtin": {Kind.BUILTIN},
        "all": {Kind.PLUGIN, Kind.BUILTIN},
    }[kind]
    plugins = dict(registry.plugins())
    chosen = {
        name: plugin_kind
        for name, plugin_kind in plugins.items()
        if plugin_kind in kinds and (not names or name in names)
    }
    return registry, plugins, chosen


def codec_cases(names: tuple[str, ...] = (), kind: str = "plugin") -> list[CodecCase]:
    """The codecs of the installed registry: of plugins of ``kind`` (``"plugin"``, ``"builtin"`` or
    ``"all"``), only those ``names`` when given, each canonical media type once."""
    registry, plugins, chosen = _installed(names, kind)
    cases: list[CodecCase] = []
    for name, plugin_kind in chosen.items():
        for impl in registry.pm.hook.register_codecs.get_hookimpls():
            if impl.plugin_name != name:
                continue
            seen: list[str] = []

            def register(media_type: str, **_: Any) -> None:
                seen.append(media_type.strip().lower())  # noqa: B023 - called at once below

            impl.function(register=register)
            for media_type in dict.fromkeys(seen):
                cases.append(CodecCase(name, media_type, plugin_kind.name.lower()))
    for name in names:
        if name not in plugins:
            cases.append(CodecCase(name, "-", kind, missing=True))
    return cases


@dataclass(frozen=True)
class RouteCase:
    """One route plugin to check: its registered name."""

    plugin: str
    kind: str
    missing: bool = False

    @property
    def id(self) -> str:
        return self.plugin

    def check(self, pipeline: Any = None, **options: Any) -> None:
        """``check_routes(plugin, pipeline=pipeline)`` on the registry of ``pipeline`` (it must hold
        the plugin: ``installed_registry()`` does), else on the installed registry; ``options`` go to
        it (``examples``, ``declaration``)."""
        if self.missing:
            pytest.fail(f"plugin {self.plugin!r} is not installed (no tfio_handlers entry point)")
        from tfio_handlers.testing import check_routes, installed_registry

        registry = getattr(pipeline, "registry", None)
        if registry is None or registry.pm.get_plugin(self.plugin) is None:
            registry = installed_registry()
        check_routes(self.plugin, registry=registry, pipeline=pipeline, **options)


def route_cases(names: tuple[str, ...] = (), kind: str = "plugin") -> list[RouteCase]:
    """The route plugins of the installed registry: of ``kind`` (``"plugin"``, ``"builtin"`` or
    ``"all"``), only those ``names`` when given."""
    registry, plugins, chosen = _installed(names, kind)
    with_routes = {impl.plugin_name for impl in registry.pm.hook.register_routes.get_hookimpls()}
    cases = [
        RouteCase(name, plugin_kind.name.lower())
        for name, plugin_kind in chosen.items()
        if name in with_routes
    ]
    cases.extend(RouteCase(name, kind, missing=True) for name in names if name not in plugins)
    return cases


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARK}(*plugins, kind='plugin'): the codecs a test taking tfio_codec runs on "
        "(tfio_handlers.pytest_plugin)",
    )
    config.addinivalue_line(
        "markers",
        f"{_ROUTES_MARK}(*plugins, kind='plugin'): the route plugins a test taking tfio_routes runs "
        "on (tfio_handlers.pytest_plugin)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "tfio_routes" in metafunc.fixturenames:
        routes_mark = metafunc.definition.get_closest_marker(_ROUTES_MARK)
        routes = route_cases(
            tuple(routes_mark.args) if routes_mark is not None else (),
            str(routes_mark.kwargs.get("kind", "plugin")) if routes_mark is not None else "plugin",
        )
        metafunc.parametrize("tfio_routes", routes, ids=[case.id for case in routes])
    if "tfio_codec" not in metafunc.fixturenames:
        return
    mark = metafunc.definition.get_closest_marker(_MARK)
    names: tuple[str, ...] = tuple(mark.args) if mark is not None else ()
    kind = str(mark.kwargs.get("kind", "plugin")) if mark is not None else "plugin"
    cases = codec_cases(names, kind)
    metafunc.parametrize("tfio_codec", cases, ids=[case.id for case in cases])
