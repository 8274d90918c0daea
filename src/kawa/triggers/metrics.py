"""Prometheus metrics of the trigger worker, read from its counters in the online store at scrape time.

The worker runs in its own process; its counters are exact because they are written with the
results they count, so the API process serves them from the online store rather than from a
registry of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import accumulate

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kawa.stores.online import OnlineStore
from kawa.triggers import state


class TriggerMetrics(Collector):
    """`kawa_trigger_*` metrics of the project the trigger worker runs."""

    def __init__(self, online: OnlineStore, log_end: Callable[[], int]) -> None:
        self.online = online
        self.log_end = log_end

    def collect(self) -> Iterator[Metric]:
        position = state.read_position(self.online)
        if position is None:
            return
        project = position.project
        labels = ["project", "trigger"]
        matched = CounterMetricFamily("kawa_trigger_matched", "Events that matched a trigger", labels=labels)
        scored = CounterMetricFamily("kawa_trigger_scored", "Real-time predictions stored", labels=labels)
        errors = CounterMetricFamily(
            "kawa_trigger_errors",
            "Matched events that got an error record instead of a prediction",
            labels=labels,
        )
        latency = HistogramMetricFamily(
            "kawa_trigger_latency_seconds",
            "Time from the API receiving a triggering event to its prediction being readable",
            labels=labels,
        )
        for name, stats in state.read_stats(self.online, project).items():
            values = [project, name]
            matched.add_metric(values, stats.matched)
            scored.add_metric(values, stats.scored)
            errors.add_metric(values, stats.errors)
            bounds = [*(str(b / 1000) for b in state.LATENCY_BUCKETS_MS), "+Inf"]
            counts = list(accumulate(stats.latency_counts))
            latency.add_metric(values, list(zip(bounds, counts, strict=True)), stats.latency_sum_ms / 1000)
        channel_labels = [*labels, "channel"]
        delivered = CounterMetricFamily(
            "kawa_trigger_delivered",
            "Results delivered to a webhook or emitted as events",
            labels=channel_labels,
        )
        failed = CounterMetricFamily(
            "kawa_trigger_delivery_failed", "Results a receiver refused for good", labels=channel_labels
        )
        for key, sent in state.read_delivery(self.online, project).items():
            trigger, _, channel = key.rpartition("/")
            delivered.add_metric([project, trigger, channel], sent.delivered)
            failed.add_metric([project, trigger, channel], sent.failed)
        lag = GaugeMetricFamily(
            "kawa_trigger_lag_bytes", "Event log bytes the trigger worker has not read yet"
        )
        lag.add_metric([], max(self.log_end() - position.offset, 0))
        duplicates = CounterMetricFamily(
            "kawa_trigger_duplicates",
            "Events the trigger worker dropped as repeated event_ids",
            labels=["project"],
        )
        duplicates.add_metric([project], position.duplicates)
        yield from (matched, scored, errors, latency, delivered, failed, lag, duplicates)
