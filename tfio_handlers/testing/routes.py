"""The route side of the conformance suite: :func:`check_routes` runs a route plugin's
:func:`~tfio_handlers.hookspecs.register_routes` declarations and handlers through every check.

1. **Declarations.** Every ``add_route(...)`` call is checked as the registry checks it (method,
   template, ``work``); the registry holding the plugin, the built-ins and every other plugin
   reports no :class:`~tfio_handlers.registry.PluginConflict` (the registry's own conflict rules).
2. **No built-in taken.** A route that would take a request a built-in route answers (``/ping``,
   ``/invocations``, TF Serving's ``/v1/...``) replaces it for every client: allowed only when the
   declaration lists its template in ``overrides``.
3. **Examples.** Each declared :class:`~tfio_handlers.testing.declarations.RouteExample` reaches
   one of the plugin's routes, and answers its declared ``status``.
4. **Hostile requests.** For each route, a bounded fuzz of requests, built and dispatched as the
   adapters do (the route table's match, a ``RouteRequest``, the route's ``work`` chooser,
   :func:`~tfio_handlers.adapters.serving.call_handler`, and the route's ``ahandler`` as the ASGI
   adapter awaits it), in-process on the pipeline given:
   template parameters filled with odd values (empty, very long, percent signs, U+FFFD, mojibake,
   NUL, out-of-range numbers), odd query strings, odd values of the example headers and of
   ``inference-header-content-length``/``content-encoding``/``content-type``, and bodies that are
   empty, random bytes, JSON documents, or mutated (flipped, truncated, spliced, grown) copies of
   those and of the examples' bodies, a quarter of them gzip-compressed (``content-encoding:
   gzip``). Every answer must be a
   :class:`~tfio_handlers.pipeline.Response` the adapters can send, of status below 500 (or 501), a
   4xx with the JSON body ``{"error": "..."}``; an exception escaping the handler (which the
   adapters turn into a 500) or a 500 fails.

A failure raises :class:`~tfio_handlers.testing.ConformanceError` naming the route and the check,
with Hypothesis' smallest failing request.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hypothesis import strategies as st

from ..adapters.asgi import _awaited
from ..adapters.routes import ANY_METHOD, Endpoint, RouteRequest
from ..adapters.serving import ServingState, Target, builtin_routes, call_handler
from ..errors import InternalError
from ..registry import Kind, PluginConflict, Registry
from .conformance import _MUTATIONS, ConformanceError, _mutate, _run, installed_registry
from .declarations import ATTRIBUTE, ROUTES_KEY, RouteExample, RoutesDeclaration

if TYPE_CHECKING:
    from ..pipeline import Pipeline, Response

__all__ = ["ODD_PARAMETERS", "check_routes", "declared_routes"]

ODD_PARAMETERS: tuple[str, ...] = (
    "",
    "x" * 5000,
    "%",
    "%2F",
    "%00",
    "%ZZ",
    "\x00",
    "\ufffd",
    "\xff\xfe",
    "\xc3\xa9\x80",
    "..",
    ".",
    " ",
    "-1",
    "0",
    "1e309",
    "NaN",
    "\u00b2",
    "99999999999999999999999999999999",
    "9" * 5000,
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "0x10",
    "{name}",
    "a:b",
    "a;b",
    "\u202e",
)
"""Values the fuzz fills template parameters with (beside drawn text and the examples' values):
empty, very long, percent signs, NUL, what the adapters make of bytes that are not UTF-8 (``U+FFFD``
under ASGI, latin-1 mojibake under WSGI; never a lone surrogate), dots, numbers out of range."""

_ODD_HEADER_VALUES: tuple[str, ...] = (
    "",
    " ",
    "-1",
    "0",
    "1",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "9" * 400,
    "1e9",
    "0x10",
    "\u00b2",
    "abc",
    "gzip",
    "br",
    "deflate, gzip",
    "identity",
    "application/json",
    "application/json; charset=latin-1",
    "application/octet-stream",
    "text/csv",
    "*/*",
    "x/y; a=",
)
_FUZZED_HEADERS: tuple[str, ...] = (
    "content-type",
    "content-encoding",
    "accept",
    "inference-header-content-length",
)
_ANY_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
_JSON_SEEDS: tuple[Any, ...] = (
    {},
    [],
    {"instances": [1.0, 2.0]},
    {"inputs": {"x": [1.0]}},
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
    {"inputs": [{"name": "x", "shape": [1], "parameters": {"binary_data_size": 4}}]},
    {"signature_name": "", "examples": [{}]},
)


_PATH_TEXT = st.characters(codec="utf-8")
"""A decoded path holds no lone surrogate: uvicorn decodes with ``errors="replace"``, WSGI is latin-1."""
_HEADER_TEXT = st.characters(max_codepoint=255)
"""Header values reach the adapters as latin-1 text."""


def _fail(where: str, check: str, message: str) -> ConformanceError:
    return ConformanceError(f"{where}: {check}: {message}")


def declared_routes(plugin: object, name: str = "plugin-under-test") -> list[Endpoint]:
    """What ``plugin``'s ``register_routes`` hook declares, each call checked as the registry
    checks it (:meth:`~tfio_handlers.adapters.routes.Endpoint.declare`); raises
    :class:`~tfio_handlers.testing.ConformanceError` for a declaration the registry refuses."""
    function = getattr(plugin, "register_routes", None)
    if function is None:
        return []
    found: list[Endpoint] = []

    def add_route(method: str, path: str, handler: Any, **options: Any) -> None:
        try:
            found.append(
                Endpoint.declare(method, path, handler, plugin=name, kind=Kind.PLUGIN, **options)
            )
        except (InternalError, TypeError) as exc:
            raise _fail(f"{method} {path}", "declarations", str(exc)) from None

    function(add_route=add_route)
    return found


@dataclass
class _Plugin:
    name: str
    registry: Registry
    endpoints: list[Endpoint]
    declaration: RoutesDeclaration


def _resolve(
    plugin: object | str, registry: Registry | None, declaration: RoutesDeclaration | None
) -> _Plugin:
    if isinstance(plugin, str):
        registry = registry if registry is not None else installed_registry()
        name = plugin
        found = registry.pm.get_plugin(name)
        if found is None:
            raise _fail(name, "plugin", "no such plugin is registered (not installed?)")
    else:
        registry = registry if registry is not None else installed_registry()
        found = plugin
        if registry.pm.is_registered(plugin):
            name = registry.pm.get_name(plugin) or "plugin-under-test"
        else:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            if name in {n for n, _ in registry.plugins()}:
                name = f"{name}-under-test"
            registry.register(plugin, name=name)
    try:
        registry.check()
    except PluginConflict as exc:
        raise _fail(name, "conflicts", str(exc)) from None
    except InternalError as exc:  # a declaration the registry refuses
        raise _fail(name, "declarations", str(exc)) from None
    endpoints = [e for e in registry.routes().endpoints if e.plugin == name]
    if not endpoints:
        raise _fail(name, "declarations", "the plugin registers no route")
    if declaration is None:
        if dict(registry.plugins()).get(name) == Kind.BUILTIN:
            declaration = BUILTIN_ROUTE_DECLARATIONS.get(name, {})
        else:
            table = getattr(found, ATTRIBUTE, None) or {}
            declaration = table.get(ROUTES_KEY, {}) if isinstance(table, Mapping) else {}
    return _Plugin(name, registry, endpoints, declaration or {})


def _sample_path(endpoint: Endpoint, value: str = "x") -> str:
    path = endpoint.template
    for parameter in endpoint.pattern.groupindex:
        path = path.replace("{" + parameter + ":path}", value).replace("{" + parameter + "}", value)
    return path


def _check_builtins(plugin: _Plugin) -> None:
    if dict(plugin.registry.plugins()).get(plugin.name) == Kind.BUILTIN:
        return
    overrides = set(plugin.declaration.get("overrides", ()))
    builtins = builtin_routes()
    for endpoint in plugin.endpoints:
        methods = ("GET", "POST", "HEAD") if endpoint.method == ANY_METHOD else (endpoint.method,)
        for method in methods:
            taken = builtins.match(method, _sample_path(endpoint))
            if taken is not None and endpoint.template not in overrides:
                raise _fail(
                    f"{endpoint.method} {endpoint.template}",
                    "built-ins",
                    f"takes {method} {_sample_path(endpoint)}, which the built-in route "
                    f"{taken[0].method} {taken[0].template} answers; list the template in the "
                    "declaration's 'overrides' if replacing it is meant",
                )


# -- sending a request as the adapters do ------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        path = self.path if len(self.path) <= 200 else self.path[:200] + "..."
        return f"{self.method} {path!r} query={self.query!r} headers={dict(self.headers)!r} body={body!r}"


def _body_of(example: RouteExample) -> bytes:
    if "json" in example:
        return json.dumps(example["json"]).encode()
    body = example.get("body", b"")
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _request_of(example: RouteExample) -> _Request:
    path, _, query = example["path"].partition("?")
    headers = tuple((k.lower(), v) for k, v in example.get("headers", {}).items())
    return _Request(example["method"].upper(), path, query, headers, _body_of(example))


def _send(
    plugin: _Plugin, state: ServingState, pipeline: Pipeline, request: _Request
) -> tuple[Endpoint, list[Response]] | None:
    """``request`` through the route table and the handler of the route it reaches, as the WSGI
    adapter sends it, and its ``ahandler`` as the ASGI adapter does if it has one: the answers;
    ``None`` when no route takes it (the adapters' 404)."""
    found = plugin.registry.routes().match(request.method, request.path)
    if found is None:
        return None
    endpoint, params = found
    raw = quote(request.path, safe="/:@!$&'()*+,;=-._~", errors="surrogatepass")
    target = Target.of(request.path, raw, "", request.query)
    headers = dict(request.headers)
    if endpoint.work == "health":
        route_request = RouteRequest(
            request.method, target.path, target.raw, params, headers, b"", state
        )
    else:
        headers["content-length"] = str(len(request.body))
        route_request = RouteRequest(
            request.method,
            target.path,
            target.raw,
            params,
            headers,
            request.body,
            state,
            pipeline,
        )
        where = f"{endpoint.method} {endpoint.template}"
        try:
            work = endpoint.work_for(route_request)
        except Exception as exc:
            raise _fail(where, "work", f"choosing the work of {request!r} raised {exc!r}") from exc
        if work not in ("model", "light", "health"):
            raise _fail(where, "work", f"the work chooser answered {work!r} for {request!r}")
    answers = []
    for adapter in ("WSGI", "ASGI") if endpoint.ahandler is not None else ("WSGI",):
        try:
            if adapter == "WSGI":
                answers.append(call_handler(endpoint, route_request))
            else:  # the ASGI adapter awaits the route's ahandler instead
                answers.append(asyncio.run(_awaited(endpoint, route_request)))
        except Exception as exc:
            raise _fail(
                f"{endpoint.method} {endpoint.template}",
                "hostile request",
                f"{request!r} raised {type(exc).__name__}: {exc} under {adapter} (the adapters "
                "answer 500; a bad request must answer a 4xx, or raise the library's HTTPError)",
            ) from exc
    return endpoint, answers


def _check_answer(endpoint: Endpoint, request: _Request, response: Any) -> None:
    where = f"{endpoint.method} {endpoint.template}"
    from ..pipeline import Response

    if not isinstance(response, Response):
        raise _fail(
            where, "answer", f"{request!r} answered {type(response).__name__}, not Response"
        )
    problem = response.problem()
    if problem is not None:
        raise _fail(where, "answer", f"{request!r}: the adapters cannot send the answer: {problem}")
    status = response.status
    if status >= 500 and status != 501:
        raise _fail(
            where,
            "hostile request",
            f"{request!r} answered {status}: {response.body[:300]!r} (a bad request is a 4xx)",
        )
    if 400 <= status < 500 and request.method != "HEAD":
        try:
            document = json.loads(response.body)
        except ValueError:
            document = None
        if not (isinstance(document, dict) and isinstance(document.get("error"), str)):
            raise _fail(
                where,
                "error body",
                f"{request!r} answered {status} with {response.body[:300]!r}, not the JSON "
                '{"error": "..."}',
            )


# -- the fuzz -------------------------------------------------------------------------------------------


def _parameter_values(examples: Sequence[_Request], endpoint: Endpoint) -> list[str]:
    values = list(ODD_PARAMETERS)
    for request in examples:
        found = endpoint.pattern.fullmatch(request.path)
        if found is not None:
            values.extend(v for v in found.groupdict().values() if v)
    return list(dict.fromkeys(values))


def _fill(endpoint: Endpoint, values: Mapping[str, str]) -> str:
    path = endpoint.template
    for parameter in endpoint.pattern.groupindex:
        value = values.get(parameter, "x")
        path = path.replace("{" + parameter + ":path}", value).replace(
            "{" + parameter + "}", value.replace("/", "%2F")
        )
    return path


def _requests(endpoint: Endpoint, examples: Sequence[_Request]) -> st.SearchStrategy[_Request]:
    own = [r for r in examples if endpoint.pattern.fullmatch(r.path) is not None]
    methods = _ANY_METHODS if endpoint.method == ANY_METHOD else (endpoint.method,)
    odd = _parameter_values(own, endpoint)
    parameter_value = st.one_of(st.sampled_from(odd), st.text(_PATH_TEXT, max_size=20))
    names = list(endpoint.pattern.groupindex)
    paths = st.one_of(
        st.fixed_dictionaries({n: parameter_value for n in names}).map(
            lambda values: _fill(endpoint, values)
        ),
        *([st.sampled_from([r.path for r in own])] if own else []),
    )
    queries = st.one_of(
        st.just(""),
        st.sampled_from(["a=1", "%ZZ", "x" * 2000, "=&=&", "%FF%FE", "\xff"]),
        *([st.sampled_from([r.query for r in own])] if own else []),
    )
    header_names = list(dict.fromkeys([*_FUZZED_HEADERS, *(k for r in own for k, _ in r.headers)]))
    fuzzed_headers = st.dictionaries(
        st.sampled_from(header_names),
        st.one_of(st.sampled_from(_ODD_HEADER_VALUES), st.text(_HEADER_TEXT, max_size=12)),
        max_size=3,
    )
    base_headers = st.sampled_from([dict(r.headers) for r in own] or [{}])
    headers = st.builds(
        lambda base, extra: tuple({**base, **extra}.items()), base_headers, fuzzed_headers
    )
    seeds = [json.dumps(document).encode() for document in _JSON_SEEDS]
    seeds.extend(r.body for r in own if r.body)
    seed = st.one_of(
        st.just(b""),
        st.binary(max_size=64),
        st.sampled_from(seeds),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=10,
        ).map(lambda document: json.dumps(document).encode()),
    )
    operations = st.lists(
        st.tuples(st.sampled_from(_MUTATIONS), st.integers(0, 1 << 16), st.binary(max_size=8)),
        max_size=4,
    )
    bodies = st.builds(_mutate, seed, operations)
    requests = st.builds(_Request, st.sampled_from(methods), paths, queries, headers, bodies)
    return st.builds(_gzipped, requests, st.sampled_from((False, False, False, True)))


def _gzipped(request: _Request, gzipped: bool) -> _Request:
    """``request`` with its body gzip-compressed and ``content-encoding: gzip``, when ``gzipped``:
    the mutated examples then reach the handler's decoding behind ``Content-Encoding``."""
    if not gzipped:
        return request
    headers = (
        *((k, v) for k, v in request.headers if k != "content-encoding"),
        ("content-encoding", "gzip"),
    )
    return replace(request, headers=headers, body=gzip.compress(request.body, mtime=0))


def check_routes(
    plugin: object | str,
    *,
    registry: Registry | None = None,
    pipeline: Pipeline | None = None,
    declaration: RoutesDeclaration | None = None,
    examples: int = 200,
) -> None:
    """Run the route conformance suite on ``plugin``; raise
    :class:`~tfio_handlers.testing.ConformanceError` naming the route and check that failed.

    ``plugin`` is a module or object with a ``register_routes`` hookimpl (registered in
    ``registry``), or the name of a plugin registered there. ``registry`` defaults to
    :func:`~tfio_handlers.testing.installed_registry` (the built-ins and every installed entry
    point, so that conflicts with them show). ``declaration`` defaults to the ``"routes"`` entry of
    the plugin's ``TFIO_HANDLERS_CONFORMANCE`` (:class:`~tfio_handlers.testing.RoutesDeclaration`).

    ``pipeline`` answers the requests: a real one over a model the examples name
    (``Pipeline(backend, settings=..., registry=...)``); without one, only the declarations are
    checked. ``examples`` bounds the hostile requests per route; Hypothesis' current profile decides
    the seed (derandomized in CI).
    """
    resolved = _resolve(plugin, registry, declaration)
    _check_builtins(resolved)
    requests = [_request_of(example) for example in resolved.declaration.get("examples", ())]
    for request in requests:
        found = resolved.registry.routes().match(request.method, request.path)
        if found is None or found[0].plugin != resolved.name:
            who = "no route" if found is None else f"{found[0].plugin!r}'s route"
            raise _fail(
                resolved.name,
                "examples",
                f"{request.method} {request.path} reaches {who}, not one of the plugin's",
            )
    if pipeline is None:
        return
    state = ServingState(pipeline, resolved.registry)
    for request in requests:
        sent = _send(resolved, state, pipeline, request)
        assert sent is not None
        endpoint, responses = sent
        for response in responses:
            _check_answer(endpoint, request, response)
        wanted = next(
            (
                e.get("status")
                for e in resolved.declaration.get("examples", ())
                if _request_of(e) == request
            ),
            None,
        )
        if wanted is not None and responses[0].status != wanted:
            raise _fail(
                f"{endpoint.method} {endpoint.template}",
                "examples",
                f"{request!r} answered {responses[0].status} ({responses[0].body[:300]!r}), "
                f"not the declared {wanted}",
            )
    for endpoint in resolved.endpoints:

        def hostile(request: _Request) -> None:
            sent = _send(resolved, state, pipeline, request)
            if sent is not None:
                for response in sent[1]:
                    _check_answer(sent[0], request, response)

        _run(
            hostile,
            _requests(endpoint, requests),
            examples,
            f"{resolved.name}:route:{endpoint.method} {endpoint.template}",
        )


BUILTIN_ROUTE_DECLARATIONS: Mapping[str, RoutesDeclaration] = {
    "sagemaker": {
        "examples": [
            {"method": "GET", "path": "/ping", "status": 200},
            {
                "method": "POST",
                "path": "/invocations",
                "json": {"instances": [1.0, 2.0]},
                "headers": {"content-type": "application/json", "accept": "application/json"},
                "status": 200,
            },
            {
                "method": "POST",
                "path": "/invocations",
                "body": "1.0\n2.0\n",
                "headers": {"content-type": "text/csv", "custom-attributes": "tfs-model-name=x"},
            },
        ]
    },
    "tf-serving-rest": {
        "examples": [
            {
                "method": "POST",
                "path": "/v1/models/half_plus_two:predict",
                "json": {"instances": [1.0, 2.0]},
                "status": 200,
            },
            {
                "method": "POST",
                "path": "/v1/models/half_plus_two/versions/1:regress",
                "json": {"examples": [{"x": 1.0}]},
            },
            {"method": "GET", "path": "/v1/models/half_plus_two", "status": 200},
            {"method": "GET", "path": "/v1/models/half_plus_two/metadata", "status": 200},
            {"method": "GET", "path": "/v1/models/half_plus_two/labels/stable"},
        ]
    },
}
"""The built-in route plugins' declarations, over a pipeline serving ``half_plus_two``."""
