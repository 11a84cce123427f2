"""Hypothesis stays optional: the core and the pytest plugin import without it, and
tfio_handlers.testing names the extra that brings it."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_HYPOTHESIS = """
import sys
sys.modules["hypothesis"] = None  # as if it were not installed
import tfio_handlers, tfio_handlers.codec, tfio_handlers.pytest_plugin
try:
    import tfio_handlers.testing
except ImportError as exc:
    assert "tfio-handlers[testing]" in str(exc), exc
    print("refused")
"""


def test_without_hypothesis() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_HYPOTHESIS], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "refused"


def test_the_pytest_plugin_is_an_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [e for e in entry_points(group="pytest11") if e.name == "tfio_handlers"]
    assert found.value == "tfio_handlers.pytest_plugin"
