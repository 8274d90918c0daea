"""The delivery log in the metadata store: which member each segment delivered, on which day, how.

A run first *claims* its members in one write transaction: members new for the day (or for good,
with once_per="ever") get rows in status `pending`, grouped in batches; rows a failed or crashed run
left `failed` or `pending` are taken over in their old batches. It then sends each batch and
*settles* it: `delivered`, or `failed` with the error. The primary key (project, segment, day,
member) makes a member part of one batch at most per day, so reruns and concurrent runs never send
it in two; a resent batch keeps its batch_id, which webhooks get as the Idempotency-Key. With
once_per="ever", a batch taken over leaves out members another day has delivered (or is delivering).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import runs, segment_deliveries

t = segment_deliveries
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)
# A pending batch of a run that still says it is running is taken over after this long.
STALE_AFTER = timedelta(hours=1)
_ACTIVE_RUN = ("queued", "running")
_CHUNK = 500  # ids per IN (...) list

# A member: its id as text, and its other columns as a JSON object (text).
Member = tuple[str, str]


@dataclass(frozen=True)
class Batch:
    """Members sent together; `batch_id` is the webhook's Idempotency-Key, the same on every resend."""

    batch_id: str
    members: list[Member]
    retried: bool = False


@dataclass(frozen=True)
class Claim:
    """What a run claimed: its batches (taken-over ones first), and how many members were new."""

    batches: list[Batch]
    new: int
    retried: int
    known: int  # members of the SQL's result that were already claimed (delivered or in flight)


@dataclass(frozen=True)
class Delivery:
    """One row of the delivery log."""

    segment: str
    day: str
    member: str
    attributes: dict[str, Any]
    destination: str
    batch_id: str
    status: str
    attempts: int
    error: str | None
    run_id: str | None
    claimed_at: datetime
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["claimed_at"] = self.claimed_at.isoformat()
        out["delivered_at"] = self.delivered_at.isoformat() if self.delivered_at else None
        return out


class DeliveryLog:
    """Claims, settles and lists segment deliveries in the metadata store."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def claim(
        self,
        project: str,
        segment: str,
        day: date,
        members: Sequence[Member],
        *,
        destination: str,
        run_id: str,
        once_per: str = "day",
        batch_size: int | None = None,
        now: datetime | None = None,
    ) -> Claim:
        """Claim the `members` not yet delivered for `segment` on `day`, plus what earlier runs left."""
        now = now or datetime.now(UTC)
        key = (t.c.project == project, t.c.segment == segment)
        with self.metadata.begin() as conn:
            rows = conn.execute(
                select(t.c.member, t.c.attributes, t.c.status, t.c.batch_id, t.c.run_id, t.c.claimed_at)
                .where(*key, t.c.day == day.isoformat())
                .order_by(t.c.batch_id, t.c.member)
            ).all()
            taken = {r.member for r in rows}
            elsewhere: set[str] = set()  # once_per="ever": delivered or in flight on another day
            if once_per == "ever":
                earlier = select(t.c.member).where(*key, t.c.day != day.isoformat(), t.c.status != FAILED)
                elsewhere.update(conn.execute(earlier).scalars())
                taken.update(elsewhere)
            owners = {r.run_id for r in rows if r.status == PENDING and r.run_id and r.run_id != run_id}
            active = _active_runs(conn, owners)
            retake: dict[str, list[Member]] = {}
            thinned: set[str] = set()  # batches retaken without the members another day delivered
            for r in rows:
                orphaned = r.run_id == run_id or r.run_id not in active or now - r.claimed_at > STALE_AFTER
                if r.status == FAILED or (r.status == PENDING and orphaned):
                    if r.member in elsewhere:
                        thinned.add(r.batch_id)  # its row stays as it was: not sent that day
                    else:
                        retake.setdefault(r.batch_id, []).append((r.member, r.attributes))
            takeover = {"run_id": run_id, "claimed_at": now, "destination": destination}
            for ids in _chunks([b for b in retake if b not in thinned]):
                conn.execute(
                    update(t).where(*key, t.c.batch_id.in_(ids), t.c.status != DELIVERED).values(**takeover)
                )
            for batch_id in thinned.intersection(retake):
                for names in _chunks([m for m, _ in retake[batch_id]]):
                    conn.execute(
                        update(t)
                        .where(*key, t.c.batch_id == batch_id, t.c.member.in_(names), t.c.status != DELIVERED)
                        .values(**takeover)
                    )
            fresh: list[Member] = []
            seen: set[str] = set()
            for member in members:
                if member[0] not in taken and member[0] not in seen:
                    fresh.append(member)
                    seen.add(member[0])
            size = batch_size or max(len(fresh), 1)
            batches = [Batch(b, sorted(m), retried=True) for b, m in retake.items()]
            new_batches = [
                Batch(uuid.uuid4().hex, sorted(fresh[i : i + size])) for i in range(0, len(fresh), size)
            ]
            values = [
                {
                    "project": project,
                    "segment": segment,
                    "day": day.isoformat(),
                    "member": member,
                    "attributes": attributes,
                    "destination": destination,
                    "batch_id": batch.batch_id,
                    "status": PENDING,
                    "run_id": run_id,
                    "attempts": 0,
                    "claimed_at": now,
                }
                for batch in new_batches
                for member, attributes in batch.members
            ]
            if values:
                conn.execute(insert(t), values)
        known = sum(1 for m in {m[0] for m in members} if m in taken)
        retried = sum(len(b.members) for b in batches)
        return Claim(batches + new_batches, new=len(fresh), retried=retried, known=known)

    def settle(
        self,
        project: str,
        batch_id: str,
        *,
        run_id: str,
        delivered: bool,
        attempts: int,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record how sending batch `batch_id` of run `run_id` ended (if that run still holds it)."""
        now = now or datetime.now(UTC)
        values: dict[str, Any] = {
            "status": DELIVERED if delivered else FAILED,
            "attempts": t.c.attempts + attempts,
            "error": None if delivered else error,
        }
        if delivered:
            values["delivered_at"] = now
        with self.metadata.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.project == project, t.c.batch_id == batch_id, t.c.run_id == run_id)
                .where(t.c.status != DELIVERED)
                .values(**values)
            )

    def day_members(
        self, project: str, segment: str, day: date, destination: str, batch_ids: Iterable[str]
    ) -> list[Member]:
        """The members of `segment` on `day` delivered to `destination`, plus those of `batch_ids`."""
        wanted = set(batch_ids)
        with self.metadata.connect() as conn:
            rows = conn.execute(
                select(t.c.member, t.c.attributes, t.c.status, t.c.batch_id, t.c.destination)
                .where(t.c.project == project, t.c.segment == segment, t.c.day == day.isoformat())
                .order_by(t.c.claimed_at, t.c.batch_id, t.c.member)
            ).all()
        return [
            (r.member, r.attributes)
            for r in rows
            if r.batch_id in wanted or (r.status == DELIVERED and r.destination == destination)
        ]

    def entries(
        self,
        project: str,
        *,
        segment: str | None = None,
        day: date | None = None,
        status: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> tuple[list[Delivery], int]:
        """Log rows, newest claims first (all of them with `limit=None`), and how many match in all."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        where = [t.c.project == project]
        if segment is not None:
            where.append(t.c.segment == segment)
        if day is not None:
            where.append(t.c.day == day.isoformat())
        if status is not None:
            where.append(t.c.status == status)
        with self.metadata.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one())
            rows = conn.execute(
                select(t)
                .where(*where)
                .order_by(t.c.claimed_at.desc(), t.c.day.desc(), t.c.batch_id, t.c.member)
                .limit(limit)
                .offset(offset)
            ).all()
        return [_delivery(r) for r in rows], total

    def summary(self, project: str) -> dict[str, dict[str, Any]]:
        """Per segment: members by status, the latest day and the latest delivery time."""
        with self.metadata.connect() as conn:
            rows = conn.execute(
                select(t.c.segment, t.c.status, func.count(), func.max(t.c.day), func.max(t.c.delivered_at))
                .where(t.c.project == project)
                .group_by(t.c.segment, t.c.status)
            ).all()
        out: dict[str, dict[str, Any]] = {}
        for segment, status, count, last_day, last_delivered in rows:
            entry = out.setdefault(
                segment, {**dict.fromkeys(STATUSES, 0), "last_day": None, "last_delivered_at": None}
            )
            entry[status] = int(count)
            entry["last_day"] = max(filter(None, [entry["last_day"], last_day]), default=None)
            if last_delivered is not None:
                when = last_delivered if last_delivered.tzinfo else last_delivered.replace(tzinfo=UTC)
                previous = entry["last_delivered_at"]
                entry["last_delivered_at"] = max(filter(None, [previous, when]), default=None)
        return out


def _active_runs(conn: Any, run_ids: set[str]) -> set[str]:
    active: set[str] = set()
    for ids in _chunks(sorted(run_ids)):
        found = select(runs.c.run_id).where(runs.c.run_id.in_(ids), runs.c.status.in_(_ACTIVE_RUN))
        active.update(conn.execute(found).scalars())
    return active


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _delivery(row: Any) -> Delivery:
    return Delivery(
        segment=row.segment,
        day=row.day,
        member=row.member,
        attributes=json.loads(row.attributes),
        destination=row.destination,
        batch_id=row.batch_id,
        status=row.status,
        attempts=int(row.attempts),
        error=row.error,
        run_id=row.run_id,
        claimed_at=row.claimed_at,
        delivered_at=row.delivered_at,
    )
