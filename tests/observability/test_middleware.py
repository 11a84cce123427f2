"""The observability middleware on real servers in this process (uvicorn in a thread, wsgiref),
over a core-only model: no TensorFlow. Request ids in answers and in every log line of a request,
user-code errors logged once with their traceback and never sent, ``/metrics`` answered before any
route (a plugin's ``GET /metrics`` cannot take it), off by setting, and 501 without prometheus-client.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tfio_handlers.backends.base import Backend
from tfio_handlers.config import Settings
from tfio_handlers.hookspecs import hookimpl
from tfio_handlers.observability import metrics as metrics_module
from tfio_handlers.observability.asgi import ObservabilityMiddleware
from tfio_handlers.observability.logs import JsonFormatter, RequestIdFilter
from tfio_handlers.observability.observer import Observer
from tfio_handlers.pipeline import Pipeline, Response
from tfio_handlers.protos import (
    DT_FLOAT,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    ModelVersionStatus,
    PredictRequest,
    PredictResponse,
    SignatureDef,
    pack_signature_def_map,
)
from tfio_handlers.registry import Kind, Registry
from tfio_handlers.usercode import load_user_code

uvicorn = pytest.importorskip("uvicorn")

BODY = b'{"instances": [[1.0], [2.0]]}'


class Echo(Backend):
    """Model ``echo`` version 3: ``serving_default`` predicts ``y = x`` (float32)."""

    default_model = "echo"

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        signature = SignatureDef(method_name="tensorflow/serving/predict")
        signature.inputs["x"].dtype = DT_FLOAT
        signature.inputs["x"].name = "x:0"
        signature.outputs["y"].dtype = DT_FLOAT
        signature.outputs["y"].name = "y:0"
        response = GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name or "echo"
        response.model_spec.version.value = 3
        return pack_signature_def_map(response, {"serving_default": signature})

    def predict(self, request: PredictRequest) -> PredictResponse:
        response = PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.outputs["y"].CopyFrom(request.inputs["x"])
        return response

    def classify(self, request: Any) -> Any:
        raise NotImplementedError

    def regress(self, request: Any) -> Any:
        raise NotImplementedError

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        response = GetModelStatusResponse()
        response.model_version_status.add(version=3, state=ModelVersionStatus.State.AVAILABLE)
        return response


class MetricsRoute:
    """A plugin that tries to answer ``GET /metrics`` itself."""

    @hookimpl
    def register_routes(self, add_route: Any) -> None:
        add_route("GET", "/metrics", lambda request: Response(200, b"plugin"), work="light")


def pipeline(tmp_path: Path | None = None, plugin: object | None = None) -> Pipeline:
    registry = Registry()
    if plugin is not None:
        registry.register(plugin, name="metrics-route", kind=Kind.PLUGIN)
    user_code = None
    if tmp_path is not None:
        code = tmp_path / "inference.py"
        code.write_text(
            "def input_fn(data, content_type):\n"
            "    if b'boom' in (data if isinstance(data, bytes) else data.encode()):\n"
            "        raise ValueError('secret detail')\n"
            "    return [[1.0]]\n"
        )
        user_code = load_user_code(code, is_text=registry.is_text)
    settings = Settings(load_plugins=False)
    return Pipeline(Echo(), settings=settings, registry=registry, user_code=user_code)


class Served:
    """uvicorn on 127.0.0.1 in a thread, serving ``app``."""

    def __init__(self, app: Any) -> None:
        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)

    def request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            connection.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The library's log as JSON lines, with request ids, as ``--log-format json`` writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    package = logging.getLogger("tfio_handlers")
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    yield stream
    package.removeHandler(handler)
    package.setLevel(level)


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def serve(app: Pipeline, *, metrics: bool) -> Served:
    """``app`` as ``tfio-handlers serve`` wraps it (:func:`observe_asgi`)."""
    from tfio_handlers.adapters.asgi import ASGIApp
    from tfio_handlers.observability.apps import observe_asgi

    return Served(observe_asgi(ASGIApp(app), Settings(metrics=metrics)))


def test_user_code_error_logged_once_with_its_request_id_never_sent(
    tmp_path: Path, log_lines: io.StringIO
) -> None:
    before = _user_errors()
    server = serve(pipeline(tmp_path), metrics=True)
    try:
        status, headers, body = server.request(
            "POST", "/invocations", b"boom", **{"X-Request-ID": "trace-me-1"}
        )
    finally:
        server.stop()
    assert status == 500
    assert headers["x-request-id"] == "trace-me-1"
    assert json.loads(body) == {"error": "input_fn failed: ValueError: secret detail"}
    assert b"Traceback" not in body
    mine = [entry for entry in entries(log_lines) if entry["request_id"] == "trace-me-1"]
    tracebacks = [entry for entry in mine if "exception" in entry]
    assert len(tracebacks) == 1  # once, server-side
    assert "ValueError: secret detail" in tracebacks[0]["exception"]
    access = [entry for entry in mine if entry["logger"] == "tfio_handlers.access"]
    assert len(access) == 1
    assert access[0]["status"] == 500
    if metrics_module.available():
        assert _user_errors() == before + 1


def _user_errors() -> float:
    active = metrics_module.active()
    if active is None:
        return 0.0
    value = active.registry.get_sample_value(
        "tfio_handlers_user_code_errors_total", {"model": "echo"}
    )
    return value or 0.0


def test_access_line_and_stage_timings(log_lines: io.StringIO) -> None:
    server = serve(pipeline(), metrics=False)
    try:
        status, headers, body = server.request(
            "POST", "/invocations?x=1", BODY, **{"Content-Type": "application/json"}
        )
    finally:
        server.stop()
    assert status == 200
    (access,) = [e for e in entries(log_lines) if e["logger"] == "tfio_handlers.access"]
    assert access["request_id"] == headers["x-request-id"]
    assert len(access["request_id"]) == 32
    assert access["path"] == "/invocations?x=1"
    assert access["model"] == "echo"
    assert access["codec"] == "application/json"
    assert access["bytes_in"] == len(BODY)
    assert access["bytes_out"] == len(body)


def test_metrics_route_cannot_be_taken_by_a_plugin() -> None:
    pytest.importorskip("prometheus_client")
    app = pipeline(plugin=MetricsRoute())
    from tfio_handlers.adapters.asgi import ASGIApp

    bare = Served(ASGIApp(app))
    try:
        assert bare.request("GET", "/metrics")[2] == b"plugin"  # the plugin's, unobserved
    finally:
        bare.stop()
    server = serve(app, metrics=True)
    try:
        status, headers, body = server.request("GET", "/metrics")
    finally:
        server.stop()
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert b"tfio_handlers_requests_total" in body
    assert (
        b'tfio_handlers_model_version_state{model="echo",state="AVAILABLE",version="3"} 1.0' in body
    )


def test_metrics_off_leaves_the_path_to_the_app() -> None:
    server = serve(pipeline(), metrics=False)
    try:
        status, _, body = server.request("GET", "/metrics")
        assert status == 404
        assert json.loads(body) == {"error": "No route for GET /metrics"}
        assert server.request("POST", "/invocations", BODY)[0] == 200
    finally:
        server.stop()


def test_without_prometheus_client_metrics_answer_501(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "available", lambda: False)
    server = serve(pipeline(), metrics=True)
    try:
        status, headers, body = server.request("GET", "/metrics")
        assert status == 501
        assert headers["content-type"] == "application/json"
        assert "pip install 'tfio-handlers[metrics]'" in json.loads(body)["error"]
        assert server.request("POST", "/invocations", BODY)[0] == 200
    finally:
        server.stop()


def test_mounted_in_starlette_with_add_middleware(log_lines: io.StringIO) -> None:
    starlette = pytest.importorskip("starlette.applications")
    from starlette.routing import Mount

    from tfio_handlers.adapters.asgi import ASGIApp

    parent = starlette.Starlette(routes=[Mount("/model", app=ASGIApp(pipeline()))])
    parent.add_middleware(ObservabilityMiddleware)
    server = Served(parent)
    try:
        status, headers, _ = server.request(
            "POST", "/model/invocations", BODY, **{"X-Request-ID": "mounted-1"}
        )
    finally:
        server.stop()
    assert status == 200
    assert headers["x-request-id"] == "mounted-1"
    (access,) = [e for e in entries(log_lines) if e["logger"] == "tfio_handlers.access"]
    assert access["request_id"] == "mounted-1"
    assert access["path"] == "/model/invocations"
    assert access["model"] == "echo"


def test_wsgi_middleware_on_a_real_wsgi_server(log_lines: io.StringIO) -> None:
    from tfio_handlers.adapters.wsgi import WSGIApp
    from tfio_handlers.observability.wsgi import WSGIObservabilityMiddleware

    inner = WSGIApp(pipeline())
    routes = inner.state.routes
    app = WSGIObservabilityMiddleware(inner, Observer(metrics=False, routes=lambda: routes))

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=30)
        connection.request(
            "POST",
            "/invocations",
            BODY,
            {"Content-Type": "application/json", "X-Amzn-RequestId": "sm-wsgi"},
        )
        response = connection.getresponse()
        body = response.read()
        connection.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert response.status == 200
    assert response.getheader("x-request-id") == "sm-wsgi"
    (access,) = [e for e in entries(log_lines) if e["logger"] == "tfio_handlers.access"]
    assert access["request_id"] == "sm-wsgi"
    assert access["bytes_in"] == len(BODY)
    assert access["bytes_out"] == len(body)


def test_importing_observability_does_not_import_prometheus_client() -> None:
    code = (
        "import sys, tfio_handlers.observability, tfio_handlers.pipeline\n"
        "assert 'prometheus_client' not in sys.modules\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _stage_counts(text: str) -> dict[str, float]:
    """``tfio_handlers_stage_duration_seconds_count`` of model ``echo``, by stage, in a scrape."""
    found = {}
    for line in text.splitlines():
        if (
            line.startswith("tfio_handlers_stage_duration_seconds_count{")
            and 'model="echo"' in line
        ):
            stage = line.split('stage="', 1)[1].split('"', 1)[0]
            found[stage] = float(line.rsplit(" ", 1)[1])
    return found


@pytest.mark.parametrize("action", ["predict", "classify", "regress"])
def test_tfs_rest_routes_time_their_stages(action: str) -> None:
    """``/v1/models/...:predict`` calls the backend itself, not through the pipeline: it times
    decode, model and encode on the request's record, into the same stage histogram."""
    pytest.importorskip("prometheus_client")
    server = serve(pipeline(), metrics=True)
    try:
        before = _stage_counts(server.request("GET", "/metrics")[2].decode())
        status, _, body = server.request(
            "POST", f"/v1/models/echo:{action}", BODY, **{"Content-Type": "application/json"}
        )
        after = _stage_counts(server.request("GET", "/metrics")[2].decode())
    finally:
        server.stop()
    if action == "predict":
        assert status == 200, body
        for stage in ("decode", "model", "encode"):
            assert after[stage] == before.get(stage, 0) + 1, (stage, before, after)
    else:  # Echo has no classify/regress signature: refused before any stage ran
        assert status >= 400
        assert after == before


def test_one_access_line_the_middlewares_and_none_bare(log_lines: io.StringIO) -> None:
    """The adapters write no access line: they hand the codec to the request's record, and the
    middleware's line names it. Served bare, an app logs no access line at all."""
    from tfio_handlers.adapters.asgi import ASGIApp

    bare = Served(ASGIApp(pipeline()))
    try:
        assert bare.request("POST", "/v1/models/echo:predict", BODY)[0] == 200
        assert bare.request("POST", "/invocations", BODY)[0] == 200
    finally:
        bare.stop()
    assert [e for e in entries(log_lines) if e["logger"] == "tfio_handlers.access"] == []
    server = serve(pipeline(), metrics=False)
    try:
        for path, rid in (
            ("/v1/models/echo:predict", "one-line-1"),
            ("/no/such/route", "one-line-2"),
            ("/invocations", "one-line-3"),
        ):
            server.request("POST", path, BODY, **{"X-Request-ID": rid})
    finally:
        server.stop()
    access = [e for e in entries(log_lines) if e["logger"] == "tfio_handlers.access"]
    assert [(e["request_id"], e["codec"], e["status"]) for e in access] == [
        ("one-line-1", "tfs:predict", 200),
        ("one-line-2", "-", 404),
        ("one-line-3", "application/json", 200),
    ]


@pytest.fixture(scope="module")
def spans() -> Any:
    """Spans the library writes, kept in memory (the SDK as a user's service would configure it)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def test_a_span_per_request_child_of_the_clients_trace(spans: Any) -> None:
    """With OpenTelemetry configured, each answered request is one server span, under the trace
    the client's ``traceparent`` names, with the route, status, model, request id and stages."""
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    parent = f"00-{trace_id}-b7ad6b7169203331-01"
    server = serve(pipeline(), metrics=False)
    try:
        status, headers, _ = server.request(
            "POST",
            "/invocations",
            BODY,
            **{"Content-Type": "application/json", "traceparent": parent},
        )
        bad, _, _ = server.request(
            "POST", "/invocations", b"[1,", **{"Content-Type": "application/json"}
        )
    finally:
        server.stop()
    assert (status, bad) == (200, 400)
    answered, refused = spans.get_finished_spans()[-2:]
    assert answered.name == "POST /invocations"
    assert format(answered.context.trace_id, "032x") == trace_id
    assert format(answered.parent.span_id, "016x") == "b7ad6b7169203331"
    attributes = dict(answered.attributes)
    assert attributes["http.response.status_code"] == 200
    assert attributes["tfio_handlers.request_id"] == headers["x-request-id"]
    assert attributes["tfio_handlers.model"] == "echo"
    assert {"decode", "model", "encode"} <= {
        key.split(".")[2].removesuffix("_seconds") for key in attributes if ".stage." in key
    }
    assert answered.end_time > answered.start_time
    assert refused.parent is None  # no traceparent: a new trace
    assert dict(refused.attributes)["http.response.status_code"] == 400
