"""The user's ``inference.py``: loading it, recognising its contract, wrapping it as the first plugin.

Three contracts exist, all kept exactly as SageMaker users wrote them:

* legacy Python container: ``input_fn(data, content_type)``, ``output_fn(prediction, accept)``,
  ``transform_fn(data, content_type, accept)``;
* inference toolkit: the same functions with a trailing ``context`` argument, detected by arity;
* TF Serving container: ``input_handler(data, context)``, ``output_handler(response, context)``,
  ``handler(data, context)``.

``transform_fn`` and ``handler`` take the whole request; defining one beside the pair it replaces, or
mixing the contracts, is refused at load time. ``input_fn``/``output_fn`` returning ``None`` fall through
to the plugins and built-in codecs behind them, so the seed document's examples work as written.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .context import Context
from .errors import HTTPError, InternalError, UserCodeError
from .hookspecs import hookimpl
from .media import MediaType, text_of

__all__ = ["ResponseView", "UserCode", "call_user", "load_user_code"]

log = logging.getLogger(__name__)

_PAIR_LEGACY = ("input_fn", "output_fn")
_PAIR_TFS = ("input_handler", "output_handler")


@dataclass(frozen=True)
class _Hook:
    """A user function and whether it takes the trailing ``context`` argument."""

    name: str
    function: Callable[..., Any]
    takes_context: bool


def _takes_context(function: Callable[..., Any], base_arity: int, name: str) -> bool:
    """True when ``function`` accepts ``base_arity + 1`` positional arguments (the toolkit's rule)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return True
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    if len(positional) >= base_arity + 1:
        return True
    if len(required) > base_arity or len(positional) < base_arity:
        raise InternalError(
            f"{name} must take {base_arity} arguments (or {base_arity + 1} with a trailing "
            f"context); it takes {len(positional)}"
        )
    return False


def call_user(name: str, function: Callable[..., Any], *args: Any) -> Any:
    """Call user code; an :class:`HTTPError` passes through, anything else becomes a 500.

    The traceback is logged here, server-side; the client gets only the message.
    """
    try:
        return function(*args)
    except HTTPError:
        raise
    except Exception as exc:
        log.exception("%s raised", name)
        raise UserCodeError(f"{name} failed: {type(exc).__name__}: {exc}") from exc


class ResponseView:
    """What ``output_handler`` receives: a ``requests.Response``-like view of TF Serving's REST answer.

    SageMaker's TF Serving container hands ``output_handler`` the HTTP response of TF Serving's REST API;
    handlers read ``.content``, ``.text``, ``.json()`` and ``.status_code``. This view offers the same.
    """

    def __init__(
        self, content: bytes, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.content = content
        self.status_code = status_code
        self.headers = dict(headers or {"Content-Type": "application/json"})

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self) -> Any:
        return json.loads(self.content)


class UserCode:
    """The user's module, recognised and wrapped. Register it with ``kind=Kind.USER``.

    Its ``decode``/``encode`` hookimpls make ``input_fn``/``input_handler`` and ``output_fn``/
    ``output_handler`` the first decoder and encoder for every media type. ``transform`` and
    ``handler`` (when defined) replace the whole pipeline and are called by it directly.
    """

    def __init__(self, module: ModuleType, *, is_text: Callable[[str], bool] | None = None) -> None:
        self.module = module
        self.name = getattr(module, "__file__", None) or module.__name__
        self._is_text = is_text or (
            lambda essence: essence.startswith("text/") or "json" in essence
        )
        names = {
            n
            for n in (
                "input_fn",
                "output_fn",
                "transform_fn",
                "input_handler",
                "output_handler",
                "handler",
            )
            if callable(getattr(module, n, None))
        }
        self.defined = frozenset(names)
        if "transform_fn" in names and names & set(_PAIR_LEGACY):
            raise InternalError(
                f"{self.name}: transform_fn cannot be declared together with an input or output "
                "function (input_fn/output_fn)"
            )
        if "handler" in names and names & set(_PAIR_TFS):
            raise InternalError(
                f"{self.name}: handler cannot be declared together with input_handler or "
                "output_handler"
            )
        legacy = names & {"input_fn", "output_fn", "transform_fn"}
        tfs = names & {"input_handler", "output_handler", "handler"}
        if legacy and tfs:
            raise InternalError(
                f"{self.name}: mixes SageMaker's legacy functions ({', '.join(sorted(legacy))}) with "
                f"the TF Serving container's ({', '.join(sorted(tfs))}); define one set"
            )
        self.input_fn = self._hook("input_fn", 2)
        self.output_fn = self._hook("output_fn", 2)
        self.transform_fn = self._hook("transform_fn", 3)
        self.input_handler = self._hook("input_handler", 1, context_required=True)
        self.output_handler = self._hook("output_handler", 1, context_required=True)
        self.handler = self._hook("handler", 1, context_required=True)

    def _hook(self, name: str, arity: int, *, context_required: bool = False) -> _Hook | None:
        function = getattr(self.module, name, None)
        if not callable(function):
            return None
        if context_required:
            _takes_context(function, arity, name)
            return _Hook(name, function, True)
        return _Hook(name, function, _takes_context(function, arity, name))

    @property
    def replaces_pipeline(self) -> bool:
        """True when ``transform_fn`` or ``handler`` takes the whole request."""
        return self.transform_fn is not None or self.handler is not None

    def data_for(self, body: bytes, media_type: MediaType) -> bytes | str:
        """What ``input_fn``/``transform_fn`` receive: ``str`` for text types, ``bytes`` otherwise."""
        return text_of(body, media_type) if self._is_text(media_type.essence) else body

    # -- hookimpls ---------------------------------------------------------------------------------

    @hookimpl
    def decode(self, body: bytes, media_type: MediaType, context: Context) -> Any:
        if self.input_fn is not None:
            hook = self.input_fn
            args: tuple[Any, ...] = (self.data_for(body, media_type), media_type.essence)
            if hook.takes_context:
                args += (context,)
            return call_user(hook.name, hook.function, *args)
        if self.input_handler is not None:
            result = call_user(
                "input_handler", self.input_handler.function, io.BytesIO(body), context
            )
            if result is not None:
                context.extras["from_input_handler"] = True
            return result
        return None

    @hookimpl
    def encode(self, response: Any, media_type: MediaType, context: Context) -> Any:
        if self.output_fn is not None:
            hook = self.output_fn
            args: tuple[Any, ...] = (response, media_type.essence)
            if hook.takes_context:
                args += (context,)
            return call_user(hook.name, hook.function, *args)
        if self.output_handler is not None:
            from .protocol.responses import response_to_tfs_json

            view = ResponseView(response_to_tfs_json(response, context))
            return call_user("output_handler", self.output_handler.function, view, context)
        return None


def load_user_code(
    path: str | os.PathLike[str], *, is_text: Callable[[str], bool] | None = None
) -> UserCode:
    """Import the user's file (``inference.py`` or ``SAGEMAKER_PROGRAM``) and recognise its contract.

    Its directory goes on ``sys.path`` first, so the module can import its neighbours (and a ``lib/``
    folder beside it, as SageMaker's container allows). Errors name the path.
    """
    file = Path(path)
    if not file.is_file():
        raise InternalError(f"User code not found: {file}")
    directory = str(file.parent.resolve())
    for entry in (str(Path(directory) / "lib"), directory):
        if entry not in sys.path and Path(entry).is_dir():
            sys.path.insert(0, entry)
    module_name = f"tfio_user_code_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise InternalError(f"Cannot import user code from {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise InternalError(
            f"Importing user code {file} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return UserCode(module, is_text=is_text)
