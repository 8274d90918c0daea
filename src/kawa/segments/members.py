"""A segment's members now: its SQL run over the warehouse, checked, one row per member id."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import duckdb
import msgspec
import pyarrow as pa

from kawa.segments.spec import SegmentError
from kawa.segments.store import Member

if TYPE_CHECKING:
    from kawa.segments.spec import Segment
    from kawa.warehouse import Warehouse

log = logging.getLogger("kawa.segments")

MAX_ID = 255  # characters of a member id the delivery log keeps


@dataclass
class Members:
    """The segment's members in the SQL's order, and the rows left out with why."""

    members: list[Member] = field(default_factory=list)
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows


def segment_members(warehouse: Warehouse, segment: Segment, logical_date: datetime, day: date) -> Members:
    """Run `segment`'s SQL for a run with `logical_date` delivering for `day`; SegmentError if it fails."""
    table = _query(warehouse, segment, logical_date, day)
    names = table.column_names
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise SegmentError(
            f"segment {segment.name!r}: its SQL returns column(s) {', '.join(twice)} more than once; "
            "give each column its own name with AS"
        )
    if segment.entity not in names:
        raise SegmentError(
            f"segment {segment.name!r}: its SQL returns no column {segment.entity!r} (it returns "
            f"{', '.join(names) or 'no columns'}); select the member id AS {segment.entity}, or set "
            f"entity= to the column that holds it"
        )
    ids = table.column(segment.entity).to_pylist()
    others = [n for n in names if n != segment.entity]
    rows = table.select(others).to_pylist() if others else [{} for _ in ids]
    out = Members()
    seen: set[str] = set()
    for raw, extra in zip(ids, rows, strict=True):
        member, why = _member_id(raw)
        if member is None:
            out.skipped[why] = out.skipped.get(why, 0) + 1
            continue
        if member in seen:
            out.duplicates += 1  # the first row of a member (in the SQL's ORDER BY) is the one kept
            continue
        seen.add(member)
        out.members.append((member, msgspec.json.encode(msgspec.to_builtins(extra)).decode()))
    for reason, count in out.skipped.items():
        log.warning("segment %s: %d row(s) left out: %s in %s", segment.name, count, reason, segment.entity)
    return out


def _query(warehouse: Warehouse, segment: Segment, logical_date: datetime, day: date) -> pa.Table:
    values = {"day": day, "logical_date": logical_date.astimezone(UTC)}
    with warehouse.connect() as db:
        try:
            wanted = db.extract_statements(segment.sql)[0].named_parameters
            params = {k: v for k, v in values.items() if k in wanted}
            relation = db.sql(segment.sql, params=params) if params else db.sql(segment.sql)
            if relation is None:
                raise SegmentError(f"segment {segment.name!r}: its SQL returns no rows; write a SELECT")
            return relation.to_arrow_table()
        except duckdb.Error as exc:
            # One line, so the run's status message (which keeps the last line) carries DuckDB's reason.
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip(" ^"))
            raise SegmentError(
                f"segment {segment.name!r}: its SQL failed: {reason}; fix the segment's sql (try it with "
                "`kawa sql`); tables: " + ", ".join(warehouse.tables())
            ) from None


def _member_id(value: object) -> tuple[str | None, str]:
    """A member id as text (42 -> '42'), or None and why it cannot be one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "no id (NULL or empty)"
    if isinstance(value, bytes | list | dict):
        return None, "an id that is not text or a number"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if len(text) > MAX_ID:
        return None, f"an id longer than {MAX_ID} characters"
    return text, ""
