"""Schedules and waits as declared on a pipeline: a first run time plus an interval or a cron expression.

A run's logical date is the time it was scheduled for: a daily schedule starting 2026-01-01T02:00 has
runs with logical dates 2026-01-01T02:00, 2026-01-02T02:00, ... (not the start of the previous interval,
as in Airflow). Times are computed in the schedule's time zone and handed out as aware UTC datetimes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DAY = timedelta(days=1)


class ScheduleError(ValueError):
    """A schedule or wait that cannot work as declared (bad time, zone, interval or cron expression)."""


def parse_duration(value: str | timedelta | float | int, what: str = "duration") -> timedelta:
    """A duration from "90s", "15m", "1h30m", "1d", "2w", a number of seconds or a timedelta.

    >>> parse_duration("1h30m"), parse_duration(45)
    (datetime.timedelta(seconds=5400), datetime.timedelta(seconds=45))
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower().replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ScheduleError(
                f"{what} {value!r} is not a duration; write e.g. '30s', '15m', '1h30m', '1d' or '1w'"
            )
        result = timedelta(seconds=sum(float(n) * _UNIT_S[u] for n, u in parts))
    else:
        raise ScheduleError(f"{what} {value!r} is not a duration; write e.g. '30s', '15m', '1h' or '1d'")
    if result <= timedelta(0):
        raise ScheduleError(f"{what} {value!r} must be longer than zero")
    return result


def show_duration(value: timedelta) -> str:
    """A duration written the way `parse_duration` reads it.

    >>> show_duration(timedelta(days=1)), show_duration(timedelta(seconds=5400))
    ('1d', '1h30m')
    """
    seconds = value.total_seconds()
    if seconds != int(seconds):
        return f"{seconds:g}s"
    out, rest = "", int(seconds)
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNIT_S[unit])
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


def zone(name: str) -> ZoneInfo:
    """The time zone called `name` (IANA, e.g. "Europe/Berlin")."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC', 'Europe/Berlin' or 'Asia/Tokyo'"
        ) from None


def parse_time(value: str | datetime, tz: ZoneInfo, what: str = "time") -> datetime:
    """An aware datetime from ISO 8601 text or a datetime; a time without offset is wall time in `tz`."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        except ValueError:
            raise ScheduleError(
                f"{what} {value!r} is not an ISO 8601 time; write e.g. '2026-01-01T02:00' "
                "(wall time in the schedule's time zone) or '2026-01-01T01:00Z'"
            ) from None
    else:
        raise ScheduleError(f"{what} {value!r} must be ISO 8601 text or a datetime")
    return when.replace(tzinfo=tz) if when.tzinfo is None else when


@dataclass(frozen=True)
class WaitFor:
    """Before a run starts, wait for `pipeline`'s successful run of the matching logical date.

    The matching date is the latest logical date of `pipeline`'s schedule at or before this run's own:
    with equal schedules it is the same date; a daily run at 00:00 waiting for an hourly pipeline waits
    for the hourly run at 00:00, the last one of the day before. `timeout` (from when the run was due)
    ends the wait: the run then fails with a message naming the run it waited for.

    >>> WaitFor("events_hourly", timeout="2h").timeout_s
    7200.0
    """

    pipeline: str
    timeout: str | timedelta | float = "1h"

    def __post_init__(self) -> None:
        if not isinstance(self.pipeline, str) or not self.pipeline:
            raise ScheduleError(f"WaitFor needs a pipeline name, got {self.pipeline!r}")
        parse_duration(self.timeout, f"wait_for timeout of {self.pipeline!r}")

    @property
    def timeout_s(self) -> float:
        return parse_duration(self.timeout).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "timeout_s": self.timeout_s}


@dataclass(frozen=True)
class Schedule:
    """When a pipeline runs: its first run `start` plus `every` (an interval) or `cron` (an expression).

    `start` without an offset is wall time in `timezone`. Intervals of whole days or weeks keep the
    wall time across daylight-saving changes (02:00 stays 02:00); shorter ones step in absolute time.
    With `cron`, `start` must itself match the expression: it is the real first run. `grace` is how
    late a run may still start after a restart; a run missed by more is recorded as skipped.

    >>> s = Schedule(start="2026-01-01T02:00", every="1d", timezone="Europe/Berlin")
    >>> [d.isoformat() for d in s.between(s.first_run, s.first_run + timedelta(days=1))]
    ['2026-01-01T01:00:00+00:00', '2026-01-02T01:00:00+00:00']
    """

    start: str | datetime
    every: str | timedelta | None = None
    cron: str | None = None
    timezone: str = "UTC"
    grace: str | timedelta = "10m"
    _first: datetime = field(init=False, repr=False, compare=False)
    _every: timedelta | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tz = zone(self.timezone)
        if (self.every is None) == (self.cron is None):
            raise ScheduleError(
                "a schedule needs exactly one of every='1d' (an interval) or cron='0 2 * * *'"
            )
        first = parse_time(self.start, tz, "schedule start")
        every: timedelta | None = None
        if self.every is not None:
            every = parse_duration(self.every, "schedule interval every")
        else:
            assert self.cron is not None
            if not croniter.is_valid(self.cron):
                raise ScheduleError(
                    f"cron expression {self.cron!r} is not valid; write five fields, e.g. '0 2 * * *' "
                    "(02:00 every day) or '*/15 * * * *'"
                )
            local = first.astimezone(tz)
            if not croniter.match(self.cron, local):
                after = self._cron_next(local - timedelta(microseconds=1))
                raise ScheduleError(
                    f"schedule start {local.isoformat()} does not match cron {self.cron!r}; the start is "
                    f"the first run, so start at a time the expression names, e.g. {after.isoformat()}"
                )
        parse_duration(self.grace, "schedule grace")
        object.__setattr__(self, "_first", first.astimezone(UTC))
        object.__setattr__(self, "_every", every)

    # -- the run times ------------------------------------------------------------------------------

    @property
    def first_run(self) -> datetime:
        """The logical date of the first run (aware, UTC)."""
        return self._first

    @property
    def grace_s(self) -> float:
        return parse_duration(self.grace).total_seconds()

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def at_or_before(self, when: datetime) -> datetime | None:
        """The latest logical date at or before `when`; None before the first run."""
        when = when.astimezone(UTC)
        if when < self._first:
            return None
        if self.cron is not None:
            # get_prev is strictly before its start: a microsecond later makes `when` itself count.
            local = when.astimezone(self.tz) + timedelta(microseconds=1)
            candidate = croniter(self.cron, local).get_prev(datetime)
            while self._repeated(candidate):
                candidate = croniter(self.cron, candidate).get_prev(datetime)
            result = candidate.astimezone(UTC)
            return result if result >= self._first else None
        k = self._index_at_or_before(when)
        return self._nth(k)

    def next_after(self, when: datetime) -> datetime:
        """The first logical date strictly after `when` (the first run if `when` is before it)."""
        when = when.astimezone(UTC)
        if when < self._first:
            return self._first
        if self.cron is not None:
            return self._cron_next(when.astimezone(self.tz)).astimezone(UTC)
        return self._nth(self._index_at_or_before(when) + 1)

    def between(self, first: datetime, last: datetime) -> Iterator[datetime]:
        """Every logical date from `first` to `last`, both included, in order."""
        at = self.at_or_before(first)
        current = at if at is not None and at >= first.astimezone(UTC) else self.next_after(first)
        end = last.astimezone(UTC)
        while current <= end:
            yield current
            current = self.next_after(current)

    # -- what it is, for storage --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The schedule as JSON data: first run in its zone, interval or cron, zone and grace."""
        out: dict[str, Any] = {"start": self._first.astimezone(self.tz).isoformat()}
        if self._every is not None:
            out["every"] = show_duration(self._every)
        else:
            out["cron"] = self.cron
        out["timezone"] = self.timezone
        out["grace"] = show_duration(parse_duration(self.grace))
        return out

    def fingerprint(self) -> str:
        """What decides the run times (first run, interval or cron, zone); a change is a new deployment."""
        timing = {k: v for k, v in self.to_json().items() if k != "grace"}
        timing["start"] = self._first.isoformat()  # the instant, however it was written
        return hashlib.sha256(json.dumps(timing, sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        """A short human description, e.g. "every 1d from 2026-01-01T02:00+01:00 (Europe/Berlin)"."""
        how = f"every {show_duration(self._every)}" if self._every is not None else f"cron {self.cron!r}"
        return f"{how} from {self._first.astimezone(self.tz).isoformat()} ({self.timezone})"

    # -- internals ----------------------------------------------------------------------------------

    def _wall_clock(self) -> bool:
        """Whole days or weeks step in wall time, so a daily 02:00 stays at 02:00 across DST changes."""
        return self._every is not None and self._every % _DAY == timedelta(0)

    def _nth(self, k: int) -> datetime:
        assert self._every is not None
        if not self._wall_clock():
            return self._first + k * self._every
        local = self._first.astimezone(self.tz).replace(tzinfo=None) + k * self._every
        # A wall time that does not exist (spring forward) resolves forward; an ambiguous one to its
        # first occurrence (fold=0), so a daily run happens once on the day the clocks go back.
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    def _index_at_or_before(self, when: datetime) -> int:
        assert self._every is not None
        if self._wall_clock():
            local_first = self._first.astimezone(self.tz).replace(tzinfo=None)
            local_when = when.astimezone(self.tz).replace(tzinfo=None)
            k = max(0, (local_when - local_first) // self._every)
        else:
            k = max(0, (when - self._first) // self._every)
        while k > 0 and self._nth(k) > when:
            k -= 1
        while self._nth(k + 1) <= when:
            k += 1
        return int(k)

    def _cron_next(self, local: datetime) -> datetime:
        assert self.cron is not None
        candidate: datetime = croniter(self.cron, local).get_next(datetime)
        while self._repeated(candidate):
            candidate = croniter(self.cron, candidate).get_next(datetime)
        return candidate

    def _repeated(self, local: datetime) -> bool:
        """The second pass through an hour the clocks went back over, for a cron naming its hours.

        croniter would run "30 2 * * *" twice that night; cron users expect a daily job once.
        """
        assert self.cron is not None
        if self.cron.split()[1] == "*":
            return False
        wall = local.replace(tzinfo=None)
        first = wall.replace(tzinfo=self.tz, fold=0)
        second = wall.replace(tzinfo=self.tz, fold=1)
        return first.utcoffset() != second.utcoffset() and local.utcoffset() == second.utcoffset()
