"""Generated request ids: 32 hex digits, distinct, and distinct across forked workers."""

from __future__ import annotations

import os
import re

import pytest

from tfio_handlers.observability.requests import new_request_id, request_id_from


def test_ids_are_32_hex_digits_and_do_not_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert request_id_from({})[1] is False
    assert request_id_from({"x-request-id": "abc-123"}) == ("abc-123", True)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_workers_draw_different_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a worker forked from the same parent state
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child != new_request_id()
