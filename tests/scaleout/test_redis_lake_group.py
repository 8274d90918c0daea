"""Two lake writers share one Redis event log's group and one lake, as two `kawa serve` lake parts would.

Events (some sent twice, as client retries are) are appended while both writers run; one writer is
SIGKILLed while it holds records it has not acknowledged. The survivor claims them, and every event_id
sent lands in the lake exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from kawa.config import IngestConfig
from kawa.events.collector import Collector
from kawa.stores.eventlog import open_event_log
from kawa.warehouse import Warehouse
from tests.scaleout._parts import PartProcesses, kill_holding, until

if TYPE_CHECKING:
    from tests.services.redis import RedisServer

pytest_plugins = ["tests.services.redis"]

PROJECT = "shop"
BATCHES = 90
PER_BATCH = 100
RETRY_AFTER = 4
_encode = msgspec.json.Encoder().encode_lines


def _batch(n: int) -> list[dict[str, Any]]:
    events = [
        {"event_id": f"g{n}-{i}", "event_name": "view", "keys": {"user_id": f"u{i % 17}"}, "price": float(i)}
        for i in range(PER_BATCH)
    ]
    if n % 5 == 0:
        events.append(dict(events[0], page="https://shop.example/again"))  # one id twice in a request
    return events


class Sender(threading.Thread):
    """Appends numbered batches through a collector; every third one is sent again a little later."""

    def __init__(self, url: str, folder: Path) -> None:
        super().__init__(daemon=True)
        self.url, self.folder = url, folder
        self.sent = 0
        self.ids: set[str] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with open_event_log(self.url, self.folder, writer=True) as log:
                collector = Collector(log, IngestConfig())
                for n in range(BATCHES + RETRY_AFTER):
                    # A retry of a request whose reply was lost, a few requests later: most likely
                    # another flush's, often the other writer's.
                    again = n - RETRY_AFTER
                    for m in ([n] if n < BATCHES else []) + (
                        [again] if again >= 0 and again % 3 == 0 else []
                    ):
                        body = _encode(_batch(m))
                        assert collector.ingest(body, project=PROJECT, ndjson=True).accepted > 0
                        self.ids.update(e["event_id"] for e in _batch(m))
                    self.sent = n + 1
                    time.sleep(0.03)
        except BaseException as exc:
            self.error = exc


@pytest.fixture
def project(tmp_path: Path, redis_url: str) -> Path:
    """A project whose event log is the test's Redis; its lake writers flush often and claim soon.

    Compaction is off: its merges drop repeated event_ids, which would hide a writer that let one through.
    """
    (tmp_path / "kawa.yaml").write_text(
        f"project: {PROJECT}\n"
        f"stores:\n  event_log: {redis_url}\n"
        "lake:\n  flush_interval_s: 0.1\n  claim_idle_s: 1.0\n  compact_min_files: 100000\n"
    )
    return tmp_path


@pytest.fixture
def start_writer(project: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Starts `python -m kawa.serve.worker lake` in the project under a consumer name; kills them after."""
    parts = PartProcesses(project)
    yield lambda name: parts.start("lake", name, {"KAWA__LAKE__CONSUMER": name})
    parts.kill_all()


@pytest.mark.slow
def test_a_killed_lake_writers_records_are_claimed_and_every_event_lands_once(
    project: Path,
    redis_url: str,
    redis_server: RedisServer,
    start_writer: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    victim, survivor = start_writer("lake-a"), start_writer("lake-b")
    with redis_server.client() as redis:

        def members() -> set[str]:
            if not redis.exists("kawa:log"):
                return set()
            return {c["name"].decode() for c in redis.xinfo_consumers("kawa:log", "lake")}

        until(lambda: members() >= {"lake-a", "lake-b"}, 60, "both lake writers joined the group")
        sender = Sender(redis_url, project)
        sender.start()
        until(lambda: sender.sent >= BATCHES // 3 or not sender.is_alive(), 60, "a third was sent")
        held = kill_holding(redis, victim, "lake", "lake-a")
        assert held, "the victim never held a record unacknowledged"
        sent_at_kill = sender.sent
        sender.join(timeout=120)
        assert sender.error is None and sender.sent == BATCHES + RETRY_AFTER
        assert sent_at_kill < BATCHES  # events kept coming after the kill

        warehouse = Warehouse(project / ".kawa" / "lake", PROJECT)

        def landed() -> tuple[int, int]:
            if not (project / ".kawa" / "lake" / "events").exists():
                return (0, 0)
            query = "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events"
            row = warehouse.query(query).to_pylist()[0]
            return row["n"], row["d"]

        expected = len(sender.ids)
        until(lambda: landed()[1] >= expected and redis.xpending("kawa:log", "lake")["pending"] == 0, 60,
               "the survivor published everything")  # fmt: skip
        stored, distinct = landed()
        rows = warehouse.query("SELECT DISTINCT event_id FROM events").to_pylist()
        assert {r["event_id"] for r in rows} == sender.ids
        assert stored == distinct == expected, f"{stored - distinct} events landed twice"
        # The victim's records were taken over by the survivor, not left pending.
        assert not redis.xpending_range("kawa:log", "lake", "-", "+", 10, consumername="lake-a")
        assert b"claimed" in (project / "lake-b.out").read_bytes()
        print(
            f"\nsent {expected} distinct events, {BATCHES // 3} of {BATCHES} requests twice; the victim held "
            f"{len(held)} records at the kill; stored {stored}"
        )
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) == 0
        assert "lake-b" not in members()  # left the group on its way out, nothing pending
