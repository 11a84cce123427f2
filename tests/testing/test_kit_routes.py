"""The route side of the conformance suite (``check_routes``): the built-in routes (SageMaker's and
TF Serving's) pass it over a real SavedModel, and a deliberately broken route plugin shows that it
catches a 500, an exception escaping a handler, a non-JSON error body and a route conflict."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tfio_handlers.adapters.routes import AddRoute, RouteRequest
from tfio_handlers.backends.base import Backend
from tfio_handlers.config import Settings
from tfio_handlers.errors import BadRequest, InternalError
from tfio_handlers.hookspecs import hookimpl
from tfio_handlers.pipeline import Pipeline, Response
from tfio_handlers.pytest_plugin import RouteCase, route_cases
from tfio_handlers.registry import Registry
from tfio_handlers.testing import ConformanceError, check_routes, declared_routes


class Idle(Backend):
    """A backend never called: the broken plugin's handlers do not touch the model."""

    def get_model_metadata(self, request: Any) -> Any:
        raise NotImplementedError

    def get_model_status(self, request: Any) -> Any:
        raise NotImplementedError

    def predict(self, request: Any) -> Any:
        raise NotImplementedError

    def classify(self, request: Any) -> Any:
        raise NotImplementedError

    def regress(self, request: Any) -> Any:
        raise NotImplementedError


def _ok(request: RouteRequest) -> Response:
    return Response(200, b'{"ok":true}', [("content-type", "application/json")])


def _refuse(request: RouteRequest) -> Response:
    raise BadRequest("no")


def _plugin(handler: Any, path: str = "/echo/{name}", method: str = "POST") -> Any:
    @hookimpl
    def register_routes(add_route: AddRoute) -> None:
        add_route("GET", "/echo/health", _ok, work="health")
        add_route(method, path, handler, work="light")

    return SimpleNamespace(__name__="broken", register_routes=register_routes)


@pytest.fixture(scope="module")
def idle_pipeline() -> Pipeline:
    return Pipeline(Idle(), settings=Settings(load_plugins=False), registry=Registry())


def test_a_sound_route_plugin_passes(idle_pipeline: Pipeline) -> None:
    check_routes(_plugin(_refuse), registry=Registry(), pipeline=idle_pipeline, examples=50)


def test_declared_routes_are_checked_as_the_registry_checks_them() -> None:
    assert [e.template for e in declared_routes(_plugin(_refuse))] == [
        "/echo/health",
        "/echo/{name}",
    ]
    with pytest.raises(ConformanceError, match="declarations"):
        declared_routes(_plugin(_refuse, path="echo"))
    with pytest.raises(ConformanceError, match="declarations"):
        check_routes(_plugin(_refuse, path="/echo/{a}/{a}"), registry=Registry())


def test_catches_a_500(idle_pipeline: Pipeline) -> None:
    def handler(request: RouteRequest) -> Response:
        if request.body[:1] == b"{":
            raise InternalError("oops")
        raise BadRequest("no")

    with pytest.raises(ConformanceError, match="answered 500"):
        check_routes(_plugin(handler), registry=Registry(), pipeline=idle_pipeline, examples=200)


def test_catches_an_exception_escaping(idle_pipeline: Pipeline) -> None:
    def handler(request: RouteRequest) -> Response:
        return _ok(request) if not request.body else Response(400, json.loads(request.body))

    with pytest.raises(ConformanceError, match="raised"):
        check_routes(_plugin(handler), registry=Registry(), pipeline=idle_pipeline, examples=200)


def test_catches_a_long_parameter_crash(idle_pipeline: Pipeline) -> None:
    def handler(request: RouteRequest) -> Response:
        if len(request.params["name"]) > 1000:
            raise ValueError("too long")
        raise BadRequest("no")

    with pytest.raises(ConformanceError, match="ValueError"):
        check_routes(_plugin(handler), registry=Registry(), pipeline=idle_pipeline, examples=200)


def test_catches_a_non_json_error_body(idle_pipeline: Pipeline) -> None:
    def handler(request: RouteRequest) -> Response:
        return Response(400, b"bad request", [("content-type", "text/plain")])

    with pytest.raises(ConformanceError, match="error body"):
        check_routes(_plugin(handler), registry=Registry(), pipeline=idle_pipeline, examples=20)


def test_catches_a_conflict_with_another_plugin() -> None:
    registry = Registry()
    registry.register(_plugin(_refuse), name="first")
    with pytest.raises(ConformanceError, match=r"conflicts.*claimed by both"):
        check_routes(_plugin(_refuse, path="/echo/{other}"), registry=registry)


def test_catches_a_builtin_taken_unless_declared() -> None:
    with pytest.raises(ConformanceError, match="built-in route"):
        check_routes(_plugin(_refuse, path="/v1/{rest:path}", method="*"), registry=Registry())
    plugin = _plugin(_refuse, path="/ping", method="GET")
    with pytest.raises(ConformanceError, match="built-in route GET /ping"):
        check_routes(plugin, registry=Registry())
    check_routes(plugin, registry=Registry(), declaration={"overrides": ["/ping"]})


def test_examples_must_reach_the_plugin_and_answer_their_status(idle_pipeline: Pipeline) -> None:
    plugin = _plugin(_refuse)
    with pytest.raises(ConformanceError, match=r"examples.*reaches no route"):
        check_routes(
            plugin, registry=Registry(), declaration={"examples": [{"method": "GET", "path": "/x"}]}
        )
    wrong = {"examples": [{"method": "POST", "path": "/echo/a", "status": 200}]}
    with pytest.raises(ConformanceError, match="not the declared 200"):
        check_routes(plugin, registry=Registry(), pipeline=idle_pipeline, declaration=wrong)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def half_plus_two_pipeline(model_root: Path) -> Iterator[Pipeline]:
    from tfio_handlers.backends.embedded import EmbeddedBackend

    backend = EmbeddedBackend(
        model_root,
        default_model="half_plus_two",
        labels={"versioned": {"stable": 1, "canary": 2}},
    )
    yield Pipeline(
        backend,
        settings=Settings(load_plugins=False, default_model_name="half_plus_two"),
        registry=Registry(),
    )
    backend.close()


@pytest.mark.tensorflow
@pytest.mark.tfio_routes("sagemaker", "tf-serving-rest", kind="builtin")
def test_builtin_routes_pass(tfio_routes: RouteCase, half_plus_two_pipeline: Pipeline) -> None:
    """Through the pytest plugin: ``tfio_routes`` is each built-in route plugin in turn."""
    tfio_routes.check(pipeline=half_plus_two_pipeline, examples=300)


def test_route_cases_lists_the_route_plugins() -> None:
    assert {c.plugin for c in route_cases(kind="builtin")} == {"sagemaker", "tf-serving-rest"}
    assert [c.missing for c in route_cases(("not-installed",))] == [True]
