"""The optional accelerators, found in one place: orjson (JSON in and out) and pysimdjson (JSON in).

Neither is a dependency of the core: every caller has a standard-library path that gives the same
answer. Each is imported when asked for, never when this module is imported, so the core imports
without them and a test hides one (``sys.modules["orjson"] = None``) to run the fallback path.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["orjson", "simdjson"]


def orjson() -> Any:
    """The ``orjson`` module, or ``None`` when it is not installed (a dictionary look-up a call)."""
    try:
        import orjson as module
    except ImportError:
        return None
    return module


def simdjson() -> Any:
    """The ``simdjson`` module (pysimdjson), or ``None`` when it is not installed or the host is
    big-endian (its arrays would be read as the little-endian ``tensor_content`` they are not)."""
    try:
        import simdjson as module
    except ImportError:
        return None
    return module if sys.byteorder == "little" else None
