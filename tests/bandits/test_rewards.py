"""The reward worker: events carrying a decision_id, and purchases within the window, reward once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.bandits.conftest import PROJECT, Parts, drain, iso

pytest_plugins = ["tests.services.postgres"]


def test_an_event_with_the_decision_id_rewards_its_arm_once(parts: Parts) -> None:
    worker = parts.worker()
    decision = parts.decide("ranking", "u1")
    other = parts.decide("ranking", "u2")
    assert parts.counts("ranking") == {
        arm: (sum(d.arm == arm for d in (decision, other)), 0) for arm in {decision.arm, other.arm}
    }
    click = {"event_id": "c1", "event_name": "click", "decision_id": decision.decision_id}
    parts.send(click)
    drain(worker)
    assert parts.counts("ranking")[decision.arm][1] == 1
    # The same event again (a client retry), and another click on the same decision: still one reward.
    parts.send(click, {"event_id": "c2", "event_name": "click", "decision_id": decision.decision_id})
    drain(worker)
    assert sum(r for _, r in parts.counts("ranking").values()) == 1
    (stored,) = [
        d for d in parts.store.decisions(PROJECT, "ranking") if d.decision_id == decision.decision_id
    ]
    assert (stored.reward_event_id, stored.reward_kind) == ("c1", "decision_id")
    assert stored.rewarded_at is not None and stored.user_id == "u1"


def test_an_event_id_longer_than_the_column_is_kept_hashed(parts: Parts) -> None:
    worker = parts.worker()
    decision = parts.decide("ranking")
    long_id = "e" * 300
    click = {"event_id": long_id, "event_name": "click", "decision_id": decision.decision_id}
    parts.send(click)
    drain(worker)
    (stored,) = parts.store.decisions(PROJECT, "ranking")
    assert stored.reward_event_id is not None and len(stored.reward_event_id) == 34
    assert parts.counts("ranking")[decision.arm] == (1, 1)


def test_only_events_matching_reward_on_count(parts: Parts) -> None:
    worker = parts.worker()
    decision = parts.decide("ranking")
    parts.send({"event_id": "v1", "event_name": "view", "decision_id": decision.decision_id})
    drain(worker)
    assert parts.counts("ranking")[decision.arm] == (1, 0)
    # Segment's track calls carry it inside properties.
    parts.send({"event_id": "c1", "event_name": "click", "properties": {"decision_id": decision.decision_id}})
    drain(worker)
    assert parts.counts("ranking")[decision.arm] == (1, 1)


def test_unknown_ids_other_projects_and_stale_decisions_earn_nothing(parts: Parts) -> None:
    worker = parts.worker()
    stale = parts.decide("ranking", at=datetime.now(UTC) - timedelta(hours=25))
    fresh = parts.decide("ranking")
    parts.send(
        {"event_id": "c1", "event_name": "click", "decision_id": "0" * 24},
        {"event_id": "c2", "event_name": "click", "decision_id": stale.decision_id},
        {"event_id": "c3", "event_name": "click", "decision_id": 12345},
    )
    parts.send({"event_id": "c4", "event_name": "click", "decision_id": fresh.decision_id}, project="other")
    drain(worker)
    assert sum(r for _, r in parts.counts("ranking").values()) == 0
    assert worker.rewarded == 0


def test_a_purchase_rewards_the_users_newest_open_decision_within_the_window(parts: Parts) -> None:
    worker = parts.worker()
    now = datetime.now(UTC)
    too_old = parts.decide("coupon", "u1", at=now - timedelta(hours=25))
    earlier = parts.decide("coupon", "u1", at=now - timedelta(hours=2))
    newest = parts.decide("coupon", "u1", at=now - timedelta(hours=1))
    someone_else = parts.decide("coupon", "u2", at=now - timedelta(hours=1))
    after = parts.decide("coupon", "u1", at=now + timedelta(minutes=5))  # made after the purchase
    buy = {"event_name": "purchase", "keys": {"user_id": "u1"}, "timestamp": iso(now)}
    parts.send({**buy, "event_id": "p1"})
    drain(worker)
    rewarded = {d.decision_id: d for d in parts.store.decisions(PROJECT, "coupon") if d.rewarded_at}
    assert list(rewarded) == [newest.decision_id]
    assert rewarded[newest.decision_id].reward_kind == "purchase"
    # The same purchase sent again rewards nothing more; a second purchase takes the next open decision.
    parts.send({**buy, "event_id": "p1"}, {**buy, "event_id": "p2"})
    drain(worker)
    rewarded = {d.decision_id: d for d in parts.store.decisions(PROJECT, "coupon") if d.rewarded_at}
    assert set(rewarded) == {newest.decision_id, earlier.decision_id}
    # A third purchase finds only a decision older than the window: nothing.
    parts.send({**buy, "event_id": "p3"}, {"event_name": "view", "keys": {"user_id": "u1"}, "event_id": "v"})
    drain(worker)
    assert worker.rewarded == 2
    assert too_old.decision_id not in rewarded and after.decision_id not in rewarded
    assert someone_else.decision_id not in rewarded
    total = parts.counts("coupon")
    assert sum(p for p, _ in total.values()) == 5 and sum(r for _, r in total.values()) == 2


def test_a_restarted_worker_reads_again_and_counts_nothing_twice(parts: Parts) -> None:
    first = parts.worker()
    decisions = [parts.decide("ranking", f"u{i}") for i in range(5)]
    parts.send(
        *[
            {"event_id": f"c{i}", "event_name": "click", "decision_id": d.decision_id}
            for i, d in enumerate(decisions)
        ]
    )
    buyer = parts.decide("coupon", "u9")
    parts.send({"event_id": "p1", "event_name": "purchase", "keys": {"user_id": "u9"}})
    drain(first)
    assert first.rewarded == 6
    # Killed before it committed its offset: the next worker reads the whole log again.
    second = parts.worker()
    assert second.offset == 0
    drain(second)
    assert second.rewarded == 0
    assert sum(r for _, r in parts.counts("ranking").values()) == 5
    assert parts.counts("coupon")[buyer.arm] == (1, 1)
    # A clean stop commits; the next worker goes on from there.
    second.checkpoint()
    third = parts.worker()
    assert third.offset == second.offset > 0


def test_a_first_start_without_decisions_begins_at_the_end_of_the_log(parts: Parts) -> None:
    parts.send({"event_id": "old", "event_name": "click"})
    loaded = []
    worker = parts.worker()
    worker.bandits = lambda: loaded.append(1) or parts.bandits  # type: ignore[func-returns-value]
    assert worker.offset == parts.writer_log.end_offset() > 0
    assert not worker.step()
    # Events while no decision exists are passed over without loading the declarations.
    parts.send({"event_id": "c0", "event_name": "click", "decision_id": "0" * 24})
    assert worker.step() and not loaded
    decision = parts.decide("ranking")
    parts.send({"event_id": "c1", "event_name": "click", "decision_id": decision.decision_id})
    drain(worker)
    assert loaded and parts.counts("ranking")[decision.arm] == (1, 1)


def test_declarations_that_fail_to_load_hold_the_worker_until_they_are_fixed(
    parts: Parts, tmp_path: Path
) -> None:
    from kawa.bandits import DeclaredBandits
    from kawa.config import Config

    decision = parts.decide("ranking")
    project = tmp_path / "project"
    project.mkdir()
    declarations = project / "bandits.yaml"
    declarations.write_text("bandits:\n  - name: ranking\n    arms: [bm25]\n")  # one arm: refused
    worker = parts.worker()
    worker.bandits = DeclaredBandits(Config(project=PROJECT, root=str(project)))
    parts.send({"event_id": "c1", "event_name": "click", "decision_id": decision.decision_id})
    start = worker.offset
    assert not worker.step() and worker.offset == start  # nothing passed over while they are broken
    declarations.write_text(
        "bandits:\n  - name: ranking\n    arms: [bm25, learned]\n    reward_on: {event_name: click}\n"
    )
    drain(worker)
    assert worker.offset > start and parts.counts("ranking")[decision.arm] == (1, 1)
