"""The plugin registry: which code decodes a request body and which encodes the response.

Plugins register through pluggy; the registry turns their declarations into one table and, per media
type, into a cached chain of callables ordered by kind (user code, then third-party plugins, then the
built-in codecs). A request costs a dictionary lookup and a loop over that chain; no pluggy hook call
is made per request. The table is rebuilt whenever a plugin is registered or unregistered.
"""

from __future__ import annotations

import enum
import importlib.metadata
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .config import Settings
from .context import Context
from .errors import HTTPError, InternalError, NotAcceptable, UnsupportedMediaType
from .media import MediaType, is_text_type, negotiate, parse_accept

if TYPE_CHECKING:
    from .adapters.routes import Endpoint, RouteTable

__all__ = ["Codec", "Kind", "PluginConflict", "Registry", "RouteRow", "TableRow"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tfio_handlers"

_NEGOTIATION_CACHE_SIZE = 1024
"""Distinct ``(Accept, default)`` pairs remembered; clients send few distinct values."""


class Kind(enum.IntEnum):
    """Who a plugin belongs to; a lower value is asked first."""

    USER = 0
    PLUGIN = 1
    BUILTIN = 2


class PluginConflict(InternalError):
    """Two plugins of the same kind claim one media type in one direction, or one method on one
    route path: refused at start-up."""


@dataclass(frozen=True, slots=True)
class Codec:
    """One ``register(...)`` call: a plugin's decoder and/or encoder for one media type."""

    media_type: str
    plugin: str
    kind: Kind
    decode: hookspecs.Decoder | None
    encode: hookspecs.Encoder | None
    aliases: tuple[str, ...]
    text: bool


@dataclass(frozen=True, slots=True)
class TableRow:
    """A line of ``tfio-handlers plugins``: who handles a media type in one direction, in what order."""

    media_type: str
    direction: str
    plugin: str
    kind: str
    order: int
    alias_of: str | None = None


@dataclass(frozen=True, slots=True)
class RouteRow:
    """A line of the routes table of ``tfio-handlers plugins``: who answers a method on a path, and
    in what order when several kinds declare it (0 answers; the others are replaced)."""

    method: str
    path: str
    plugin: str
    kind: str
    order: int
    work: str


@dataclass(frozen=True, slots=True)
class _Link:
    """One callable in a dispatch chain, with the essence it is handed (the alias' canonical type)."""

    function: Callable[..., Any]
    essence: str
    kind: Kind


def _essence(media_type: str) -> str:
    return media_type.strip().lower()


class Registry:
    """Plugins and their codecs, with cached dispatch per media type.

    ``Registry(builtins=True)`` registers the built-in codecs; entry-point plugins load on
    :meth:`load_entry_points`. Register a plugin with :meth:`register`; user code goes in with
    ``kind=Kind.USER``.
    """

    def __init__(self, *, builtins: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._kinds: dict[str, Kind] = {}
        self._dirty = True
        self._codecs: list[Codec] = []
        self._conflicts: list[str] = []
        self._decode_chains: dict[str, tuple[_Link, ...]] = {}
        self._encode_chains: dict[str, tuple[_Link, ...]] = {}
        self._canonical: dict[str, str] = {}
        self._text: dict[str, bool] = {}
        self._any_decoders: tuple[tuple[Kind, Callable[..., Any]], ...] = ()
        self._any_encoders: tuple[tuple[Kind, Callable[..., Any]], ...] = ()
        self._encodable: tuple[str, ...] = ()
        self._negotiated: dict[tuple[str | None, str], MediaType] = {}
        self._decode_links: dict[str, list[tuple[Kind, int, Callable[..., Any], str]]] = {}
        self._encode_links: dict[str, list[tuple[Kind, int, Callable[..., Any], str]]] = {}
        self._switched_off: frozenset[str] = frozenset()
        self._endpoints: list[Endpoint] = []
        self._routes: RouteTable | None = None
        if builtins:
            from .adapters.builtin_routes import BUILTIN_ROUTE_PLUGINS
            from .formats import BUILTIN_PLUGINS

            for name, plugin in [*BUILTIN_PLUGINS, *BUILTIN_ROUTE_PLUGINS]:
                self.register(plugin, name=name, kind=Kind.BUILTIN)

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The built-in codecs and the entry-point plugins the settings allow (the one way to build
        the registry a server uses: ``TFIO_HANDLERS_DISABLE_PLUGIN_AUTOLOAD``, ``TFIO_HANDLERS_PLUGINS``)."""
        registry = cls()
        if settings.load_plugins:
            registry.load_entry_points(settings.allowed_plugins)
        return registry

    # -- plugins ---------------------------------------------------------------------------------

    def register(self, plugin: object, *, name: str | None = None, kind: Kind = Kind.PLUGIN) -> str:
        """Register ``plugin`` (a module or an object with hookimpls); returns its name."""
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise PluginConflict(f"Plugin {name!r} is already registered or blocked")
        self._kinds[registered] = kind
        self._invalidate()
        return registered

    def unregister(self, name: str) -> None:
        """Remove a plugin by name; the dispatch tables are rebuilt on next use."""
        self.pm.unregister(name=name)
        self._kinds.pop(name, None)
        self._invalidate()

    def switch_off(self, media_types: Iterable[str]) -> None:
        """Leave ``media_types`` out of negotiation and of the "supported types" in 415/406 answers.

        For types a setting turns off (pickle, unless enabled): their codecs stay registered, so a
        request that names one still reaches the codec and gets its own explanation, but a client
        is never offered or answered a type the server refuses.
        """
        self._switched_off = frozenset(_essence(m) for m in media_types)
        self._invalidate()

    def _invalidate(self) -> None:
        self._dirty = True
        self._decode_chains = {}
        self._encode_chains = {}
        self._negotiated = {}

    def load_entry_points(self, allowed: Iterable[str] | None = None) -> list[str]:
        """Load third-party plugins from the ``tfio_handlers`` entry-point group.

        ``allowed`` (``TFIO_HANDLERS_PLUGINS``) limits which entry-point names load. Returns the names
        loaded. A plugin that fails to import is an error naming it, not a silent skip.
        """
        allow = set(allowed) if allowed is not None else None
        loaded: list[str] = []
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allow is not None and entry_point.name not in allow:
                continue
            if self.pm.get_plugin(entry_point.name) is not None:
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise InternalError(
                    f"Plugin {entry_point.name!r} ({entry_point.value}) failed to load: {exc}"
                ) from exc
            self.register(plugin, name=entry_point.name, kind=Kind.PLUGIN)
            loaded.append(entry_point.name)
        return loaded

    def plugins(self) -> Iterator[tuple[str, Kind]]:
        """The registered plugins and their kinds, in registration order."""
        yield from self._kinds.items()

    # -- the table -------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        codecs: list[Codec] = []
        for impl in self.pm.hook.register_codecs.get_hookimpls():
            plugin_name = impl.plugin_name
            kind = self._kinds.get(plugin_name, Kind.PLUGIN)

            def register(
                media_type: str,
                *,
                decode: hookspecs.Decoder | None = None,
                encode: hookspecs.Encoder | None = None,
                aliases: tuple[str, ...] | list[str] = (),
                text: bool | None = None,
                _plugin: str = plugin_name,
                _kind: Kind = kind,
            ) -> None:
                essence = MediaType(_essence(media_type)).essence
                if decode is None and encode is None:
                    raise InternalError(
                        f"Plugin {_plugin!r} registered {essence} with neither decode nor encode"
                    )
                is_text = text if text is not None else is_text_type(essence)
                codecs.append(
                    Codec(
                        essence,
                        _plugin,
                        _kind,
                        decode,
                        encode,
                        tuple(_essence(a) for a in aliases),
                        is_text,
                    )
                )

            impl.function(register=register)

        conflicts: list[str] = []
        canonical: dict[str, str] = {}
        text: dict[str, bool] = {}
        claims: dict[tuple[str, str, Kind, int], str] = {}
        decode_links: dict[str, list[tuple[Kind, int, Callable[..., Any], str]]] = {}
        encode_links: dict[str, list[tuple[Kind, int, Callable[..., Any], str]]] = {}
        # By priority (a stable sort keeps registration order within a kind): the text flag and the
        # canonical type of an alias come from the codec that is asked first, so a plugin that
        # replaces a built-in media type decides whether user code sees it as text.
        for codec in sorted(codecs, key=lambda c: c.kind):
            text.setdefault(codec.media_type, codec.text)
            names = [(codec.media_type, 0)] + [(alias, 1) for alias in codec.aliases]
            for direction, function, links in (
                ("decode", codec.decode, decode_links),
                ("encode", codec.encode, encode_links),
            ):
                if function is None:
                    continue
                for name, is_alias in names:
                    key = (name, direction, codec.kind, is_alias)
                    owner = claims.get(key)
                    if owner is not None and owner != codec.plugin:
                        conflicts.append(
                            f"{name} ({direction}) is claimed by both {owner!r} and "
                            f"{codec.plugin!r} ({codec.kind.name.lower()} plugins)"
                        )
                        continue
                    claims[key] = codec.plugin
                    links.setdefault(name, []).append(
                        (codec.kind, is_alias, function, codec.media_type)
                    )
                    if is_alias:
                        canonical.setdefault(name, codec.media_type)
                        text.setdefault(name, codec.text)

        def hook_functions(hook: Any) -> tuple[tuple[Kind, Callable[..., Any]], ...]:
            found = [
                (self._kinds.get(impl.plugin_name, Kind.PLUGIN), impl.function)
                for impl in reversed(hook.get_hookimpls())
            ]
            return tuple(sorted(found, key=lambda item: item[0]))

        endpoints, route_conflicts = self._collect_routes()
        conflicts.extend(route_conflicts)
        self._endpoints = endpoints
        self._routes = None

        self._any_decoders = hook_functions(self.pm.hook.decode)
        self._any_encoders = hook_functions(self.pm.hook.encode)
        self._codecs = codecs
        self._conflicts = conflicts
        self._canonical = canonical
        self._text = text
        self._decode_links = decode_links
        self._encode_links = encode_links
        self._decode_chains = {}
        self._encode_chains = {}
        self._encodable = tuple(
            dict.fromkeys(name for name in encode_links if name not in self._switched_off)
        )
        self._dirty = False

    def _collect_routes(self) -> tuple[list[Endpoint], list[str]]:
        """Every plugin's ``register_routes`` declarations, and the conflicts among them."""
        from .adapters.routes import ANY_METHOD, Endpoint

        endpoints: list[Endpoint] = []
        for impl in self.pm.hook.register_routes.get_hookimpls():
            plugin_name = impl.plugin_name
            kind = self._kinds.get(plugin_name, Kind.PLUGIN)

            def add_route(
                method: str,
                path: str,
                handler: Any,
                *,
                _plugin: str = plugin_name,
                _kind: Kind = kind,
                **options: Any,
            ) -> None:
                try:
                    endpoint = Endpoint.declare(
                        method, path, handler, plugin=_plugin, kind=_kind, **options
                    )
                except TypeError as exc:  # an option add_route does not take
                    raise InternalError(f"Plugin {_plugin!r}: add_route({path!r}): {exc}") from None
                endpoints.append(endpoint)

            impl.function(add_route=add_route)

        conflicts: list[str] = []
        claims: dict[tuple[Kind, str], list[Endpoint]] = {}
        for endpoint in endpoints:
            same_shape = claims.setdefault((endpoint.kind, endpoint.shape), [])
            for other in same_shape:
                if other.plugin == endpoint.plugin:
                    continue
                if ANY_METHOD in (other.method, endpoint.method) or other.method == endpoint.method:
                    conflicts.append(
                        f"route {endpoint.method} {endpoint.template} is claimed by both "
                        f"{other.plugin!r} ({other.method} {other.template}) and "
                        f"{endpoint.plugin!r} ({endpoint.kind.name.lower()} plugins)"
                    )
                    break
            else:
                same_shape.append(endpoint)
        return endpoints, conflicts

    def routes(self) -> RouteTable:
        """The routes every plugin declares (:func:`~tfio_handlers.hookspecs.register_routes`), in
        the order a request tries them; what both adapters dispatch on."""
        if self._dirty:
            self.check()
        table = self._routes
        if table is None:
            from .adapters.routes import RouteTable

            table = self._routes = RouteTable(self._endpoints)
        return table

    def route_table(self) -> list[RouteRow]:
        """The routes table of ``tfio-handlers plugins``: each method and path, who answers it, and
        who is replaced (a higher order) when several kinds declare the same one."""
        rows: list[RouteRow] = []
        seen: dict[tuple[str, str], int] = {}
        for endpoint in self.routes().endpoints:
            key = (endpoint.method, endpoint.shape)
            order = seen.get(key, 0)
            seen[key] = order + 1
            rows.append(
                RouteRow(
                    endpoint.method,
                    endpoint.template,
                    endpoint.plugin,
                    endpoint.kind.name.lower(),
                    order,
                    endpoint.work_label(),
                )
            )
        return rows

    def _chain(
        self,
        essence: str,
        links: dict[str, list[tuple[Kind, int, Callable[..., Any], str]]],
        wildcards: tuple[tuple[Kind, Callable[..., Any]], ...],
    ) -> tuple[_Link, ...]:
        ordered: list[tuple[Kind, int, int, Callable[..., Any], str]] = []
        for kind, is_alias, function, canonical in links.get(essence, ()):
            ordered.append((kind, 0, is_alias, function, canonical))
        for kind, function in wildcards:
            ordered.append((kind, 1, 0, function, essence))
        ordered.sort(key=lambda item: (item[0], item[1], item[2]))
        return tuple(
            _Link(function, canonical, kind) for kind, _, _, function, canonical in ordered
        )

    def check(self) -> None:
        """Raise :class:`PluginConflict` when two plugins of one kind claim the same media type."""
        if self._dirty:
            self._rebuild()
        if self._conflicts:
            raise PluginConflict("Plugin conflict: " + "; ".join(self._conflicts))

    def table(self) -> list[TableRow]:
        """The resolution table: for each media type and direction, who is asked, in order."""
        self.check()
        rows: list[TableRow] = []
        for direction, links in (("decode", self._decode_links), ("encode", self._encode_links)):
            for name in sorted(links):
                for order, (kind, is_alias, function, canonical) in enumerate(
                    sorted(links[name], key=lambda item: (item[0], item[1]))
                ):
                    rows.append(
                        TableRow(
                            media_type=name,
                            direction=direction,
                            plugin=self._plugin_of(function, canonical, direction),
                            kind=kind.name.lower(),
                            order=order,
                            alias_of=canonical if is_alias else None,
                        )
                    )
        wildcard_rows = [("decode", self.pm.hook.decode), ("encode", self.pm.hook.encode)]
        for direction, hook in wildcard_rows:
            for impl in hook.get_hookimpls():
                kind = self._kinds.get(impl.plugin_name, Kind.PLUGIN)
                rows.append(TableRow("*/*", direction, impl.plugin_name, kind.name.lower(), -1))
        return rows

    def _plugin_of(self, function: Callable[..., Any], essence: str, direction: str) -> str:
        for codec in self._codecs:
            if codec.media_type == essence and getattr(codec, direction) is function:
                return codec.plugin
        return "?"

    # -- dispatch --------------------------------------------------------------------------------

    def canonical(self, essence: str) -> str:
        """The canonical media type an alias stands for (itself when it is not an alias)."""
        if self._dirty:
            self.check()
        return self._canonical.get(essence, essence)

    def is_text(self, essence: str) -> bool:
        """Whether bodies of this type are text (handed to user code as ``str``)."""
        if self._dirty:
            self.check()
        known = self._text.get(essence)
        if known is not None:
            return known
        return is_text_type(essence)

    def decodable(self) -> list[str]:
        """Every media type some decoder claims, sorted."""
        if self._dirty:
            self.check()
        return sorted(m for m in self._decode_links if m not in self._switched_off)

    def encodable(self) -> list[str]:
        """Every media type some encoder claims, in registration order."""
        if self._dirty:
            self.check()
        return list(self._encodable)

    def decode(self, body: bytes, media_type: MediaType, context: Context) -> Any:
        """Decode ``body``: ask the chain for ``media_type`` in order until one answers.

        Raises :class:`UnsupportedMediaType` (415, listing the supported types) when no decoder takes
        the type or every one passes.
        """
        chain = self._decode_chains.get(media_type.essence)
        if chain is None:
            chain = self._resolve(media_type.essence, decode=True)
        for link in chain:
            mt = (
                media_type
                if link.essence == media_type.essence
                else media_type.with_essence(link.essence)
            )
            result = link.function(body, mt, context)
            if result is not None:
                return result
        raise UnsupportedMediaType(
            f"Unsupported Media Type: {media_type.essence}. Supported types: "
            + ", ".join(self.decodable())
        )

    def built_in(self, essence: str, *, decode: bool) -> bool:
        """Whether only built-in codecs would decode (or encode) ``essence``: work whose cost the
        project knows, which the pipeline may do on the event loop for a small request. A plugin
        or user function in the chain, or no codec at all, says no."""
        chains = self._decode_chains if decode else self._encode_chains
        chain = chains.get(essence)
        if chain is None:
            chain = self._resolve(essence, decode=decode)
        return bool(chain) and all(link.kind is Kind.BUILTIN for link in chain)

    def negotiate(self, accept: str | None, default: str) -> MediaType:
        """Choose the response media type for ``accept`` among the registered encoders.

        When no registered encoder is acceptable but a plugin encodes any type (a user ``output_fn``),
        the client's most preferred concrete type is chosen for it to try.
        """
        key = (accept, default)
        cached = self._negotiated.get(key)
        if cached is not None:
            return cached
        chosen = self._negotiate(accept, default)
        if len(self._negotiated) >= _NEGOTIATION_CACHE_SIZE:
            self._negotiated.clear()
        self._negotiated[key] = chosen
        return chosen

    def _negotiate(self, accept: str | None, default: str) -> MediaType:
        if self._dirty:
            self.check()
        try:
            return negotiate(accept, self._encodable, default)
        except NotAcceptable:
            if accept is None:
                raise
            for entry in parse_accept(accept):
                if entry.quality <= 0 or "*" in entry.essence:
                    continue
                # A user output_fn may answer any type; a switched-off type's codec explains itself.
                if self._any_encoders or self.canonical(entry.essence) in self._switched_off:
                    return entry.media_type
            raise

    def encode(self, response: Any, media_type: MediaType, context: Context) -> tuple[bytes, str]:
        """Encode ``response`` as ``media_type``; returns the body and its ``Content-Type``.

        Raises :class:`NotAcceptable` (406) when every encoder in the chain passes.
        """
        chain = self._encode_chains.get(media_type.essence)
        if chain is None:
            chain = self._resolve(media_type.essence, decode=False)
        for link in chain:
            mt = (
                media_type
                if link.essence == media_type.essence
                else media_type.with_essence(link.essence)
            )
            result = link.function(response, mt, context)
            if result is None:
                continue
            content_type = media_type.essence
            if isinstance(result, tuple):
                result, content_type = result
            if isinstance(result, str):
                return result.encode("utf-8"), content_type
            if isinstance(result, (bytes, bytearray, memoryview)):
                return bytes(result), content_type
            raise HTTPError(
                f"Encoder for {media_type.essence} returned {type(result).__name__}, "
                "expected bytes or str"
            )
        raise NotAcceptable(
            f"No encoder for Accept: {media_type}. Supported types: "
            + ", ".join(sorted(set(self.encodable())))
        )

    def _resolve(self, essence: str, *, decode: bool) -> tuple[_Link, ...]:
        self.check()
        if decode:
            chain = self._chain(essence, self._decode_links, self._any_decoders)
            self._decode_chains[essence] = chain
        else:
            chain = self._chain(essence, self._encode_links, self._any_encoders)
            self._encode_chains[essence] = chain
        return chain
