"""The reward worker: reads the event log and turns events into bandit rewards, with no extra call.

Two kinds of event reward a decision:
- an event carrying the decision's id (`decision_id` at the top level, or inside Segment's
  `properties`) that matches the bandit's `reward_on`, within `window` of the decision;
- with `purchase_on` declared, an event of the decision's user (`user_key`, e.g. keys.user_id) that
  matches it, within `window` after the decision: it rewards that user's newest decision not rewarded
  yet (last touch).

A decision is rewarded at most once, and an event rewards at most one decision per bandit; both are
enforced by the metadata store in the transaction that counts the reward, so reading part of the log
again (after a crash, or an event sent twice) never counts anything twice. The worker's offset is a
checkpoint of the event log (consumer `bandits`), committed every half second.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from kawa.bandits.spec import Bandit
from kawa.bandits.store import BanditStore
from kawa.events.schema import KIND_EVENTS, LogBatch
from kawa.stores.eventlog import EventLog, Record

log = logging.getLogger("kawa.bandits")

CONSUMER = "bandits"
DECISION_FIELD = "decision_id"
READ_BYTES = 1 << 20
IDLE_S = 0.1  # how long an idle worker sleeps before it looks at the log again
RETRY_S = 1.0  # after a failed write (the metadata store is down or locked), try the batch again
MAX_ID_CHARS = 64
MAX_EVENT_ID_CHARS = 255  # what bandit_decisions.reward_event_id holds; longer ids are stored hashed

_batch = msgspec.msgpack.Decoder(LogBatch)
_lines = msgspec.json.Decoder()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Tagged:
    """An event that carries a decision id."""

    decision_id: str
    event_id: str
    at: datetime
    event: dict[str, Any]


@dataclass(frozen=True)
class Purchase:
    """An event of a user that matches a bandit's `purchase_on`."""

    bandit: Bandit
    user_id: str
    event_id: str
    at: datetime


def decision_id_of(event: dict[str, Any]) -> str | None:
    """The decision id an event carries: its `decision_id`, or Segment's `properties.decision_id`.

    >>> decision_id_of({"event_name": "click", "properties": {"decision_id": "7f3a"}})
    '7f3a'
    """
    found = event.get(DECISION_FIELD)
    if found is None:
        properties = event.get("properties")
        if isinstance(properties, dict):
            found = properties.get(DECISION_FIELD)
    if isinstance(found, str) and 0 < len(found) <= MAX_ID_CHARS:
        return found
    return None


def stored_event_id(event_id: str) -> str:
    """The event id as a decision keeps it: as sent, or hashed when it is longer than the column.

    >>> stored_event_id("e-1"), len(stored_event_id("x" * 300))
    ('e-1', 34)
    """
    if len(event_id) <= MAX_EVENT_ID_CHARS:
        return event_id
    return "#" + hashlib.blake2b(event_id.encode(), digest_size=16).hexdigest() + "#"


class RewardWorker:
    """Attributes rewards for `project`'s bandits from `event_log`; one per state folder (`kawa serve`)."""

    def __init__(
        self,
        *,
        project: str,
        bandits: Callable[[], Mapping[str, Bandit]],
        event_log: EventLog,
        store: BanditStore,
    ) -> None:
        self.project = project
        self.bandits = bandits
        self.log = event_log
        self.store = store
        self._decided = False
        self.offset = self._start()
        self._committed = -1
        self.rewarded = 0

    def _start(self) -> int:
        """Where to read from: the checkpoint, or the end of the log while no decision exists yet.

        The end is read before asking for decisions: a decision made after that question is made
        after that offset, and so is every event that could reward it.
        """
        end = self.log.end_offset()
        committed = self.log.committed(CONSUMER)
        self._decided = self.store.has_decisions(self.project)
        return committed if self._decided else max(committed, end)

    def run(self, stop: threading.Event) -> None:
        """Attribute rewards until `stop` is set; returns after committing where it got to."""
        log.info("reward worker for project %r at log offset %d", self.project, self.offset)
        try:
            while not stop.is_set():
                try:
                    busy = self.step()
                except Exception:
                    log.exception("cannot store the rewards of log offset %d; retrying", self.offset)
                    stop.wait(RETRY_S)
                    continue
                if not busy:
                    stop.wait(IDLE_S)
        finally:
            self.checkpoint()

    def step(self) -> bool:
        """Attribute what the log holds past the offset (one read); False if there was nothing new."""
        if not self._decided:
            # Asked after the log's end: a decision recorded later was recorded after the events
            # before that end, so while there is none, none of them can reward anything; the worker
            # moves past them without reading them (or loading the project's code).
            end = self.log.end_offset()
            self._decided = self.store.has_decisions(self.project)
            if not self._decided:
                moved, self.offset = end != self.offset, end
                return moved
        result = self.log.read(self.offset, max_bytes=READ_BYTES)
        if not result.records:
            return False
        bandits = self.bandits()
        if not bandits and getattr(self.bandits, "error", None):
            # The declarations fail to load and none loaded before: passing over these events would
            # lose the rewards they carry, so the worker waits here until the file is fixed.
            return False
        tagged, purchases = self.scan(result.records, bandits)
        if tagged or purchases:
            self.rewarded += self.attribute(bandits, tagged, purchases)
        self.offset = result.next_offset
        return True

    def checkpoint(self) -> None:
        """Commit the offset: a restart reads from here (what lies before is attributed and stored)."""
        offset = self.offset
        if offset != self._committed:
            self.log.commit(CONSUMER, offset)
            self._committed = offset

    def scan(
        self, records: Sequence[Record], bandits: Mapping[str, Bandit]
    ) -> tuple[list[Tagged], list[Purchase]]:
        """The events of `records` that may reward a decision."""
        tagged: list[Tagged] = []
        purchases: list[Purchase] = []
        if not bandits:
            return tagged, purchases  # nothing declared: nothing to reward, whatever the events say
        watch = [(b, b.purchase_on.test, b.user_field) for b in bandits.values() if b.purchase_on is not None]
        needle = DECISION_FIELD.encode()
        for record in records:
            batch = _batch.decode(record.payload)
            if batch.kind != KIND_EVENTS or batch.project != self.project:
                continue
            if not watch and needle not in batch.body:
                continue  # most batches: nothing in them can reward anything, so skip decoding
            times = memoryview(batch.times).cast("q")
            for i, event in enumerate(_lines.decode_lines(batch.body)):
                found = event.get("event_id")
                event_id = batch.id_prefix + str(i) if found is None else stored_event_id(str(found))
                at = _EPOCH + timedelta(microseconds=times[i])
                decision_id = decision_id_of(event)
                if decision_id is not None:
                    tagged.append(Tagged(decision_id, event_id, at, event))
                for bandit, test, user_field in watch:
                    if test(event) and (user := user_field.value(event)):
                        purchases.append(Purchase(bandit, str(user), event_id, at))
        return tagged, purchases

    def attribute(
        self, bandits: Mapping[str, Bandit], tagged: Sequence[Tagged], purchases: Sequence[Purchase]
    ) -> int:
        """Count the rewards these events earn, in one transaction; returns how many were counted."""
        with self.store.rewarding(self.project) as tx:
            open_ = tx.open_decisions([t.decision_id for t in tagged]) if tagged else {}
            for t in tagged:
                decision = open_.get(t.decision_id)
                bandit = bandits.get(decision.bandit) if decision is not None else None
                if decision is None or bandit is None or not bandit.reward_on.test(t.event):
                    continue
                if t.at > decision.decided_at + bandit.window or tx.event_used(bandit.name, t.event_id):
                    continue
                if tx.reward(decision, t.event_id, t.at, "decision_id"):
                    del open_[t.decision_id]
            for p in purchases:
                if tx.event_used(p.bandit.name, p.event_id):
                    continue
                decision = tx.latest_open(p.bandit.name, p.user_id, p.at - p.bandit.window, p.at)
                if decision is not None:
                    tx.reward(decision, p.event_id, p.at, "purchase")
            return tx.rewarded
