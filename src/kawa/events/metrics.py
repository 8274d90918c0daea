"""Prometheus metrics of the collector, served at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_ACCEPTED = Counter("kawa_events_accepted", "Events made durable in the event log", ["project"])
EVENTS_REJECTED = Counter("kawa_events_rejected", "Events refused and kept in rejected_events", ["project"])
INGEST_OVERLOADED = Counter(
    "kawa_ingest_overloaded", "Ingest requests answered 503 because the log was behind"
)
INGEST_SECONDS = Histogram(
    "kawa_ingest_seconds",
    "Time from a request body's arrival to its durable acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
