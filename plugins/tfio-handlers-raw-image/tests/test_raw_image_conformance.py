"""The raw-image plugin passes the conformance suite (tfio_handlers.testing), as installed.

It declares no round trip: an image upload decodes to one encoded string (the model decodes it),
and a PNG answer is pixels, so ``decode(encode(x))`` is not ``x`` by design. The suite still checks
its declarations, that it claims no built-in type, hostile uploads under small limits, and that
any answer (every dtype and shape, classify, regress) is a PNG or a 406.
"""

from __future__ import annotations

import pytest

from tfio_handlers.pytest_plugin import CodecCase

pytest.importorskip("tfio_handlers_raw_image", reason="the example plugin is not installed")
pytestmark = pytest.mark.property


@pytest.mark.tfio_codecs("raw-image")
def test_conformance(tfio_codec: CodecCase) -> None:
    tfio_codec.check(examples=100, fuzz_examples=300)
