"""What /metrics reads from the stores at scrape time: log lags, pipeline runs, trigger counters.

These values are kept by the stores, so reading them when Prometheus asks gives the same exact
answer from every API process, whichever part of `kawa serve` moved them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from kawa.lake.writer import CONSUMER as LAKE_GROUP
from kawa.observe.metrics import multiprocess_enabled, store_error
from kawa.runtime import Runtime
from kawa.stores.metadata.tables import runs
from kawa.triggers import state
from kawa.triggers.metrics import TriggerMetrics

log = logging.getLogger("kawa.observe")


def log_positions(runtime: Runtime) -> dict[str, int]:
    """The event log's end offset (`acknowledged`) and how far the lake and the trigger worker got.

    Everything before `acknowledged` was confirmed to a client; `lake` is what is published as
    Parquet; `scored` is what the trigger worker has matched and scored (absent before its first run).
    """
    event_log = runtime.event_log
    positions = {"acknowledged": event_log.end_offset(), "lake": event_log.committed(LAKE_GROUP)}
    position = state.read_position(runtime.online)
    if position is not None:
        positions["scored"] = position.offset
    return positions


def pipeline_runs(runtime: Runtime) -> list[tuple[str, str, str, int]]:
    """(project, pipeline, status, runs) for every pipeline that has runs in the metadata store."""
    query = select(runs.c.project, runs.c.pipeline, runs.c.status, func.count()).group_by(
        runs.c.project, runs.c.pipeline, runs.c.status
    )
    with runtime.metadata.connect() as conn:
        return [(p, name, status, int(n)) for p, name, status, n in conn.execute(query)]


class StoreMetrics(Collector):
    """`kawa_log_*` and `kawa_pipeline_runs`, read from the stores; a store that fails is skipped."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        yield from _guarded("event_log", self._log)
        yield from _guarded("metadata", self._runs)

    def _log(self) -> Iterator[Metric]:
        positions = log_positions(self.runtime)
        end = positions.pop("acknowledged")
        offset = GaugeMetricFamily(
            "kawa_log_offset_bytes",
            "Event log offsets: acknowledged (log end), lake (published as Parquet), scored (trigger worker)",
            labels=["position"],
        )
        offset.add_metric(["acknowledged"], end)
        lag = GaugeMetricFamily(
            "kawa_log_lag_bytes",
            "Event log bytes acknowledged but not yet in the lake / not yet scored",
            labels=["consumer"],
        )
        for name, at in positions.items():
            offset.add_metric([name], at)
            lag.add_metric([name], max(end - at, 0))
        yield offset
        yield lag

    def _runs(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "kawa_pipeline_runs",
            "Pipeline runs in the metadata store, by status (queued, running, succeeded, failed, ...)",
            labels=["project", "pipeline", "status"],
        )
        for project, pipeline, status, n in pipeline_runs(self.runtime):
            family.add_metric([project, pipeline, status], n)
        yield family


def _guarded(store: str, read: Callable[[], Iterable[Metric]]) -> Iterator[Metric]:
    """The metrics `read` yields, or none when its store fails (counted, and logged)."""
    try:
        found = list(read())
    except Exception as exc:
        store_error(store)
        log.warning("metrics: cannot read the %s: %s", store.replace("_", " "), exc)
        return
    yield from found


class Exposition:
    """The /metrics text of one API process: this process's or all processes' counters, and the stores'."""

    def __init__(self, runtime: Runtime) -> None:
        self.stores = CollectorRegistry(auto_describe=False)
        self.stores.register(StoreMetrics(runtime))
        trigger_metrics = TriggerMetrics(runtime.online, runtime.event_log.end_offset)
        self.stores.register(_Guard("online", trigger_metrics))
        self.counters = REGISTRY
        if multiprocess_enabled():
            from prometheus_client import multiprocess

            self.counters = CollectorRegistry(auto_describe=False)
            multiprocess.MultiProcessCollector(self.counters)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.counters) + generate_latest(self.stores), CONTENT_TYPE_LATEST


class _Guard(Collector):
    def __init__(self, store: str, inner: Collector) -> None:
        self.store, self.inner = store, inner

    def collect(self) -> Iterator[Metric]:
        yield from _guarded(self.store, self.inner.collect)
