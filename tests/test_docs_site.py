"""The documentation site (``mkdocs.yml``, ``scripts/docs_site.py``): every hook has its reference page,
every module the reference renders has its public names checked, and the strict build fails on what it
must: a broken link, a broken cross-reference, a reST role naming nothing, a public name without a
docstring."""

from __future__ import annotations

import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def docs_site() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_site", ROOT / "scripts" / "docs_site.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rendered_identifiers() -> dict[str, Path]:
    """``::: identifier`` of every reference page, with its page."""
    found = {}
    for page in (DOCS / "reference").rglob("*.md"):
        for identifier in re.findall(r"^::: (\S+)", page.read_text(), re.MULTILINE):
            found[identifier] = page
    return found


def test_every_hook_has_a_reference_page_in_the_navigation() -> None:
    from tfio_handlers import hookspecs

    hooks = {name for name, f in vars(hookspecs).items() if hasattr(f, "tfio_handlers_spec")}
    assert {"register_codecs", "decode", "encode"} <= hooks
    pages = {page.stem for page in (DOCS / "reference" / "hooks").glob("*.md")} - {"index"}
    assert pages == hooks
    nav = (ROOT / "mkdocs.yml").read_text()
    identifiers = rendered_identifiers()
    for hook in hooks:
        assert f"- reference/hooks/{hook}.md" in nav
        assert identifiers[f"tfio_handlers.hookspecs.{hook}"].stem == hook


def test_the_reference_renders_exactly_the_modules_whose_names_are_checked() -> None:
    checked = set(docs_site().DOCUMENTED_MODULES)
    rendered = {
        name for name in rendered_identifiers() if not name.startswith("tfio_handlers.hookspecs.")
    }
    assert rendered == checked


def page(src_path: str) -> SimpleNamespace:
    return SimpleNamespace(file=SimpleNamespace(src_path=src_path))


def test_links_to_repository_files_outside_docs_become_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = docs_site().on_page_markdown
    config = {"docs_dir": str(DOCS)}
    markdown = (
        "[results](../benchmarks/RESULTS.md), [json](formats/json.md), "
        "[site](https://example.org/x.md), [gone](../benchmarks/NO-SUCH.md)"
    )
    with caplog.at_level(logging.WARNING):
        out = hook(markdown, page("performance.md"), config, None)
    assert out == (
        "results, [json](formats/json.md), [site](https://example.org/x.md), "
        "[gone](../benchmarks/NO-SUCH.md)"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "performance.md: link to ../benchmarks/NO-SUCH.md: no such file in the repository"
    ]
    nested = hook("[bench](../../benchmarks/README.md)", page("formats/json.md"), config, None)
    assert nested == "bench"


PACKAGE = {
    "__init__.py": '''"""The package.

See :mod:`.sub`::

    code
"""
from .sub import Thing

__all__ = ["Thing", "documented", "bare"]


def documented():
    """Calls :func:`bare`, makes a :class:`~sample.sub.Thing`, raises :class:`ValueError`,
    returns a :class:`numpy.ndarray` and names :func:`missing`."""


def bare():
    pass
''',
    "sub.py": '"""Sub."""\n\n\nclass Thing:\n    """A thing."""\n',
}


def test_roles_become_cross_references_and_gaps_are_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    griffe = pytest.importorskip("griffe")
    for name, text in PACKAGE.items():
        (tmp_path / "sample").mkdir(exist_ok=True)
        (tmp_path / "sample" / name).write_text(text)
    extensions = griffe.load_extensions(docs_site().ReSTRoles(modules=("sample",)))
    with caplog.at_level(logging.WARNING, logger="griffe"):
        package = griffe.load(
            "sample", search_paths=[tmp_path], extensions=extensions, allow_inspection=False
        )
    assert package.docstring.value == (
        'The package.\n\nSee <autoref identifier="sample.sub" optional><code>sub</code>'
        "</autoref>:\n\n    code"
    )
    assert package["documented"].docstring.value == (
        'Calls <autoref identifier="sample.bare" optional><code>bare()</code></autoref>, '
        'makes a <autoref identifier="sample.sub.Thing" optional><code>Thing</code></autoref>, '
        "raises <code>ValueError</code>,\nreturns a <code>numpy.ndarray</code> and names "
        "<code>missing()</code>."
    )
    warnings = {record.getMessage() for record in caplog.records}
    assert "docs: public name sample.bare has no docstring" in warnings
    assert (
        "docs: sample.documented's docstring: :func:`missing` names nothing in sample" in warnings
    )
    assert not any("Thing" in warning or "documented has" in warning for warning in warnings)


BUILD = """
import logging
import sys
from mkdocs.commands.build import build
from mkdocs.config import load_config

logging.getLogger("mkdocs").addHandler(logging.StreamHandler())
config = load_config("mkdocs.yml", docs_dir=sys.argv[1], site_dir=sys.argv[2], strict=True)
config.plugins.on_startup(command="build", dirty=False)
try:
    build(config)
finally:
    config.plugins.on_shutdown()
"""


@pytest.mark.slow
def test_the_strict_build_fails_on_a_broken_link_or_cross_reference(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    # The repository's docs/ with one page broken, as links: ../README.md and ../benchmarks resolve.
    docs = tmp_path / "docs"
    docs.mkdir()
    for entry in DOCS.iterdir():
        if entry.name != "contributing-docs.md":
            (docs / entry.name).symlink_to(entry)
    (docs / "contributing-docs.md").write_text(
        "# Contributing\n\n[a page](no-such-page.md), [a name][tfio_handlers.no_such_name]\n"
    )
    for entry in ("README.md", "benchmarks"):
        (tmp_path / entry).symlink_to(ROOT / entry)
    built = subprocess.run(
        [sys.executable, "-c", BUILD, str(docs), str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode != 0
    # The logger prints warnings only; the build of the real pages is .ci/run's, so others may show.
    assert "'contributing-docs.md' contains a link 'no-such-page.md'" in built.stderr, built.stderr
    assert (
        "contributing-docs.md: Could not find cross-reference target 'tfio_handlers.no_such_name'"
        in built.stderr
    ), built.stderr
