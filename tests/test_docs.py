"""The documentation's commands work as written: the README's curl examples against a real server,
and the option table of ``tfio-handlers grpc-serve`` against its ``--help``."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from live_server import ROOT, serve_cli


def readme_curls() -> list[list[str]]:
    """Every ``curl`` line of the README, split as a shell would."""
    text = (ROOT / "README.md").read_text()
    return [shlex.split(line) for line in text.splitlines() if line.startswith("curl ")]


def as_request(words: list[str]) -> tuple[str, dict[str, str], bytes]:
    """(path, headers, body) of a ``curl -s URL [-H 'K: V'] -d DATA`` command."""
    path, headers, body = "", {}, b""
    rest = iter(words[1:])
    for word in rest:
        if word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(rest).encode()
        elif word.startswith("localhost:"):
            path = "/" + word.split("/", 1)[1]
    # curl -d without a content type sends application/x-www-form-urlencoded, as TF Serving ignores
    headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return path, headers, body


@pytest.mark.tensorflow
@pytest.mark.slow
def test_readme_curl_examples_answer_200_on_the_iris_model(
    model_root: Path, tmp_path: Path
) -> None:
    curls = readme_curls()
    assert len(curls) >= 3
    served = tmp_path / "model"  # the quick start's examples/iris/model: the model is named "model"
    served.symlink_to(model_root / "iris", target_is_directory=True)
    server = serve_cli("readme", tmp_path, ["--model-dir", str(served)]).start().wait_ready()
    try:
        for words in curls:
            path, headers, body = as_request(words)
            answer = server.request("POST", path, body, headers)
            assert answer.status == 200, (words, answer.body)
            json.loads(answer.body)
    finally:
        server.stop(10)


def test_grpc_serve_options_in_the_docs_are_its_options() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "tfio_handlers", "grpc-serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert help_text.startswith("usage: tfio-handlers grpc-serve")
    documented = (ROOT / "docs" / "backends-remote.md").read_text()
    section = documented.split("### A local gRPC server", 1)[1].split("\n## ", 1)[0]
    table = set(re.findall(r"^\| `(--[a-z-]+)", section, re.MULTILINE))
    offered = set(re.findall(r"(--[a-z-]+)", help_text)) - {"--help"}
    assert table == offered
    assert "tfio-handlers grpc-serve" in section
