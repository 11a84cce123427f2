"""Small built-in requests are decoded and answered on the event loop; only their model call leaves it.

The ASGI app is driven in process with real ASGI messages over the real ``half_plus_two`` and iris
models on the embedded backend. What is checked is where the work ran (the work pool's threads are
never started, the model calls ran on the backend's model threads), what the pool's bound and the
request timeout still do on this path, and which requests keep the pool path. Time bounds are
generous no-hang limits, never speed checks.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servers import asgi_call

from tfio_handlers.adapters.asgi import ASGIApp
from tfio_handlers.backends.embedded import EmbeddedBackend
from tfio_handlers.config import Settings
from tfio_handlers.hookspecs import hookimpl
from tfio_handlers.pipeline import LOOP_ANSWER_BYTES, LOOP_BODY_BYTES, Pipeline, _small_answer
from tfio_handlers.protocol.arrays import PredictArrays, Prediction
from tfio_handlers.registry import Registry
from tfio_handlers.usercode import load_user_code

pytestmark = pytest.mark.tensorflow

JSON = [(b"content-type", b"application/json")]


class ThreadRecordingBackend(EmbeddedBackend):
    """The embedded backend, noting the thread each model call ran on (and, if asked, slow)."""

    def __init__(self, *args: Any, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: list[str] = []
        self.delay = delay
        self.finished = threading.Event()

    def predict_arrays(self, request: PredictArrays) -> Prediction:
        self.threads.append(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        try:
            return super().predict_arrays(request)
        finally:
            self.finished.set()


class RemoteLikeBackend(ThreadRecordingBackend):
    """Notes whether its signatures were fetched on an event loop: a remote backend's first fetch
    is a call to its model server (Ray Serve's handles refuse a sync call there outright)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetched_on_loop: list[bool] = []

    def signatures(self, *args: Any, **kwargs: Any) -> Any:
        cached = self.signatures_cached(*args, **kwargs)
        if not cached:
            try:
                asyncio.get_running_loop()
                self.fetched_on_loop.append(True)
            except RuntimeError:
                self.fetched_on_loop.append(False)
        return super().signatures(*args, **kwargs)


class PluginCodec:
    """A third-party codec: its work is not the project's to judge, so it never runs on the loop."""

    @hookimpl
    def register_codecs(self, register: Any) -> None:
        register("application/x-plugin", decode=self.decode, encode=self.encode)

    @staticmethod
    def decode(body: bytes, media_type: Any, context: Any) -> Any:
        return json.loads(body)

    @staticmethod
    def encode(response: Any, media_type: Any, context: Any) -> bytes:
        return b"plugin"


def pipeline_for(backend: Any, **settings: Any) -> Pipeline:
    registry = Registry()
    registry.register(PluginCodec(), name="plugin")
    return Pipeline(
        backend, settings=Settings.from_env({}, load_plugins=False, **settings), registry=registry
    )


async def call(
    app: Any, method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] = JSON
) -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI app (:func:`servers.asgi_call`), JSON unless told otherwise."""
    return await asgi_call(app, method, path, body, headers)


@pytest.fixture
def recording(half_plus_two_model: Path) -> Any:
    backend = ThreadRecordingBackend({"half_plus_two": half_plus_two_model.parent})
    yield backend
    backend.close()


def test_small_requests_never_start_the_pool_and_call_the_model_on_its_threads(
    recording: ThreadRecordingBackend,
) -> None:
    pipeline = pipeline_for(recording)
    app = ASGIApp(pipeline)

    async def scenario() -> list[tuple[int, dict[str, str], bytes]]:
        return await asyncio.gather(
            call(app, "POST", "/invocations", b'{"instances": [1.0, 2.0]}'),
            call(app, "POST", "/invocations", b"1.0,2.0", [(b"content-type", b"text/csv")]),
            call(app, "POST", "/v1/models/half_plus_two:predict", b'{"instances": [1.0, 2.0]}'),
            call(app, "POST", "/v1/models/half_plus_two:predict", b'{"instances": [[1.0]]'),
        )

    answers = asyncio.run(scenario())
    assert [status for status, _, _ in answers] == [200, 200, 200, 400]
    assert json.loads(answers[0][2]) == {"predictions": [2.5, 3.0]}
    assert json.loads(answers[2][2]) == {"predictions": [2.5, 3.0]}
    assert "error" in json.loads(answers[3][2])
    assert pipeline.work._executor is None  # no request's own work went to the pool's threads
    assert len(recording.threads) == 3
    assert all(name.startswith("tfio-model") for name in recording.threads)


@pytest.mark.parametrize(
    ("path", "body"),
    [("/invocations", b"[1.0]"), ("/v1/models/half_plus_two:predict", b'{"instances": [1.0]}')],
)
def test_uncached_signatures_are_fetched_off_the_loop(
    half_plus_two_model: Path, path: str, body: bytes
) -> None:
    backend = RemoteLikeBackend({"half_plus_two": half_plus_two_model.parent})
    try:
        backend.invalidate_signatures()
        status, _, answer = asyncio.run(call(ASGIApp(pipeline_for(backend)), "POST", path, body))
        assert status == 200, answer
        assert backend.fetched_on_loop == [False]
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("body", "headers", "why"),
    [
        (b"[1.0]", [(b"content-type", b"application/x-plugin")], "a plugin decodes"),
        (b"[1.0]", [*JSON, (b"accept", b"application/x-plugin")], "a plugin encodes"),
        (gzip.compress(b"[1.0]"), [*JSON, (b"content-encoding", b"gzip")], "a body to inflate"),
        (b"[" + b"1.0," * (LOOP_BODY_BYTES // 4) + b"1.0]", JSON, "a big body"),
    ],
)
def test_requests_whose_work_is_not_small_and_known_run_in_the_pool(
    recording: ThreadRecordingBackend, body: bytes, headers: list[tuple[bytes, bytes]], why: str
) -> None:
    pipeline = pipeline_for(recording)
    lowered = {k.decode(): v.decode() for k, v in headers}
    assert not pipeline.answers_on_loop(body, lowered), why
    status, _, answer = asyncio.run(call(ASGIApp(pipeline), "POST", "/invocations", body, headers))
    assert status == 200, answer
    assert pipeline.work._executor is not None, why
    assert all(name.startswith("tfio-work") for name in recording.threads)


def test_user_code_always_runs_in_the_pool(
    recording: ThreadRecordingBackend, tmp_path: Path
) -> None:
    script = tmp_path / "inference.py"
    script.write_text("def input_handler(data, context):\n    return data.read().decode()\n")
    pipeline = Pipeline(
        recording,
        settings=Settings.from_env({}, load_plugins=False),
        user_code=load_user_code(script),
    )
    assert not pipeline.answers_on_loop(b'{"instances": [1.0]}', {})
    status, _, answer = asyncio.run(
        call(ASGIApp(pipeline), "POST", "/invocations", b'{"instances": [1.0]}')
    )
    assert (status, json.loads(answer)) == (200, {"predictions": [2.5]})
    assert len(recording.threads) == 1
    assert recording.threads[0].startswith("tfio-work")


def test_the_pool_bound_holds_on_the_loop_path(recording: ThreadRecordingBackend) -> None:
    pipeline = pipeline_for(recording, max_concurrent_requests=1)
    app = ASGIApp(pipeline)
    with pipeline.work.slot():  # the one slot is taken
        for path, body in (
            ("/invocations", b"[1.0]"),
            ("/v1/models/half_plus_two:predict", b'{"instances": [1.0]}'),
        ):
            status, headers, answer = asyncio.run(call(app, "POST", path, body))
            assert status == 503, answer
            assert "retry-after" in headers
            assert "busy" in json.loads(answer)["error"]
    assert recording.threads == []
    assert pipeline.work.busy == 0


def test_a_lone_request_calls_the_model_inline_and_concurrent_ones_on_the_threads(
    recording: ThreadRecordingBackend,
) -> None:
    """One request at a time: after the first two calls of its kind (on a thread: the first may
    trace, the second is timed), the model call runs on the event loop's own thread. Many at once:
    the model threads, as a call inline would make every other request wait for it."""
    # A generous bound: "short" must not depend on how loaded the machine running the tests is.
    recording._model_calls.inline_below = 0.5
    app = ASGIApp(pipeline_for(recording))
    body = b'{"instances": [1.0, 2.0]}'

    async def one_by_one() -> list[int]:
        return [
            (await call(app, "POST", "/v1/models/half_plus_two:predict", body))[0] for _ in range(5)
        ]

    async def together() -> list[int]:
        answers = await asyncio.gather(
            *(call(app, "POST", "/v1/models/half_plus_two:predict", body) for _ in range(8))
        )
        return [status for status, _, _ in answers]

    loop_thread = threading.current_thread().name
    assert asyncio.run(one_by_one()) == [200] * 5
    first, second, *rest = recording.threads
    assert first.startswith("tfio-model") and second.startswith("tfio-model")
    assert rest == [loop_thread] * 3
    recording.threads.clear()
    assert asyncio.run(together()) == [200] * 8
    assert len(recording.threads) == 8
    assert sum(name == loop_thread for name in recording.threads) <= 1, recording.threads


@pytest.mark.parametrize(
    ("path", "body"),
    [("/invocations", b"[1.0]"), ("/v1/models/half_plus_two:predict", b'{"instances": [1.0]}')],
)
def test_a_slow_model_call_times_out_504_while_the_loop_answers_ping(
    half_plus_two_model: Path, path: str, body: bytes
) -> None:
    backend = ThreadRecordingBackend({"half_plus_two": half_plus_two_model.parent}, delay=1.5)
    try:
        pipeline = pipeline_for(backend)
        app = ASGIApp(pipeline, timeout=0.3)

        async def scenario() -> tuple[Any, Any, float]:
            slow = asyncio.ensure_future(call(app, "POST", path, body))
            await asyncio.sleep(0.05)
            pinged = time.monotonic()
            ping = await call(app, "GET", "/ping")
            took = time.monotonic() - pinged
            return await slow, ping, took

        started = time.monotonic()
        (status, _, answer), ping, ping_took = asyncio.run(scenario())
        assert status == 504, answer
        assert "timeout" in json.loads(answer)["error"]
        assert ping[0] == 200
        assert ping_took < 1.0  # the loop was free while the model ran
        assert time.monotonic() - started < 1.4  # answered before the model call ended
        assert pipeline.work.busy == 0
        assert backend.finished.wait(10)  # the call still ends, on its model thread
    finally:
        backend.close()


def test_model_threads_run_calls_first_come_first_served(half_plus_two_model: Path) -> None:
    with pytest.raises(ValueError, match="model_threads"):
        EmbeddedBackend({"half_plus_two": half_plus_two_model.parent}, model_threads=0)
    backend = ThreadRecordingBackend({"half_plus_two": half_plus_two_model.parent}, model_threads=1)
    try:
        assert backend.model_threads == 1
        request = PredictArrays({"x": np.array([1.0, 2.0], np.float32)})

        async def scenario() -> list[Prediction]:
            return await asyncio.gather(*(backend.apredict_arrays(request) for _ in range(5)))

        answers = asyncio.run(scenario())
        assert all(a.outputs["y"].tolist() == [2.5, 3.0] for a in answers)
        assert len(set(backend.threads)) == 1  # one model thread did all five
    finally:
        backend.close()
    default = EmbeddedBackend({"half_plus_two": half_plus_two_model.parent})
    try:
        import os

        assert default.model_threads == len(os.sched_getaffinity(0))
    finally:
        default.close()


def test_answers_bigger_than_the_loop_limit_are_written_off_the_loop() -> None:
    rows = LOOP_ANSWER_BYTES // 4 + 1
    assert not _small_answer(Prediction({"y": np.zeros(rows, np.float32)}))
    assert _small_answer(Prediction({"y": np.zeros(rows - 2, np.float32)}))
    strings = np.array([b"x" * 1024] * (LOOP_ANSWER_BYTES // 1024 + 1), dtype=object)
    assert not _small_answer(Prediction({"s": strings}))
    assert _small_answer(Prediction({"s": strings[:4]}))
    assert not _small_answer(Prediction({"s": np.array([b""] * LOOP_ANSWER_BYTES, dtype=object)}))
