"""How much one lake flush takes: what the log holds when it starts, more only when it is behind."""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec

from kawa.config import IngestConfig, LakeConfig
from kawa.events.collector import Collector
from kawa.lake.table import LakeTable
from kawa.lake.writer import EVENTS, LakeWriter
from kawa.stores.eventlog.files import FileEventLog
from kawa.warehouse import Warehouse

_encode = msgspec.json.Encoder().encode_lines


def _send(collector: Collector, first: int, n: int) -> None:
    events = [
        {"event_name": "view", "event_id": f"e{i}", "keys": {"user_id": f"u{i % 7}"}, "page": "/p" * 20}
        for i in range(first, first + n)
    ]
    assert collector.ingest(_encode(events), project="p", ndjson=True).accepted == n


def _files(lake: Path) -> int:
    return len(LakeTable(lake, EVENTS, "p").manifest().files)


def _rows(lake: Path) -> list[dict[str, int]]:
    sql = "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events"
    return Warehouse(lake, "p").query(sql).to_pylist()


def test_a_flush_leaves_what_arrives_while_it_runs_to_the_next_one(tmp_path: Path) -> None:
    # Events keep arriving during the flush: it publishes one file of what was there and returns,
    # instead of publishing a small file for each trickle until the senders pause.
    log = FileEventLog(tmp_path / "log")
    lake = tmp_path / "lake"
    collector = Collector(log, IngestConfig())
    sent = [0]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.001) and sent[0] < 1_500:  # bounded, so a flush that never rests ends too
            _send(collector, 1_000 + sent[0], 1)
            sent[0] += 1

    try:
        _send(collector, 0, 300)
        writer = LakeWriter(log, lake, LakeConfig())
        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            while sent[0] < 20:  # the trickle is under way before the flush starts
                stop.wait(0.001)
            first = writer.flush()
            assert first >= 300
            assert _files(lake) == 1
        finally:
            stop.set()
            sender.join()
        assert writer.flush() == 300 + sent[0] - first  # the rest, in the next flush
        assert _files(lake) == 2
        writer.close()
    finally:
        log.close()
    assert _rows(lake) == [{"n": 300 + sent[0], "d": 300 + sent[0]}]


def test_a_writer_that_is_behind_goes_on_until_it_has_caught_up(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path / "log")
    lake = tmp_path / "lake"
    try:
        collector = Collector(log, IngestConfig())
        for n in range(12):
            _send(collector, n * 25, 25)  # 12 log records of about 2.5 KB
        writer = LakeWriter(log, lake, LakeConfig(flush_max_bytes=6_000))
        assert writer.flush() == 300  # several reads of at most 6,000 bytes, in one flush
        assert _files(lake) > 1
        writer.close()
    finally:
        log.close()
    assert _rows(lake) == [{"n": 300, "d": 300}]
