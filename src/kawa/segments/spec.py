"""Segments as declared in a project's code: SQL that returns the members, where to send new ones, when."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import duckdb

from kawa.pipelines.pipeline import Pipeline, PipelineDefinitionError
from kawa.schedule.spec import Schedule, WaitFor
from kawa.segments.destinations import Destination, Export, Webhook

if TYPE_CHECKING:
    from kawa.config import Config

OncePer = Literal["day", "ever"]
# What a segment's SQL may use: the day a run delivers for, and its logical date (UTC).
SQL_PARAMETERS = ("day", "logical_date")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")


class SegmentDefinitionError(PipelineDefinitionError):
    """A segment declared in a way kawa cannot run (bad SQL, entity, destination or once_per)."""


class SegmentError(ValueError):
    """A segment's run cannot go on: its SQL fails, lacks the entity column, or delivery failed."""


class Segment(Pipeline):
    """Users picked by SQL over the warehouse, each new one delivered once to a destination.

    A segment is a pipeline of one step (`delivery`), so the scheduler runs it, `kawa runs` lists its
    runs and the web UI shows them. `sql` is one SELECT returning the members' ids in column `entity`
    (other columns travel along); it may use `$day` (DATE) and `$logical_date` (TIMESTAMPTZ) of the run.
    `once_per="day"` (the default) delivers a member once per day it is in the segment; `"ever"` once
    for good. The day is the run's logical date in the schedule's time zone (UTC without one).

    >>> s = Segment(
    ...     "viewed_3x",
    ...     "SELECT keys.user_id AS user_id, item_id FROM events WHERE event_name = 'view' "
    ...     "GROUP BY 1, 2 HAVING count(*) >= 3",
    ...     destination=Export("exports"),
    ... )
    >>> s.entity, s.destination.describe(), [step.name for step in s.steps]
    ('user_id', 'csv exports', ['delivery'])
    """

    def __init__(
        self,
        name: str,
        sql: str,
        *,
        destination: Destination,
        entity: str = "user_id",
        schedule: Schedule | None = None,
        once_per: OncePer = "day",
        description: str = "",
        wait_for: Sequence[WaitFor | str] = (),
        timeout_s: float | None = None,
        retries: int | None = None,
        retry_backoff_s: float | None = None,
    ) -> None:
        from kawa.segments._step import delivery

        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SegmentDefinitionError(
                f"segment name {name!r} must start with a letter or _ and hold at most 128 letters, "
                "digits, '_' or '-' (it names its pipeline, its files and its URL)"
            )
        super().__init__(
            name,
            steps=[delivery],
            description=description or f"segment: new members to {_describe(destination)}",
            schedule=schedule,
            wait_for=wait_for,
            timeout_s=timeout_s,
            retries=retries,
            retry_backoff_s=retry_backoff_s,
        )
        self.sql = check_sql(name, sql)
        if not isinstance(entity, str) or not entity.strip():
            raise SegmentDefinitionError(
                f"segment {name!r}: entity={entity!r} must name the column that holds the member id, "
                "e.g. entity='user_id'"
            )
        self.entity = entity.strip()
        if not isinstance(destination, Webhook | Export):
            raise SegmentDefinitionError(
                f"segment {name!r}: destination={destination!r} must be a Webhook(url) or an "
                "Export(folder, format='csv' or 'parquet')"
            )
        self.destination: Destination = destination
        if once_per not in ("day", "ever"):
            raise SegmentDefinitionError(
                f"segment {name!r}: once_per={once_per!r} must be 'day' (a member is new again each day "
                "it is in the segment) or 'ever' (delivered once for good)"
            )
        self.once_per: OncePer = once_per

    @property
    def timezone(self) -> ZoneInfo:
        """The zone whose calendar days the segment delivers by: its schedule's, or UTC."""
        return self.schedule.tz if self.schedule is not None else ZoneInfo("UTC")

    def day_of(self, logical_date: datetime) -> date:
        """The day a run with `logical_date` delivers for."""
        return logical_date.astimezone(self.timezone).date()

    def logical_date_for(self, day: date | None, now: datetime | None = None) -> datetime:
        """The logical date of a manual run for `day`: now for today, the day's last second before.

        >>> s = Segment("s", "SELECT 'u' AS user_id", destination=Export("out"))
        >>> now = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
        >>> s.logical_date_for(date(2026, 11, 25), now).isoformat(), s.logical_date_for(None, now) == now
        ('2026-11-25T23:59:59+00:00', True)
        """
        now = now or datetime.now(UTC)
        today = self.day_of(now)
        if day is None or day == today:
            return now
        if day > today:
            raise SegmentError(
                f"segment {self.name!r}: day {day.isoformat()} is in the future (today is "
                f"{today.isoformat()} in {self.timezone.key}); run it for today or a past day"
            )
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=self.timezone) - timedelta(seconds=1)
        return end.astimezone(UTC)

    def describe(self) -> dict[str, Any]:
        """The segment as JSON data, for the API and `kawa segments list`."""
        return {
            "name": self.name,
            "entity": self.entity,
            "destination": self.destination.describe(),
            "once_per": self.once_per,
            "schedule": self.schedule.describe() if self.schedule is not None else None,
            "timezone": self.timezone.key,
            "description": self.description,
            "sql": self.sql,
        }

    def __repr__(self) -> str:
        return f"Segment({self.name!r}, destination={self.destination.describe()!r})"


def check_sql(name: str, sql: str) -> str:
    """`sql` if it is one SELECT using only known parameters; SegmentDefinitionError saying why not."""
    if not isinstance(sql, str) or not sql.strip():
        raise SegmentDefinitionError(f"segment {name!r}: sql must be a SELECT that returns the members")
    db = duckdb.connect()
    try:
        statements = db.extract_statements(sql)
    except duckdb.Error as exc:
        raise SegmentDefinitionError(f"segment {name!r}: its SQL does not parse: {exc}") from None
    finally:
        db.close()
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise SegmentDefinitionError(
            f"segment {name!r}: sql must be one SELECT statement (it has {len(statements)} statement(s)); "
            "write the query that returns the members, without ; between statements"
        )
    unknown = sorted(set(statements[0].named_parameters) - set(SQL_PARAMETERS))
    if unknown:
        raise SegmentDefinitionError(
            f"segment {name!r}: its SQL uses {', '.join('$' + p for p in unknown)}; the parameters a "
            f"segment gets are {', '.join('$' + p for p in SQL_PARAMETERS)}"
        )
    return sql.strip()


def project_segments(config: Config) -> dict[str, Segment]:
    """The segments defined in the project's code files, by name."""
    from kawa.pipelines import project_pipelines

    return {name: p for name, p in project_pipelines(config).items() if isinstance(p, Segment)}


def find_segment(config: Config, name: str) -> Segment:
    """The project's segment called `name`; LookupError listing the known ones otherwise."""
    found = project_segments(config)
    if name not in found:
        known = (
            ", ".join(sorted(found)) or f"none (kawa looked in {', '.join(config.code)} under {config.root})"
        )
        raise LookupError(f"no segment named {name!r}; segments: {known}")
    return found[name]


def _describe(destination: object) -> str:
    describe = getattr(destination, "describe", None)
    return str(describe()) if callable(describe) else repr(destination)
