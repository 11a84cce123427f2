"""A served app freezes the heap once its pipeline is built (``TFIO_HANDLERS_GC_FREEZE``)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.adapters.wsgi import WSGIApp
from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.config import Settings
from tfio_handlers.pipeline import Pipeline

pytestmark = pytest.mark.tensorflow


@pytest.mark.parametrize("adapter", [ASGIApp, WSGIApp])
@pytest.mark.parametrize("freeze", [True, False])
def test_the_heap_is_frozen_after_loading_unless_turned_off(
    half_plus_two_model: Path, adapter: type, freeze: bool
) -> None:
    env = {} if freeze else {"TFIO_HANDLERS_GC_FREEZE": "0"}
    settings = Settings.from_env(env, load_plugins=False)
    assert settings.gc_freeze is freeze
    backends: list[EmbeddedBackend] = []

    def build() -> Pipeline:
        backends.append(EmbeddedBackend({"half_plus_two": half_plus_two_model.parent}))
        return Pipeline(backends[0], settings=settings)

    gc.unfreeze()
    try:
        app = adapter(build)
        app.state.wait_loaded(60)
        assert app.state.ready
        # Frozen: the objects alive after loading (the backend among them) are out of the
        # collector's generations; left alone, nothing is.
        assert (gc.get_freeze_count() > 0) is freeze
        assert any(o is backends[0] for o in gc.get_objects()) is not freeze
    finally:
        gc.unfreeze()
        for backend in backends:
            backend.close()
