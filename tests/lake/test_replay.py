"""The lake writer after a crash between publishing a flush and committing its log checkpoint."""

from __future__ import annotations

from pathlib import Path

import msgspec

from kawa.config import IngestConfig, LakeConfig
from kawa.events.collector import Collector
from kawa.lake.writer import CONSUMER, LakeWriter
from kawa.stores.eventlog.files import FileEventLog
from kawa.warehouse import Warehouse

_encode = msgspec.json.Encoder().encode_lines


def _send(collector: Collector, first: int, n: int) -> None:
    events = [
        {
            "event_name": "view",
            "event_id": f"e{i}",
            "keys": {"user_id": f"u{i}"},
            "sync_date": "2026-01-05 10:00:00 UTC",
        }
        for i in range(first, first + n)
    ]
    result = collector.ingest(_encode(events), project="p", ndjson=True)
    assert result.accepted == n


def test_a_replay_that_reads_further_keeps_the_published_rows(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path / "log", writer=True)
    try:
        collector = Collector(log, IngestConfig())
        _send(collector, 0, 300)
        writer = LakeWriter(log, tmp_path / "lake", LakeConfig())
        start = writer.offset
        assert writer.flush() == 300
        writer.close()
        # The crash: the flush was published, its checkpoint never written.
        log.commit(CONSUMER, start)
        # More events arrive before the restart, so the replay reads past the published flush.
        _send(collector, 300, 200)
        replay = LakeWriter(log, tmp_path / "lake", LakeConfig())
        assert replay.flush() == 200  # the 300 published events are recognised, the 200 new ones land
        replay.close()
    finally:
        log.close()
    rows = (
        Warehouse(tmp_path / "lake", "p")
        .query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events")
        .to_pylist()
    )
    assert rows == [{"n": 500, "d": 500}]


class _CommitFailsOnce(FileEventLog):
    """A file log whose first checkpoint commit fails, as a log server that went away would."""

    failed = False

    def commit(self, consumer: str, offset: int) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the event log's server is gone")
        super().commit(consumer, offset)


def test_a_failed_checkpoint_commit_then_a_second_flush_keeps_the_published_rows(tmp_path: Path) -> None:
    log = _CommitFailsOnce(tmp_path / "log", writer=True)
    try:
        collector = Collector(log, IngestConfig())
        _send(collector, 0, 300)
        writer = LakeWriter(log, tmp_path / "lake", LakeConfig())
        try:
            writer.flush()
            raise AssertionError("the commit should have failed")
        except ConnectionError:
            pass
        # The same process flushes again from the same offset, now with more events behind it.
        _send(collector, 300, 200)
        assert writer.flush() == 200
        writer.close()
    finally:
        log.close()
    rows = (
        Warehouse(tmp_path / "lake", "p")
        .query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events")
        .to_pylist()
    )
    assert rows == [{"n": 500, "d": 500}]
