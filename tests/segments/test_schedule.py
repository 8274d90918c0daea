"""A segment with a schedule is run by kawa's scheduler like any pipeline, each member sent once a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kawa.pipelines import RunStore, project_pipelines
from kawa.runtime import Runtime
from kawa.schedule import ManualClock
from kawa.schedule.scheduler import Scheduler
from tests.segments.conftest import Receiver, write_code

T0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


def test_the_scheduler_runs_a_segment_and_sends_each_member_once_that_day(
    runtime: Runtime, receiver: Receiver
) -> None:
    write_code(
        runtime,
        "from kawa.schedule import Schedule\n"
        "from kawa.segments import Segment, Webhook\n"
        "vip = Segment('vip', \"SELECT * FROM (VALUES ('u1', 3), ('u2', 5)) AS t(user_id, orders)\",\n"
        f"    destination=Webhook({receiver.url!r}),\n"
        "    schedule=Schedule(start='2026-01-01T01:00', every='1h', timezone='Asia/Tokyo'))\n",
    )
    clock = ManualClock(T0 - timedelta(hours=9))  # 2026-01-01 00:00 in Tokyo
    scheduler = Scheduler(runtime, lambda: project_pipelines(runtime.config), clock=clock)
    scheduler.tick()
    for hours in (1, 2):
        clock.set(T0 - timedelta(hours=9 - hours))
        scheduler.tick()
    runs = list(reversed(RunStore(runtime.metadata).list("shop", pipeline="vip")))
    assert [(r.kind, r.status, r.metrics["new"]) for r in runs] == [
        ("scheduled", "succeeded", 2.0),
        ("scheduled", "succeeded", 0.0),
    ]
    assert sorted(receiver.members()) == ["u1", "u2"] and len(receiver.posts) == 1
    body = receiver.posts[0][1]
    # 01:00 in Tokyo is still 2025-12-31 in UTC: the day is the schedule's.
    assert body["day"] == "2026-01-01" and body["members"][0] == {"user_id": "u1", "orders": 3}
