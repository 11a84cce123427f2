"""The user's inference.py: contracts, arity detection, fall-through, errors."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfio_handlers.context import Context
from tfio_handlers.errors import HTTPError, InternalError, UserCodeError
from tfio_handlers.hookspecs import hookimpl
from tfio_handlers.media import MediaType
from tfio_handlers.registry import Kind, Registry
from tfio_handlers.usercode import ResponseView, UserCode, load_user_code

# The seed document's examples, with only their obvious typos fixed (the undefined
# ``request_content_type`` becomes the parameter, ``np.dumps`` becomes ``pickle.dumps``,
# and ``pickle`` is imported).
SEED_INPUT_FN = '''
import numpy as np
import pickle

def input_fn(serialized_input, content_type):
    """An input_fn that loads a pickled object"""
    if content_type == "application/python-pickle":
        deserialized_input = pickle.loads(serialized_input)
        return deserialized_input
    else:
        # Handle other content-types here or raise an Exception
        # if the content type is not supported.
        pass
'''

SEED_OUTPUT_FN = '''
import numpy as np
import pickle

def output_fn(prediction_result, accepts):
    """An output_fn that dumps a pickled object as response"""
    if accepts == "application/python-pickle":
        return pickle.dumps(prediction_result)
    else:
        # Handle other content-types here or raise an Exception
        # if the content type is not supported.
        pass
'''


class Builtin:
    """Stands in for the built-in codecs: decodes text/csv, encodes application/json."""

    @hookimpl
    def register_codecs(self, register: Any) -> None:
        register("text/csv", decode=lambda body, mt, ctx: ("builtin", body))
        register("application/json", encode=lambda r, mt, ctx: b"builtin-json")


def write(tmp_path: Path, source: str, name: str = "inference.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def registry_with(user: UserCode) -> Registry:
    registry = Registry(builtins=False)
    registry.register(Builtin(), name="builtin", kind=Kind.BUILTIN)
    registry.register(user, name="user-code", kind=Kind.USER)
    return registry


def test_seed_input_and_output_fn_work_as_written(tmp_path: Path) -> None:
    user = load_user_code(write(tmp_path, SEED_INPUT_FN + SEED_OUTPUT_FN))
    registry = registry_with(user)
    array = np.arange(4.0)
    decoded = registry.decode(
        pickle.dumps(array), MediaType("application/python-pickle"), Context()
    )
    np.testing.assert_array_equal(decoded, array)
    # Other types fall through to the built-ins (input_fn returns None).
    assert registry.decode(b"1,2", MediaType("text/csv"), Context()) == ("builtin", b"1,2")
    media = registry.negotiate("application/python-pickle", "application/json")
    body, content_type = registry.encode({"a": 1}, media, Context())
    assert pickle.loads(body) == {"a": 1} and content_type == "application/python-pickle"
    assert registry.encode({"a": 1}, MediaType("application/json"), Context())[0] == (
        b"builtin-json"
    )


def test_text_types_arrive_as_str_binary_as_bytes(tmp_path: Path) -> None:
    seen: list[Any] = []
    user = load_user_code(
        write(tmp_path, "def input_fn(data, content_type):\n    SEEN.append(data)\n")
    )
    user.module.SEEN = seen
    registry = registry_with(user)
    registry.decode("é".encode("latin-1"), MediaType("text/csv", {"charset": "latin-1"}), Context())
    with pytest.raises(HTTPError):
        registry.decode(b"\x00\x01", MediaType("application/x-npy"), Context())
    assert seen == ["é", b"\x00\x01"]


def test_context_argument_detected_by_arity(tmp_path: Path) -> None:
    user = load_user_code(
        write(
            tmp_path,
            """
        def input_fn(data, content_type, context):
            return ("ctx", context.model_name)
        def output_fn(prediction, accept, context):
            return "out"
    """,
        )
    )
    assert user.input_fn is not None and user.input_fn.takes_context
    registry = registry_with(user)
    assert registry.decode(b"1", MediaType("text/csv"), Context(model_name="m")) == ("ctx", "m")


def test_tfs_container_handlers(tmp_path: Path) -> None:
    user = load_user_code(
        write(
            tmp_path,
            """
        import json
        def input_handler(data, context):
            assert context.request_content_type == "text/csv"
            return json.dumps({"instances": [float(x) for x in data.read().split(b",")]})
        def output_handler(response, context):
            return response.content, "application/json"
    """,
        )
    )
    registry = registry_with(user)
    context = Context(request_content_type="text/csv")
    assert registry.decode(b"1,2", MediaType("text/csv"), context) == '{"instances": [1.0, 2.0]}'


def test_response_view_reads_like_requests() -> None:
    view = ResponseView(b'{"predictions": [1]}')
    assert view.json() == {"predictions": [1]} and view.status_code == 200 and view.ok
    assert view.text.startswith("{")


@pytest.mark.parametrize(
    "source",
    [
        "def transform_fn(d, c, a): pass\ndef input_fn(d, c): pass\n",
        "def handler(d, c): pass\ndef output_handler(r, c): pass\n",
        "def input_fn(d, c): pass\ndef output_handler(r, c): pass\n",
    ],
)
def test_ambiguous_combinations_refused_at_load(tmp_path: Path, source: str) -> None:
    with pytest.raises(InternalError):
        load_user_code(write(tmp_path, source))


def test_wrong_arity_refused(tmp_path: Path) -> None:
    with pytest.raises(InternalError, match=r"input_fn must take 2"):
        load_user_code(write(tmp_path, "def input_fn(data): pass\n"))


def test_user_exceptions_become_500_with_message_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user = load_user_code(
        write(tmp_path, "def input_fn(data, ct):\n    raise ValueError('nope')\n")
    )
    registry = registry_with(user)
    with pytest.raises(UserCodeError) as info:
        registry.decode(b"1", MediaType("text/csv"), Context())
    assert info.value.status_code == 500 and "nope" in info.value.message
    assert "Traceback" not in info.value.message
    assert any(r.exc_info for r in caplog.records)


def test_user_may_raise_http_error_with_own_status(tmp_path: Path) -> None:
    user = load_user_code(
        write(
            tmp_path,
            """
        from tfio_handlers.errors import HTTPError
        def input_fn(data, ct):
            raise HTTPError("teapot", status=418)
    """,
        )
    )
    with pytest.raises(HTTPError) as info:
        registry_with(user).decode(b"1", MediaType("text/csv"), Context())
    assert info.value.status_code == 418


def test_missing_file_and_import_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(InternalError, match="not found"):
        load_user_code(tmp_path / "nope.py")
    with pytest.raises(InternalError, match=r"broken\.py"):
        load_user_code(write(tmp_path, "import not_a_module_anywhere\n", "broken.py"))


def test_neighbour_modules_import(tmp_path: Path) -> None:
    write(tmp_path, "VALUE = 42\n", "helper_mod_xyz.py")
    user = load_user_code(
        write(tmp_path, "from helper_mod_xyz import VALUE\ndef input_fn(d, c):\n    return VALUE\n")
    )
    assert registry_with(user).decode(b"", MediaType("text/csv"), Context()) == 42


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            "def output_fn(prediction): pass\n",
            "output_fn must take 2 arguments (prediction, accept), or 3 with a trailing "
            "context; it takes 1",
        ),
        (
            "def transform_fn(a, b, c, d, e): pass\n",
            "transform_fn must take 3 arguments (data, content_type, accept), or 4 with a "
            "trailing context; it takes 5",
        ),
        (
            "def input_handler(data): pass\n",
            "input_handler must take 2 arguments (data, context); it takes 1",
        ),
        (
            "def output_handler(response, context, extra): pass\n",
            "output_handler must take 2 arguments (response, context); it takes 3",
        ),
        (
            "def handler(data, context, *, mode): pass\n",
            "handler must take 2 arguments (data, context); it also requires the keyword-only "
            "argument mode",
        ),
    ],
)
def test_wrong_arity_names_the_file_and_the_signature_wanted(
    tmp_path: Path, source: str, problem: str
) -> None:
    path = write(tmp_path, source)
    with pytest.raises(InternalError) as info:
        load_user_code(path)
    assert info.value.message == f"{path}: {problem}"


def test_arity_accepts_defaults_and_star_args(tmp_path: Path) -> None:
    user = load_user_code(
        write(
            tmp_path,
            """
        def input_fn(data, content_type, context=None, extra=None): pass
        def output_fn(*args): pass
    """,
        )
    )
    assert user.input_fn is not None and user.input_fn.takes_context
    assert user.output_fn is not None and user.output_fn.takes_context


def test_import_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "import os\n\nraise RuntimeError('no settings')\n", "failing.py")
    with pytest.raises(InternalError) as info:
        load_user_code(path)
    assert info.value.message == (
        f"Importing user code {path} failed at line 3: RuntimeError: no settings"
    )
    exits = write(tmp_path, "import sys\nsys.exit(3)\n", "exits.py")
    with pytest.raises(InternalError, match=r"exits\.py failed at line 2: SystemExit: 3"):
        load_user_code(exits)
