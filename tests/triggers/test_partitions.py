"""Trigger workers splitting the events by entity key, in one process over the file log (by offset).

The Redis consumer groups, leases and a SIGKILL are in tests/scaleout/test_redis_triggers_group.py;
here the split itself: each event is handled by exactly one partition, each partition's streaming
features equal one in-order engine's, and the readers add the partitions up.
"""

from __future__ import annotations

import pytest

from kawa.events.validate import parse_time
from kawa.streaming import StreamEngine, StreamView, stream
from kawa.triggers import Trigger, TriggerError, state
from kawa.triggers._partition import Partition, event_filter, partition_key
from tests.triggers.conftest import PROJECT, Parts, buyer_bundle, drain, view

ACTIVITY = StreamView(
    "activity",
    key="keys.user_id",
    features={"views": stream.count(where={"event_name": "view"}, window="1h"), "spend": stream.sum("price")},
)
BUYER = Trigger(
    "buyer_on_view", on={"event_name": "view"}, key="keys.user_id", model="buyer", features=[ACTIVITY]
)


def test_each_event_belongs_to_one_partition_by_its_key() -> None:
    parts = [event_filter(Partition(i, 3), [BUYER]) for i in range(3)]
    for n in range(200):
        event = view(f"e{n}", f"u{n % 37}", 10.0)
        owners = [i for i, mine in enumerate(parts) if mine(event, f"e{n}")]
        assert len(owners) == 1
        again = view(f"other-{n}", f"u{n % 37}", 99.0)  # the same user: the same partition
        assert [i for i, mine in enumerate(parts) if mine(again, f"other-{n}")] == owners
    assert event_filter(Partition(), [BUYER])({"event_name": "view"}, "no-key")  # one worker: everything


def test_triggers_and_views_keyed_by_different_fields_cannot_be_split() -> None:
    session = Trigger("s", on={"event_name": "view"}, key="keys.session_id", model="buyer")
    with pytest.raises(TriggerError) as refused:
        partition_key([BUYER, session])
    assert "keys.user_id (trigger 'buyer_on_view')" in str(refused.value)
    assert "keys.session_id (trigger 's')" in str(refused.value)
    assert partition_key([BUYER]) == "keys.user_id"


def test_two_partitions_score_every_event_once_with_exact_streaming_features(parts: Parts) -> None:
    parts.register(buyer_bundle())
    workers = [parts.worker([BUYER], partition=Partition(i, 2)) for i in range(2)]
    reference = StreamEngine([ACTIVITY])
    events = []
    for n in range(120):
        stamp = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
        name = "view" if n % 4 else "cart_add"
        events.append(dict(view(f"e{n}", f"u{n % 9}", float(n % 13)), event_name=name, sync_date=stamp))
    parts.send(events[:70])
    parts.send(events[70:] + events[:3])  # a retry of three: each counted once, by its own partition
    for worker in workers:
        drain(worker)

    for event in events:
        reference.apply(event, parse_time(event["sync_date"]))
    end = parse_time(events[-1]["sync_date"])
    views = sum(1 for e in events if e["event_name"] == "view")
    per_part = [state.read_stats(parts.online, PROJECT, w.tag)["buyer_on_view"] for w in workers]
    assert all(s.matched > 0 for s in per_part) and sum(s.matched for s in per_part) == views
    total = state.read_stats(parts.online, PROJECT)["buyer_on_view"]
    assert (total.matched, total.scored, total.errors) == (views, views, 0)
    for user in (f"u{i}" for i in range(9)):
        owner = [w for w in workers if w._mine({"keys": {"user_id": user}}, "")]
        assert len(owner) == 1 and owner[0].states is not None
        assert owner[0].states.values(ACTIVITY, user, end) == reference.values("activity", user, end), user
    position = state.read_position(parts.online)
    assert position is not None and position.offset == parts.writer_log.end_offset()
    assert position.duplicates == 3
    status = state.status(parts.online, PROJECT, parts.writer_log.end_offset())
    assert status["triggers"][0]["matched"] == views and status["worker"]["lag_bytes"] == 0
