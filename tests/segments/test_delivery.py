"""Segment runs over a small warehouse table: webhook batches with retries, exactly once per day across
reruns and crashes, CSV and Parquet exports, once per day or for good, and clear errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from kawa.pipelines import InProcessExecutor, RunLimitReached
from kawa.runtime import Runtime
from kawa.segments import DeliveryLog, find_segment, run_segment
from tests.segments.conftest import CART_SQL, NOW, Receiver, load_events, write_code

H = timedelta(hours=1)
# u1, u3, u4 left their carts over a day ago; u2 bought after adding; u5 added only an hour ago.
EVENTS = [
    ("u1", "cart_add", "i1", 30 * H),
    ("u2", "cart_add", "i2", 30 * H),
    ("u2", "purchase", "i2", 29 * H),
    ("u3", "cart_add", "i3", 26 * H),
    ("u4", "cart_add", "i4", 40 * H),
    ("u4", "view", "i4", 39 * H),
    ("u5", "cart_add", "i5", 1 * H),
]


def code(destination: str, once_per: str = "day", sql: str = CART_SQL, entity: str = "user_id") -> str:
    return (
        "from kawa.segments import Segment, Webhook, Export\n"
        f"cart_abandonment = Segment('cart_abandonment', '''{sql}''', destination={destination}, "
        f"once_per={once_per!r}, entity={entity!r})\n"
    )


def run(runtime: Runtime, day: date | None = None, now: datetime = NOW, *, force: bool = False):  # type: ignore[no-untyped-def]
    segment = find_segment(runtime.config, "cart_abandonment")
    return run_segment(runtime, segment, day=day, now=now, executor=InProcessExecutor(), force=force)


def test_webhook_batches_each_member_once_across_reruns_and_retries_a_503(
    runtime: Runtime, receiver: Receiver
) -> None:
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r}, batch_size=2, backoff_s=0.01)"))
    receiver.statuses = [503]  # the first POST fails, its batch is sent again
    first = run(runtime)
    assert first.succeeded, first.error
    assert first.metrics["new"] == 3 and first.metrics["delivered"] == 3 and first.metrics["batches"] == 2
    assert len(receiver.posts) == 3
    (h1, b1), (h2, b2) = receiver.posts[0], receiver.posts[1]
    assert h1["idempotency-key"] == h2["idempotency-key"] == b1["id"] and b1 == b2  # the same batch again
    assert sorted(receiver.members()) == ["u1", "u3", "u4"]
    assert {m["user_id"]: m["item_id"] for b in receiver.taken().values() for m in b["members"]} == {
        "u1": "i1",
        "u3": "i3",
        "u4": "i4",
    }
    assert all(
        b["segment"] == "cart_abandonment" and b["day"] == "2026-11-27" for b in receiver.taken().values()
    )

    # A rerun of the same day sends nothing; a new abandoner later that day is sent alone.
    again = run(runtime, now=NOW + H)
    assert again.succeeded and again.metrics["new"] == 0 and len(receiver.posts) == 3
    load_events(runtime, [*EVENTS, ("u6", "cart_add", "i6", 25 * H)])
    third = run(runtime, now=NOW + 2 * H)
    assert third.metrics["new"] == 1 and sorted(receiver.members()) == ["u1", "u3", "u4", "u6"]

    rows, total = DeliveryLog(runtime.metadata).entries("shop", segment="cart_abandonment")
    assert total == 4 and {r.status for r in rows} == {"delivered"}
    by_member = {r.member: r for r in rows}
    assert by_member["u6"].run_id == third.run_id and by_member["u1"].run_id == first.run_id
    assert by_member["u1"].destination == f"webhook http://127.0.0.1:{receiver.server.server_address[1]}"
    assert sorted(r.attempts for r in rows if r.run_id == first.run_id) == [1, 2, 2]
    # The log is in the warehouse too, for `kawa sql`.
    mirrored = runtime.warehouse().query(
        "SELECT member, status, attempts, attributes->>'item_id' AS item FROM segment_deliveries ORDER BY 1"
    )
    assert mirrored.to_pylist()[0] == {"member": "u1", "status": "delivered", "attempts": 2, "item": "i1"}
    assert mirrored.column("member").to_pylist() == ["u1", "u3", "u4", "u6"]


def test_a_refused_batch_fails_the_run_and_the_next_run_sends_the_same_batch(
    runtime: Runtime, receiver: Receiver
) -> None:
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r}, batch_size=2, attempts=2, backoff_s=0.01)"))
    receiver.statuses = [200, 400]  # the second batch is refused (a 4xx is not retried)
    failed = run(runtime)
    assert failed.status == "failed"
    assert "1 member(s) of 2026-11-27 not delivered" in (failed.error or "")
    assert "answered 400" in (failed.error or "")
    log = DeliveryLog(runtime.metadata)
    mirrored = runtime.warehouse().query("SELECT member, status FROM segment_deliveries ORDER BY 1")
    assert mirrored.column("status").to_pylist() == ["delivered", "delivered", "failed"]
    refused, _ = log.entries("shop", status="failed")
    assert [r.member for r in refused] == ["u4"] and "answered 400" in (refused[0].error or "")
    assert "s3cret" not in (refused[0].error or "")  # the log shows the origin, not the secret path

    fixed = run(runtime, now=NOW + H)
    assert fixed.succeeded and fixed.metrics["new"] == 0 and fixed.metrics["retried"] == 1
    assert receiver.posts[-1][1] == receiver.posts[1][1]  # the refused body, unchanged, same key
    assert sorted(receiver.members()) == ["u1", "u3", "u4"]
    assert log.entries("shop", status="delivered")[1] == 3


def test_batches_of_a_crashed_run_are_resent_under_their_key(runtime: Runtime, receiver: Receiver) -> None:
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r}, batch_size=10)"))
    log = DeliveryLog(runtime.metadata)
    # A run claimed u1 and u3 and died before it could record the answer (its run id is no live run).
    claim = log.claim(
        "shop",
        "cart_abandonment",
        date(2026, 11, 27),
        [("u1", '{"item_id":"i1"}'), ("u3", '{"item_id":"i3"}')],
        destination="webhook old",
        run_id="dead-run",
    )
    crashed = claim.batches[0].batch_id
    record = run(runtime)
    assert record.succeeded and record.metrics["retried"] == 2 and record.metrics["new"] == 1
    keys = [h["idempotency-key"] for h, _ in receiver.posts]
    assert keys[0] == crashed and len(set(keys)) == 2
    assert sorted(receiver.members()) == ["u1", "u3", "u4"]


def test_a_batch_another_live_run_holds_is_left_to_it(runtime: Runtime, receiver: Receiver) -> None:
    from kawa.pipelines import RunStore

    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r})"))
    other = RunStore(runtime.metadata).create(
        project="shop",
        pipeline="cart_abandonment",
        experiment="default",
        kind="manual",
        params={},
        logical_date=NOW,
        steps=[("delivery", {})],
    )
    RunStore(runtime.metadata).start(other.run_id)
    DeliveryLog(runtime.metadata).claim(
        "shop", "cart_abandonment", date(2026, 11, 27), [("u1", "{}")], destination="x", run_id=other.run_id
    )
    with pytest.raises(RunLimitReached, match="cart_abandonment' is already running"):
        run(runtime)  # one run of a segment at a time...
    record = run(runtime, force=True)  # ...unless forced, and then the other run keeps its batch
    assert record.succeeded and record.metrics["retried"] == 0
    assert sorted(receiver.members()) == ["u3", "u4"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_one_file_per_day_with_each_member_once(runtime: Runtime, fmt: str) -> None:
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Export('exports', format={fmt!r})"))
    assert run(runtime).succeeded
    load_events(runtime, [*EVENTS, ("u6", "cart_add", "i6", 25 * H)])
    second = run(runtime, now=NOW + 2 * H)
    assert second.succeeded and second.metrics["new"] == 1
    assert run(runtime, now=NOW + 3 * H).metrics["new"] == 0
    path = runtime.config.root + f"/exports/cart_abandonment-2026-11-27.{fmt}"
    table = pa_csv.read_csv(path) if fmt == "csv" else pq.read_table(path)
    assert table.column_names == ["user_id", "item_id", "carted_at"]
    assert sorted(table.column("user_id").to_pylist()) == ["u1", "u3", "u4", "u6"]
    assert table.num_rows == 4


def test_an_export_that_cannot_be_written_fails_the_run_and_leaves_no_temporary_file(
    runtime: Runtime,
) -> None:
    load_events(runtime, EVENTS)
    write_code(runtime, code("Export('exports')"))
    folder = Path(runtime.config.root) / "exports"
    (folder / "cart_abandonment-2026-11-27.csv" / "in-the-way").mkdir(parents=True)  # a folder there
    failed = run(runtime)
    assert failed.status == "failed" and "cannot write" in (failed.error or "")
    assert sorted(p.name for p in folder.iterdir()) == ["cart_abandonment-2026-11-27.csv"]
    assert DeliveryLog(runtime.metadata).entries("shop", status="failed")[1] == 3


def test_once_per_day_delivers_again_the_next_day_and_ever_does_not(
    runtime: Runtime, receiver: Receiver
) -> None:
    sql = "SELECT user_id FROM shop_events WHERE event_name = 'view' GROUP BY 1"
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r})", sql=sql))
    assert run(runtime, day=date(2026, 11, 26)).metrics["new"] == 1
    assert run(runtime, day=date(2026, 11, 27)).metrics["new"] == 1
    assert receiver.members() == ["u4", "u4"]
    days = sorted(r.day for r in DeliveryLog(runtime.metadata).entries("shop")[0])
    assert days == ["2026-11-26", "2026-11-27"]


def test_once_per_ever_delivers_a_member_once_for_good(runtime: Runtime, receiver: Receiver) -> None:
    sql = "SELECT user_id FROM shop_events WHERE event_name = 'view' GROUP BY 1"
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r})", once_per="ever", sql=sql))
    assert run(runtime, day=date(2026, 11, 26)).metrics["new"] == 1
    assert run(runtime, day=date(2026, 11, 27)).metrics["new"] == 0
    assert receiver.members() == ["u4"]


def test_once_per_ever_does_not_resend_on_a_past_day_what_a_later_day_delivered(
    runtime: Runtime, receiver: Receiver
) -> None:
    # u4 views (in the segment every day); u1 is in it on the 26th only.
    sql = (
        "SELECT user_id FROM shop_events WHERE event_name = 'view' "
        "OR (user_id = 'u1' AND $day = DATE '2026-11-26') GROUP BY 1 ORDER BY 1"
    )
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r})", once_per="ever", sql=sql))
    receiver.statuses = [400]
    assert run(runtime, day=date(2026, 11, 26)).status == "failed"  # u1 and u4 in one refused batch
    assert run(runtime, day=date(2026, 11, 27)).metrics["new"] == 1  # u4 again: never delivered yet
    # The 26th again: its batch goes out without u4, which the 27th delivered.
    rerun = run(runtime, day=date(2026, 11, 26))
    assert rerun.succeeded and rerun.metrics["retried"] == 1 and rerun.metrics["new"] == 0
    assert [body["members"] for _, body in receiver.posts] == [
        [{"user_id": "u1"}, {"user_id": "u4"}],
        [{"user_id": "u4"}],
        [{"user_id": "u1"}],
    ]
    assert receiver.posts[2][0]["idempotency-key"] == receiver.posts[0][0]["idempotency-key"]
    rows = DeliveryLog(runtime.metadata).entries("shop")[0]
    assert sorted((r.day, r.member, r.status) for r in rows) == [
        ("2026-11-26", "u1", "delivered"),
        ("2026-11-26", "u4", "failed"),
        ("2026-11-27", "u4", "delivered"),
    ]


def test_a_past_day_runs_as_that_day_ended(runtime: Runtime, receiver: Receiver) -> None:
    load_events(runtime, [*EVENTS, ("u7", "cart_add", "i7", 72 * H)])
    write_code(runtime, code(f"Webhook({receiver.url!r})"))
    # At the end of 2026-11-25 (36 h before NOW) only u7's cart (72 h before NOW) was a day old.
    record = run(runtime, day=date(2026, 11, 25))
    assert record.logical_date == datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC)
    assert receiver.members() == ["u7"] and receiver.posts[0][1]["day"] == "2026-11-25"


def test_sql_that_fails_or_lacks_the_entity_fails_the_run_saying_why(
    runtime: Runtime, receiver: Receiver
) -> None:
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r})", sql="SELECT user_id, nope FROM shop_events"))
    record = run(runtime)
    assert record.status == "failed"
    assert "segment 'cart_abandonment': its SQL failed" in (record.error or "")
    assert "nope" in (record.error or "")


def test_a_missing_entity_column_names_the_columns(runtime: Runtime, receiver: Receiver) -> None:
    load_events(runtime, EVENTS)
    write_code(runtime, code(f"Webhook({receiver.url!r})", sql="SELECT user_id AS uid FROM shop_events"))
    record = run(runtime)
    assert record.status == "failed"
    assert "its SQL returns no column 'user_id' (it returns uid)" in (record.error or "")
    assert receiver.posts == [] and DeliveryLog(runtime.metadata).entries("shop")[1] == 0


def test_rows_without_a_member_id_are_left_out_and_the_rest_delivered(
    runtime: Runtime, receiver: Receiver
) -> None:
    sql = "SELECT * FROM (VALUES ('u1'), (NULL), (''), ('u2'), ('u1')) AS t(user_id)"
    write_code(runtime, code(f"Webhook({receiver.url!r})", sql=sql))
    record = run(runtime)
    assert record.succeeded and record.metrics["members"] == 2
    assert sorted(receiver.members()) == ["u1", "u2"]
