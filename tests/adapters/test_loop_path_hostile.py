"""Hostile and unlucky requests on the ASGI loop path (small built-in requests worked on the loop).

What a client can do to the event loop with a body of at most ``LOOP_BODY_BYTES``: a tiny message
that declares a huge tensor, bodies whose decoding leaves the codecs' fast paths, and whether the
loop path answers exactly as the threads do. The model is the real ``half_plus_two`` (and the other
test models) on the embedded backend. Time bounds are generous no-hang limits, never speed checks.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from servers import asgi_call as call

from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.adapters.tfs_rest import ahandle_tfs_rest
from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.config import Settings
from tfio_handlers.pipeline import LOOP_BODY_BYTES, Pipeline
from tfio_handlers.protocol import arrays
from tfio_handlers.protos import PredictRequest

pytestmark = pytest.mark.tensorflow

PROTOBUF = [(b"content-type", b"application/x-protobuf")]


def on_event_loop() -> bool:
    """Whether the calling thread is running an event loop now."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="module")
def backend(model_root: Path) -> Any:
    embedded = EmbeddedBackend(model_root, default_model="half_plus_two")
    yield embedded
    embedded.close()


def pipeline_for(backend: Any, **settings: Any) -> Pipeline:
    return Pipeline(backend, settings=Settings.from_env({}, load_plugins=False, **settings))


def broadcast_request(elements: int) -> bytes:
    """A PredictRequest of a few bytes whose one value fills ``elements`` floats (TensorFlow's
    broadcast of fewer values than the shape holds)."""
    request = PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add().size = elements
    tensor.float_val.append(1.0)
    return request.SerializeToString()


def test_a_tiny_protobuf_body_is_never_broadcast_on_the_loop(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 20-byte PredictRequest may declare 2**27 floats filled from one value (512 MiB): reading
    it into arrays must not happen on the event loop, or /ping waits for the fill."""
    body = broadcast_request(1000)
    assert len(body) < 64
    read_on_loop: list[bool] = []
    original = arrays.PredictArrays.from_message.__func__  # type: ignore[attr-defined]

    def recording(cls: Any, request: Any) -> Any:
        read_on_loop.append(on_event_loop())
        return original(cls, request)

    monkeypatch.setattr(arrays.PredictArrays, "from_message", classmethod(recording))
    pipeline = pipeline_for(backend)
    assert pipeline.answers_on_loop(body, {"content-type": "application/x-protobuf"})
    status, _, answer = asyncio.run(call(ASGIApp(pipeline), "POST", "/invocations", body, PROTOBUF))
    assert status == 200, answer
    assert read_on_loop == [False]


# -- a flood of small bodies that are slow to decode, against a real server --------------------------


def _fit(prefix: bytes, unit: bytes, suffix: bytes, size: int) -> bytes:
    """``prefix unit,unit,... suffix`` of at most ``size`` bytes."""
    count = (size - len(prefix) - len(suffix)) // (len(unit) + 1)
    return prefix + b",".join([unit] * count) + suffix


SLOW_BODIES = {  # 64 KiB each: decoded on the loop before 4 KiB became its bound
    # A NaN sends TF Serving's JSON to the exact reader: every instance converted on its own.
    "instances and a NaN": _fit(b'{"instances":[', b"1", b",NaN]}", 64 * 1024 - 16),
    # Empty rows: each one walked for its shape.
    "empty rows": _fit(b'{"instances":[', b"[]", b"]}", 64 * 1024 - 16),
    # Cut short at the very end: all of it read by the exact reader before the error.
    "truncated": _fit(b'{"instances":[', b"[1]", b"]", 64 * 1024 - 16),
}


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from live_server import serve_cli, start_all

    live = serve_cli(
        "loop-hostile",
        tmp_path_factory.mktemp("loop_hostile"),
        ["--model-dir", str(model_root)],
        {"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "half_plus_two"},
    )
    start_all([live])
    yield live
    live.stop()


def flood(server: Any, path: str, bodies: list[bytes], seconds: float, clients: int) -> Any:
    """``clients`` threads posting ``bodies`` in turn for ``seconds`` while /ping is timed; the
    slowest ping and every answer."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    answers: list[Any] = []
    stop = time.monotonic() + seconds

    def post(index: int) -> None:
        turn = index
        while time.monotonic() < stop:
            body = bodies[turn % len(bodies)]
            turn += 1
            answers.append(server.post(path, body, headers={"Content-Type": "application/json"}))

    pings: list[float] = []
    with ThreadPoolExecutor(clients) as threads:
        futures = [threads.submit(post, index) for index in range(clients)]
        time.sleep(0.3)  # the flood is under way
        while time.monotonic() < stop:
            started = time.monotonic()
            assert server.get("/ping", timeout=30).status == 200
            pings.append(time.monotonic() - started)
            time.sleep(0.05)
        for future in futures:
            future.result(60)
    return max(pings), answers


def check_answers(answers: list[Any]) -> None:
    assert answers
    for answer in answers:
        assert answer.status == 200 or 400 <= answer.status < 500, answer.body[:300]
        assert answer.content_type == "application/json"
        document = json.loads(answer.body)
        if answer.status != 200:
            assert list(document) == ["error"], document
        assert b"Traceback" not in answer.body


@pytest.mark.parametrize("path", ["/invocations", "/v1/models/half_plus_two:predict"])
def test_ping_stays_fast_under_a_flood_of_small_bodies_slow_to_decode(
    server: Any, path: str
) -> None:
    # Served, each costs 130-230 ms of Python wherever it runs. On the loop nothing else is
    # answered meanwhile: /ping took about 1 s under six clients; from the pool's threads, which
    # share the GIL with the loop, 0.1-0.2 s.
    bodies = list(SLOW_BODIES.values())
    slowest_ping, answers = flood(server, path, bodies, seconds=4.0, clients=6)
    check_answers(answers)
    assert slowest_ping < 1.0, f"/ping took {slowest_ping:.2f} s"


def test_slow_kinds_of_body_within_the_loop_bound_are_answered_on_it(backend: Any) -> None:
    """The same kinds of body cut to ``LOOP_BODY_BYTES`` still take the loop path, and answer as
    the threads do."""
    pipeline = pipeline_for(backend)
    app = ASGIApp(pipeline)
    headers = [(b"content-type", b"application/json")]
    for name, cut in SLOW_BODIES_AT.items():
        assert len(cut) <= LOOP_BODY_BYTES and pipeline.answers_on_loop(cut, dict(JSON_HEADERS))
        status, _, answer = asyncio.run(call(app, "POST", "/invocations", cut, headers))
        expected = pipeline.invoke(cut, dict(JSON_HEADERS))
        assert (status, answer) == (expected.status, expected.body), name
        assert status in (200, 400), answer
    assert pipeline.work.busy == 0


JSON_HEADERS = {"content-type": "application/json"}
SLOW_BODIES_AT = {
    "instances and a NaN": _fit(b'{"instances":[', b"1", b",NaN]}", LOOP_BODY_BYTES),
    "empty rows": _fit(b'{"instances":[', b"[]", b"]}", LOOP_BODY_BYTES),
    "truncated": _fit(b'{"instances":[', b"[1]", b"]", LOOP_BODY_BYTES),
}


# -- the loop path answers exactly as the threads do -------------------------------------------------

ACCEPTS = (
    "application/json",
    "text/csv",
    "application/x-npy",
    "application/x-npz",
    "application/jsonlines",
    "application/x-protobuf",
    "*/*",
)
MODELS = ("half_plus_two", "string_model", "multi_input", "iris", "regression")


def _bodies() -> Any:
    """(content type, body) pairs in every built-in format, well formed or not, for any model."""
    import io

    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    from tfio_handlers.tensors import to_tensor_proto

    numbers = hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
    texts = st.lists(st.text(max_size=6), max_size=5)

    def as_json(value: Any) -> bytes:
        return json.dumps(value).encode()

    def npy(array: Any) -> bytes:
        out = io.BytesIO()
        np.save(out, array)
        return out.getvalue()

    def protobuf(array: Any) -> bytes:
        request = PredictRequest()
        request.inputs["x"].CopyFrom(to_tensor_proto(array))
        return request.SerializeToString()

    def csv(array: Any) -> bytes:
        rows = (
            np.atleast_2d(array)
            if array.ndim < 3
            else array.reshape(array.shape[0], int(np.prod(array.shape[1:])))
        )
        return "\n".join(",".join(str(v) for v in row) for row in rows.tolist()).encode()

    return st.one_of(
        numbers.map(lambda a: ("application/json", as_json(a.tolist()))),
        numbers.map(lambda a: ("application/json", as_json({"instances": a.tolist()}))),
        numbers.map(lambda a: ("application/json", as_json({"inputs": {"x": a.tolist()}}))),
        texts.map(lambda t: ("application/json", as_json({"instances": t}))),
        texts.map(lambda t: ("application/json", as_json({"inputs": {"text": t}}))),
        numbers.map(lambda a: ("text/csv", csv(a))),
        numbers.map(lambda a: ("application/x-npy", npy(a))),
        numbers.map(
            lambda a: (
                "application/jsonlines",
                b"\n".join(as_json(r) for r in a.tolist()) if a.ndim else as_json(a.tolist()),
            )
        ),
        numbers.map(lambda a: ("application/x-protobuf", protobuf(a))),
        st.tuples(
            st.sampled_from(
                [
                    "application/json",
                    "text/csv",
                    "application/x-npy",
                    "application/x-protobuf",
                    "application/jsonlines",
                ]
            ),
            st.binary(max_size=64),
        ),
    )


def test_the_loop_path_answers_byte_for_byte_as_the_threads(backend: Any) -> None:
    """Any body in a built-in format, any model, any Accept: ``ainvoke`` on the loop path answers
    exactly what ``invoke`` answers in a thread (status, headers, body), errors included; and
    the TF Serving route the same through both of its drivers."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tfio_handlers.adapters.tfs_rest import ahandle_tfs_rest, handle_tfs_rest

    pipeline = pipeline_for(backend)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_bodies(), st.sampled_from(ACCEPTS), st.sampled_from(MODELS))
    def check(typed: tuple[str, bytes], accept: str, model: str) -> None:
        content_type, body = typed
        headers = {
            "content-type": content_type,
            "accept": accept,
            "x-amzn-sagemaker-custom-attributes": f"tfs-model-name={model}",
        }
        assert pipeline.answers_on_loop(body, headers)
        threaded = pipeline.invoke(body, headers)
        looped = asyncio.run(pipeline.ainvoke(body, headers))
        assert (looped.status, looped.headers, looped.body) == (
            threaded.status,
            threaded.headers,
            threaded.body,
        )
        assert threaded.status != 500, threaded.body
        if content_type == "application/json":
            path = f"/v1/models/{model}:predict"
            sync = handle_tfs_rest(pipeline, "POST", path, body, {})
            loop = asyncio.run(ahandle_tfs_rest(pipeline, "POST", path, body, {}))
            assert (loop.status, loop.headers, loop.body) == (sync.status, sync.headers, sync.body)
            assert sync.status != 500, sync.body

    check()
    assert pipeline.work.busy == 0


@pytest.mark.parametrize("accept", ["application/json", "text/csv", "application/x-npy"])
def test_a_scalar_input_answers_a_scalar_not_a_500(backend: Any, accept: str) -> None:
    """``{"inputs": {"x": 0.0}}`` to a model of unknown rank: the model answers a rank-0 output
    (a numpy scalar, not an array), which the JSON writer once failed on (500 TypeError)."""
    pipeline = pipeline_for(backend)
    headers = {"content-type": "application/json", "accept": accept}
    body = b'{"inputs": {"x": 0.0}}'
    for answer in (
        pipeline.invoke(body, headers),
        asyncio.run(pipeline.ainvoke(body, headers)),
    ):
        assert answer.status in (200, 400), answer.body
    rest = asyncio.run(
        ahandle_tfs_rest(pipeline, "POST", "/v1/models/half_plus_two:predict", body, {})
    )
    assert (rest.status, json.loads(rest.body)) == (200, {"outputs": 2.0})


def test_long_headers_are_parsed_off_the_loop(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``Accept`` (or ``Content-Type``) of tens of KiB, new on each request so no cache helps,
    costs tens of milliseconds to parse and negotiate: the request goes to the pool, and the loop
    never parses it."""
    pipeline = pipeline_for(backend)
    parsed_on_loop: list[bool] = []
    negotiate = pipeline.registry.negotiate

    def recording(accept: Any, default: Any) -> Any:
        parsed_on_loop.append(on_event_loop())
        return negotiate(accept, default)

    monkeypatch.setattr(pipeline.registry, "negotiate", recording)
    app = ASGIApp(pipeline)
    for index in range(2):
        ranges = ",".join(f"*/*;q=0.{(i + index) % 9 + 1}" for i in range(3000)).encode()
        headers = [(b"content-type", b"application/json"), (b"accept", ranges)]
        status, _, answer = asyncio.run(call(app, "POST", "/invocations", b"[1.0]", headers))
        assert status == 200, answer
    assert parsed_on_loop and not any(parsed_on_loop)
    assert pipeline.answers_on_loop(b"[1.0]", {"accept": "application/json"})
