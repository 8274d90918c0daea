"""Prometheus metrics of the collector, served at /metrics.

Refused events are counted per project and per `reason`, a small fixed set of categories (see
`REASONS`): the free-text reason each refused event keeps in `rejected_events` would make one time
series per message.
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import Counter, Histogram

EVENTS_ACCEPTED = Counter("kawa_events_accepted", "Events made durable in the event log", ["project"])
EVENTS_REJECTED = Counter(
    "kawa_events_rejected", "Events refused and kept in rejected_events, by reason", ["project", "reason"]
)
INGEST_OVERLOADED = Counter(
    "kawa_ingest_overloaded", "Ingest requests answered 503 because the log was behind"
)
INGEST_SECONDS = Histogram(
    "kawa_ingest_seconds",
    "Time from a request body's arrival to its durable acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# (category, words one of which the refusal's text holds), tried in order; the rest is `invalid`.
_CATEGORIES = (
    ("invalid_json", ("not valid json",)),
    ("too_deep", ("nested deeper than",)),
    ("too_large", ("bytes; the limit is",)),
    ("write_key", ("write key", "api_key")),
    ("missing_field", ("is required", "missing", "is empty", " needs ")),
    ("bad_time", ("sync_date", "timestamp", "not a real time", "clock skew")),
)
REASONS = (*(name for name, _ in _CATEGORIES), "invalid")


def reason_category(reason: str) -> str:
    """The category (one of `REASONS`) of a refused event's reason, for the metric's `reason` label.

    >>> reason_category("event 3: keys.user_id or keys.visitor_id is required")
    'missing_field'
    >>> reason_category("event 0: event_name is missing; every event needs one, e.g. 'view' or 'purchase'")
    'missing_field'
    >>> reason_category("event 1: Expected `number`, got `str` - at `price`")
    'invalid'
    """
    text = reason.lower()
    for name, words in _CATEGORIES:
        if any(word in text for word in words):
            return name
    return "invalid"


def count_rejected(project: str, reasons: list[str]) -> None:
    """Count refused events of `project` by the category of each one's reason."""
    for category, n in Tally(map(reason_category, reasons)).items():
        EVENTS_REJECTED.labels(project, category).inc(n)
