"""Contract tests for every event log backend."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kawa.stores.eventlog import EventLog, GroupReader, open_event_log
from kawa.stores.eventlog.files import FileEventLog

pytest_plugins = ["tests.services.redis"]


def _files(tmp_path: Path, request: pytest.FixtureRequest) -> EventLog:
    return FileEventLog(tmp_path / "log", segment_bytes=4096)


def _redis(tmp_path: Path, request: pytest.FixtureRequest) -> EventLog:
    # A real redis-server of this module, emptied for each test (skips loudly where there is none).
    return open_event_log(request.getfixturevalue("redis_url"), tmp_path, writer=True)


IMPLEMENTATIONS = [_files, _redis]


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda f: f.__name__.strip("_"))
def log(request: pytest.FixtureRequest, tmp_path: Path):
    with request.param(tmp_path, request) as log:
        yield log


def test_append_then_read_back_in_order(log: EventLog) -> None:
    offsets = log.append([b"a", b"bb", b"ccc"])
    assert offsets == sorted(offsets) and len(set(offsets)) == 3
    result = log.read(0)
    assert [r.payload for r in result.records] == [b"a", b"bb", b"ccc"]
    assert [r.offset for r in result.records] == offsets
    assert result.next_offset == log.end_offset()


def test_read_from_an_offset_skips_earlier_records(log: EventLog) -> None:
    _, second = log.append([b"one", b"two"])
    assert [r.payload for r in log.read(second).records] == [b"two"]
    assert log.read(log.end_offset()).records == []


def test_reads_span_segments_and_respect_max_bytes(log: EventLog) -> None:
    payloads = [bytes([i % 256]) * 1000 for i in range(20)]
    log.append(payloads)
    seen: list[bytes] = []
    offset = 0
    while True:
        result = log.read(offset, max_bytes=2500)
        if not result.records:
            break
        assert sum(len(r.payload) for r in result.records) <= 3000
        seen.extend(r.payload for r in result.records)
        offset = result.next_offset
    assert seen == payloads


def test_concurrent_appends_are_all_kept(log: EventLog) -> None:
    def worker(n: int) -> None:
        for i in range(50):
            log.append([f"{n}:{i}".encode()])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [r.payload.decode() for r in log.read(0, max_bytes=10**9).records]
    assert sorted(got) == sorted(f"{n}:{i}" for n in range(8) for i in range(50))
    for n in range(8):  # each thread's records keep their order
        mine = [g for g in got if g.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(50)]


def test_checkpoints_start_at_the_beginning_and_persist(log: EventLog) -> None:
    assert log.committed("lake") == 0
    log.append([b"x"])
    log.commit("lake", log.end_offset())
    assert log.committed("lake") == log.end_offset()
    assert log.committed("other") == 0
    with pytest.raises(ValueError, match="consumer name"):
        log.commit("../evil", 1)


def test_trim_drops_only_fully_consumed_segments(log: EventLog) -> None:
    log.append([b"z" * 1000 for _ in range(20)])
    keep_from = log.read(0, max_bytes=10**9).records[15].offset
    assert log.trim(keep_from) > 0
    assert log.read(keep_from).records[0].offset == keep_from


def test_wait_returns_when_a_record_is_there_or_the_time_is_up(log: EventLog) -> None:
    end = log.end_offset()
    started = time.monotonic()
    assert log.wait(end, 0.05) is False
    assert time.monotonic() - started >= 0.04
    late = threading.Timer(0.05, log.append, args=([b"late"],))
    late.start()
    assert log.wait(end, 10) is True
    assert time.monotonic() - started < 5
    late.join(10)  # the append may still be in its fsync when the record is visible; the log closes after
    assert log.wait(0, 0) is True  # already there


# -- consumer groups -------------------------------------------------------------------------------


def _drain(group: GroupReader, seen: list[bytes], max_bytes: int = 10**9) -> None:
    """Read and acknowledge until the group hands out nothing more, noting each payload."""
    while records := group.read(max_bytes=max_bytes):
        seen.extend(r.payload for r in records)
        group.ack(r.offset for r in records)


def test_a_group_hands_out_each_record_and_forgets_acknowledged_ones(log: EventLog) -> None:
    payloads = [f"r{i}".encode() for i in range(30)]
    log.append(payloads)
    seen: list[bytes] = []
    with log.group("lake", "writer-1") as group:
        assert group.pending() == 0
        _drain(group, seen, max_bytes=20)
        assert seen == payloads
        assert group.pending() == 0
        log.append([b"later"])
        assert [r.payload for r in group.read(block_s=0.01)] == [b"later"]
        assert group.pending() == 1
    with pytest.raises(ValueError, match="group name"):
        log.group("../evil", "c")


def test_a_restarted_consumer_gets_its_unacknowledged_records_first(log: EventLog) -> None:
    log.append([f"r{i}".encode() * 50 for i in range(10)])
    with log.group("lake", "writer-1") as first:
        got = first.read(max_bytes=250)
        assert 3 <= len(got) < 10
        first.ack([got[0].offset, got[1].offset])  # then it dies before acknowledging the rest
    with log.group("lake", "writer-1") as again:
        redelivered = again.read(max_bytes=10**9)
        assert [r.payload for r in redelivered][: len(got) - 2] == [r.payload for r in got[2:]]
        rest: list[bytes] = [r.payload for r in redelivered]
        again.ack(r.offset for r in redelivered)
        _drain(again, rest)
        assert sorted(rest) == sorted(f"r{i}".encode() * 50 for i in range(2, 10))


def test_a_dead_consumers_records_are_processed_by_another(log: EventLog) -> None:
    payloads = [f"r{i}".encode() for i in range(40)]
    log.append(payloads)
    processed: list[bytes] = []
    dead = log.group("lake", "writer-1")
    handed = dead.read(max_bytes=50)
    assert len(handed) >= 4
    processed.extend(r.payload for r in handed[:2])
    dead.ack(r.offset for r in handed[:2])
    dead.close()  # gone for good: the rest of what it was handed is never acknowledged by it
    time.sleep(0.05)
    with log.group("lake", "writer-2") as heir:
        claimed = heir.claim_stale(min_idle_s=0.02)
        processed.extend(r.payload for r in claimed)
        heir.ack(r.offset for r in claimed)
        _drain(heir, processed)
        assert heir.pending() == 0
    assert sorted(processed) == sorted(payloads)  # every record processed, and each once


def test_a_new_group_starts_at_the_checkpoint_of_its_name(log: EventLog) -> None:
    log.append([b"old-1", b"old-2"])
    log.commit("lake", log.end_offset())
    log.append([b"new"])
    with log.group("lake", "writer-1") as group:
        assert [r.payload for r in group.read()] == [b"new"]
    with log.group("fresh", "c") as group:  # no checkpoint: from the start of the log
        assert [r.payload for r in group.read()] == [b"old-1", b"old-2", b"new"]


def test_a_file_log_group_has_one_consumer_at_a_time(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log") as log, log.group("lake", "writer-1"):
        with pytest.raises(RuntimeError, match="one consumer per group"):
            log.group("lake", "writer-2")
        log.group("triggers", "worker").close()  # another group is free


def test_torn_tail_is_cut_when_the_writer_reopens(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with FileEventLog(path) as log:
        log.append([b"good-1", b"good-2"])
        end = log.end_offset()
    segment = next(path.glob("*.log"))
    with open(segment, "ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # a record header whose payload never made it
    reader = FileEventLog(path, writer=False)
    assert [r.payload for r in reader.read(0).records] == [b"good-1", b"good-2"]
    with FileEventLog(path) as log:
        assert log.end_offset() == end
        log.append([b"after"])
        assert [r.payload for r in log.read(0).records] == [b"good-1", b"good-2", b"after"]


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log"), pytest.raises(RuntimeError, match="another process"):
        FileEventLog(tmp_path / "log")


def test_reader_sees_appends_of_the_writer(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log", segment_bytes=64) as writer:
        reader = FileEventLog(tmp_path / "log", writer=False)
        writer.append([b"1" * 40, b"2" * 40, b"3" * 40])
        assert [r.payload[:1] for r in reader.read(0).records] == [b"1", b"2", b"3"]
        assert reader.end_offset() == writer.end_offset()


def test_a_reader_following_the_writer_sees_every_new_segment(tmp_path: Path) -> None:
    # Segments roll with every record here: the reader's cached listing of segments must never
    # hide a new one.
    with FileEventLog(tmp_path / "log", segment_bytes=16) as writer:
        reader = FileEventLog(tmp_path / "log", writer=False)
        offset, seen = 0, []
        for i in range(200):
            writer.append([f"{i:04d}".encode() * 5])
            result = reader.read(offset)
            seen += [r.payload[:4].decode() for r in result.records]
            offset = result.next_offset
        assert seen == [f"{i:04d}" for i in range(200)]


def test_a_readers_end_offset_follows_appends_segments_and_a_cut_torn_tail(tmp_path: Path) -> None:
    # The reader checks only the bytes appended since it last asked: it must still count every
    # whole record, move to each new segment, and never count a torn record.
    path = tmp_path / "log"
    reader = FileEventLog(path, writer=False)
    assert reader.end_offset() == 0
    with FileEventLog(path, segment_bytes=200) as writer:
        for i in range(30):
            writer.append([f"{i:03d}".encode() * (i % 7 + 1)] * (i % 3 + 1))
            assert reader.end_offset() == writer.end_offset()
        end = writer.end_offset()
    last = sorted(path.glob("*.log"))[-1]
    with open(last, "ab") as f:
        f.write(b"\x40\x00\x00\x00half a rec")  # a record whose payload never made it
    assert reader.end_offset() == end
    with FileEventLog(path, segment_bytes=200) as writer:  # cuts the torn tail, appends in its place
        writer.append([b"after the cut"])
        assert reader.end_offset() == writer.end_offset() > end
    assert reader.read(end).records[-1].payload == b"after the cut"
