"""The ``register_routes`` hook: a plugin's routes served by real servers (uvicorn for ASGI, the
standard library's WSGI server), each :data:`~tfio_handlers.adapters.routes.Work` running where it
says, errors as ``{"error": ...}``, conflicts refused like codecs', the built-ins in the same table,
and ``tfio-handlers plugins`` listing routes."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from servers import free_port

from tfio_handlers.adapters.routes import AddRoute, RouteRequest, RouteTable, compile_template
from tfio_handlers.adapters.serving import Route, route_of
from tfio_handlers.config import Settings
from tfio_handlers.errors import BadRequest, InternalError
from tfio_handlers.hookspecs import hookimpl
from tfio_handlers.pipeline import Pipeline, Response
from tfio_handlers.registry import Kind, PluginConflict, Registry


def _json(status: int, document: object) -> Response:
    return Response(status, json.dumps(document).encode(), [("content-type", "application/json")])


class Greeter:
    """A route plugin: one route of each kind of work, and handlers that fail."""

    @hookimpl
    def register_routes(self, add_route: AddRoute) -> None:
        add_route("GET", "/hello/{name}", self.hello, work="light")
        add_route("POST", "/models/{name}/versions/{version}/echo", self.echo)
        add_route("GET", "/probe", self.probe, work="health", name="probe")
        add_route("POST", "/refuse", self.refuse)
        add_route("POST", "/crash", self.crash)

    @staticmethod
    def hello(request: RouteRequest) -> Response:
        return _json(
            200,
            {
                "name": request.params["name"],
                "thread": threading.current_thread().name,
                "model": request.pipeline.default_model,
                "max_body": request.limits.max_body_bytes,
            },
        )

    @staticmethod
    def echo(request: RouteRequest) -> Response:
        return _json(
            200,
            {
                "params": dict(request.params),
                "body": request.body.decode(),
                "content_type": request.headers.get("content-type"),
                "thread": threading.current_thread().name,
            },
        )

    @staticmethod
    def probe(request: RouteRequest) -> Response:
        ready = request.readiness()
        return _json(200, {"ready": ready.status == 200, "body": request.body.decode()})

    @staticmethod
    def refuse(request: RouteRequest) -> Response:
        raise BadRequest("not this body")

    @staticmethod
    def crash(request: RouteRequest) -> Response:
        raise RuntimeError("a secret detail")


def _pipeline(backend: Any) -> Pipeline:
    registry = Registry()
    registry.register(Greeter(), name="greeter")
    return Pipeline(
        backend, settings=Settings(load_plugins=False, request_timeout=30), registry=registry
    )


def _request(
    port: int, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        assert response.getheader("content-type") == "application/json", data
        return response.status, json.loads(data) if data else {}
    finally:
        connection.close()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module", params=["asgi-uvicorn", "wsgi-wsgiref"])
def port(request: pytest.FixtureRequest, embedded_backend: Any) -> Iterator[int]:
    pipeline = _pipeline(embedded_backend)
    if request.param == "asgi-uvicorn":
        import uvicorn

        from tfio_handlers.adapters.asgi import ASGIApp

        number = free_port()
        server = uvicorn.Server(
            uvicorn.Config(ASGIApp(pipeline), host="127.0.0.1", port=number, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        yield number
        server.should_exit = True
        thread.join(10)
    else:
        from tfio_handlers.adapters.wsgi import WSGIApp

        wsgi = make_server(
            "127.0.0.1", 0, WSGIApp(pipeline), server_class=WSGIServer, handler_class=_Quiet
        )
        thread = threading.Thread(target=wsgi.serve_forever, daemon=True)
        thread.start()
        yield wsgi.server_port
        wsgi.shutdown()
        wsgi.server_close()


@pytest.mark.tensorflow
def test_a_plugin_route_answers_with_its_template_parameters(port: int) -> None:
    status, document = _request(
        port, "POST", "/models/m%20x/versions/3/echo", b"hi", **{"Content-Type": "text/x"}
    )
    assert status == 200
    assert document["params"] == {"name": "m x", "version": "3"}
    assert document["body"] == "hi" and document["content_type"] == "text/x"
    # "model" work runs in the pipeline's bounded pool, as /invocations does
    assert document["thread"].startswith("tfio-work")


@pytest.mark.tensorflow
def test_light_work_runs_beside_the_pool_and_sees_the_pipeline(port: int) -> None:
    status, document = _request(port, "GET", "/hello/world")
    assert status == 200
    assert document["name"] == "world" and document["model"] == "half_plus_two"
    assert document["max_body"] > 0
    assert not document["thread"].startswith("tfio-work")


@pytest.mark.tensorflow
def test_health_work_answers_at_once_without_the_body(port: int) -> None:
    status, document = _request(port, "GET", "/probe", b"ignored")
    assert (status, document) == (200, {"ready": True, "body": ""})


@pytest.mark.tensorflow
def test_handler_errors_are_json_and_bugs_hide_their_details(port: int) -> None:
    assert _request(port, "POST", "/refuse", b"x") == (400, {"error": "not this body"})
    status, document = _request(port, "POST", "/crash", b"x")
    assert status == 500 and "secret" not in document["error"]


@pytest.mark.tensorflow
def test_unknown_paths_and_methods_are_404_and_builtins_still_answer(port: int) -> None:
    assert _request(port, "GET", "/hello")[0] == 404
    status, document = _request(port, "DELETE", "/hello/world")
    assert status == 404 and document == {"error": "No route for DELETE /hello/world"}
    assert _request(port, "GET", "/ping")[0] == 200
    status, document = _request(
        port, "POST", "/v1/models/half_plus_two:predict", b'{"instances": [1.0]}'
    )
    assert (status, document) == (200, {"predictions": [2.5]})


# -- the table ---------------------------------------------------------------------------------------


def _plugin(*routes: tuple[str, str]) -> object:
    class Plugin:
        @hookimpl
        def register_routes(self, add_route: AddRoute) -> None:
            for method, path in routes:
                add_route(method, path, lambda request: Response(200, b""))

    return Plugin()


def test_the_builtin_routes_are_route_plugins() -> None:
    registry = Registry()
    rows = {(r.method, r.path): (r.plugin, r.kind, r.work) for r in registry.route_table()}
    assert rows == {
        ("GET", "/ping"): ("sagemaker", "builtin", "health"),
        ("HEAD", "/ping"): ("sagemaker", "builtin", "health"),
        ("POST", "/invocations"): ("sagemaker", "builtin", "model"),
        ("*", "/v1/{rest:path}"): ("tf-serving-rest", "builtin", "per request"),
    }
    assert route_of("GET", "/V1/models/x") == Route.TFS
    assert Registry(builtins=False).route_table() == []


def test_two_plugins_of_one_kind_on_one_route_are_a_conflict() -> None:
    registry = Registry(builtins=False)
    registry.register(_plugin(("GET", "/a/{x}/b")), name="first")
    registry.register(_plugin(("GET", "/a/{y}/b")), name="second")
    with pytest.raises(PluginConflict, match=r"GET /a/\{y\}/b is claimed by both 'first'"):
        registry.check()
    registry.unregister("second")
    registry.register(_plugin(("*", "/a/{z}/b")), name="any-method")
    with pytest.raises(PluginConflict, match="'first'"):
        registry.routes()


def test_other_methods_and_shapes_are_no_conflict_and_a_plugin_replaces_a_builtin() -> None:
    registry = Registry()
    registry.register(_plugin(("POST", "/ping"), ("GET", "/ping/{x}")), name="other")
    registry.register(_plugin(("GET", "/ping")), name="replacer")
    registry.check()
    endpoint, _ = registry.routes().match("GET", "/ping") or (None, None)
    assert endpoint is not None and endpoint.plugin == "replacer"
    orders = {(r.plugin, r.order) for r in registry.route_table() if r.path == "/ping"}
    assert ("replacer", 0) in orders and ("sagemaker", 1) in orders


def test_more_specific_templates_are_tried_first_within_a_kind() -> None:
    registry = Registry(builtins=False)
    registry.register(_plugin(("GET", "/m/{rest:path}"), ("GET", "/m/{name}/ready")), name="p")
    table: RouteTable = registry.routes()
    ready = table.match("GET", "/m/x/ready")
    assert ready is not None and ready[0].template == "/m/{name}/ready"
    rest = table.match("GET", "/m/x/y/z")
    assert rest is not None and rest[1] == {"rest": "x/y/z"}


@pytest.mark.parametrize(
    "template", ["no-slash", "/a/{x}/{x}", "/a/{rest:path}/b", "/a/{x", "/a/{1}"]
)
def test_malformed_templates_are_refused(template: str) -> None:
    with pytest.raises(InternalError):
        compile_template(template)


def test_a_bad_declaration_names_its_plugin() -> None:
    class Bad:
        @hookimpl
        def register_routes(self, add_route: AddRoute) -> None:
            add_route("GET", "/x", lambda r: Response(200, b""), colour="red")  # type: ignore[call-arg]

    registry = Registry(builtins=False)
    registry.register(Bad(), name="bad", kind=Kind.PLUGIN)
    with pytest.raises(InternalError, match="'bad'"):
        registry.check()


def test_the_plugins_command_lists_the_routes() -> None:
    from live_server import clean_env

    result = subprocess.run(
        [sys.executable, "-m", "tfio_handlers", "plugins"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["method", "path"])
    assert lines[header].split() == ["method", "path", "plugin", "priority", "order", "work"]
    routes = {tuple(line.split()[:3]) for line in lines[header + 1 :]}
    assert ("POST", "/invocations", "sagemaker") in routes
    assert ("*", "/v1/{rest:path}", "tf-serving-rest") in routes
