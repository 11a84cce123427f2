"""Every ```python block of the README and ``docs/`` is run by a test, or says why not.

A block is one of:

- run by a test below (:data:`RUNS` names it by page and its place among the page's python blocks),
  executed in a fresh namespace in a temporary working directory, against real fixtures (the test
  SavedModels of ``conftest.py``, servers on 127.0.0.1);
- named ``<!-- snippet: NAME -->`` (one word) on the line before it: ``tests/adapters/test_mounting.py``
  runs it (``docs/server.md``'s mounting recipes);
- marked ``<!-- snippet: compile only — REASON -->``: compiled here, so its syntax cannot rot;
- marked ``<!-- snippet: not run — REASON -->``: a signature or a sketch, not code.

A new block without a marker and without a test fails :func:`test_every_python_block_is_run_or_says_why`.
Also here: every ``tfio-handlers ...`` command line of the docs parses with the CLI's own parser,
``docs/plugins/tutorial.md``'s plugin is written out, pip-installed and its tests run, and two other
blocks are checked against what they describe (docs/ray.md's ``build_app`` arguments, the raw-image
plugin's pyproject in docs/plugins.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MOUNTING_TESTS = ROOT / "tests" / "adapters" / "test_mounting.py"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_MARKER = re.compile(r"<!-- snippet: (.*?) -->")
_REASONED = re.compile(r"(not run|compile only)\s*[—:-]+\s*(\S.*)")


class Block:
    """One fenced block: its page, language, code, the marker before it (or ``None``)."""

    def __init__(self, page: Path, language: str, code: str, marker: str | None, line: int):
        self.page = page.relative_to(ROOT).as_posix()
        self.language = language
        self.code = code
        self.marker = marker
        self.line = line

    def __repr__(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        marker = _MARKER.fullmatch(before.strip())
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page, match.group(1), match.group(2), marker and marker.group(1), line))
    return found


def python_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.language == "python"]


def snippet(page: str, index: int) -> str:
    """The code of the ``index``-th python block of ``page``."""
    return [b for b in python_blocks() if b.page == page][index].code


def run(page: str, index: int, **names: Any) -> dict[str, Any]:
    """Execute a block in a fresh namespace holding ``names`` (what the page says you have)."""
    namespace: dict[str, Any] = {"__name__": "docs_snippet", **names}
    exec(compile(snippet(page, index), f"{page} [python block {index}]", "exec"), namespace)
    return namespace


# -- which block is run where ---------------------------------------------------------------------

RUNS = {
    ("docs/backends-remote.md", 0): "test_remote_backends_against_local_servers",
    ("docs/backends-remote.md", 1): "test_remote_backends_against_local_servers",
    ("docs/formats/npy.md", 0): "test_npy_and_pickle_clients_against_a_server",
    ("docs/formats/pickle.md", 0): "test_npy_and_pickle_clients_against_a_server",
    ("docs/formats/protobuf.md", 0): "test_protobuf_example",
    ("docs/formats/tfs-json.md", 0): "test_tfs_json_functions_and_example",
    ("docs/formats/tfs-json.md", 1): "test_tfs_json_functions_and_example",
    ("docs/operations.md", 0): "test_operations_mounted_observability",
    ("docs/performance.md", 0): "test_performance_fast_path",
    ("docs/plugins.md", 3): "test_plugins_route_example",
    ("docs/plugins.md", 4): "test_plugins_registry_example",
    ("docs/plugins/testing.md", 0): "test_plugin_tutorial_end_to_end",
    ("docs/plugins/tutorial.md", 0): "test_plugin_tutorial_end_to_end",
    ("docs/plugins/tutorial.md", 1): "test_plugin_tutorial_end_to_end",
    ("docs/ray.md", 0): "test_ray_serve_example",
    ("docs/user-code.md", 0): "test_user_code_seed_example",
}
"""(page, index among the page's python blocks) -> the test of this module that runs it."""


def test_every_python_block_is_run_or_says_why() -> None:
    unmarked, problems = set(), []
    counters: dict[str, int] = {}
    for block in python_blocks():
        index = counters[block.page] = counters.get(block.page, -1) + 1
        if block.marker is None:
            unmarked.add((block.page, index))
            continue
        reasoned = _REASONED.fullmatch(block.marker.strip())
        if reasoned:
            if reasoned.group(1) == "compile only":
                compile(block.code, repr(block), "exec")
        elif re.fullmatch(r"\w+", block.marker):
            mounting = MOUNTING_TESTS.read_text()
            if not re.search(rf'(run_snippet|snippet)\("{block.marker}"', mounting):
                problems.append(f"{block!r}: snippet {block.marker!r} is run by no mounting test")
        else:
            problems.append(
                f"{block!r}: marker {block.marker!r} is neither a snippet name nor "
                "'not run — <reason>' / 'compile only — <reason>'"
            )
    for key in sorted(unmarked - set(RUNS)):
        problems.append(
            f"{key[0]} python block {key[1]}: not run by a test; add it to RUNS in "
            "tests/test_docs_snippets.py, or mark it <!-- snippet: not run — <reason> -->"
        )
    for key in sorted(set(RUNS) - unmarked):
        problems.append(f"RUNS names {key}, which is not an unmarked python block (moved?)")
    assert not problems, "\n".join(problems)
    assert {name for name in RUNS.values() if name not in globals()} == set()


# -- the command lines ------------------------------------------------------------------------------


def command_lines() -> Iterator[tuple[Block, str]]:
    """Every ``tfio-handlers ...`` command of a shell-ish block (continuations joined)."""
    for page in PAGES:
        for block in blocks(page):
            if block.language not in ("", "sh", "bash", "console", "text"):
                continue
            code = re.sub(r"\\\n\s*", " ", block.code)
            for line in code.splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("tfio-handlers ") and "cannot start:" not in line:
                    yield block, line


def test_every_tfio_handlers_command_in_the_docs_parses() -> None:
    from tfio_handlers import cli

    seen = 0
    for block, line in command_lines():
        words = shlex.split(line.replace("[", "").replace("]", ""), comments=True)
        try:
            cli._parser().parse_args(words[1:])
        except SystemExit as exit:
            pytest.fail(f"{block!r}: {line!r} does not parse (exit {exit.code})")
        seen += 1
    assert seen >= 10


# -- runs that need no model ------------------------------------------------------------------------


def test_protobuf_example() -> None:
    from tfio_handlers.protos import ClassificationRequest

    body = run("docs/formats/protobuf.md", 0)["body"]
    request = ClassificationRequest.FromString(body)
    (example,) = request.input.example_list.examples
    assert len(example.features.feature) >= 1


def test_user_code_seed_example(tmp_path: Path) -> None:
    from tfio_handlers.usercode import load_user_code

    (tmp_path / "inference.py").write_text(snippet("docs/user-code.md", 0))
    user_code = load_user_code(tmp_path / "inference.py")
    module = user_code.module
    assert module.input_fn(pickle.dumps([1.0, 2.0]), "application/python-pickle") == [1.0, 2.0]
    assert module.input_fn(b"[1.0]", "application/json") is None
    assert pickle.loads(module.output_fn({"y": [2.5]}, "application/python-pickle")) == {"y": [2.5]}
    assert user_code.input_fn is not None and user_code.output_fn is not None


def test_plugins_route_example() -> None:
    from tfio_handlers.pipeline import Response

    namespace = run("docs/plugins.md", 3)
    routes: list[tuple[Any, ...]] = []
    namespace["register_routes"](lambda *args, **kwargs: routes.append((*args, kwargs)))
    assert [route[:2] for route in routes] == [("GET", "/default-model")]
    assert routes[0][3] == {"work": "light"}
    request = types.SimpleNamespace(pipeline=types.SimpleNamespace(default_model="iris"))
    answer = routes[0][2](request)
    assert isinstance(answer, Response) and (answer.status, answer.body) == (200, b"iris")


def test_plugins_registry_example() -> None:
    raw_image = pytest.importorskip("tfio_handlers_raw_image")
    value = run("docs/plugins.md", 4, my_plugin=raw_image)["value"]
    assert list(value) == [b"..."]  # one image upload: a batch of one string


# -- runs against the test models -------------------------------------------------------------------


@pytest.mark.tensorflow
def test_tfs_json_functions_and_example(embedded_backend: Any) -> None:
    run("docs/formats/tfs-json.md", 0)
    model = embedded_backend.signatures("half_plus_two")
    namespace = run("docs/formats/tfs-json.md", 1, model=model, backend=embedded_backend)
    page = (ROOT / "docs/formats/tfs-json.md").read_text()
    shown = next(b.code for b in blocks(ROOT / "docs/formats/tfs-json.md") if b.language == "json")
    assert json.loads(namespace["body"]) == json.loads(shown), page
    assert str(namespace["form"]).endswith("ROW")


@pytest.mark.tensorflow
def test_performance_fast_path(embedded_backend: Any) -> None:
    pytest.importorskip("simdjson")
    signatures = embedded_backend.signatures("half_plus_two").signature_defs
    body = b'{"instances": [[1.0, 2.0], [3.0, 4.0]]}'
    decoded = run("docs/performance.md", 0, body=body, signatures=signatures)["decoded"]
    assert decoded is not None and decoded.input_name == "x"
    assert decoded.array.tolist() == [[1.0, 2.0], [3.0, 4.0]] and decoded.form == "row"


@pytest.mark.tensorflow
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_operations_mounted_observability(embedded_backend: Any) -> None:
    from starlette.testclient import TestClient

    from tfio_handlers.config import Settings
    from tfio_handlers.pipeline import Pipeline

    pipeline = Pipeline(embedded_backend, settings=Settings(load_plugins=False))
    app = run("docs/operations.md", 0, pipeline=pipeline)["app"]
    with TestClient(app) as client:
        answer = client.post("/model/invocations", content=b"[1.0]")
        assert answer.status_code == 200, answer.text
        metrics = client.get("/model/metrics")
        assert metrics.status_code == 200 and b"_total" in metrics.content


@pytest.fixture
def served(embedded_backend: Any) -> Iterator[Any]:
    from servers import UvicornThread

    server = UvicornThread(embedded_backend, enable_pickle=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.tensorflow
def test_remote_backends_against_local_servers(
    embedded_backend: Any, served: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tfio_handlers.adapters.grpc import serve

    monkeypatch.chdir(tmp_path)
    grpc_server, grpc_port = serve(embedded_backend, "127.0.0.1", 0)
    try:
        code = snippet("docs/backends-remote.md", 0)
        code = code.replace("localhost:8500", f"127.0.0.1:{grpc_port}")
        code = code.replace("localhost:8501", f"127.0.0.1:{served.port}")
        namespace: dict[str, Any] = {"__name__": "docs_snippet"}
        exec(compile(code, "docs/backends-remote.md [python block 0]", "exec"), namespace)
        backend = namespace["backend"]  # the REST one; the gRPC one was built first
        assert backend.signatures("half_plus_two").name == "half_plus_two"
        backend.close()
    finally:
        grpc_server.stop(grace=None)
    namespace = run("docs/backends-remote.md", 1, backend=embedded_backend)
    assert namespace["port"] > 0


@pytest.mark.tensorflow
def test_npy_and_pickle_clients_against_a_server(
    served: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pages post to a server of theirs on localhost:8080; here the test server, each request
    naming the test model it fits with SageMaker's custom attributes."""
    import httpx

    monkeypatch.chdir(tmp_path)
    real_post = httpx.post
    models: list[str] = []

    def post(url: str, **kwargs: Any) -> httpx.Response:
        url = url.replace("http://localhost:8080", served.url)
        headers = {**kwargs.pop("headers", {})}
        headers["X-Amzn-SageMaker-Custom-Attributes"] = f"tfs-model-name={models.pop(0)}"
        answer = real_post(url, headers=headers, **kwargs)
        assert answer.status_code == 200, answer.text
        return answer

    monkeypatch.setattr(httpx, "post", post)
    models[:] = ["half_plus_two", "string_model"]
    namespace = run("docs/formats/npy.md", 0)
    assert namespace["scores"].shape == (2, 784)
    assert "'upper': array([b'HELLO', b'BYE']" in capsys.readouterr().out
    models[:] = ["half_plus_two"]
    outputs = run("docs/formats/pickle.md", 0)["outputs"]
    assert outputs["y"].shape == (2, 4)
    assert not models


# -- docs/plugins/tutorial.md, end to end ------------------------------------------------------------


def _toml_and_tree(page: str) -> tuple[str, list[str]]:
    found = blocks(ROOT / page)
    toml = next(b.code for b in found if b.language == "toml")
    tree = next(b.code for b in found if b.language == "")
    return toml, [line.strip() for line in tree.splitlines()[1:] if line.strip()]


def install_by_hand(package: Path, site: Path) -> None:
    """What pip installs, laid out from the pyproject: the module and a dist-info naming its
    entry points."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    shutil.copytree(package / "src", site)
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
            for group, points in groups.items()
        )
    )


@pytest.mark.slow
def test_plugin_tutorial_end_to_end(tmp_path: Path) -> None:
    """The tutorial's package is written as its layout says, pip-installed (no dependencies: the
    dev venv's are used; by hand where pip cannot build offline) into a folder on ``PYTHONPATH``,
    found by its entry point, and its tests run, with docs/plugins/testing.md's conformance test
    beside them (on msgpack, installed in the dev venv)."""
    pytest.importorskip("hypothesis", reason="the tutorial's tests use the testing extra")
    with_msgpack = importlib.util.find_spec("tfio_handlers_msgpack") is not None
    page = "docs/plugins/tutorial.md"
    toml, layout = _toml_and_tree(page)
    package = tmp_path / "tfio-handlers-thing"
    files = {
        "pyproject.toml": toml,
        "src/tfio_handlers_thing/__init__.py": snippet(page, 0),
        "src/tfio_handlers_thing/py.typed": "",
        "tests/test_thing.py": snippet(page, 1),
    }
    assert sorted(files) == sorted(layout)
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    if with_msgpack:  # installed in the dev venv (the README's command), not in the core one
        (package / "tests" / "test_msgpack_conformance.py").write_text(
            snippet("docs/plugins/testing.md", 0)
        )
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    installed = subprocess.run(
        [*pip, "--no-index", "--target", str(site), str(package)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if installed.returncode != 0:  # offline and no wheel-building setuptools (the core venv)
        install_by_hand(package, site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFIO_HANDLERS_")}
    env["PYTHONPATH"] = str(site)
    env["TFIO_HANDLERS_PLUGINS"] = "thing,msgpack" if with_msgpack else "thing"
    listed = subprocess.run(
        [sys.executable, "-m", "tfio_handlers", "plugins"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "application/x-thing" in listed.stdout, listed.stdout + listed.stderr
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert f"{3 if with_msgpack else 2} passed" in tests.stdout, tests.stdout[-2000:]


# -- docs/ray.md ---------------------------------------------------------------------------------

RAY_SNIPPET = """
import logging, sys
import ray
from ray import serve

ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False,
         logging_level=logging.WARNING, log_to_driver=False)
serve.start(proxy_location="Disabled")  # no HTTP proxy: no port 8000 taken on a CI machine
try:
    namespace = {"__name__": "docs_snippet"}
    exec(compile(sys.argv[1], "docs/ray.md [python block 0]", "exec"), namespace)
    print("ANSWER", namespace["status"], namespace["body"].decode(), flush=True)
finally:
    serve.shutdown()
    ray.shutdown()
"""


@pytest.mark.slow
@pytest.mark.tensorflow
def test_ray_serve_example(model_root: Path, tmp_path: Path) -> None:
    """Ray Serve with the page's two replicas of iris (its path made the test model's), in a
    process of its own as tests/ray starts Ray (two CPUs, no dashboard); about 20 s, most of it
    ``ray.init`` and the replicas importing TensorFlow."""
    pytest.importorskip("ray.serve")
    code = snippet("docs/ray.md", 0)
    assert '"/models/iris"' in code
    code = code.replace('"/models/iris"', repr(str(model_root / "iris")))
    done = subprocess.run(
        [sys.executable, "-c", RAY_SNIPPET, code],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("TFIO_HANDLERS_")},
        capture_output=True,
        text=True,
        timeout=240,
    )
    answer = next((line for line in done.stdout.splitlines() if line.startswith("ANSWER ")), "")
    assert answer.startswith("ANSWER 200 "), done.stdout[-3000:] + done.stderr[-3000:]
    classes = json.loads(answer.split(" ", 2)[2])["result"]["classifications"][0]["classes"]
    assert max(classes, key=lambda c: c["score"])["label"] == "1"  # versicolor, as the README's


def test_ray_build_app_arguments_in_the_docs_are_its_arguments() -> None:
    """The ``serve run`` line and the Serve config of docs/ray.md name only ``build_app``'s
    arguments (it refuses others when Serve calls it)."""
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("ray.serve")
    from tfio_handlers.ray import deployments

    found = blocks(ROOT / "docs/ray.md")
    config = yaml.safe_load(next(b.code for b in found if b.language == "yaml"))
    (application,) = config["applications"]
    assert application["import_path"] == "tfio_handlers.ray:build_app"
    assert set(application["args"]) <= deployments._ARGS
    runs = [
        shlex.split(line, comments=True)
        for b in found
        if b.language == "sh"
        for line in b.code.splitlines()
        if line.startswith("serve run tfio_handlers.ray:build_app ")
    ]
    assert runs
    for words in runs:
        assert {word.split("=", 1)[0] for word in words[3:]} <= deployments._ARGS, words


def test_plugin_pyproject_in_the_docs_is_the_plugins() -> None:
    """docs/plugins.md's pyproject of the raw-image plugin declares what the real one does."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    shown = next(b.code for b in blocks(ROOT / "docs/plugins.md") if b.language == "toml")
    real = (ROOT / "plugins/tfio-handlers-raw-image/pyproject.toml").read_text()
    documented, actual = tomllib.loads(shown)["project"], tomllib.loads(real)["project"]
    for key in ("name", "dependencies", "entry-points"):
        assert documented[key] == actual[key], key
