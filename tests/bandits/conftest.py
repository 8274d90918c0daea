"""A reward worker's real parts in a temporary state folder: file event log, collector, SQLite metadata."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kawa.bandits import Bandit
from kawa.bandits.rewards import RewardWorker
from kawa.bandits.store import BanditStore, Decision
from kawa.config import IngestConfig
from kawa.events.collector import Collector
from kawa.stores.eventlog import EventLog, open_event_log
from kawa.stores.metadata import open_metadata

PROJECT = "shop"


class Parts:
    """The stores a reward worker runs on, opened as `kawa serve` opens them, and a collector to send with."""

    def __init__(self, root: Path, bandits: Sequence[Bandit], metadata: str = "sqlite") -> None:
        self.root = root
        self.bandits = {b.name: b for b in bandits}
        self.writer_log = open_event_log("files", root, writer=True)
        self.collector = Collector(self.writer_log, IngestConfig())
        self.metadata = open_metadata(metadata, root)
        self.store = BanditStore(self.metadata)
        self.rng = random.Random(0)
        self._logs: list[EventLog] = []

    def decide(
        self, name: str, user_id: str | None = None, *, at: datetime | None = None, context: str = ""
    ) -> Decision:
        return self.store.decide(PROJECT, self.bandits[name], context, user_id, self.rng, at=at)

    def send(self, *events: dict[str, Any], project: str = PROJECT) -> None:
        """Ingest `events` through the collector, as one request (a visitor id where they name no one)."""
        body = "\n".join(json.dumps({"keys": {"visitor_id": "v0"}, **e}) for e in events).encode()
        result = self.collector.ingest(body, project=project, ndjson=True)
        assert result.rejected == 0, result.errors

    def worker(self) -> RewardWorker:
        """A new worker (as after a restart): its own read-only log, the stores it resumes from."""
        log = open_event_log("files", self.root, writer=False)
        self._logs.append(log)
        return RewardWorker(project=PROJECT, bandits=lambda: self.bandits, event_log=log, store=self.store)

    def counts(self, name: str, context: str = "") -> dict[str, tuple[int, int]]:
        found = self.store.counts(PROJECT, name).get(context, {})
        return {arm: (c.pulls, c.rewards) for arm, c in found.items()}

    def close(self) -> None:
        for log in self._logs:
            log.close()
        self.writer_log.close()
        self.metadata.close()


def drain(worker: RewardWorker) -> None:
    """Let `worker` read everything the log holds now."""
    while worker.step():
        pass


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(params=["sqlite", "postgres"])
def parts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Parts]:
    """The parts with decisions and counts in SQLite, and again in PostgreSQL.

    A module using it declares `pytest_plugins = ["tests.services.postgres"]` (pytest takes plugins from
    test modules and the top-level conftest only).
    """
    metadata = "sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    found = Parts(
        tmp_path,
        [
            Bandit("ranking", arms=["bm25", "learned"], reward_on={"event_name": "click"}),
            Bandit("coupon", arms=["A", "B"], purchase_on={"event_name": "purchase"}, window="24h"),
        ],
        metadata,
    )
    try:
        yield found
    finally:
        found.close()
