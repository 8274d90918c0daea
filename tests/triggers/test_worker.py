"""The trigger worker over a real event log, LMDB store and registry, in one process."""

from __future__ import annotations

import time

import msgspec
import pytest

from kawa.features import USER, FeatureView, agg
from kawa.features import namespace as features_ns
from kawa.serving.store import Prediction, PredictionStore, now_rfc3339, realtime_namespace
from kawa.triggers import Trigger, state
from kawa.triggers._scoring import RESOLVE_EVERY_S
from kawa.triggers.worker import CONSUMER
from tests.triggers.conftest import PROJECT, Parts, buyer_bundle, drain, view

BUYER = Trigger("buyer_on_view", on={"event_name": "view"}, key="keys.user_id", model="buyer")


def realtime(parts: Parts, entity: str, model: str = "buyer") -> Prediction | None:
    raw = parts.online.get(realtime_namespace(PROJECT, model), entity)
    return None if raw is None else msgspec.json.decode(raw, type=Prediction)


def test_matching_events_are_scored_and_stored_under_their_key(parts: Parts) -> None:
    parts.register(buyer_bundle())
    worker = parts.worker([BUYER])
    parts.send([view("e1", "u1", 60.0), {"event_name": "cart_add", "keys": {"user_id": "u2"}}])
    parts.send([view("e2", "u2", 21.0, media="TV"), view("e3", 7, 64.0)], project="other")
    drain(worker)
    u1 = realtime(parts, "u1")
    assert u1 is not None and u1.score > 0.5
    assert (u1.model_version, u1.source, u1.event_id, u1.trigger) == (1, "realtime", "e1", "buyer_on_view")
    assert realtime(parts, "u2") is None  # cart_add does not match; the view is another project's
    parts.send([view("e4", 42, 21.0)])  # an integer id is the text "42", as in the lake
    drain(worker)
    low = realtime(parts, "42")
    assert low is not None and low.score < 0.5
    stats = state.read_stats(parts.online, PROJECT)["buyer_on_view"]
    assert (stats.matched, stats.scored, stats.errors, stats.last_version) == (2, 2, 0, 1)
    assert stats.definition["on"] == {"event_name": "view"}
    assert sum(stats.latency_counts) == 1  # measured after each write, stored with the next one
    position = state.read_position(parts.online)
    assert position is not None and position.offset == parts.writer_log.end_offset()


def test_the_newest_of_batch_and_realtime_is_read(parts: Parts) -> None:
    parts.register(buyer_bundle())
    store = PredictionStore(parts.online)
    old = Prediction(score=0.1, model_version=1, computed_at="2000-01-01T00:00:00.000Z")
    store.put_many(PROJECT, "buyer", [("u1", old), ("u9", old)])
    worker = parts.worker([BUYER])
    parts.send([view("e1", "u1", 60.0)])
    drain(worker)
    newest = store.get(PROJECT, "buyer", "u1")
    assert newest is not None and (newest.source, newest.event_id) == ("realtime", "e1")
    assert store.get(PROJECT, "buyer", "u9") == old
    later = Prediction(score=0.2, model_version=1, computed_at="2999-01-01T00:00:00.000Z")
    store.put_many(PROJECT, "buyer", [("u1", later)])  # a batch run after the event wins again
    assert store.get(PROJECT, "buyer", "u1") == later
    assert msgspec.json.decode(store.get_raw(PROJECT, "buyer", "u1") or b"")["source"] == "batch"


def test_a_restarted_worker_resumes_at_its_stored_offset(parts: Parts) -> None:
    parts.register(buyer_bundle())
    first = parts.worker([BUYER])
    parts.send([view(f"a{i}", f"u{i}", 50.0) for i in range(5)])
    drain(first)
    parts.send([view(f"b{i}", f"u{i}", 50.0) for i in range(3)])
    second = parts.worker([BUYER])  # a new process: everything it knows comes from the stores
    assert second.offset == first.offset
    drain(second)
    stats = state.read_stats(parts.online, PROJECT)["buyer_on_view"]
    assert (stats.matched, stats.scored) == (8, 8)
    second.checkpoint()
    # The log must keep what a restart reads again: here the duplicate window, from the first record.
    assert second.log.committed(CONSUMER) == second.position.dedupe_from == 0


def test_a_new_worker_starts_at_the_end_of_the_log(parts: Parts) -> None:
    parts.register(buyer_bundle())
    parts.send([view("old", "u1", 50.0)])  # sent before any trigger existed
    worker = parts.worker([BUYER])
    parts.send([view("new", "u2", 50.0)])
    drain(worker)
    assert realtime(parts, "u1") is None
    assert realtime(parts, "u2") is not None


def test_without_triggers_the_worker_keeps_up_without_reading(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle = parts.worker([])
    monkeypatch.setattr(idle.log, "read", None)  # it must not be called
    parts.send([view("e1", "u1", 50.0)])
    assert idle.step() and not idle.step()
    idle.flush()
    parts.register(buyer_bundle())
    monkeypatch.undo()
    later = parts.worker([BUYER])  # a trigger added later starts where the idle worker got to
    parts.send([view("e2", "u2", 50.0)])
    drain(later)
    assert realtime(parts, "u1") is None and realtime(parts, "u2") is not None


def test_repeated_event_ids_are_scored_once_also_across_a_restart(parts: Parts) -> None:
    parts.register(buyer_bundle())
    worker = parts.worker([BUYER])
    parts.send([view("e1", "u1", 50.0), view("e1", "u1", 50.0)])  # twice in one request
    parts.send([view("e1", "u1", 50.0), view("e2", "u2", 50.0)])  # and again in another
    drain(worker)
    parts.send([view("e2", "u2", 50.0), view("e3", "u3", 50.0)])  # a client retry after a restart
    drain(parts.worker([BUYER]))
    stats = state.read_stats(parts.online, PROJECT)["buyer_on_view"]
    assert (stats.matched, stats.scored) == (3, 3)
    position = state.read_position(parts.online)
    assert position is not None and position.duplicates == 3


def test_a_batch_stopped_early_leaves_the_rest_to_the_next_also_across_a_crash(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kawa.triggers import worker as worker_module

    # Out of time at once: every batch stops after the first record that gave it hits.
    monkeypatch.setattr(worker_module, "STEP_BUDGET_S", -1.0)
    parts.register(buyer_bundle())
    worker = parts.worker([BUYER])
    for i in range(6):
        parts.send([view(f"e{i}", f"u{i}", 50.0), {"event_name": "cart_add", "keys": {"user_id": f"u{i}"}}])
    assert worker.step() and worker.step()  # one log read: the records of u2..u5 are left over
    assert [realtime(parts, f"u{i}") is not None for i in range(4)] == [True, True, False, False]
    drain(parts.worker([BUYER]))  # a crash: what the old worker had read but not processed is not lost
    assert all(realtime(parts, f"u{i}") is not None for i in range(6))
    stats = state.read_stats(parts.online, PROJECT)["buyer_on_view"]
    assert (stats.matched, stats.scored, stats.errors) == (6, 6, 0)
    position = state.read_position(parts.online)
    assert position is not None and (position.events, position.duplicates) == (12, 0)


def test_failures_become_error_records_and_the_worker_goes_on(parts: Parts) -> None:
    parts.register(buyer_bundle(strict=True))
    keyed = Trigger("by_session", on={"event_name": "view"}, key="keys.session_id", model="buyer")
    missing = Trigger("nobody", on={"event_name": "view"}, key="keys.user_id", model="not_registered")
    worker = parts.worker([BUYER, keyed, missing])
    parts.send(
        [
            view("ok1", "u1", 60.0, media="TV"),
            view("bad", "u2", 60.0, media="Fax"),  # a category the model refuses
            view("ok2", "u3", 20.0, media="Radio", keys={"user_id": "u3", "session_id": "s3"}),
        ]
        + [view(f"many{i}", f"m{i}", 30.0 + i, media="Fax" if i == 2 else "TV") for i in range(5)]
    )
    drain(worker)
    stats = state.read_stats(parts.online, PROJECT)
    assert (stats["buyer_on_view"].scored, stats["buyer_on_view"].errors) == (6, 2)
    assert (stats["by_session"].scored, stats["by_session"].errors) == (1, 7)
    assert (stats["nobody"].scored, stats["nobody"].errors) == (0, 8)
    errors = state.errors(parts.online, PROJECT, "buyer_on_view")
    assert sorted(e["event_id"] for e in errors) == ["bad", "many2"]
    assert all(e["stage"] == "model" and "media" in e["error"] and e["model_version"] == 1 for e in errors)
    key_errors = state.errors(parts.online, PROJECT, "by_session")
    assert {e["stage"] for e in key_errors} == {"key"} and len(key_errors) == 7
    assert "keys.session_id" in next(e["error"] for e in key_errors if e["stage"] == "key")
    assert "no model 'not_registered'" in state.errors(parts.online, PROJECT, "nobody", limit=1)[0]["error"]
    assert realtime(parts, "m3") is not None and realtime(parts, "m2") is None
    parts.register(buyer_bundle(), name="not_registered")  # fixed: the next events are scored
    parts.send([view("later", "u9", 60.0)])
    drain(worker)
    assert state.read_stats(parts.online, PROJECT)["nobody"].scored == 1


def test_the_error_ring_keeps_the_newest(parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "ERROR_RING", 4)
    worker = parts.worker([BUYER])  # no model registered: every event is an error
    parts.send([view(f"e{i}", "u1", 50.0) for i in range(10)])
    drain(worker)
    found = state.errors(parts.online, PROJECT, "buyer_on_view")
    assert [e["seq"] for e in found] == [10, 9, 8, 7]


def test_promotion_switches_versions_between_batches(parts: Parts) -> None:
    parts.register(buyer_bundle())
    flipped = parts.register(buyer_bundle(flip=True), promote=False)
    worker = parts.worker([BUYER])
    parts.send([view("e1", "u1", 60.0)])
    drain(worker)
    parts.registry.promote(PROJECT, "buyer", flipped)
    time.sleep(RESOLVE_EVERY_S)  # the worker asks the registry again at most this often
    parts.send([view("e2", "u1", 60.0)])
    drain(worker)
    after = realtime(parts, "u1")
    assert after is not None and after.model_version == 2 and after.score < 0.5


def test_batch_features_of_the_entity_join_the_row(parts: Parts) -> None:
    spend = FeatureView("spend", USER, {"price": agg.max("price", window="30d")})
    parts.register(buyer_bundle())
    # The model reads `price`; the event has none, so the score depends on the batch feature.
    trigger = Trigger("with_spend", on={"event_name": "check"}, key="keys.user_id", model="buyer",
                      batch_features=[spend])  # fmt: skip
    # As `kawa features materialize` writes them.
    parts.online.put_json(
        features_ns(PROJECT, "spend"),
        {"rich": {"price": 65.0, "_as_of": now_rfc3339()}, "poor": {"price": 20.0}},
    )
    worker = parts.worker([trigger])
    parts.send([{"event_name": "check", "keys": {"user_id": u}} for u in ("rich", "poor")])
    drain(worker)
    rich, poor = realtime(parts, "rich"), realtime(parts, "poor")
    assert rich is not None and poor is not None and rich.score > 0.5 > poor.score


def test_streaming_features_as_of_the_event_survive_a_restart(parts: Parts) -> None:
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression

    from kawa.models import Bundle
    from kawa.streaming import StreamView, stream

    counts = list(range(1, 7)) * 20
    table = pa.table({"views_5m": counts, "bought": [int(c >= 3) for c in counts]})
    parts.register(Bundle.fit(table, label="bought", estimator=LogisticRegression()), name="intent")
    activity = StreamView(
        "activity",
        key="keys.session_id",
        features={"views_5m": stream.count(where={"event_name": "view"}, window="5m")},
    )
    trigger = Trigger("intent", on={"event_name": "view"}, key="keys.session_id", model="intent",
                      features=[activity])  # fmt: skip

    def event(i: int, session: str, name: str = "view") -> dict[str, object]:
        keys = {"user_id": "u", "session_id": session}
        return {"event_name": name, "event_id": f"{session}-{i}", "keys": keys,
                "sync_date": f"2026-01-01T00:00:0{i}Z"}  # fmt: skip

    worker = parts.worker([trigger])
    parts.send([event(1, "s1"), event(2, "s1", "scroll"), event(3, "s2")])
    drain(worker)
    first = realtime(parts, "s1", "intent")
    assert first is not None and first.score < 0.5  # one view so far
    parts.send([event(4, "s1"), event(5, "s1")])  # one request: each is scored as of itself
    drain(worker)
    third = realtime(parts, "s1", "intent")
    assert third is not None and third.event_id == "s1-5" and third.score > 0.5
    parts.send([event(6, "s2"), event(7, "s2")])
    restarted = parts.worker([trigger])  # states come back from the store: s2 has 3 views now
    drain(restarted)
    s2 = realtime(parts, "s2", "intent")
    assert s2 is not None and s2.event_id == "s2-7" and s2.score > 0.5


def test_stream_states_after_crashes_equal_one_uninterrupted_engine(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    from kawa.streaming import StreamEngine, StreamView, stream
    from kawa.triggers import _states

    # Small rounds: each crash lands with some shards stored after it and some before.
    monkeypatch.setattr(_states, "ROUND_EVENTS", 150)
    monkeypatch.setattr(_states, "ROUND_S", 3600.0)
    features = {
        "views": stream.count(where={"event_name": "view"}, window="1h"),
        "spend": stream.sum("price", window="24h"),
        "pages": stream.last_n("page", 3),
        "since": stream.seconds_since_previous(),
    }
    activity = StreamView("activity", key="keys.user_id", features=features)
    trigger = Trigger("t", on={"event_name": "buy"}, key="keys.user_id", model="m", features=[activity])
    reference = StreamEngine([activity])
    rng = random.Random(3)
    worker = parts.worker([trigger])
    sent = 0
    for chunk in range(12):
        events = []
        for _ in range(100):
            sent += 1
            t = 1_767_225_600 + sent  # one second apart
            event = {
                "event_name": rng.choice(["view", "view", "cart_add"]),
                "event_id": f"e{sent}",
                "keys": {"user_id": f"u{rng.randrange(40)}"},
                "page": f"/p{rng.randrange(9)}",
                "price": float(rng.randrange(1, 50)),
                "sync_date": f"{t}",
            }
            events.append(event)
        for event in events:
            event["sync_date"] = _iso(int(event["sync_date"]))
        parts.send(events[:60])
        parts.send(events[60:] + events[:5])  # a client retry of five: applied once
        for event in events:
            reference.apply(event, _us(event["sync_date"]))
        if chunk % 3 == 2:
            worker = parts.worker([trigger])  # a crash: the old worker's memory is gone, unflushed
        while worker.step():
            pass
    worker = parts.worker([trigger])
    end = _us(_iso(1_767_225_600 + sent))
    assert worker.states is not None
    for user in (f"u{i}" for i in range(40)):
        assert worker.states.values(activity, user, end) == reference.values("activity", user, end), user


def _iso(seconds: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _us(stamp: str) -> int:
    from kawa.events.validate import parse_time

    return parse_time(stamp)


def test_a_stopped_worker_shows_its_triggers_as_not_active() -> None:
    from kawa.stores.online.memory import MemoryOnlineStore

    online = MemoryOnlineStore()
    position = state.Position(offset=10, project="shop", triggers=["on_view"])
    stats = state.TriggerStats(definition={"name": "on_view"}, matched=3, scored=3)
    online.put_many(state.WORKER_NS, {state.POSITION: msgspec.json.encode(position)})
    online.put_many(state.stats_ns("shop"), {"on_view": msgspec.json.encode(stats)})
    alive = state.status(online, "shop", 10, running=True)
    assert [t["active"] for t in alive["triggers"]] == [True]
    stopped = state.status(online, "shop", 10, running=False)
    assert [t["active"] for t in stopped["triggers"]] == [False]
    assert stopped["triggers"][0]["scored"] == 3 and stopped["worker"]["running"] is False
