"""Optional OpenTelemetry spans of the event -> prediction path; a no-op unless turned on.

`server.tracing` (or `KAWA__SERVER__TRACING`): `off` (default), `otlp` (OTLP over HTTP to
OTEL_EXPORTER_OTLP_ENDPOINT, http://localhost:4318 unless set) or `console`. Needs `kawa[otel]`.
While it is off, nothing of OpenTelemetry is imported and each hook returns at once.

Spans: `POST /v1/events` (every HTTP request, with `kawa.request_id` and, for ingest, the first
event ids), `kawa.trigger` (one per matched event: from the API receiving it to its prediction
being written, with `kawa.event_id`), `kawa.predict` (one model call, on a request or in the
trigger worker). The event log does not carry trace context, so an event's trigger span is found
from its ingest span by `kawa.event_id` (listed in the ingest span's `kawa.event_ids`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from kawa.triggers._scoring import Hit

MODES = ("off", "otlp", "console")
MAX_EVENT_IDS = 100  # event ids noted on an ingest span
MAX_TRIGGER_SPANS = 1000  # per trigger worker batch; a backlog caught up at once is not traced event by event

_tracer: Tracer | None = None
_ids = msgspec.json.Decoder(dict[str, Any])


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"server.tracing {mode!r} is not known; use one of: {', '.join(MODES)}")
    return mode


def setup(mode: str, part: str) -> None:
    """Turn tracing on for this process (`part` of kawa serve) as `mode` says; `off` does nothing."""
    if check_mode(mode) == "off":
        return
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError as exc:
        raise RuntimeError(f"server.tracing is {mode!r} but {exc}; install kawa[otel]") from exc
    exporter: SpanExporter
    if mode == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError(f"server.tracing is 'otlp' but {exc}; install kawa[otel]") from exc
        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "kawa", "kawa.part": part}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    use(provider.get_tracer("kawa"))


def use(tracer: Tracer | None) -> None:
    """Send spans to `tracer` (None: stop tracing). `setup` calls it; tests pass an SDK tracer."""
    global _tracer
    _tracer = tracer


def enabled() -> bool:
    return _tracer is not None


def request_span(method: str, path: str, request_id: str) -> AbstractContextManager[Span | None]:
    """The span of one HTTP request, current while the app handles it (nothing while off)."""
    if _tracer is None:
        return nullcontext()
    from opentelemetry.trace import SpanKind

    attributes = {"http.request.method": method, "url.path": path, "kawa.request_id": request_id}
    return _tracer.start_as_current_span(f"{method} {path}", kind=SpanKind.SERVER, attributes=attributes)


def end_request(span: Span | None, method: str, status: int, route: str | None) -> None:
    """Note the response status (and the route template, as the span's name) on a request span."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if route is not None:
        span.set_attribute("http.route", route)
        span.update_name(f"{method} {route}")


def note_ingest(project: str, accepted: int, rejected: int, lines: Sequence[bytes]) -> None:
    """Put what an ingest request stored (and its first event ids) on the current request span."""
    if _tracer is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    ids = []
    for line in lines[:MAX_EVENT_IDS]:
        try:
            found = _ids.decode(line).get("event_id")
        except msgspec.DecodeError:
            continue
        if found is not None:
            ids.append(str(found))
    span.set_attributes(
        {"kawa.project": project, "kawa.events.accepted": accepted, "kawa.events.rejected": rejected}
    )
    if ids:
        span.set_attribute("kawa.event_ids", ids)


@contextmanager
def predict_span(project: str, model: str, version: int | None, path: str, rows: int) -> Iterator[None]:
    """A `kawa.predict` span around one model call (nothing while off)."""
    if _tracer is None:
        yield
        return
    attributes: dict[str, str | int] = {
        "kawa.project": project,
        "kawa.model": model,
        "kawa.model_version": -1 if version is None else version,
        "kawa.path": path,
        "kawa.rows": rows,
    }
    with _tracer.start_as_current_span("kawa.predict", attributes=attributes):
        yield


def trigger_spans(project: str, hits: Sequence[Hit], done_us: int) -> None:
    """One `kawa.trigger` span per matched event: from its arrival at the API to its result written."""
    if _tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    for hit in hits[:MAX_TRIGGER_SPANS]:
        attributes: dict[str, Any] = {
            "kawa.project": project,
            "kawa.event_id": hit.event_id,
            "kawa.trigger": hit.trigger.name,
            "kawa.model": hit.trigger.model,
            "kawa.log_offset": hit.offset,
        }
        if hit.entity is not None:
            attributes["kawa.entity"] = hit.entity
        if hit.version is not None:
            attributes["kawa.model_version"] = hit.version
        span = _tracer.start_span("kawa.trigger", attributes=attributes, start_time=hit.received_at * 1000)
        if hit.error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{hit.stage}: {hit.error}"))
        span.end(end_time=done_us * 1000)
