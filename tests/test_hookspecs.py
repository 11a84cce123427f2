"""Every hook is documented and tested (datasette's rule): a new hook cannot land without both."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tfio_handlers import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [
    name
    for name, value in vars(hookspecs).items()
    if callable(value) and hasattr(value, "tfio_handlers_spec")
]


def test_there_are_hooks() -> None:
    assert set(HOOKS) == {"register_codecs", "decode", "encode"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_contract_docstring(hook: str) -> None:
    assert len(inspect.getdoc(getattr(hookspecs, hook)) or "") > 80


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    assert re.search(rf"^### `{hook}\(", (ROOT / "docs" / "plugins.md").read_text(), re.M)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_in_a_test(hook: str) -> None:
    sources = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert re.search(rf"@hookimpl[^\n]*\n\s*def {hook}\(", sources)
