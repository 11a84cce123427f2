"""gunicorn settings for ``tfio-handlers serve --server gunicorn`` (``--config python:...``).

``serve`` replaces its process with gunicorn's (``os.execv``), so it cannot clean up after the
server itself: what must happen when gunicorn's arbiter exits is one of gunicorn's server hooks,
here. Only hooks live in this module: gunicorn reads every module-level name that is one of its
settings.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

REMOVE_AT_EXIT_ENV = "TFIO_HANDLERS_REMOVE_AT_EXIT"
"""A folder ``serve`` made for this run (the metrics' multi-process folder), removed when the
arbiter exits; unset when ``serve`` made none."""


def on_exit(server: Any) -> None:
    """gunicorn's hook, called in the arbiter just before it exits: remove the folder ``serve``
    made for this run, so that runs do not leave one behind each."""
    folder = os.environ.get(REMOVE_AT_EXIT_ENV)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
