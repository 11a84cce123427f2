"""The restricted unpickler (tfio_handlers.formats.pickle.restricted), through the enabled codec.

The malicious payloads are real: each would create a marker file (or allocate gigabytes, or crash
numpy) under plain ``pickle.loads``. The tests assert a 400 and that the side effect did not happen.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pickle_support import context, decode, payload

from tfio_handlers.config import Limits
from tfio_handlers.errors import BadRequest, PayloadTooLarge


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_code_execution_payloads_are_refused_and_nothing_runs(marker: Path, protocol: int) -> None:
    command = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').write('x')"
    payloads = [
        payload(os.system, command, protocol=protocol),
        payload(eval, code, protocol=protocol),
        payload(exec, code, protocol=protocol),
        payload(subprocess.Popen, ["touch", str(marker)], protocol=protocol),
        payload(subprocess.check_call, ["touch", str(marker)], protocol=protocol),
        payload(os.popen, command, protocol=protocol),
        payload(__import__, "os", protocol=protocol),
        payload(getattr, (), "__class__", protocol=protocol),
        # getattr(__import__('os'), 'system')('touch ...') in protocol 0 opcodes.
        (
            b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'"
            + command.encode()
            + b"'\ntR."
        ),
        b"cposix\nsystem\n(S'" + command.encode() + b"'\ntR.",
        b'c__builtin__\neval\n(S"' + code.encode() + b'"\ntR.',
        # numpy gadgets: none of numpy's modules beyond array rebuilding are reachable.
        b'cnumpy.testing._private.utils\nrunstring\n(S"' + code.encode() + b'"\n(dtR.',
        b"cnumpy\nload\n(S'/etc/passwd'\ntR.",
        b"ccopyreg\n_reconstructor\n(cos\n_wrap_close\nc__builtin__\nobject\nNtR.",
    ]
    for body in payloads:
        with pytest.raises(BadRequest) as info:
            decode(body)
        assert info.value.status_code == 400
        assert "forbidden" in info.value.message or "not allowed" in info.value.message
    assert not marker.exists()


def test_allocation_and_crash_payloads_are_refused_quickly() -> None:
    import numpy._core.multiarray as multiarray  # the module numpy's own pickles name

    start = time.perf_counter()
    # bytes(10**10) and bytearray(10**10): a 10 GB allocation from a 30-byte pickle.
    for kind in (bytes, bytearray):
        with pytest.raises(BadRequest, match="not allowed"):
            decode(payload(kind, 10**10))
    # NEWOBJ: cls.__new__(cls, *args) with any allowed class.
    newobj = b"\x80\x02c__builtin__\nbytes\nJ\x00\xe1\xf5\x05\x85\x81."
    with pytest.raises(BadRequest, match="opcode is not allowed"):
        decode(newobj)
    # A memo index of 2**32 - 1 makes the C unpickler allocate a 32 GB memo table.
    with pytest.raises(BadRequest, match="holds a NoneType"):
        decode(b"\x80\x04Nr\xff\xff\xff\xff.")

    # ndarray.__setstate__ with an object dtype and too few items crashes numpy (segfault).
    class Crash:
        def __reduce__(self) -> Any:
            state = (1, (10**6,), np.dtype("O"), False, [1, 2])
            return (multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)

    with pytest.raises(BadRequest, match="do not match its shape"):
        decode(pickle.dumps(Crash(), protocol=2))

    # A huge shape handed to _reconstruct or ndarray directly.
    class Huge:
        def __reduce__(self) -> Any:
            return (np.ndarray, ((10**10,),))

    with pytest.raises(BadRequest, match="cannot be called"):
        decode(pickle.dumps(Huge()))

    # BUILD on a dict (attribute injection) and on a list.
    with pytest.raises(BadRequest, match="BUILD on a dict is not allowed"):
        decode(b"\x80\x02}}b.")
    # Billion laughs through shared references: 10**10 leaves from a few hundred bytes.
    shared: Any = [0.0] * 10
    for _ in range(9):
        shared = [shared] * 10
    body = pickle.dumps(shared)
    assert len(body) < 1000
    with pytest.raises(BadRequest, match="expands to more data than it holds"):
        decode(body)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (pickle.dumps(np.zeros(2, dtype="datetime64[s]")), "not allowed"),
        (pickle.dumps(np.zeros(2, dtype=[("a", "f4")])), "not allowed"),
        (pickle.dumps(np.ma.masked_array([1.0])), "forbidden"),
        (pickle.dumps(np.zeros(1, dtype=[("a", "f4")]).view(np.recarray)), "forbidden"),
        (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R.", "latin-1"),
        (b"\x80\x02\x82\x01.", "opcode is not allowed"),  # EXT1
        (b"\x80\x02X\x01\x00\x00\x00aQ.", "opcode is not allowed"),  # BINPERSID
        (b"\x80\x04cbuiltins\nstr.join\n.", "forbidden"),
        (b"\x80\x04", "Refused pickle"),
        (b"garbage", "Refused pickle"),
    ],
)
def test_other_refusals(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode(body)


def test_out_of_band_buffers_and_persistent_ids_are_refused() -> None:
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(np.arange(4.0), protocol=5, buffer_callback=buffers.append)
    with pytest.raises(BadRequest, match="opcode is not allowed"):
        decode(body)

    class Persistent(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "ref" if obj == "secret" else None

    stream = io.BytesIO()
    Persistent(stream, protocol=2).dump(["secret"])
    with pytest.raises(BadRequest, match="opcode is not allowed"):
        decode(stream.getvalue())


def test_depth_cycles_and_limits() -> None:
    deep: Any = 1.0
    for _ in range(100):
        deep = [deep]
    with pytest.raises(BadRequest, match="deeper than the limit"):
        decode(pickle.dumps(deep))
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(BadRequest, match="deeper than the limit"):
        decode(pickle.dumps(cycle))
    with pytest.raises(PayloadTooLarge, match="over the limit of 10"):
        decode(pickle.dumps(np.zeros(11)), context(limits=Limits(max_elements=10)))
    with pytest.raises(PayloadTooLarge):
        decode(pickle.dumps(np.zeros(100)), context(limits=Limits(max_body_bytes=100)))
    with pytest.raises(PayloadTooLarge, match="over the limit of 3 bytes"):
        decode(pickle.dumps(["abcd"]), context(limits=Limits(max_string_bytes=3)))
