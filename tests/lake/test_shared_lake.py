"""Several lake writers of one Redis event log's group publishing into one lake: each event_id once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest

from kawa.config import IngestConfig, LakeConfig
from kawa.events.collector import Collector
from kawa.lake.table import DataFile, LakeTable
from kawa.lake.writer import LakeWriter
from kawa.stores.eventlog import EventLog, open_event_log
from kawa.warehouse import Warehouse

if TYPE_CHECKING:
    from tests.services.redis import RedisServer

pytest_plugins = ["tests.services.redis"]

_encode = msgspec.json.Encoder().encode_lines


@pytest.fixture
def log(redis_url: str, tmp_path: Path) -> Iterator[EventLog]:
    with open_event_log(redis_url, tmp_path, writer=True) as opened:
        yield opened


def _send(log: EventLog, ids: list[str]) -> None:
    events = [
        {"event_name": "view", "event_id": i, "keys": {"user_id": i}, "sync_date": "2026-01-05 10:00:00 UTC"}
        for i in ids
    ]
    assert Collector(log, IngestConfig()).ingest(_encode(events), project="p", ndjson=True).accepted == len(
        ids
    )


def _counts(lake: Path) -> tuple[int, int]:
    rows = Warehouse(lake, "p").query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events")
    row = rows.to_pylist()[0]
    return row["n"], row["d"]


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"e{i:04d}" for i in range(start, start + n)]


def test_ids_another_writer_published_since_start_up_are_not_written_again(
    log: EventLog, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    a = LakeWriter(log, lake, LakeConfig(), consumer="a")
    b = LakeWriter(log, lake, LakeConfig(), consumer="b")  # its window is empty: the lake was
    try:
        _send(log, _ids(100))
        assert a.flush() == 100
        _send(log, _ids(100, start=50))  # half of them sent again (a client retry), handed to b
        assert b.flush() == 50
        assert a.flush() == b.flush() == 0
    finally:
        a.close()
        b.close()
    assert _counts(lake) == (150, 150)


def test_ids_another_writer_published_and_compacted_are_not_written_again(
    log: EventLog, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    config = LakeConfig(compact_min_files=3)
    a = LakeWriter(log, lake, config, consumer="a")
    b = LakeWriter(log, lake, config, consumer="b")
    try:
        for n in range(3):
            _send(log, _ids(10, start=10 * n))
            a.flush()  # the third flush merges the three files into one
        files = [f.path for f in _manifest_files(lake)]
        assert len(files) == 1 and "compact-" in files[0]
        _send(log, _ids(10, start=25))
        assert b.flush() == 5
    finally:
        a.close()
        b.close()
    assert _counts(lake) == (35, 35)


def test_a_dead_writers_published_batch_is_claimed_and_lands_once_beside_its_file(
    log: EventLog, tmp_path: Path, redis_server: RedisServer
) -> None:
    lake = tmp_path / "lake"
    config = LakeConfig(claim_idle_s=0.2)
    heir = LakeWriter(log, lake, config, consumer="heir")
    assert heir.flush() == 0  # running, with nothing to do yet
    dead = LakeWriter(log, lake, config, consumer="dead")
    try:
        _send(log, _ids(100))
        dead.feed.settle = lambda records: None  # type: ignore[method-assign] # it dies before acknowledging
        assert dead.flush() == 100
        dead.close()
        _send(log, _ids(20, start=100))
        time.sleep(0.3)
        # One batch: the claimed record, whose events were published, and a new one. Its file is
        # named for the claimed record's offset, as the dead writer's is; that file stays as it is.
        assert heir.flush() == 20
        assert heir.flush() == 0
        assert heir.offset == log.end_offset()  # caught up (what its heartbeat says)
    finally:
        heir.close()
    assert _counts(lake) == (120, 120)
    names = sorted((Path(f.path).name for f in _manifest_files(lake)), key=len)
    first = names[0].removesuffix(".parquet")
    assert names == [f"{first}.parquet", f"{first}-r1.parquet"]
    with redis_server.client() as client:
        assert client.xpending("kawa:log", "lake")["pending"] == 0
        assert int(client.hget("kawa:log:checkpoints", "lake")) == heir.offset


def _manifest_files(lake: Path) -> list[DataFile]:
    return LakeTable(lake, "events", "p").manifest().files
