"""The embedded event log: segment files on local disk, group-committed with one fsync per batch.

Layout of the log folder:

    00000000000000000000.log   segment files, named by the offset of their first byte
    00000000000067108901.log
    checkpoints/<consumer>      the committed offset of each consumer (atomically replaced)
    groups/<group>.lock         held by the one consumer of a consumer group
    writer.lock                 held by the one process that appends

A record is a 12-byte header (payload length: u32, CRC-32 of the payload: u32, magic: u32) followed by
the payload. An offset is the byte position in the whole log, so offsets only grow across segments.
After a crash, a torn record at the tail fails its CRC check and is cut off when the writer opens
the log; it was never acknowledged, because `append` returns only after fsync.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

from kawa._durable import fsync_dir
from kawa.observe.metrics import store_error
from kawa.stores.eventlog.base import (
    DEFAULT_READ_BYTES,
    EventLog,
    GroupReader,
    ReadResult,
    Record,
    check_name,
)

HEADER = struct.Struct("<III")
MAGIC = 0x4B415741  # "KAWA"
SEGMENT_SUFFIX = ".log"
_TRUST_AFTER_NS = 1_000_000_000


class LogCorruptError(RuntimeError):
    """A record in the middle of the log fails its checksum."""


class FileEventLog(EventLog):
    """Segment files with group commit: concurrent `append` calls share one write and one fsync."""

    def __init__(
        self,
        path: str | Path,
        *,
        segment_bytes: int = 128 * 1024 * 1024,
        writer: bool = True,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        self._writer = writer
        self._cond = threading.Condition()
        self._pending: list[_Ticket] = []
        self._flushing = False
        self._file: int | None = None
        self._lock_fd: int | None = None
        self._base = 0
        self._size = 0
        self._listing: list[int] = []
        self._listed_stamp = -1
        self._listed_wall = 0
        self._folder = os.fspath(self.path)
        self._names: dict[int, str] = {}
        self._read_lock = threading.Lock()
        self._kept: tuple[int, int] | None = None  # (base, descriptor) of the segment read last
        self._tail = (-1, 0)  # (base, bytes of whole records) of the last segment, as end_offset saw it
        if writer:
            self._open_writer()

    @classmethod
    def from_spec(cls, spec: str, state_path: Path, *, writer: bool = False) -> Self:
        """`files`: segment files in `state_path`/eventlog."""
        return cls(state_path / "eventlog", writer=writer)

    # -- writing ---------------------------------------------------------------------------------

    def _open_writer(self) -> None:
        self._lock_fd = os.open(self.path / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise RuntimeError(
                f"another process is appending to the event log at {self.path}; "
                "stop it first (one `kawa serve` per state folder)"
            ) from None
        segments = self._segments()
        if not segments:
            self._start_segment(0)
            return
        base = segments[-1]
        seg_path = self._segment_path(base)
        valid = _valid_length(seg_path)
        if valid < seg_path.stat().st_size:
            with open(seg_path, "r+b") as f:
                f.truncate(valid)
                os.fsync(f.fileno())
        self._base = base
        self._size = valid
        self._file = os.open(seg_path, os.O_WRONLY | os.O_APPEND)

    def _start_segment(self, base: int) -> None:
        if self._file is not None:
            os.close(self._file)
        self._base = base
        self._size = 0
        self._file = os.open(self._segment_path(base), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fsync_dir(self.path)

    def append(self, payloads: Sequence[bytes]) -> list[int]:
        if not self._writer:
            raise RuntimeError("this event log was opened read-only")
        ticket = _Ticket(payloads)
        with self._cond:
            self._pending.append(ticket)
            while not ticket.done:
                if not self._flushing:
                    self._flushing = True
                    batch, self._pending = self._pending, []
                    break
                self._cond.wait()
            else:
                return ticket.result()
        try:
            self._write_batch(batch)
        except BaseException as exc:
            store_error("event_log")
            for t in batch:
                t.error = exc
            raise
        finally:
            with self._cond:
                for t in batch:
                    t.done = True
                self._flushing = False
                self._cond.notify_all()
        return ticket.result()

    def _write_batch(self, batch: list[_Ticket]) -> None:
        chunks: list[bytes] = []
        pos = self._base + self._size
        for ticket in batch:
            for payload in ticket.payloads:
                if pos - self._base >= self.segment_bytes:
                    self._flush_chunks(chunks)
                    chunks = []
                    self._start_segment(pos)
                ticket.offsets.append(pos)
                chunks.append(HEADER.pack(len(payload), zlib.crc32(payload), MAGIC))
                chunks.append(payload)
                pos += HEADER.size + len(payload)
        self._flush_chunks(chunks)

    def _flush_chunks(self, chunks: list[bytes]) -> None:
        if not chunks:
            return
        assert self._file is not None
        data = b"".join(chunks)
        written = 0
        view = memoryview(data)
        while written < len(data):
            written += os.write(self._file, view[written:])
        if self.fsync:
            os.fdatasync(self._file)
        self._size += len(data)

    # -- reading ---------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int = DEFAULT_READ_BYTES) -> ReadResult:
        records: list[Record] = []
        total = 0
        with self._read_lock:
            segments = self._segments()
            for i, base in enumerate(segments):
                nxt = segments[i + 1] if i + 1 < len(segments) else None
                if nxt is not None and nxt <= offset:
                    continue
                offset = max(offset, base)
                fd = self._segment_fd(base)
                if fd is None:
                    continue  # trimmed while we listed; the next segment follows
                found = _read_records(fd, base, offset, total, max_bytes, records)
                if found is None:
                    continue  # trimmed since we listed
                offset, total, whole = found
                if not whole:
                    # A record still being written; the writer cuts torn tails on restart.
                    return ReadResult(records, offset)
                if total >= max_bytes or nxt is None or nxt != offset:
                    break
        return ReadResult(records, offset)

    def _segment_fd(self, base: int) -> int | None:
        """A descriptor of segment `base` (None if it is gone), kept open for the next read.

        Opening the file costs more than a small read; the reader of a log reads one segment for
        long. The caller holds `_read_lock`.
        """
        kept = self._kept
        if kept is not None:
            if kept[0] == base:
                return kept[1]
            self._kept = None
            os.close(kept[1])
        try:
            fd = os.open(self._segment_name(base), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        self._kept = (base, fd)
        return fd

    def end_offset(self) -> int:
        if self._writer:
            with self._cond:
                return self._base + self._size
        with self._read_lock:
            segments = self._segments()
            if not segments:
                return 0
            base = segments[-1]
            # Check only what was appended since the last call: the records before `checked` were
            # whole then and stay so (only a torn tail past them is ever cut), so a reader asking
            # often costs a read of the new bytes, not of the whole segment.
            known_base, checked = self._tail
            if known_base != base:
                checked = 0
            try:
                fd = os.open(self._segment_name(base), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return base  # trimmed while we listed: nothing of it to count
            try:
                size = os.fstat(fd).st_size
                if size < checked:  # cut by a writer that reopened the log: check it again
                    checked = 0
                if size > checked:
                    checked += _valid_prefix(os.pread(fd, size - checked, checked))
            finally:
                os.close(fd)
            self._tail = (base, checked)
            return base + checked

    # -- checkpoints -----------------------------------------------------------------------------

    def commit(self, consumer: str, offset: int) -> None:
        check_name(consumer)
        target = self.path / "checkpoints" / consumer
        tmp = target.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(str(offset))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)

    def committed(self, consumer: str) -> int:
        check_name(consumer)
        try:
            return int((self.path / "checkpoints" / consumer).read_text())
        except FileNotFoundError:
            segments = self._segments()
            return segments[0] if segments else 0

    def trim(self, before: int) -> int:
        segments = self._segments()
        freed = 0
        for base, nxt in itertools.pairwise(segments):
            if nxt <= before:
                seg = self._segment_path(base)
                freed += seg.stat().st_size
                seg.unlink()
        return freed

    def group(self, name: str, consumer: str) -> GroupReader:
        return FileGroupReader(self, name, consumer)

    def close(self) -> None:
        with self._read_lock:
            if self._kept is not None:
                os.close(self._kept[1])
                self._kept = None
        if self._file is not None:
            os.close(self._file)
            self._file = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- helpers ---------------------------------------------------------------------------------

    def _segments(self) -> list[int]:
        """The bases of the segments, oldest first (a shared list: callers must not change it)."""
        # Listing the folder costs 100-250 µs, more than a small read; the folder's mtime changes
        # whenever a segment is created or removed, so the list is kept until it does. mtimes are
        # coarse (a few ms), so a list taken less than a second after the last change is not trusted
        # (as git treats "racily clean" files).
        stamp = os.stat(self._folder).st_mtime_ns
        if stamp != self._listed_stamp or self._listed_wall - stamp < _TRUST_AFTER_NS:
            self._listed_wall = time.time_ns()
            found = sorted(int(p.name[: -len(SEGMENT_SUFFIX)]) for p in self.path.glob("*" + SEGMENT_SUFFIX))
            self._listing, self._listed_stamp = found, stamp
        return self._listing

    def _segment_path(self, base: int) -> Path:
        return self.path / f"{base:020d}{SEGMENT_SUFFIX}"

    def _segment_name(self, base: int) -> str:
        """`_segment_path` as text, kept per segment: joining paths costs more than a small read."""
        name = self._names.get(base)
        if name is None:
            if len(self._names) > 1024:
                self._names.clear()
            name = self._names[base] = os.path.join(self._folder, f"{base:020d}{SEGMENT_SUFFIX}")
        return name


class _Ticket:
    __slots__ = ("done", "error", "offsets", "payloads")

    def __init__(self, payloads: Sequence[bytes]) -> None:
        self.payloads = payloads
        self.offsets: list[int] = []
        self.done = False
        self.error: BaseException | None = None

    def result(self) -> list[int]:
        if self.error is not None:
            raise RuntimeError("the event log write failed") from self.error
        return self.offsets


def _read_records(
    fd: int, base: int, offset: int, total: int, max_bytes: int, records: list[Record]
) -> tuple[int, int, bool] | None:
    """Append the whole records of the segment open at `fd` from `offset` while `total` < `max_bytes`.

    Returns the offset after the last record read, the new total of payload bytes, and False when a
    record there is torn or not yet whole (a write in progress); None if the segment was deleted
    (trimmed) before this read, as if it could not be opened. One `pread` usually fetches them all.
    """
    status = os.fstat(fd)
    if status.st_nlink == 0:
        return None
    size = status.st_size
    pos = offset - base  # position in the segment
    head = HEADER.size
    unpack = HEADER.unpack_from
    while total < max_bytes and pos + head <= size:
        # Enough for the records still wanted (the last one may run past `max_bytes`, so it is
        # fetched again below when it does not fit).
        data = os.pread(fd, min(size - pos, max_bytes - total + head * 64), pos)
        end = len(data)
        at = 0
        while total < max_bytes and at + head <= end:
            length, crc, magic = unpack(data, at)
            stop = at + head + length
            if magic != MAGIC:
                return base + pos + at, total, False
            if stop > end:
                if pos + stop > size:
                    return base + pos + at, total, False  # its payload is not all written yet
                break  # whole in the file: fetch from this record on
            payload = data[at + head : stop]
            if zlib.crc32(payload) != crc:
                return base + pos + at, total, False
            records.append(Record(base + pos + at, payload))
            total += length
            at = stop
        if at == 0 and end < head:
            break  # the file shrank under us (trimmed): what was read stands
        pos += at
        if at == 0:
            # One record larger than the window: fetch exactly it.
            length, crc, magic = unpack(data, 0)
            payload = os.pread(fd, length, pos + head)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return base + pos, total, False
            records.append(Record(base + pos, payload))
            total += length
            pos += head + length
    return base + pos, total, True


def _valid_length(path: Path) -> int:
    """Bytes of `path` up to the last whole record with a good checksum."""
    return _valid_prefix(path.read_bytes())


def _valid_prefix(data: bytes) -> int:
    """Bytes of `data` (which starts at a record) up to the last whole record with a good checksum."""
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc, magic = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or end > len(data) or zlib.crc32(data[pos + HEADER.size : end]) != crc:
            break
        pos = end
    return pos


class FileGroupReader(GroupReader):
    """A consumer group with one consumer at a time, whose position is the checkpoint named for the group.

    The file log lives on one machine, where kawa runs one process per group: a second consumer of
    the group is refused (a lock file) rather than handed the same records. What a consumer was
    handed and did not acknowledge before it died, the next consumer's `read` hands out again from
    the checkpoint; so `claim_stale` has nothing to take over here and returns nothing.
    """

    def __init__(self, log: FileEventLog, name: str, consumer: str) -> None:
        check_name(name, "group name")
        check_name(consumer)
        self.name, self.consumer = name, consumer
        self._log = log
        (log.path / "groups").mkdir(exist_ok=True)
        lock = log.path / "groups" / f"{name}.lock"
        self._lock_fd: int | None = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise RuntimeError(
                f"consumer group {name!r} of the event log at {log.path} already has a consumer; the file "
                "event log serves one consumer per group (use the redis event log for more)"
            ) from None
        self._next = log.committed(name)
        self._acked: dict[int, bool] = {}  # offsets handed out, in log order -> acknowledged yet

    def read(self, max_bytes: int = DEFAULT_READ_BYTES, block_s: float = 0.0) -> list[Record]:
        result = self._log.read(self._next, max_bytes)
        if not result.records and block_s > 0 and self._log.wait(self._next, block_s):
            result = self._log.read(self._next, max_bytes)
        for record in result.records:
            self._acked[record.offset] = False
        self._next = result.next_offset
        return result.records

    def ack(self, offsets: Iterable[int]) -> None:
        for offset in offsets:
            if offset in self._acked:
                self._acked[offset] = True
        done = 0
        for acked in self._acked.values():
            if not acked:
                break
            done += 1
        if done == 0:
            return
        for offset in list(itertools.islice(self._acked, done)):
            del self._acked[offset]
        # Everything before the oldest record still out is processed (or, with none out, all read so far).
        self._log.commit(self.name, next(iter(self._acked), self._next))

    def claim_stale(self, min_idle_s: float, max_bytes: int = DEFAULT_READ_BYTES) -> list[Record]:
        return []

    def pending(self) -> int:
        return len(self._acked)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
