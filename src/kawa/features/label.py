"""Labels: SQL that yields (entity, cutoff, label) rows, the targets a training set is built around.

A label's SQL reads `events` and `cutoffs` (one `cutoff` TIMESTAMPTZ per row: the times to label
at) and returns the entity column, `cutoff` and `label`, plus any other columns to keep. Unlike
features, a label looks after the cutoff: "did the user buy in the 14 days after it?".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from kawa.features._compile import DAY_US
from kawa.features._time import Instant, cutoff_array, to_datetime, utc_column
from kawa.features.entity import Entity, check_identifier
from kawa.features.errors import FeatureError
from kawa.features.spec import parse_window
from kawa.warehouse import Warehouse


def series(start: Instant, end: Instant, every: str = "7d") -> list[datetime]:
    """Cutoffs from `start` to `end` (both included when on the step), `every` days or weeks apart.

    >>> [c.date().isoformat() for c in series("2025-09-01", "2025-09-15", every="1w")]
    ['2025-09-01', '2025-09-08', '2025-09-15']
    """
    first, last = to_datetime(start), to_datetime(end)
    if last < first:
        raise FeatureError(f"series ends ({last.isoformat()}) before it starts ({first.isoformat()})")
    step = timedelta(days=parse_window(every))
    out = []
    while first <= last:
        out.append(first)
        first += step
    return out


class Label:
    """A named label: SQL over `events` and `cutoffs` returning (entity column, cutoff, label) rows."""

    __kawa_kind__ = "label"

    def __init__(
        self,
        name: str,
        entity: Entity,
        sql: str,
        *,
        cutoffs: Sequence[Instant] = (),
        horizon_days: int | None = None,
        description: str = "",
    ) -> None:
        self.name = check_identifier("label", name)
        if not isinstance(entity, Entity):
            raise FeatureError(f"label {name!r}: entity must be an Entity, e.g. kawa.features.USER")
        if not sql.strip():
            raise FeatureError(f"label {name!r}: sql is empty")
        self.entity = entity
        self.sql = sql
        self.cutoffs = [to_datetime(c) for c in cutoffs]
        # How far past a cutoff the label looks; rows() refuses cutoffs whose horizon is not observed yet.
        self.horizon_days = horizon_days
        self.description = description

    def __repr__(self) -> str:
        return f"Label({self.name!r}, entity={self.entity.name!r}, cutoffs={len(self.cutoffs)})"

    def with_cutoffs(self, cutoffs: Sequence[Instant]) -> Label:
        """The same label at other cutoffs (e.g. a pipeline's `cutoff` parameter)."""
        return Label(
            self.name,
            self.entity,
            self.sql,
            cutoffs=cutoffs,
            horizon_days=self.horizon_days,
            description=self.description,
        )

    @classmethod
    def event_within(
        cls,
        name: str,
        entity: Entity,
        *,
        where: str,
        horizon: str = "14d",
        active: str | None = None,
        cutoffs: Sequence[Instant] = (),
    ) -> Label:
        """1 if the entity has an event matching `where` in [cutoff, cutoff + horizon), else 0.

        Rows are every entity with an event before the cutoff (within `active` of it, when given).
        """
        days = parse_window(horizon)
        key, column = entity.key, entity.column
        lookback = "" if active is None else f" AND a.__tmax >= c.__c - {parse_window(active) * DAY_US}"
        sql = f"""
WITH c AS (SELECT cutoff, epoch_us(cutoff) AS __c FROM cutoffs),
seen AS (
  SELECT ({key}) AS __k, min(epoch_us(sync_date)) AS __tmin, max(epoch_us(sync_date)) AS __tmax
  FROM events WHERE ({key}) IS NOT NULL GROUP BY ({key}), epoch_us(sync_date) // {DAY_US}),
population AS (
  SELECT DISTINCT a.__k, c.cutoff FROM c JOIN seen a ON a.__tmin < c.__c{lookback}),
hits AS (
  SELECT DISTINCT ({key}) AS __k, c.cutoff FROM c JOIN events e
    ON epoch_us(e.sync_date) >= c.__c AND epoch_us(e.sync_date) < c.__c + {days * DAY_US}
  WHERE ({key}) IS NOT NULL AND ({where}))
SELECT p.__k AS "{column}", p.cutoff, (h.__k IS NOT NULL)::INTEGER AS label
FROM population p LEFT JOIN hits h ON h.__k = p.__k AND h.cutoff = p.cutoff
ORDER BY p.cutoff, p.__k"""
        return cls(
            name,
            entity,
            sql,
            cutoffs=cutoffs,
            horizon_days=days,
            description=f"1 if {where} within {horizon} after the cutoff",
        )

    def rows(self, warehouse: Warehouse, cutoffs: Sequence[Instant] | None = None) -> pa.Table:
        """The label rows at `cutoffs` (default: the label's own), with `cutoff` as UTC timestamps."""
        when = [to_datetime(c) for c in cutoffs] if cutoffs is not None else self.cutoffs
        if not when:
            raise FeatureError(
                f"label {self.name!r} has no cutoffs; pass cutoffs=[...] or series(start, end, every='7d')"
            )
        with warehouse.connect() as db:
            if self.horizon_days is not None:
                self._check_horizon(db, when)
            db.register("__label_cutoffs", pa.table({"cutoff": cutoff_array(when)}))
            db.execute("CREATE OR REPLACE TEMP VIEW cutoffs AS SELECT cutoff FROM __label_cutoffs")
            try:
                table = db.sql(self.sql).to_arrow_table()
            except duckdb.Error as exc:
                raise FeatureError(f"label {self.name!r} failed: {str(exc).strip()}") from None
        expected = [self.entity.column, "cutoff", "label"]
        missing = [c for c in expected if c not in table.column_names]
        if missing:
            raise FeatureError(
                f"label {self.name!r}: its SQL must return {expected}; it returned {table.column_names}"
            )
        return utc_column(table, "cutoff")

    def _check_horizon(self, db: duckdb.DuckDBPyConnection, when: list[datetime]) -> None:
        """Refuse cutoffs whose horizon runs past the last event: unseen days would read as 0."""
        assert self.horizon_days is not None
        ((last_us,),) = db.execute("SELECT epoch_us(max(sync_date)) FROM events").fetchall()
        if last_us is None:
            raise FeatureError(f"label {self.name!r}: the events table is empty; send events first")
        last_event = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=int(last_us))
        horizon = timedelta(days=self.horizon_days)
        late = [c for c in when if c + horizon > last_event]
        if late:
            raise FeatureError(
                f"label {self.name!r}: cutoff {late[0].isoformat()} + {self.horizon_days}d ends after "
                f"the last event ({last_event.isoformat()}), so later days would count as no event; "
                f"use cutoffs up to {(last_event - horizon).isoformat()}"
            )
