"""Contract tests for every event log backend."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kawa.stores.eventlog import EventLog
from kawa.stores.eventlog.files import FileEventLog


def _files(tmp_path: Path) -> EventLog:
    return FileEventLog(tmp_path / "log", segment_bytes=4096)


IMPLEMENTATIONS = [_files]


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda f: f.__name__.strip("_"))
def log(request: pytest.FixtureRequest, tmp_path: Path):
    with request.param(tmp_path) as log:
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
