"""The scale-out event log: a Redis Stream that every kawa process appends to and reads from.

Chosen by `stores.event_log: redis://host:port/db` in kawa.yaml (options in `kawa.stores._redis`).

Keys (`<prefix>` is `kawa` unless the spec says `?prefix=`):

    <prefix>:log              the stream: one entry per record, id "<offset>-1", one field p=payload
    <prefix>:log:end          the offset the next record gets, moved by every append
    <prefix>:log:checkpoints  a hash, consumer -> committed offset
    <prefix>:lease:<name>     who holds a reader's lease (`hold`), expiring unless renewed

Offsets are byte positions, as in the file log: a record's offset is the payload bytes appended
before it plus one per earlier record (so an empty record moves it too), and the entry id is
(offset, 1) because Redis refuses the id 0-0. Redis's own ids (milliseconds-sequence) would have to
be packed into one int with a bound on the sequence part, which a burst or a clock stepping back
can break; byte offsets need no clock, make `end_offset` exact, and keep the trigger worker's lag in
bytes meaningful. Lua numbers are doubles: offsets stay exact up to 2**53 (9 PB appended).

Appends: one Lua script XADDs a batch with the ids it computes from `end` and moves `end`, so any
number of processes and threads may append at once (Redis runs one script at a time) and a batch is
stored whole or not at all. Durability: Redis 7.0 has no WAITAOF; with `appendonly yes` and
`appendfsync always` it writes and fsyncs the AOF before it sends any reply, so `append` returns
only once its records are on disk. A writer handle checks those settings when it opens and refuses
a server without them (or sets them, with `durability=configure`); see docs/backends.md.

Consumer groups are Redis's own (XREADGROUP, XACK, XAUTOCLAIM); see `RedisGroupReader`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import redis

from kawa.stores._redis import Client, RedisSpec, connect, ensure_durable, parse_spec, unavailable
from kawa.stores.eventlog.base import (
    DEFAULT_READ_BYTES,
    EventLog,
    GroupReader,
    ReadResult,
    Record,
    check_name,
)

FIELD = b"p"
# A stream entry as redis-py returns it: (id, fields), fields empty or None once trimmed away.
Entry = tuple[bytes, dict[bytes, bytes] | None]
MAX_COUNT = 10_000  # entries per XRANGE / XREADGROUP call
MAX_BLOCK_S = 10.0  # per blocking call; the client's socket timeout is 30 s

# The offset the next record gets: `end`, or (if that key was lost) worked out from the stream.
_END = """
local function log_end(stream, endkey)
  local pos = redis.call('GET', endkey)
  if pos then return tonumber(pos) end
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #last > 0 then
    return tonumber(string.match(last[1][1], '^%d+')) + string.len(last[1][2][2]) + 1
  end
  if redis.call('EXISTS', stream) == 0 then return 0 end
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return tonumber(string.match(info[i + 1], '^%d+')) + 1 end
  end
  return 0
end
local function log_start(stream, endkey)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #first > 0 then return tonumber(string.match(first[1][1], '^%d+')) end
  return log_end(stream, endkey)
end
"""
# KEYS: stream, end. ARGV: the payloads. Returns the first record's offset.
_APPEND = (
    _END
    + """
local pos = log_end(KEYS[1], KEYS[2])
local first = pos
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], string.format('%d-1', pos), 'p', ARGV[i])
  pos = pos + string.len(ARGV[i]) + 1
end
redis.call('SET', KEYS[2], string.format('%d', pos))
return first
"""
)
# KEYS: stream, end. ARGV: 1 for the end offset, 0 for the start (the first record still stored).
_BOUND = (
    _END + "if ARGV[1] == '1' then return log_end(KEYS[1], KEYS[2]) end return log_start(KEYS[1], KEYS[2])"
)
# KEYS: stream, end. ARGV: the first id to keep. Returns the offsets dropped (payload bytes + 1 each).
_TRIM = (
    _END
    + """
local before = log_start(KEYS[1], KEYS[2])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
return log_start(KEYS[1], KEYS[2]) - before
"""
)

# KEYS: the lease. ARGV: holder, ttl in ms. Returns 1 if `holder` has the lease now.
_HOLD = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: the lease. ARGV: holder.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 0"

_OP = "event log"


class RedisEventLog(EventLog):
    """Records in a Redis Stream with byte offsets; see the module docstring for keys and guarantees."""

    def __init__(self, client: Client, *, prefix: str = "kawa", writer: bool = False) -> None:
        self.client = client
        self.prefix = prefix
        self.stream = f"{prefix}:log".encode()
        self._end = f"{prefix}:log:end".encode()
        self._checkpoints = f"{prefix}:log:checkpoints".encode()
        self._writer = writer
        self._append = client.register_script(_APPEND)
        self._bound = client.register_script(_BOUND)
        self._trim = client.register_script(_TRIM)
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)
        self._avg = 1024.0  # payload bytes per record, to ask Redis for about max_bytes at a time

    @classmethod
    def from_spec(cls, spec: str, state_path: Path, *, writer: bool = False) -> Self:
        """`redis://host:port/db?prefix=kawa&durability=check`; `state_path` is not used."""
        return cls.open(parse_spec(spec, "event log"), writer=writer)

    @classmethod
    @unavailable(_OP)
    def open(cls, spec: RedisSpec, *, writer: bool = False) -> Self:
        """Connect; a writer first makes sure Redis fsyncs each write before it acknowledges it."""
        client = connect(spec)
        if writer:
            ensure_durable(client, spec, "event log", strict=True)
        return cls(client, prefix=spec.prefix, writer=writer)

    # -- writing ---------------------------------------------------------------------------------

    @unavailable(_OP)
    def append(self, payloads: Sequence[bytes]) -> list[int]:
        if not self._writer:
            raise RuntimeError("this event log was opened read-only")
        if not payloads:
            return []
        first = int(self._append(keys=[self.stream, self._end], args=list(payloads)))
        offsets = []
        for payload in payloads:
            offsets.append(first)
            first += len(payload) + 1
        return offsets

    # -- reading ---------------------------------------------------------------------------------

    @unavailable(_OP)
    def read(self, offset: int, max_bytes: int = DEFAULT_READ_BYTES) -> ReadResult:
        records: list[Record] = []
        total = 0
        start = offset
        while total < max_bytes:
            count = self._count(max_bytes - total)
            entries = self.client.xrange(self.stream, min=f"{start}-0", max="+", count=count)
            for entry_id, fields in entries:
                payload = fields[FIELD]
                records.append(Record(_offset(entry_id), payload))
                total += len(payload)
                if total >= max_bytes:
                    break
            if len(entries) < count or not records:
                break
            start = records[-1].offset + len(records[-1].payload) + 1
        self._learn([len(r.payload) for r in records])
        if not records:
            return ReadResult(records, offset)
        last = records[-1]
        return ReadResult(records, last.offset + len(last.payload) + 1)

    @unavailable(_OP)
    def end_offset(self) -> int:
        return int(self._bound(keys=[self.stream, self._end], args=[1]))

    @unavailable(_OP)
    def wait(self, offset: int, timeout_s: float) -> bool:
        # XREAD BLOCK returns as soon as an entry past the id is added: no polling. Each call blocks
        # well within the client's socket timeout.
        deadline = time.monotonic() + timeout_s
        while True:
            block = max(int(min(deadline - time.monotonic(), MAX_BLOCK_S) * 1000), 1)
            if self.client.xread({self.stream: f"{offset}-0"}, count=1, block=block):
                return True
            if time.monotonic() >= deadline:
                return False

    # -- checkpoints -----------------------------------------------------------------------------

    @unavailable(_OP)
    def commit(self, consumer: str, offset: int) -> None:
        check_name(consumer)
        self.client.hset(self._checkpoints, consumer, offset)

    @unavailable(_OP)
    def committed(self, consumer: str) -> int:
        check_name(consumer)
        found = self.client.hget(self._checkpoints, consumer)
        if found is not None:
            return int(found)
        return self.start_offset()

    def start_offset(self) -> int:
        """The offset of the oldest record still stored (the end offset when none is)."""
        return int(self._bound(keys=[self.stream, self._end], args=[0]))

    @unavailable(_OP)
    def trim(self, before: int) -> int:
        # Exact, not `~`: whole stream nodes hold 100 entries, and a trim should drop what it can.
        # Records still pending in a consumer group are dropped too: trim below every group's oldest.
        return int(self._trim(keys=[self.stream, self._end], args=[f"{before}-0"]))

    def group(self, name: str, consumer: str) -> GroupReader:
        return RedisGroupReader(self, name, consumer)

    # -- leases ----------------------------------------------------------------------------------

    @unavailable(_OP)
    def hold(self, name: str, holder: str, ttl_s: float) -> bool:
        check_name(name, "lease name")
        key = f"{self.prefix}:lease:{name}".encode()
        return bool(self._hold(keys=[key], args=[holder, max(int(ttl_s * 1000), 1)]))

    @unavailable(_OP)
    def holder(self, name: str) -> str | None:
        check_name(name, "lease name")
        found = self.client.get(f"{self.prefix}:lease:{name}".encode())
        return None if found is None else bytes(found).decode()

    @unavailable(_OP)
    def release(self, name: str, holder: str) -> None:
        check_name(name, "lease name")
        self._release(keys=[f"{self.prefix}:lease:{name}".encode()], args=[holder])

    def close(self) -> None:
        self.client.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _count(self, max_bytes: int) -> int:
        """How many entries to ask for to get about `max_bytes`, from the sizes seen so far."""
        return max(1, min(MAX_COUNT, int(max_bytes / self._avg) + 1))

    def _learn(self, sizes: list[int]) -> None:
        """Fold the payload sizes of records just read into the running mean."""
        if sizes:
            self._avg = max(0.5 * self._avg + 0.5 * sum(sizes) / len(sizes), 1.0)

    def records(self, entries: Iterable[Entry]) -> tuple[list[Record], list[bytes]]:
        """The records of stream entries, and the ids of entries trimmed away (their fields are gone)."""
        found: list[Record] = []
        gone: list[bytes] = []
        for entry_id, fields in entries:
            if fields:
                found.append(Record(_offset(entry_id), fields[FIELD]))
            else:
                gone.append(entry_id)
        return found, gone


class RedisGroupReader(GroupReader):
    """A Redis consumer group member: XREADGROUP hands out records, XACK settles, XAUTOCLAIM takes over.

    Redis keeps each group's pending entries (handed out, not acknowledged) with their consumer and
    idle time, durably in the AOF. A consumer restarted under its old name reads its own pending
    entries first; a consumer that is gone for good has its entries claimed by another once they
    have been idle `min_idle_s`. Entries trimmed while pending are acknowledged and skipped.
    """

    def __init__(self, log: RedisEventLog, name: str, consumer: str) -> None:
        check_name(name, "group name")
        check_name(consumer)
        self.name, self.consumer = name, consumer
        self._log = log
        self._client = log.client
        self._stream = log.stream
        self._create()
        self._backlog: bytes | None = b"0-0"  # where this consumer's own pending entries are read from
        self._cursor = b"0-0"  # where the next claim_stale goes on from

    @unavailable(_OP)
    def _create(self) -> None:
        start = self._log.committed(self.name)
        try:
            self._client.xgroup_create(self._stream, self.name, id=f"{start}-0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists: join it as it is
                raise

    @unavailable(_OP)
    def read(self, max_bytes: int = DEFAULT_READ_BYTES, block_s: float = 0.0) -> list[Record]:
        while self._backlog is not None:
            entries = self._deliver(self._backlog, max_bytes, None)
            if not entries:
                self._backlog = None
                break
            self._backlog = entries[-1][0]
            records, gone = self._log.records(entries)
            self._ack_ids(gone)
            if records:
                return records
        block = max(int(min(block_s, MAX_BLOCK_S) * 1000), 1) if block_s > 0 else None
        records, gone = self._log.records(self._deliver(b">", max_bytes, block))
        self._ack_ids(gone)
        return records

    def _deliver(self, start: bytes, max_bytes: int, block: int | None) -> list[Entry]:
        """Entries XREADGROUP hands this consumer from `start` (`>`: new ones), about `max_bytes` of them."""
        out: list[Entry] = []
        total = 0
        while total < max_bytes:
            count = self._log._count(max_bytes - total)
            reply = self._client.xreadgroup(self.name, self.consumer, {self._stream: start}, count, block)
            entries: list[Entry] = list(reply[0][1]) if reply else []
            out.extend(entries)
            sizes = [len(fields.get(FIELD, b"")) for _, fields in entries if fields]
            self._log._learn(sizes)
            total += sum(sizes)
            if len(entries) < count:
                break
            block = None  # wait only while there is nothing at all
            if start != b">":
                start = entries[-1][0]
        return out

    @unavailable(_OP)
    def ack(self, offsets: Iterable[int]) -> None:
        self._ack_ids([f"{offset}-1".encode() for offset in offsets])

    @unavailable(_OP)
    def claim_stale(self, min_idle_s: float, max_bytes: int = DEFAULT_READ_BYTES) -> list[Record]:
        count = self._log._count(max_bytes)
        claimed: list[Record] = []
        total = 0
        while total < max_bytes:
            reply: Any = self._client.xautoclaim(
                self._stream,
                self.name,
                self.consumer,
                int(min_idle_s * 1000),
                start_id=self._cursor,
                count=count,
            )
            # Redis 7 also returns the ids of entries trimmed away; it has dropped them from the group.
            self._cursor, entries = reply[0], reply[1]
            records, gone = self._log.records(entries)
            self._ack_ids(gone)
            claimed.extend(records)
            total += sum(len(r.payload) for r in records)
            if self._cursor == b"0-0":
                break
        return claimed

    @unavailable(_OP)
    def pending(self) -> int:
        return int(self._client.xpending(self._stream, self.name)["pending"])

    def close(self) -> None:
        # A consumer with nothing pending leaves the group, so names of finished processes do not
        # pile up; one with pending entries stays, for its restart or for a claim.
        try:
            if not self._client.xpending_range(
                self._stream, self.name, "-", "+", 1, consumername=self.consumer
            ):
                self._client.xgroup_delconsumer(self._stream, self.name, self.consumer)
        except redis.RedisError:
            pass  # leaving is a courtesy: an unreachable server keeps the consumer, which does no harm

    def _ack_ids(self, ids: list[bytes]) -> None:
        if ids:
            self._client.xack(self._stream, self.name, *ids)


def _offset(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])
