"""A helper the pickle tests share (imported as ``pickle_support``; pytest puts this folder on the path)."""

from __future__ import annotations

import pickle
from typing import Any


def payload(function: Any, *args: Any, protocol: int = 4) -> bytes:
    """A pickle that calls ``function(*args)`` when plain ``pickle.loads`` reads it."""

    class Evil:
        def __reduce__(self) -> Any:
            return (function, args)

    return pickle.dumps(Evil(), protocol=protocol)
