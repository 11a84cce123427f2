"""The light core: the package, every built-in codec, the protocol, the registry, the pipeline and
the backend modules import without TensorFlow, grpcio or httpx (and with them installed, never load
them). In a core-only install this proves the imports work at all; in the dev install, that they
stay lazy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODULES = [
    "tfio_handlers",
    "tfio_handlers.formats.csv",
    "tfio_handlers.formats.json",
    "tfio_handlers.formats.jsonlines",
    "tfio_handlers.formats.npy",
    "tfio_handlers.formats.pickle",
    "tfio_handlers.formats.protobuf",
    "tfio_handlers.protocol.examples",
    "tfio_handlers.protocol.requests",
    "tfio_handlers.protocol.responses",
    "tfio_handlers.protocol.tfs_json",
    "tfio_handlers.protocol.signatures",
    "tfio_handlers.registry",
    "tfio_handlers.pipeline",
    "tfio_handlers.backends.batching",
    "tfio_handlers.backends.embedded",
    "tfio_handlers.backends.grpc",
    "tfio_handlers.backends.rest",
    "tfio_handlers.adapters.grpc",
]
HEAVY = ("tensorflow", "keras", "grpc", "httpx")


def test_core_modules_import_without_heavy_dependencies() -> None:
    code = (
        f"import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        f"    importlib.import_module(name)\n"
        f"from tfio_handlers.registry import Registry\n"
        f"Registry()\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        f"assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
