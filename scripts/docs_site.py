"""The documentation site's two extensions, named in ``mkdocs.yml``.

- ``ReSTRoles``, a Griffe extension for mkdocstrings: the docstrings are prose with reST roles
  (``:class:`~tfio_handlers.codec.Prediction```, ``:mod:`.options```); each role becomes a link to the
  object when the reference documents it (or code when it does not), a role naming nothing in the package
  is a warning, and so is a public name (one in a documented module's ``__all__``, or a hook) without a
  docstring. ``mkdocs build --strict`` turns those warnings into a failed build.
- ``on_page_markdown``, a MkDocs hook: a link from a page to a repository file outside ``docs/``
  (``../benchmarks/RESULTS.md``) works on GitHub but has no page on the site; there it becomes its text,
  and a link whose file does not exist is a warning.
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The modules whose ``__all__`` the API reference documents: each name must have a docstring.
DOCUMENTED_MODULES = (
    "tfio_handlers",
    "tfio_handlers.codec",
    "tfio_handlers.hookspecs",
    "tfio_handlers.testing",
    "tfio_handlers.transform",
    "tfio_handlers.ray",
)

ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|data|mod|obj|exc|const):`(~?)([^`<>]+)`")
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s#]+)(#[^)\s]*)?\)")

log = logging.getLogger("mkdocs.hooks.docs_site")


# ---- MkDocs hook ---------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Links to repository files outside ``docs/`` become their text; a missing one is a warning."""
    docs_dir = Path(config["docs_dir"]).resolve()
    page_dir = (docs_dir / page.file.src_path).parent

    def replace(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if "://" in target or target.startswith(("mailto:", "/")):
            return match.group(0)
        path = (page_dir / target).resolve()
        if path.is_relative_to(docs_dir):
            return match.group(0)  # MkDocs checks links inside docs/ itself
        if not path.is_relative_to(ROOT) or not path.exists():
            log.warning(
                "%s: link to %s: no such file in the repository", page.file.src_path, target
            )
            return match.group(0)
        return text

    return LINK.sub(replace, markdown)


# ---- Griffe extension ------------------------------------------------------------------------------

try:
    import griffe
except (
    ImportError
):  # only the mkdocs hook is loaded without griffe (it never is: mkdocstrings needs it)
    griffe = None  # type: ignore[assignment]


def _objects(obj: Any) -> Iterator[Any]:
    """``obj`` and every object it defines (not the aliases it imports)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _module_of(obj: Any) -> Any:
    return obj if obj.is_module else obj.module


class _Resolver:
    """Sphinx's lookup of a role's target, on the package Griffe loaded."""

    def __init__(self, package: Any, modules: Sequence[str]) -> None:
        self.package = package
        self.modules = modules
        self.by_name: dict[str, list[str]] = {}
        for obj in _objects(package):
            self.by_name.setdefault(obj.name, []).append(obj.path)
        self.documented = self._documented()

    def find(self, path: str) -> Any | None:
        parts = path.split(".")
        if parts[0] != self.package.name:
            return None
        obj = self.package
        for part in parts[1:]:
            try:
                obj = obj.members[part]
            except Exception:  # absent, or an alias of another package
                return None
        return obj

    def _documented(self) -> dict[str, Any]:
        """The objects the API reference shows: documented modules, their exports, their members."""
        shown: dict[str, Any] = {}
        for name in self.modules:
            module = self.find(name)
            if module is None:
                continue
            shown[module.path] = module
            for export in module.exports or ():
                member = module.members.get(str(export))
                try:
                    target = member.final_target if member.is_alias else member
                except Exception:  # None, or outside the package
                    continue
                for obj in _objects(target):
                    if not obj.name.startswith("_") or obj.name == "__init__":
                        shown[obj.path] = obj
        return shown

    def resolve(self, target: str, where: Any) -> str | None:
        """The path of the object ``target`` names from ``where``; None when it names nothing here."""
        target = target.strip().removesuffix("()")
        module = _module_of(where)
        scopes: list[str] = [where.path] if where.is_class else []
        scopes += [where.parent.path] if where.parent is not None and where.parent.is_class else []
        scopes += [module.path]
        parent = module.parent
        while parent is not None:
            scopes.append(parent.path)
            parent = parent.parent
        if target.startswith("."):
            candidates = [scope + target for scope in scopes]
        else:
            candidates = [target] + [f"{scope}.{target}" for scope in scopes]
        for candidate in candidates:
            if self.find(candidate) is not None:
                return candidate
        if "." not in target:
            found = self.by_name.get(target, [])
            shown = [path for path in found if path in self.documented]
            if len(found) == 1 or len(shown) == 1:
                return (shown or found)[0]
        return None


if griffe is not None:

    class ReSTRoles(griffe.Extension):
        """reST roles → cross-references; undocumented public names → warnings.

        ``modules``: those the reference renders, the package first (the tests give a small one).
        """

        def __init__(self, modules: Sequence[str] = DOCUMENTED_MODULES) -> None:
            super().__init__()
            self.modules = modules

        def on_package(self, *, pkg: Any, loader: Any, **kwargs: Any) -> None:
            if pkg.name != self.modules[0]:
                return
            resolver = _Resolver(pkg, self.modules)
            for obj in _objects(pkg):
                if obj.docstring is not None:
                    warn = obj.path in resolver.documented
                    obj.docstring.value = self.markdown(obj.docstring.value, obj, resolver, warn)
            for name in self.modules:
                module = resolver.find(name)
                if module is None:
                    griffe.logger.warning("docs: no module %s", name)
                    continue
                for public in sorted(module.exports or ()):
                    self.check_documented(module, str(public))
            hookspecs = resolver.find(f"{pkg.name}.hookspecs")
            for hook in hookspecs.functions.values() if hookspecs is not None else ():
                if any(d.value.path == f"{pkg.name}.hookspecs.hookspec" for d in hook.decorators):
                    self.check_documented(hookspecs, hook.name)

        @staticmethod
        def check_documented(module: Any, name: str) -> None:
            member = module.members.get(name)
            if member is None:
                griffe.logger.warning(
                    "docs: %s.__all__ names %s, which it lacks", module.path, name
                )
                return
            try:
                target = member.final_target if member.is_alias else member
            except griffe.AliasResolutionError:
                return  # outside the package (pluggy's markers): documented where they live
            if not (target.docstring and target.docstring.value.strip()):
                griffe.logger.warning("docs: public name %s.%s has no docstring", module.path, name)

        @staticmethod
        def markdown(text: str, obj: Any, resolver: _Resolver, warn: bool) -> str:
            """``text`` with its roles as cross-references; ``warn``: on a role naming nothing."""

            def role(match: re.Match[str]) -> str:
                kind, short, target = match.groups()
                shown = target.lstrip(".")
                if short:
                    shown = shown.rsplit(".", 1)[-1]
                if kind in ("func", "meth") and not shown.endswith("()"):
                    shown += "()"
                code = f"<code>{shown}</code>"
                first = target.lstrip(".~").split(".", 1)[0]
                path = resolver.resolve(target, obj)
                if path is not None:
                    return f'<autoref identifier="{path}" optional>{code}</autoref>'
                package = resolver.package.name
                if first in vars(builtins) or ("." in target and first != package):
                    return code  # Python's or another package's name (numpy.ndarray): not linked
                if warn:
                    griffe.logger.warning(
                        "docs: %s's docstring: %s names nothing in %s",
                        obj.path,
                        match.group(0),
                        package,
                    )
                return code

            text = ROLE.sub(role, text)
            text = text.replace("\\ ", "")  # reST's escaped space (``SignatureDef``\ s)
            return LITERAL_BLOCK.sub(":", text)  # reST's "text::" before a literal block
