"""The lake writer on the file log's `lake` group: state folders go on from their checkpoint, one writer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest

from kawa.config import IngestConfig, LakeConfig
from kawa.events.collector import Collector
from kawa.lake._records import write_parquet
from kawa.lake._sharing import PUBLISHING, table_lock
from kawa.lake.table import DataFile, LakeTable
from kawa.lake.writer import CONSUMER, LakeWriter
from kawa.stores.eventlog.files import FileEventLog
from kawa.warehouse import Warehouse

_encode = msgspec.json.Encoder().encode_lines


def _send(collector: Collector, ids: list[str], project: str = "p") -> None:
    events = [
        {"event_name": "view", "event_id": i, "keys": {"user_id": i}, "sync_date": "2026-01-05 10:00:00 UTC"}
        for i in ids
    ]
    assert collector.ingest(_encode(events), project=project, ndjson=True).accepted == len(ids)


def _ids(lake: Path, project: str = "p") -> list[str]:
    rows = Warehouse(lake, project).query("SELECT event_id FROM events ORDER BY event_id").to_pylist()
    return [r["event_id"] for r in rows]


def test_a_state_folder_goes_on_from_its_lake_checkpoint_reading_nothing_twice(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log", writer=True) as log:
        collector = Collector(log, IngestConfig())
        _send(collector, [f"old{i}" for i in range(50)])
        # What a lake writer of checkpoints left: everything so far taken, nothing of the group yet.
        log.commit(CONSUMER, log.end_offset())
        _send(collector, [f"new{i}" for i in range(30)])
        writer = LakeWriter(log, tmp_path / "lake", LakeConfig())
        try:
            assert writer.offset == log.committed(CONSUMER)
            assert writer.flush() == 30
            assert writer.offset == log.end_offset() == log.committed(CONSUMER)  # the heartbeat's
            _send(collector, ["later"])
            assert writer.flush() == 1
            assert writer.offset == log.end_offset() == log.committed(CONSUMER)
        finally:
            writer.close()
        again = LakeWriter(log, tmp_path / "lake", LakeConfig())  # a restart reads nothing again
        try:
            assert again.flush() == 0
        finally:
            again.close()
    assert _ids(tmp_path / "lake") == sorted([f"new{i}" for i in range(30)] + ["later"])


def test_a_second_lake_writer_of_one_file_log_is_refused(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log", writer=True) as log:
        first = LakeWriter(log, tmp_path / "lake", LakeConfig())
        with pytest.raises(RuntimeError, match="already has a consumer"):
            LakeWriter(log, tmp_path / "lake", LakeConfig(), consumer="other")
        first.close()
        LakeWriter(log, tmp_path / "lake", LakeConfig(), consumer="other").close()  # free again


def test_start_up_leaves_alone_a_file_another_writer_is_about_to_list(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with FileEventLog(tmp_path / "log", writer=True) as log:
        _send(Collector(log, IngestConfig()), ["e0"])
        writer = LakeWriter(log, lake, LakeConfig())
        writer.flush()
        writer.close()
        table = LakeTable(lake, "events", "p")
        started: list[LakeWriter] = []
        with table_lock(table, PUBLISHING):  # as another writer of a Redis group holds it to publish
            # That writer has written its file and not listed it yet.
            target = table.new_file({"_date": "2026-01-05"}, "part-00000000000099999999.parquet")
            write_parquet(pa.table({"event_id": ["x1"]}), target)
            thread = threading.Thread(target=lambda: started.append(LakeWriter(log, lake, LakeConfig())))
            thread.start()
            time.sleep(0.3)
            assert thread.is_alive()  # the new writer waits instead of deleting the unlisted file
            part = DataFile(
                str(target.relative_to(table.path)), 1, target.stat().st_size, {"_date": "2026-01-05"}
            )
            table.commit([part])
        thread.join(timeout=30)
        assert started and target.exists()
        started[0].close()
        # An unlisted file nobody is publishing is a crash's leftover: the next start removes it.
        target.with_name("part-00000000000099999998.parquet").write_bytes(target.read_bytes())
        LakeWriter(log, lake, LakeConfig()).close()
        assert not target.with_name("part-00000000000099999998.parquet").exists() and target.exists()
