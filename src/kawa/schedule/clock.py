"""The scheduler's notion of now: the system clock in `kawa serve`, a hand-moved one in tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the time (aware, UTC) and waits; the scheduler reads time only through this."""

    def now(self) -> datetime: ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to `seconds` or until `stop` is set; True if it was set."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to, so tests step the scheduler through days without sleeping.

    >>> clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    >>> clock.advance("1h").isoformat()
    '2026-01-01T01:00:00+00:00'
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"ManualClock needs an aware start time, got {start!r}")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to `when` (aware)."""
        if when.tzinfo is None:
            raise ValueError(f"ManualClock.set needs an aware time, got {when!r}")
        with self._lock:
            self._now = when.astimezone(UTC)
            return self._now

    def advance(self, by: str | timedelta | float) -> datetime:
        """Move forward by a duration ("90s", "1d", a timedelta or seconds)."""
        from kawa.schedule.spec import parse_duration

        with self._lock:
            self._now += parse_duration(by, "clock step")
            return self._now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        # Time stands still until the test moves it; only let other threads run.
        return stop.wait(0.01)
