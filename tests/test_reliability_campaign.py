"""The reliability campaign's runner works: its hostile-input part, quick, against a real server.

``reliability/campaign.py --quick --parts hostile`` is run as a command (it builds the iris model,
starts ``tfio-handlers serve`` on 127.0.0.1, sends the cases, writes the results file and the raw
figures). The campaign reports goals, it does not pass or fail on them, so this test asserts that the
runner produced its table, and only one goal: the cases that main already answers with a 4xx (listed
below, from the campaign's own results) never answer 500 again. The slow cases (those that still run
into the request timeout) are left out to keep the test under a minute; the full command runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "reliability" / "campaign.py"

HANDLED = (
    "zero-dim tfs, predict",
    "zero-dim tfs, classify",
    "npy (1e6, 0) → jsonlines, predict",
    "pickle BYTEARRAY8 4 GiB",
    "JSON invalid UTF-8 key",
    'JSON {"a": ×1e5',
    "npy shape (-2, -2)",
    "npy unterminated shape",
    "npy <U1 0xFFFFFFFF",
    "npz corrupt deflate",
    "npz extract version 17.3",
    "npz empty member name",
    "jsonlines lone surrogate, classify",
    "declared body over limit",
    "unknown media type",
    "garbage protobuf",
    "TensorProto negative dim",
    "truncated JSON",
)
"""Hostile cases (issue 11's and the campaign's own) that main answers with a 4xx: client input
that once answered 500 (or amplified) and must not again. Names are the campaign's case names."""

SELECTED = (
    "zero-dim",
    "→ jsonlines",
    "pickle BYTEARRAY8",
    "invalid UTF-8",
    'JSON {"a"',
    "npy shape",
    "npy unterminated",
    "npy <U1",
    "npz",
    "lone surrogate",
    "declared body",
    "unknown media",
    "garbage protobuf",
    "negative dim",
    "truncated JSON",
)
"""The ``--cases`` filter: substrings selecting exactly the HANDLED cases."""


def test_quick_hostile_part_writes_its_table(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    raw = tmp_path / "results.json"
    argv = [sys.executable, str(CAMPAIGN), "--quick", "--parts", "hostile"]
    argv += ["--cases", ",".join(SELECTED), "--output", str(output), "--json", str(raw)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-4000:]

    results = json.loads(raw.read_text())
    part = results["hostile"]
    assert "error" not in part, part.get("traceback")
    rows = {row["case"]: row for row in part["rows"]}
    assert set(rows) == set(HANDLED)
    for name, row in rows.items():
        assert row["status"] is not None, f"{name}: no answer ({row['client_error']})"
        assert row["status"] != 500, f"{name}: 500 for client input: {row['message']}"
        assert row["status"] < 500, f"{name}: {row['status']} {row['message']}"
        assert row["json_error"] is not False, f"{name}: error answer is not JSON {{'error'}}"
        assert row["extra_rss"] >= 0 and row["seconds"] > 0

    text = output.read_text()
    assert "## Goals" in text and "## 1. Hostile input" in text
    assert "| case | source | expected | status |" in text
    for name in HANDLED:
        assert f"| {name.replace('|', chr(92) + '|')} |" in text
    assert "0 answers of 500 for client input" in text
    assert "reliability/campaign.py --quick --parts hostile --cases" in text
