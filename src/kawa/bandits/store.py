"""Where bandits keep their state: decisions and per-arm counts in the metadata store.

A decision and its pull are written in one transaction, and so are a reward and the decision it
marks, so the counts always equal what the decisions table says. Writers hold the metadata store's
write lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock), so the API processes that record
decisions and the worker that rewards them never lose an increment.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from kawa.bandits.spec import Bandit
from kawa.stores.metadata import MetadataError, MetadataStore
from kawa.stores.metadata.tables import bandit_arms, bandit_decisions

_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's 32,766 bound parameters


@dataclass(frozen=True)
class Decision:
    """One choice a bandit made, and the reward it got (if any)."""

    decision_id: str
    project: str
    bandit: str
    context: str
    arm: str
    user_id: str | None
    decided_at: datetime
    rewarded_at: datetime | None = None
    reward_event_id: str | None = None
    reward_kind: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "bandit": self.bandit,
            "context": self.context,
            "arm": self.arm,
            "user_id": self.user_id,
            "decided_at": _iso(self.decided_at),
            "rewarded_at": _iso(self.rewarded_at),
            "reward_event_id": self.reward_event_id,
            "reward_kind": self.reward_kind,
        }


@dataclass(frozen=True)
class Counts:
    """An arm's pulls and rewards in one context."""

    pulls: int = 0
    rewards: int = 0


# {context: {arm: Counts}}
ArmCounts = dict[str, dict[str, Counts]]


class BanditStore:
    """Decisions and arm counts of every project's bandits, over one metadata store."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def decide(
        self,
        project: str,
        bandit: Bandit,
        context: str,
        user_id: str | None,
        rng: random.Random,
        *,
        at: datetime | None = None,
    ) -> Decision:
        """Choose an arm from the counts as they are now, and record the decision and its pull.

        MetadataError when the store cannot take it now (locked, or unreachable): worth a retry.
        """
        at = at or datetime.now(UTC)
        try:
            return self._decide(project, bandit, context, user_id, rng, at)
        except (OperationalError, InterfaceError) as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise MetadataError(f"the metadata store cannot be reached: {reason}") from exc

    def _decide(
        self,
        project: str,
        bandit: Bandit,
        context: str,
        user_id: str | None,
        rng: random.Random,
        at: datetime,
    ) -> Decision:
        with self.metadata.begin() as conn:
            # Read under the write lock: concurrent choices see each other's pulls (UCB1 plays every
            # arm once before it compares bounds, also when requests arrive together).
            rows = conn.execute(
                select(bandit_arms.c.arm, bandit_arms.c.pulls, bandit_arms.c.rewards).where(
                    _arms_of(project, bandit.name), bandit_arms.c.context == context
                )
            ).all()
            known = {row.arm: (int(row.pulls), int(row.rewards)) for row in rows}
            pulls = [known.get(arm, (0, 0))[0] for arm in bandit.arms]
            rewards = [known.get(arm, (0, 0))[1] for arm in bandit.arms]
            arm = bandit.arms[bandit.policy.choose(pulls, rewards, rng)]
            decision = Decision(secrets.token_hex(12), project, bandit.name, context, arm, user_id, at)
            conn.execute(
                insert(bandit_decisions).values(
                    decision_id=decision.decision_id,
                    project=project,
                    bandit=bandit.name,
                    context=context,
                    arm=arm,
                    user_id=user_id,
                    decided_at=at,
                )
            )
            _add(conn, project, bandit.name, context, arm, at, pulls=1, known=arm in known)
        return decision

    def counts(self, project: str, bandit: str) -> ArmCounts:
        """The bandit's counts by context and arm (arms never played are left out)."""
        out: ArmCounts = {}
        with self.metadata.connect() as conn:
            rows = conn.execute(
                select(bandit_arms.c.context, bandit_arms.c.arm, bandit_arms.c.pulls, bandit_arms.c.rewards)
                .where(_arms_of(project, bandit))
                .order_by(bandit_arms.c.context, bandit_arms.c.arm)
            ).all()
        for row in rows:
            out.setdefault(row.context, {})[row.arm] = Counts(int(row.pulls), int(row.rewards))
        return out

    def decisions(self, project: str, bandit: str, limit: int = 100) -> list[Decision]:
        """The bandit's newest decisions, newest first."""
        with self.metadata.connect() as conn:
            rows = conn.execute(
                select(bandit_decisions)
                .where(bandit_decisions.c.project == project, bandit_decisions.c.bandit == bandit)
                .order_by(bandit_decisions.c.decided_at.desc(), bandit_decisions.c.decision_id)
                .limit(limit)
            ).all()
        return [_decision(row) for row in rows]

    def has_decisions(self, project: str) -> bool:
        """Whether any bandit of `project` has ever made a decision."""
        with self.metadata.connect() as conn:
            return bool(conn.scalar(select(exists().where(bandit_decisions.c.project == project))))

    @contextmanager
    def rewarding(self, project: str) -> Iterator[Rewarding]:
        """A write transaction for attributing rewards: everything in it is stored together or not at all."""
        with self.metadata.begin() as conn:
            yield Rewarding(conn, project)


class Rewarding:
    """Reads and writes of one reward transaction (see `BanditStore.rewarding`)."""

    def __init__(self, conn: Connection, project: str) -> None:
        self.conn = conn
        self.project = project
        self.rewarded = 0

    def open_decisions(self, decision_ids: Sequence[str]) -> dict[str, Decision]:
        """The decisions among `decision_ids` not rewarded yet, by id."""
        out: dict[str, Decision] = {}
        unique = list(dict.fromkeys(decision_ids))
        for start in range(0, len(unique), _IN_CHUNK):
            rows = self.conn.execute(
                select(bandit_decisions).where(
                    bandit_decisions.c.project == self.project,
                    bandit_decisions.c.decision_id.in_(unique[start : start + _IN_CHUNK]),
                    bandit_decisions.c.rewarded_at.is_(None),
                )
            ).all()
            out.update((row.decision_id, _decision(row)) for row in rows)
        return out

    def latest_open(self, bandit: str, user_id: str, since: datetime, until: datetime) -> Decision | None:
        """The user's newest unrewarded decision of `bandit` made within [since, until]."""
        c = bandit_decisions.c
        row = self.conn.execute(
            select(bandit_decisions)
            .where(
                c.project == self.project,
                c.bandit == bandit,
                c.user_id == user_id,
                c.decided_at >= since,
                c.decided_at <= until,
                c.rewarded_at.is_(None),
            )
            .order_by(c.decided_at.desc(), c.decision_id.desc())
            .limit(1)
        ).first()
        return None if row is None else _decision(row)

    def event_used(self, bandit: str, event_id: str) -> bool:
        """Whether `event_id` has rewarded a decision of `bandit` already (a replay or a resent event)."""
        c = bandit_decisions.c
        found = self.conn.scalar(
            select(
                exists().where(c.project == self.project, c.bandit == bandit, c.reward_event_id == event_id)
            )
        )
        return bool(found)

    def reward(self, decision: Decision, event_id: str, at: datetime, kind: str) -> bool:
        """Mark `decision` rewarded by `event_id` and count the reward; False if it was rewarded already."""
        c = bandit_decisions.c
        marked = self.conn.execute(
            update(bandit_decisions)
            .where(c.decision_id == decision.decision_id, c.rewarded_at.is_(None))
            .values(rewarded_at=at, reward_event_id=event_id, reward_kind=kind)
        )
        if marked.rowcount != 1:
            return False
        _add(
            self.conn,
            self.project,
            decision.bandit,
            decision.context,
            decision.arm,
            at,
            rewards=1,
            known=True,
        )
        self.rewarded += 1
        return True


def _arms_of(project: str, bandit: str) -> Any:
    return and_(bandit_arms.c.project == project, bandit_arms.c.bandit == bandit)


def _add(
    conn: Connection,
    project: str,
    bandit: str,
    context: str,
    arm: str,
    at: datetime,
    *,
    pulls: int = 0,
    rewards: int = 0,
    known: bool,
) -> None:
    """Add to an arm's counts, creating its row on first use (writers are serialised by the write lock)."""
    c = bandit_arms.c
    if known:
        changed = conn.execute(
            update(bandit_arms)
            .where(_arms_of(project, bandit), c.context == context, c.arm == arm)
            .values(pulls=c.pulls + pulls, rewards=c.rewards + rewards, updated_at=at)
        )
        if changed.rowcount == 1:
            return
    conn.execute(
        insert(bandit_arms).values(
            project=project,
            bandit=bandit,
            context=context,
            arm=arm,
            pulls=pulls,
            rewards=rewards,
            updated_at=at,
        )
    )


def _decision(row: Any) -> Decision:
    return Decision(**row._mapping)  # the columns are the fields


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


__all__ = ["ArmCounts", "BanditStore", "Counts", "Decision", "Rewarding"]
