"""The file event log's read path: one pread per segment, a kept descriptor, records of any size."""

from __future__ import annotations

import os
from pathlib import Path

from kawa.stores.eventlog.files import HEADER, FileEventLog


def test_a_record_larger_than_the_read_window_comes_whole(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log") as writer:
        big, small = os.urandom(300_000), b"after"
        offsets = writer.append([b"first", big, small])
        reader = FileEventLog(tmp_path / "log", writer=False)
        # One byte asked for: the read window is tiny, yet each record comes whole, one per read.
        got, offset = [], 0
        for _ in range(3):
            result = reader.read(offset, max_bytes=1)
            assert len(result.records) == 1
            got.append(result.records[0].payload)
            offset = result.next_offset
        assert got == [b"first", big, small]
        assert offset == writer.end_offset() == offsets[2] + HEADER.size + len(small)
        reader.close()


def test_a_trimmed_segment_the_reader_had_open_reads_as_gone(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log", segment_bytes=64) as writer:
        reader = FileEventLog(tmp_path / "log", writer=False)
        first = writer.append([b"a" * 60])[0]
        assert [r.payload for r in reader.read(first).records] == [b"a" * 60]  # its descriptor is kept
        later = writer.append([b"b" * 60, b"c" * 60])
        writer.trim(later[1])  # drops the first two segments, the one the reader read included
        # As when a segment is trimmed between listing and opening: the next segment follows.
        assert [r.payload for r in reader.read(first).records] == [b"c" * 60]
        reader.close()


def test_a_record_being_written_is_not_read_until_it_is_whole(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log") as writer:
        writer.append([b"whole"])
        end = writer.end_offset()
        reader = FileEventLog(tmp_path / "log", writer=False)
        segment = next((tmp_path / "log").glob("*.log"))
        payload = b"x" * 100
        record = HEADER.pack(len(payload), 0, 0x4B415741)
        with open(segment, "ab") as f:
            f.write(record + payload[:40])  # header and part of the payload
            f.flush()
            assert reader.read(0).next_offset == end
            assert [r.payload for r in reader.read(0).records] == [b"whole"]
        reader.close()
