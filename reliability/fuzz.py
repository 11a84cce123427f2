"""Coverage-guided fuzzing of every built-in decoder and of the TF Serving JSON parser.

Each target takes bytes a client could send and must either return a value or raise the library's
:class:`~tfio_handlers.errors.HTTPError` family: any other exception is a crasher (a 500 in
production). A decoder's value is also turned into a TF Serving request
(:func:`tfio_handlers.protocol.requests.build_request`), the next thing a server does with it.

Engines:

* **atheris** (libFuzzer, coverage-guided) where it installs: ``pip install atheris`` into a venv
  that also has this package (``pip install -e .``); one process per target;
* **Hypothesis** everywhere else (and in the test suite): seeds from the corpus and mutations of
  them (byte flips, splices, truncations), plus random bytes; not coverage-guided.

Crashers are written to ``tests/fuzz_corpus/<target>/<sha1>`` (the test suite replays every file
there: ``tests/test_fuzz_corpus.py``). Usage::

    python reliability/fuzz.py --count 100000                  # every target, Hypothesis
    python reliability/fuzz.py --engine atheris --count 1000000 --targets npy,npz
    python reliability/fuzz.py --list
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import random
import re
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tfio_handlers.config import Limits, Settings  # noqa: E402
from tfio_handlers.context import Context  # noqa: E402
from tfio_handlers.errors import HTTPError  # noqa: E402
from tfio_handlers.media import parse_media_type  # noqa: E402
from tfio_handlers.protos import (  # noqa: E402
    DT_FLOAT,
    DT_INT64,
    DT_STRING,
    PredictRequest,
    SignatureDef,
    TensorProto,
)

CORPUS = ROOT / "tests" / "fuzz_corpus"

FUZZ_LIMITS = Limits(
    max_body_bytes=1 << 20,
    max_elements=1 << 16,
    max_string_bytes=1 << 16,
    max_response_bytes=1 << 20,
)
"""Small limits, so that a fuzzed input cannot make a target slow by being legitimately big."""


def _signature(
    method: str, dtype: int, rank: int | None, inputs: tuple[str, ...] = ("x",)
) -> SignatureDef:
    sig = SignatureDef(method_name=f"tensorflow/serving/{method}")
    for name in inputs:
        sig.inputs[name].dtype = dtype
        if rank is None:
            sig.inputs[name].tensor_shape.unknown_rank = True
        else:
            for _ in range(rank):
                sig.inputs[name].tensor_shape.dim.add(size=-1)
    sig.outputs["y"].dtype = DT_FLOAT
    return sig


SIGNATURES: list[SignatureDef | None] = [
    None,
    _signature("predict", DT_FLOAT, 2),
    _signature("predict", DT_INT64, None),
    _signature("predict", DT_STRING, 1),
    _signature("predict", DT_FLOAT, None, ("a", "b")),
    _signature("classify", DT_FLOAT, None),
]
"""Each input is tried against a signature chosen by its first byte: every typing path runs."""


def _context(data: bytes) -> tuple[Context, bytes]:
    sig = SIGNATURES[data[0] % len(SIGNATURES)] if data else None
    settings = Settings(limits=FUZZ_LIMITS, enable_pickle=True)
    return Context(settings=settings, signature_defs={"serving_default": sig} if sig else {}), data[
        1:
    ]


def _codec(media: str, decode: Callable[..., Any]) -> Callable[[bytes], Any]:
    media_type = parse_media_type(media)

    def run(data: bytes) -> Any:
        from tfio_handlers.protocol.requests import build_request

        context, body = _context(data)
        value = decode(body, media_type, context)
        return build_request(value, context)

    return run


def _rest_json(data: bytes) -> Any:
    from tfio_handlers.protocol import tfs_json as rest_json

    context, body = _context(data)
    defs = dict(context.signature_defs)
    which = data[:1] and data[0] % 3
    if which == 0:
        return rest_json.predict_request_from_json(body, defs, limits=FUZZ_LIMITS)
    if which == 1:
        return rest_json.classify_request_from_json(body, defs, limits=FUZZ_LIMITS)
    return rest_json.regress_request_from_json(body, defs, limits=FUZZ_LIMITS)


def _targets() -> dict[str, Callable[[bytes], Any]]:
    from tfio_handlers.formats import csv, json, jsonlines, npy, pickle, protobuf

    return {
        "json": _codec("application/json", json.decode_json),
        "csv": _codec("text/csv", csv.decode_csv),
        "csv-header": _codec("text/csv; header=present", csv.decode_csv),
        "protobuf": _codec("application/x-protobuf", protobuf.decode_protobuf),
        "tensorproto": _codec(
            "application/x-protobuf; proto=tensorflow.TensorProto", protobuf.decode_protobuf
        ),
        "jsonlines": _codec("application/jsonlines", jsonlines.decode_jsonlines),
        "npy": _codec("application/x-npy", npy.decode_npy),
        "npz": _codec("application/x-npz", npy.decode_npz),
        "pickle": _codec("application/python-pickle", pickle.decode_pickle),
        "rest_json": _rest_json,
    }


TARGETS = _targets()


@dataclass
class Outcome:
    """What one input did: a value, an HTTPError (fine), or a crash (anything else)."""

    crashed: bool
    error: str


def run_one(target: str, data: bytes) -> Outcome:
    """Feed ``data`` to ``target``; a crash is any exception outside the HTTPError family."""
    try:
        TARGETS[target](data)
    except HTTPError:
        return Outcome(False, "")
    except (Exception, RecursionError) as exc:
        return Outcome(True, f"{type(exc).__name__}: {exc}"[:300])
    return Outcome(False, "")


def save_crasher(target: str, data: bytes) -> Path:
    """Keep a crasher in the regression corpus (named by its SHA-1, so each is kept once)."""
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha1(data).hexdigest()
    path.write_bytes(data)
    return path


def corpus_files(target: str) -> list[Path]:
    folder = CORPUS / target
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


# -- seeds -----------------------------------------------------------------------------------------


def _npy(array: Any) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=False)
    return stream.getvalue()


def _npz(**arrays: Any) -> bytes:
    stream = io.BytesIO()
    np.savez_compressed(stream, **arrays)
    return stream.getvalue()


def seeds(target: str) -> list[bytes]:
    """Valid inputs of each target (with a signature selector byte first), and its corpus."""
    import pickle as std_pickle

    tensor = TensorProto(dtype=DT_FLOAT)
    tensor.tensor_shape.dim.add(size=2)
    tensor.float_val.extend([1.0, 2.0])
    request = PredictRequest()
    request.inputs["x"].CopyFrom(tensor)
    base: dict[str, list[bytes]] = {
        "json": [
            b"[1.0, 2.5]",
            b'{"a": [1, 2], "b": [3, 4]}',
            b'[{"x": "s"}]',
            b'{"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "2"}]}, "floatVal": [1, 2]}',
            b'{"instances": [[1.0, 2.0]]}',
            b'{"inputs": {"a": [1], "b": [2]}}',
            b'{"examples": [{"x": [1.5]}]}',
        ],
        "csv": [b"1,2\n3,4\n", b'"a",b\n1.5,nan\n', b"1e3,-inf\r\n"],
        "csv-header": [b"a,b\n1,2\n", b"x,x\n1.5,2\n", b'a\n"q"\n'],
        "protobuf": [request.SerializeToString()],
        "tensorproto": [tensor.SerializeToString()],
        "jsonlines": [
            b"[1, 2]\n[3, 4]\n",
            b'{"a": 1, "b": 2}\n',
            b'"s"\n{"b64": "AA=="}\n',
            b"NaN\n",
        ],
        "npy": [
            _npy(np.arange(6, dtype=np.float32).reshape(2, 3)),
            _npy(np.array(["ab", "c"])),
            _npy(np.array([b"x"])),
            _npy(np.asfortranarray(np.ones((2, 2)))),
        ],
        "npz": [
            _npz(x=np.ones((2, 2), np.float32)),
            _npz(a=np.array([1, 2]), b=np.array(["s", "t"])),
        ],
        "pickle": [std_pickle.dumps(np.ones((2, 2), np.float32), protocol=p) for p in (2, 4, 5)]
        + [std_pickle.dumps({"a": [1.0, 2.0], "b": ["s"]}, protocol=4)],
        "rest_json": [
            b'{"instances": [[1.0, 2.0]]}',
            b'{"inputs": {"a": [1], "b": [2]}}',
            b'{"signature_name": "serving_default", "instances": [{"b64": "AA=="}]}',
            b'{"examples": [{"x": [1.5], "s": "t"}], "context": {"c": 1}}',
        ],
    }
    out = [bytes([selector]) + body for body in base[target] for selector in range(len(SIGNATURES))]
    out.extend(path.read_bytes() for path in corpus_files(target))
    return out


# -- mutation (the Hypothesis engine) --------------------------------------------------------------

_INTERESTING = [
    b"\x00",
    b"\xff",
    b"-",
    b"1e999",
    b"NaN",
    b"[",
    b"{",
    b"]",
    b"}",
    b'"',
    b"\\u",
    b"\\ud800",
    b",",
    b"\n",
    b"(",
    b")",
    b"-2",
    b"0" * 400,
    b"'shape': (",
    b"PK\x03\x04",
    struct.pack("<Q", 1 << 40),
    struct.pack("<I", 0xFFFFFFFF),
]


def mutate(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """A few random edits of ``data``: byte flips, inserts of interesting tokens, deletions,
    duplication of a span, a splice with another seed, truncation."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.choice(_INTERESTING)
        elif op == 2 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 3 and buf:
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 8)
        elif op == 4:
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            buf = buf[:pos] + other[cut:]
        elif op == 5:
            del buf[pos:]
        else:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(buf[: 1 << 16])


def hypothesis_inputs(target: str, count: int, seed: int) -> Any:
    """A Hypothesis strategy of inputs for ``target``: mutated seeds, or random bytes."""
    from hypothesis import strategies as st

    pool = seeds(target)
    mutated = st.builds(
        lambda index, s: mutate(pool[index % len(pool)], random.Random(s), pool),
        st.integers(0, len(pool) - 1),
        st.integers(0, 2**32),
    )
    return st.one_of(mutated, mutated, mutated, st.binary(max_size=512))


def fuzz_hypothesis(target: str, count: int, seed: int = 0) -> tuple[int, list[tuple[bytes, str]]]:
    """Run ``count`` inputs through ``target`` with Hypothesis driving the mutations (a fixed
    random stream after the first few hundred, so millions of inputs stay cheap). Returns the
    inputs run and the crashers."""
    crashers: list[tuple[bytes, str]] = []
    pool = seeds(target)
    rng = random.Random(seed)
    from hypothesis import HealthCheck, given, settings

    examples = min(count, 500)

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(hypothesis_inputs(target, examples, seed))
    def explore(data: bytes) -> None:
        outcome = run_one(target, data)
        if outcome.crashed:
            crashers.append((data, outcome.error))

    explore()
    ran = examples
    while ran < count:
        data = (
            mutate(rng.choice(pool), rng, pool)
            if rng.random() < 0.95
            else rng.randbytes(rng.randrange(64))
        )
        outcome = run_one(target, data)
        ran += 1
        if outcome.crashed:
            crashers.append((data, outcome.error))
            pool.append(data)
    return ran, crashers


# -- atheris ---------------------------------------------------------------------------------------


def atheris_main(target: str, count: int) -> None:
    """Run under atheris (one process per target): libFuzzer mutations, Python coverage."""
    import atheris

    crashers = 0
    ran = 0

    def one(data: bytes) -> None:
        nonlocal crashers, ran
        ran += 1
        outcome = run_one(target, data)
        if outcome.crashed:
            crashers += 1
            if crashers <= 20 * KEEP_PER_KIND:
                save_crasher(target, data)
            print(f"CRASH {target}: {outcome.error}", flush=True)

    corpus_dir = Path(os.environ.get("FUZZ_WORKDIR", "/tmp")) / f"tfio-fuzz-{target}"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(seeds(target)):
        (corpus_dir / f"seed{i}").write_bytes(data)
    atheris.instrument_all()
    args = [
        sys.argv[0],
        f"-runs={count}",
        "-max_len=65536",
        "-rss_limit_mb=4096",
        "-timeout=20",
        str(corpus_dir),
    ]
    atheris.Setup(args, one)
    atheris.Fuzz()  # exits the process when the runs are done


# -- command line ----------------------------------------------------------------------------------


KEEP_PER_KIND = 3
"""Crashers kept in the corpus per kind of error (its type and message start): enough to
replay the class, not thousands of files of one bug."""


def _hypothesis_worker(job: tuple[str, int, int]) -> dict[str, Any]:
    target, count, seed = job
    start = time.perf_counter()
    ran, crashers = fuzz_hypothesis(target, count, seed)
    kinds: dict[str, int] = {}
    for data, error in sorted(crashers, key=lambda c: len(c[0])):
        kind = error[:60]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kinds[kind] <= KEEP_PER_KIND:
            save_crasher(target, data)
    return {
        "target": target,
        "inputs": ran,
        "crashers": len(crashers),
        "kinds": kinds,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="inputs per target")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated targets")
    parser.add_argument("--engine", choices=("hypothesis", "atheris"), default="hypothesis")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel targets")
    parser.add_argument("--list", action="store_true", help="list the targets and stop")
    parser.add_argument("--atheris-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(TARGETS))
        return 0
    if args.atheris_child:
        atheris_main(args.atheris_child, args.count)
        return 0
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown targets: {', '.join(unknown)} (see --list)")
    results: list[dict[str, Any]] = []
    if args.engine == "atheris":
        for target in targets:
            proc = subprocess.run(
                [sys.executable, __file__, "--atheris-child", target, "--count", str(args.count)],
                capture_output=True,
                text=True,
                check=False,
            )
            # libFuzzer exits the process itself: its "Done N runs" line counts the inputs, and
            # the child's CRASH lines the crashers.
            done = re.search(r"Done (\d+) runs", proc.stderr)
            crash_lines = [line for line in proc.stdout.splitlines() if line.startswith("CRASH ")]
            summary = {
                "target": target,
                "inputs": int(done.group(1)) if done else 0,
                "crashers": len(crash_lines),
                "kinds": sorted({line.split(": ", 1)[1][:60] for line in crash_lines}),
            }
            if not done:
                summary["error"] = proc.stderr[-500:]
            results.append(summary)
            print(json.dumps(summary), flush=True)
    else:
        jobs = [(t, args.count, args.seed) for t in targets]
        with multiprocessing.Pool(min(args.jobs, len(jobs))) as pool:
            for summary in pool.imap_unordered(_hypothesis_worker, jobs):
                results.append(summary)
                print(json.dumps(summary), flush=True)
    crashed = sum(int(r.get("crashers", 0)) for r in results)
    print(f"total: {sum(int(r.get('inputs', 0)) for r in results)} inputs, {crashed} crashers")
    return 1 if crashed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # pragma: no cover
        traceback.print_exc()
        sys.exit(130)
