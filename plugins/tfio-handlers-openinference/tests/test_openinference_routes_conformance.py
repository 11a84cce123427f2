"""The Open Inference Protocol plugin passes the route conformance suite
(``tfio_handlers.testing.check_routes``): its declarations, no conflict with the built-ins or the
other installed plugins, its declared examples, and a bounded fuzz of hostile requests through every
route's handler in-process, on a real pipeline over the ``half_plus_two`` SavedModel."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tfio_handlers_openinference

from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline
from tfio_handlers.pytest_plugin import RouteCase
from tfio_handlers.testing import check_routes, declared_routes, installed_registry

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    pytest.importorskip("tensorflow")
    import saved_models

    from tfio_handlers.backends.embedded import EmbeddedBackend

    root = tmp_path_factory.mktemp("oip_conformance") / "models"
    saved_models.build_half_plus_two(root / "half_plus_two" / "1")
    backend = EmbeddedBackend(root, default_model="half_plus_two")
    registry = installed_registry()
    yield Pipeline(backend, settings=Settings(load_plugins=False), registry=registry)
    backend.close()


def test_declares_every_route() -> None:
    routes = {(e.method, e.template) for e in declared_routes(tfio_handlers_openinference)}
    assert ("POST", "/v2/models/{name}/versions/{version}/infer") in routes
    assert len(routes) == 9


def test_the_installed_plugin_passes_the_route_conformance_suite(pipeline: Pipeline) -> None:
    check_routes("openinference", registry=pipeline.registry, pipeline=pipeline, examples=200)


@pytest.mark.tfio_routes("openinference")
def test_through_the_pytest_plugin(tfio_routes: RouteCase, pipeline: Pipeline) -> None:
    """The same check as a plugin author writes it with the pytest plugin's ``tfio_routes``."""
    assert tfio_routes.plugin == "openinference"
    tfio_routes.check(pipeline=pipeline, examples=50)
