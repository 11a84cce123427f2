"""The error family: statuses, bodies, and the bound on what an error body may repeat back."""

from __future__ import annotations

import json

from tfio_handlers.errors import MAX_MESSAGE_CHARS, BadRequest, HTTPError, error_body


def test_error_bodies_are_json_with_the_message() -> None:
    assert json.loads(BadRequest("bad é").to_json()) == {"error": "bad é"}
    assert HTTPError("x", status=418).status_code == 418


def test_a_message_quoting_a_huge_request_is_cut() -> None:
    """A 50 MB string quoted back by a parser's message must not make a 50 MB answer."""
    body = error_body("JSON Value: " + "a" * 10**6)
    assert len(body) < MAX_MESSAGE_CHARS + 100
    message = json.loads(body)["error"]
    assert message.startswith("JSON Value: aaa")
    assert message.endswith(f"({10**6 + 12 - MAX_MESSAGE_CHARS} more characters)")
    assert json.loads(error_body("short"))["error"] == "short"
