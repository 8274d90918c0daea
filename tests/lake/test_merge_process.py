"""The lake writer's background merges run in a process of their own: same result as a merge in process."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from kawa.config import IngestConfig, LakeConfig
from kawa.events.collector import Collector
from kawa.lake import compact
from kawa.lake.compact import merge_in_child
from kawa.lake.table import LakeTable
from kawa.lake.writer import EVENTS, LakeWriter
from kawa.stores.eventlog import open_event_log
from kawa.warehouse import Warehouse

_encode = msgspec.json.Encoder().encode_lines
_DAY = "2026-01-05"


def _send(lake_state: Path, first: int, n: int, *, hour: int) -> None:
    events = [
        {
            "event_name": "view",
            "event_id": f"e{i:04d}",
            "keys": {"user_id": f"u{i % 7}"},
            # Later batches carry earlier times, so a merge that sorts by sync_date reorders them.
            "sync_date": f"{_DAY} {hour:02d}:{i % 60:02d}:00 UTC",
        }
        for i in range(first, first + n)
    ]
    with open_event_log("files", lake_state, writer=True) as log:
        assert Collector(log, IngestConfig()).ingest(_encode(events), project="p", ndjson=True).accepted == n


def _flushed_files(tmp_path: Path, batches: int) -> tuple[LakeWriter, LakeTable]:
    """A writer that flushed `batches` files of 10 events into one day, merging none of them yet."""
    state = tmp_path / "state"
    lake = tmp_path / "lake"
    log = open_event_log("files", state, writer=False)
    writer = LakeWriter(log, lake, LakeConfig(compact_min_files=1_000))
    for b in range(batches):
        _send(state, 10 * b, 10, hour=20 - b)
        assert writer.flush() == 10
    return writer, LakeTable(lake, EVENTS, "p")


def test_a_merge_in_its_own_process_lists_one_sorted_file_with_every_row(tmp_path: Path) -> None:
    writer, table = _flushed_files(tmp_path, 4)
    try:
        before = [f.path for f in table.manifest().files]
        assert len(before) == 4
        merged = merge_in_child(
            table, {"_date": _DAY}, min_files=3, memory_limit="128MB", spill=tmp_path / "spill"
        )
        assert merged is not None and merged.rows == 40 and "compact-" in merged.path
        assert [f.path for f in table.manifest().files] == [merged.path]
        stamps = pq.read_table(table.path / merged.path, columns=["sync_date"]).column(0).to_pylist()
        assert stamps == sorted(stamps) and len(stamps) == 40
        rows = Warehouse(tmp_path / "lake", "p").query("SELECT count(DISTINCT event_id) AS d FROM events")
        assert rows.to_pylist() == [{"d": 40}]
        # Too few files for the threshold: nothing to merge, and the child says so.
        assert (
            merge_in_child(table, {"_date": _DAY}, min_files=3, memory_limit="128MB", spill=tmp_path) is None
        )
    finally:
        writer.close()


def test_no_process_starts_while_no_merge_is_due(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer, table = _flushed_files(tmp_path, 2)
    started: list[object] = []
    real_run = compact.subprocess.run

    def run(*args: object, **kwargs: object) -> object:
        started.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(compact.subprocess, "run", run)
    try:
        assert (
            merge_in_child(table, {"_date": _DAY}, min_files=3, memory_limit="128MB", spill=tmp_path) is None
        )
        assert started == [] and len(table.manifest().files) == 2
        _send(tmp_path / "state", 20, 10, hour=17)
        assert writer.flush() == 10
        merged = merge_in_child(table, {"_date": _DAY}, min_files=3, memory_limit="128MB", spill=tmp_path)
        assert merged is not None and merged.rows == 30 and len(started) == 1
    finally:
        writer.close()


def test_a_failed_merge_process_raises_with_its_error_and_changes_nothing(tmp_path: Path) -> None:
    writer, table = _flushed_files(tmp_path, 3)
    try:
        listed = table.manifest().files
        (table.path / listed[1].path).write_bytes(b"not parquet")  # a damaged file makes the merge fail
        with pytest.raises(RuntimeError, match="merge process exited"):
            merge_in_child(table, {"_date": _DAY}, min_files=3, memory_limit="128MB", spill=tmp_path)
        assert [f.path for f in table.manifest().files] == [f.path for f in listed]
    finally:
        writer.close()


def test_the_writers_background_round_merges_through_the_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lake = tmp_path / "lake"
    log = open_event_log("files", state, writer=False)
    writer = LakeWriter(log, lake, LakeConfig(compact_min_files=3))
    try:
        for b in range(3):
            _send(state, 10 * b, 10, hour=10 + b)
            writer.flush(background=True)
            if writer._maintainer is not None:
                writer._maintainer.join(timeout=120)
        files = LakeTable(lake, EVENTS, "p").manifest().files
        assert len(files) == 1 and "compact-" in files[0].path and files[0].rows == 30
        assert writer._seen.unseen("p", files) == []  # the writer took the merged file in
    finally:
        writer.close()
