"""The fuzzing campaign's regression corpus, replayed, and a short bounded fuzz run of every target.

``reliability/fuzz.py`` keeps every crasher it finds in ``tests/fuzz_corpus/<target>/``; each file
there must now give a value or an :class:`~tfio_handlers.errors.HTTPError`, never another
exception (a 500). The short run is the campaign's CI part: a few hundred inputs per target.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tfio_fuzz", ROOT / "reliability" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tfio_fuzz"] = module
    spec.loader.exec_module(module)
    return module


fuzz = _fuzz()
CASES = [(target, path) for target in fuzz.TARGETS for path in fuzz.corpus_files(target)]


def test_the_corpus_holds_the_issue_cases() -> None:
    """The nine 500s of issue 11 seed it (json, npy, npz, jsonlines)."""
    assert {target for target, _ in CASES} >= {"json", "npy", "npz", "jsonlines"}
    assert len(CASES) >= 9
    assert all(
        path.parent.name in fuzz.TARGETS for path in (ROOT / "tests" / "fuzz_corpus").glob("*/*")
    )


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name[:10]}" for t, p in CASES])
def test_corpus_file_gives_a_value_or_an_http_error(target: str, path: Path) -> None:
    outcome = fuzz.run_one(target, path.read_bytes())
    assert not outcome.crashed, outcome.error


@pytest.mark.parametrize("target", list(fuzz.TARGETS))
def test_short_fuzz_run_finds_no_crasher(target: str) -> None:
    ran, crashers = fuzz.fuzz_hypothesis(target, 120, seed=11)
    assert ran == 120
    assert not crashers, [(data[:80], error) for data, error in crashers[:3]]
