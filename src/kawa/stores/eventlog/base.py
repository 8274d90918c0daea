"""The event log: durable appends, reads from an offset, per-consumer checkpoints, and consumer groups."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, Self

DEFAULT_READ_BYTES = 16 * 1024 * 1024


class Record(NamedTuple):
    offset: int
    payload: bytes


class ReadResult(NamedTuple):
    records: list[Record]
    next_offset: int


class EventLog(ABC):
    """An append-only log of byte records.

    `append` returns only once its records are durable; offsets only grow. Consumers read from an
    offset and commit how far they got, so a restarted consumer resumes where it left off; or they
    read through a consumer group (`group`), which hands each record to one of the group's consumers
    and lets another take over the records of one that died.
    """

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: str, state_path: Path, *, writer: bool = False) -> Self:
        """The log named by `spec` in kawa.yaml (kept under `state_path` if embedded); `writer` may append."""

    @abstractmethod
    def append(self, payloads: Sequence[bytes]) -> list[int]:
        """Durably append records; returns their offsets. Safe to call from many threads at once."""

    @abstractmethod
    def read(self, offset: int, max_bytes: int = DEFAULT_READ_BYTES) -> ReadResult:
        """Records at or after `offset`, up to about `max_bytes` (at least one record if any)."""

    @abstractmethod
    def end_offset(self) -> int:
        """The offset the next appended record will get."""

    @abstractmethod
    def commit(self, consumer: str, offset: int) -> None:
        """Durably record that `consumer` has processed everything before `offset`."""

    @abstractmethod
    def committed(self, consumer: str) -> int:
        """Where `consumer` resumes: its last committed offset, or the start of the log."""

    @abstractmethod
    def trim(self, before: int) -> int:
        """Drop stored records before `before` (a backend may keep whole chunks); returns the bytes freed."""

    @abstractmethod
    def group(self, name: str, consumer: str) -> GroupReader:
        """`consumer`'s reader of the consumer group `name`, created at `committed(name)` if it is new.

        A group created where a consumer of the same name had committed an offset goes on from
        there, so a consumer can move from checkpoints to a group without reading anything twice.
        """

    def hold(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease `name` for `holder` for `ttl_s`; False while another holder has it.

        Readers that split the log's work into parts (the trigger worker's partitions) hold one lease
        per part, so each part has one reader at a time and a part whose reader died is taken over.
        This default grants every lease: a log that only one process reads (the file log) needs none.
        """
        return True

    def release(self, name: str, holder: str) -> None:  # noqa: B027 - see `hold`
        """Give the lease `name` up now if `holder` has it, so another reader may take it at once."""

    def holder(self, name: str) -> str | None:
        """Who holds the lease `name` now (None: nobody)."""
        return None

    def wait(self, offset: int, timeout_s: float) -> bool:
        """Sleep until the log holds a record at or after `offset`, at most `timeout_s`; True if it does.

        This default polls `read`; a backend that can be told about appends overrides it.
        """
        deadline = time.monotonic() + timeout_s
        while not self.read(offset, max_bytes=1).records:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.002))
        return True

    def close(self) -> None:  # noqa: B027 - optional for backends with nothing to release
        """Release files and connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GroupReader(ABC):
    """One consumer of a consumer group: it is handed records, processes them, and acknowledges them.

    Delivery is at least once: a record handed out and not acknowledged is handed out again, to the
    same consumer after a restart (`read` returns them first) or to another one that claims it
    (`claim_stale`) when its consumer stopped acknowledging. Consumers make processing idempotent
    (the lake and the trigger worker drop event_ids they have seen), which turns this into exactly
    once where it matters.
    """

    name: str
    consumer: str

    @abstractmethod
    def read(self, max_bytes: int = DEFAULT_READ_BYTES, block_s: float = 0.0) -> list[Record]:
        """Records for this consumer, in log order: its own unacknowledged ones first, then new ones.

        About `max_bytes` of them; with `block_s` > 0, waits up to that long while there is nothing new.
        """

    @abstractmethod
    def ack(self, offsets: Iterable[int]) -> None:
        """Durably mark the records at `offsets` processed: they are not handed out again."""

    @abstractmethod
    def claim_stale(self, min_idle_s: float, max_bytes: int = DEFAULT_READ_BYTES) -> list[Record]:
        """Take over records other consumers were handed and left unacknowledged for `min_idle_s`.

        Call it now and then (every `min_idle_s` or so); process and `ack` what it returns.
        """

    @abstractmethod
    def pending(self) -> int:
        """How many records of the group are handed out and not acknowledged yet."""

    def close(self) -> None:  # noqa: B027 - optional for backends with nothing to release
        """Leave the group (unacknowledged records stay pending for a restart or a claim)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_name(name: str, what: str = "consumer name") -> None:
    """Refuse names that could escape a folder or a key: letters, digits, '-', '_' and '.' only."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"{what} {name!r} may use only letters, digits, '-', '_' and '.'")
