"""The built-in codecs, one module per format; each module is a plugin of the registry.

``BUILTIN_PLUGINS`` lists them as ``(name, module)``; the registry registers them with the lowest
priority, so user code and third-party plugins are asked first.
"""

from __future__ import annotations

from types import ModuleType

from . import csv, json, jsonlines, npy, pickle, protobuf

BUILTIN_PLUGINS: list[tuple[str, ModuleType]] = [
    ("json", json),
    ("protobuf", protobuf),
    ("csv", csv),
    ("jsonlines", jsonlines),
    ("npy", npy),
    ("pickle", pickle),
]
