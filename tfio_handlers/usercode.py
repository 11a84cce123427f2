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
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from google.protobuf.message import Message

from .context import Context
from .errors import HTTPError, InternalError, UserCodeError
from .hookspecs import hookimpl
from .media import MediaType, is_text_type, text_of
from .protocol.arrays import as_response_message

__all__ = [
    "USER_FAILURES",
    "ResponseView",
    "UserCode",
    "call_user",
    "check_decoded",
    "load_user_code",
    "optional_context",
    "user_answer",
]

log = logging.getLogger(__name__)

_PAIR_LEGACY = ("input_fn", "output_fn")
_PAIR_TFS = ("input_handler", "output_handler")


@dataclass(frozen=True)
class _Hook:
    """A user function and whether it takes the trailing ``context`` argument."""

    name: str
    function: Callable[..., Any]
    takes_context: bool


_PARAMETERS: dict[str, tuple[str, ...]] = {
    "input_fn": ("data", "content_type"),
    "output_fn": ("prediction", "accept"),
    "transform_fn": ("data", "content_type", "accept"),
    "input_handler": ("data", "context"),
    "output_handler": ("response", "context"),
    "handler": ("data", "context"),
}
"""Each user function's positional parameters, without the optional trailing ``context``."""

_CONTEXT_REQUIRED = frozenset({"input_handler", "output_handler", "handler"})
"""The TF Serving container's functions always take the context; the others may (the toolkit's rule)."""


def optional_context(name: str) -> bool:
    """Whether the user function ``name`` may leave out the trailing ``context`` argument."""
    return name not in _CONTEXT_REQUIRED


def _takes_context(function: Callable[..., Any], name: str, file: str) -> bool:
    """Whether ``function`` gets the trailing ``context``; refuses a signature it cannot be called with.

    The legacy functions take their parameters, or those and a trailing ``context`` (the inference
    toolkit's rule, decided by the number of positional parameters); the TF Serving container's
    take ``(value, context)``. The message names ``file`` and the function.
    """
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return not optional_context(name)  # a C callable: nothing to inspect; call it plainly
    names = _PARAMETERS[name]
    optional = optional_context(name)
    most = len(names) + 1 if optional else len(names)
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    keyword_only = [
        p.name
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    wanted = f"{len(names)} arguments ({', '.join(names)})"
    if optional:
        wanted += f", or {most} with a trailing context"
    if keyword_only:
        raise InternalError(
            f"{file}: {name} must take {wanted}; it also requires the keyword-only "
            f"argument{'s' if len(keyword_only) > 1 else ''} {', '.join(keyword_only)}"
        )
    if len(required) > most or (len(positional) < len(names) and not var_positional):
        takes = len(required) if len(required) > most else len(positional)
        raise InternalError(f"{file}: {name} must take {wanted}; it takes {takes}")
    return var_positional or len(positional) >= most


USER_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit, KeyboardInterrupt)
"""What user code may raise and still get an answer: ``sys.exit()`` or ``KeyboardInterrupt`` in an
``input_fn`` is a failed request (500 JSON), never a worker (or uvicorn's event loop) taken down."""


def call_user(name: str, function: Callable[..., Any], *args: Any) -> Any:
    """Call user code; an :class:`HTTPError` passes through, anything else becomes a 500.

    ``SystemExit`` and ``KeyboardInterrupt`` included (see :data:`USER_FAILURES`). The traceback is
    logged here, server-side; the client gets only the message.
    """
    try:
        return function(*args)
    except HTTPError:
        raise
    except USER_FAILURES as exc:
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


_DECODED_TYPES: tuple[type, ...] = (
    Message,
    np.ndarray,
    np.generic,
    list,
    tuple,
    dict,
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
)
"""What ``input_fn``/``input_handler`` may return (besides ``None`` and array-likes)."""


def check_decoded(name: str, value: Any) -> Any:
    """``value`` as ``input_fn``/``input_handler`` returned it, or a 500 naming the function.

    Only a type that can never become a TF Serving request is refused here; whether a list or an
    array fits the model's signature is the model's question (a 400 from the request builder).
    """
    if value is None or isinstance(value, _DECODED_TYPES) or hasattr(value, "__array__"):
        return value
    raise UserCodeError(
        f"{name} returned {type(value).__name__}; expected a TF Serving request message, a "
        "TensorProto, a numpy array, a (nested) list, a dict of input name to value, a TF Serving "
        "REST JSON body (str or bytes), or None"
    )


def user_answer(name: str, result: Any) -> tuple[bytes, str | None] | None:
    """What an answering user function returned, as ``(body, content_type or None)``.

    ``output_fn``, ``output_handler``, ``transform_fn`` and ``handler`` return ``bytes``, ``str`` or
    ``(body, content_type)``; ``None`` (the caller decides what it means). Anything else is a 500
    whose message names the function and what it returned.
    """
    if result is None:
        return None
    content_type: Any = None
    if isinstance(result, tuple):
        if len(result) != 2:
            raise UserCodeError(
                f"{name} returned a tuple of {len(result)} items; expected (body, content_type)"
            )
        result, content_type = result
        if not isinstance(content_type, str):
            raise UserCodeError(
                f"{name} returned (body, {type(content_type).__name__}); the content type must "
                "be a str such as 'application/json'"
            )
        _check_content_type(name, content_type)
        if isinstance(result, tuple) or result is None:
            raise UserCodeError(
                f"{name} returned ({type(result).__name__}, content_type); the body must be "
                "bytes or str"
            )
    if isinstance(result, str):
        return result.encode("utf-8"), content_type
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), content_type
    what = f"({type(result).__name__}, content_type)" if content_type else type(result).__name__
    raise UserCodeError(f"{name} returned {what}; expected bytes, str or (body, content_type)")


def _check_content_type(name: str, content_type: str) -> None:
    """Refuse a content type no HTTP header can carry: non-latin-1 text, CR/LF or other controls."""
    try:
        content_type.encode("latin-1")
    except UnicodeEncodeError:
        raise UserCodeError(
            f"{name} returned the content type {content_type!r}, which is not latin-1 text "
            "(an HTTP header cannot carry it)"
        ) from None
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in content_type):
        raise UserCodeError(
            f"{name} returned the content type {content_type!r}, which holds a control character "
            "(CR, LF, ...); an HTTP header cannot carry it"
        )


class UserCode:
    """The user's module, recognised and wrapped. Register it with ``kind=Kind.USER``.

    Its ``decode``/``encode`` hookimpls make ``input_fn``/``input_handler`` and ``output_fn``/
    ``output_handler`` the first decoder and encoder for every media type. ``transform`` and
    ``handler`` (when defined) replace the whole pipeline and are called by it directly.
    """

    def __init__(self, module: ModuleType, *, is_text: Callable[[str], bool] | None = None) -> None:
        self.module = module
        self.name = getattr(module, "__file__", None) or module.__name__
        self._is_text = is_text or is_text_type
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
        self.input_fn = self._hook("input_fn")
        self.output_fn = self._hook("output_fn")
        self.transform_fn = self._hook("transform_fn")
        self.input_handler = self._hook("input_handler")
        self.output_handler = self._hook("output_handler")
        self.handler = self._hook("handler")

    def _hook(self, name: str) -> _Hook | None:
        function = getattr(self.module, name, None)
        if not callable(function):
            return None
        return _Hook(name, function, _takes_context(function, name, self.name))

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
            return check_decoded(hook.name, call_user(hook.name, hook.function, *args))
        if self.input_handler is not None:
            result = call_user(
                "input_handler", self.input_handler.function, io.BytesIO(body), context
            )
            if result is not None:
                context.extras["from_input_handler"] = True
            return check_decoded("input_handler", result)
        return None

    @hookimpl
    def encode(self, response: Any, media_type: MediaType, context: Context) -> Any:
        if self.output_fn is not None:
            hook = self.output_fn
            # output_fn's contract (SageMaker's) is the response message: built at this edge.
            args: tuple[Any, ...] = (as_response_message(response), media_type.essence)
            if hook.takes_context:
                args += (context,)
            result = call_user(hook.name, hook.function, *args)
            return self._answer(hook.name, result, media_type)
        if self.output_handler is not None:
            from .protocol.responses import response_to_tfs_json

            view = ResponseView(response_to_tfs_json(response, context))
            result = call_user("output_handler", self.output_handler.function, view, context)
            return self._answer("output_handler", result, media_type)
        return None

    @staticmethod
    def _answer(name: str, result: Any, media_type: MediaType) -> tuple[bytes, str] | None:
        answer = user_answer(name, result)
        if answer is None:
            return None
        body, content_type = answer
        return body, content_type or media_type.essence

    def answer_error(self, error: HTTPError, context: Context) -> tuple[bytes, str | None] | None:
        """``output_handler``'s answer to the model server's error, as SageMaker's container gives it.

        The handler sees a response with the error's status and ``{"error": ...}`` body. ``None``
        when there is no ``output_handler``, when it returns ``None``, or when it raises something
        other than :class:`HTTPError` (the ``if response.status_code != 200: raise ...`` idiom): the
        error then answers as it is, keeping its status, and the exception is logged. An
        :class:`HTTPError` it raises answers instead.
        """
        if self.output_handler is None:
            return None
        view = ResponseView(error.to_json(), error.status_code)
        try:
            result = self.output_handler.function(view, context)
        except HTTPError:
            raise
        except USER_FAILURES:
            log.warning(
                "output_handler raised on a %d answer; answering that error as it is",
                error.status_code,
                exc_info=True,
            )
            return None
        return user_answer("output_handler", result)


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
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise InternalError(
            f"Importing user code {file} failed{_where(exc, file)}: {type(exc).__name__}: {exc}"
        ) from exc
    return UserCode(module, is_text=is_text)


def _where(exc: BaseException, file: Path) -> str:
    """`` at line N`` of ``file`` where ``exc`` was raised (its last frame there), or ``""``."""
    if isinstance(exc, SyntaxError):
        return ""  # its message already says "(file, line N)"
    target = os.path.realpath(file)
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if os.path.realpath(frame.filename) == target
    ]
    return f" at line {lines[-1]}" if lines and lines[-1] is not None else ""
