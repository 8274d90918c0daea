"""The event log: durable appends, reads from an offset, and per-consumer checkpoints."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import NamedTuple, Self


class Record(NamedTuple):
    offset: int
    payload: bytes


class ReadResult(NamedTuple):
    records: list[Record]
    next_offset: int


class EventLog(ABC):
    """An append-only log of byte records.

    `append` returns only once its records are durable; offsets only grow. Consumers read from an
    offset and commit how far they got, so a restarted consumer resumes where it left off.
    """

    @abstractmethod
    def append(self, payloads: Sequence[bytes]) -> list[int]:
        """Durably append records; returns their offsets. Safe to call from many threads at once."""

    @abstractmethod
    def read(self, offset: int, max_bytes: int = 16 * 1024 * 1024) -> ReadResult:
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
        """Drop whole stored chunks that end at or before `before`; returns the bytes freed."""

    def close(self) -> None:  # noqa: B027 - optional for backends with nothing to release
        """Release files and connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
