"""OpenTelemetry spans of the event -> prediction path, caught by the SDK's in-memory exporter, and
nothing of OpenTelemetry's SDK loaded while tracing is off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kawa.api import create_app
from kawa.auth import generate_keys
from kawa.config import Config
from kawa.models import Registry
from kawa.observe import tracing
from kawa.runtime import Runtime
from kawa.triggers import Trigger
from tests.triggers.conftest import PROJECT, Parts, buyer_bundle


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider.get_tracer("kawa-test"))
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_ingest_and_predict_requests_have_spans_with_the_request_id(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    keys = generate_keys()
    config = Config(project=PROJECT, state_dir=str(tmp_path / ".kawa"), projects={PROJECT: keys})
    runtime = Runtime(config, log_writer=True)
    registry = Registry.from_runtime(runtime)
    registry.promote(PROJECT, "buyer", registry.register(PROJECT, "buyer", buyer_bundle()))
    app = create_app(runtime)

    async def send() -> str:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://kawa") as client,
        ):
            good = '{"event_name":"view","event_id":"e1","keys":{"user_id":"u1"}}'
            events = good + '\n{"event_name":"view","keys":{}}'
            r = await client.post(
                "/v1/events",
                content=events,
                headers={"Authorization": f"Bearer {keys.write_key}", "Content-Type": "application/x-ndjson",
                         "X-Request-ID": "trace-me"},
            )  # fmt: skip
            assert r.status_code == 200 and r.headers["x-request-id"] == "trace-me"
            r = await client.post(
                "/v1/models/buyer/predict", json=[{"price": 30.0}, {"price": 60.0}],
                headers={"Authorization": f"Bearer {keys.read_key}"},
            )  # fmt: skip
            assert r.status_code == 200, r.text
            return r.headers["x-request-id"]

    predict_rid = asyncio.run(send())
    registry.close()
    (ingest,) = named(spans, "POST /v1/events")
    assert ingest.attributes is not None
    assert ingest.attributes["kawa.request_id"] == "trace-me"
    assert ingest.attributes["http.response.status_code"] == 200
    assert ingest.attributes["kawa.event_ids"] == ("e1",)
    assert (ingest.attributes["kawa.events.accepted"], ingest.attributes["kawa.events.rejected"]) == (1, 1)
    (request,) = named(spans, "POST /v1/models/{name}/predict")
    assert request.attributes is not None and request.attributes["kawa.request_id"] == predict_rid
    (predict,) = named(spans, "kawa.predict")
    assert predict.attributes is not None
    assert dict(predict.attributes) == {
        "kawa.project": PROJECT, "kawa.model": "buyer", "kawa.model_version": 1, "kawa.path": "request",
        "kawa.rows": 2,
    }  # fmt: skip
    # The model call is a child of its request's span.
    assert predict.parent is not None and predict.parent.span_id == request.context.span_id


def test_trigger_spans_run_from_the_event_arriving_to_its_prediction(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    parts = Parts(tmp_path)
    try:
        parts.register(buyer_bundle())
        buyer = Trigger("buyer_on_view", on={"event_name": "view"}, key="keys.user_id", model="buyer")
        worker = parts.worker([buyer])
        parts.send([
            {"event_name": "view", "event_id": "t1", "keys": {"user_id": "a"}, "price": 60.0},
            {"event_name": "view", "event_id": "t2", "keys": {"visitor_id": "v"}, "price": 60.0},
            {"event_name": "cart_add", "event_id": "t3", "keys": {"user_id": "a"}},
        ])  # fmt: skip
        assert worker.step()
        received_at = worker.position.received_at
    finally:
        parts.close()
    by_event = {s.attributes["kawa.event_id"]: s for s in named(spans, "kawa.trigger") if s.attributes}
    assert set(by_event) == {"t1", "t2"}  # t3 matched no trigger
    ok, failed = by_event["t1"], by_event["t2"]
    assert ok.attributes is not None and failed.attributes is not None
    assert ok.attributes["kawa.model_version"] == 1 and ok.attributes["kawa.entity"] == "a"
    assert ok.status.is_ok and not failed.status.is_ok
    assert failed.status.description is not None and failed.status.description.startswith("key:")
    assert ok.start_time == received_at * 1000
    assert ok.start_time is not None and ok.end_time is not None and ok.end_time > ok.start_time
    (predict,) = named(spans, "kawa.predict")
    assert predict.attributes is not None and predict.attributes["kawa.path"] == "trigger"


def test_tracing_off_loads_nothing_of_the_sdk() -> None:
    code = (
        "import sys\n"
        "from kawa.api import create_app\n"
        "from kawa.observe import tracing\n"
        "tracing.setup('off', 'api')\n"
        "assert not tracing.enabled()\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_tracing_mode_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="use one of: off, otlp, console"):
        tracing.setup("jaeger", "api")
