"""A cart-abandonment segment end to end: events sent to a real `kawa serve`, `kawa segments run` twice
for the same day delivering to a local webhook that fails once, the log through the CLI and the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Server, kawa
from tests.segments.conftest import Receiver

pytestmark = pytest.mark.slow

CART = """
SELECT c.keys.user_id AS user_id, arg_max(c.item_id, c.sync_date) AS item_id
FROM events c
WHERE c.event_name = 'cart_add' AND c.sync_date <= $logical_date - INTERVAL 24 HOURS
  AND NOT EXISTS (
    SELECT 1 FROM events p
    WHERE p.event_name = 'purchase' AND p.keys.user_id = c.keys.user_id AND p.sync_date >= c.sync_date
  )
GROUP BY 1
"""

CODE = """
from kawa.segments import Segment, Webhook

cart_abandonment = Segment(
    "cart_abandonment", '''{cart}''',
    destination=Webhook({url!r}, batch_size=1, backoff_s=0.05),
)
broken = Segment(
    "broken", "SELECT keys.user_id AS user_id, no_such_column FROM events", destination=Webhook({url!r})
)
no_entity = Segment("no_entity", "SELECT keys.session_id AS sid FROM events", destination=Webhook({url!r}))
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def shop(server: Server, receiver: Receiver) -> Server:
    now = datetime.now(UTC)

    def event(name: str, user: str, item: str, hours_ago: float) -> dict[str, object]:
        when = (now - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"event_name": name, "sync_date": when, "item_id": item, "keys": {"user_id": user}}

    events = [
        event("cart_add", "u1", "i1", 30),
        event("cart_add", "u2", "i2", 30),
        event("purchase", "u2", "i2", 29),
        event("cart_add", "u3", "i3", 2),  # too recent
        event("cart_add", "u4", "i4", 48),
        event("view", "u4", "i4", 47),
    ]
    with server.client() as client:
        assert client.post("/v1/events", json=events).json()["accepted"] == len(events)
    assert server.wait_for("SELECT count(*) FROM events", [[len(events)]], timeout=30) == [[len(events)]]
    (server.root / "pipelines.py").write_text(CODE.format(cart=CART, url=receiver.url))
    return server


def test_cart_abandoners_are_delivered_once_across_two_runs_of_the_day(
    shop: Server, receiver: Receiver
) -> None:
    receiver.statuses = [503]
    first = kawa("segments", "run", "cart_abandonment", cwd=shop.root)
    assert "2 members, 2 new, 0 retried, 2 delivered" in first.stdout
    second = kawa("segments", "run", "cart_abandonment", cwd=shop.root)
    assert "2 members, 0 new, 0 retried, 0 delivered" in second.stdout
    # Three POSTs: the first answered 503 and sent again under the same key, then the second batch.
    assert len(receiver.posts) == 3
    assert receiver.posts[0] == receiver.posts[1]
    assert sorted(receiver.members()) == ["u1", "u4"]

    log = kawa("segments", "log", "cart_abandonment", cwd=shop.root).stdout
    assert "u1" in log and "u4" in log and log.count("delivered") >= 2 and "2 of 2 deliveries" in log
    as_json = json.loads(kawa("segments", "log", "--json", cwd=shop.root).stdout)
    assert as_json["total"] == 2
    assert {d["batch_id"] for d in as_json["deliveries"]} == set(receiver.taken())
    listed = kawa("segments", "list", cwd=shop.root).stdout
    assert "cart_abandonment" in listed and "webhook http://127.0.0.1" in listed


def test_the_delivery_log_through_the_api(shop: Server, receiver: Receiver) -> None:
    if not receiver.posts:
        kawa("segments", "run", "cart_abandonment", cwd=shop.root)
    with shop.client("read") as client:
        listed = client.get("/v1/segments").json()["segments"]
        found = client.get("/v1/segments/cart_abandonment/deliveries")
        failed = client.get("/v1/segments/cart_abandonment/deliveries", params={"status": "failed"})
        bad = client.get("/v1/segments/cart_abandonment/deliveries", params={"status": "sent"})
        unknown = client.get("/v1/segments/nope/deliveries")
    by_name = {s["name"]: s for s in listed}
    assert by_name["cart_abandonment"]["deliveries"]["delivered"] == 2
    assert by_name["cart_abandonment"]["entity"] == "user_id" and by_name["broken"]["in_code"]
    assert found.status_code == 200 and found.headers["x-total-count"] == "2"
    rows = found.json()["deliveries"]
    assert sorted(r["member"] for r in rows) == ["u1", "u4"]
    assert {r["status"] for r in rows} == {"delivered"} and all(r["delivered_at"] for r in rows)
    assert {r["item_id"] for r in (r["attributes"] for r in rows)} == {"i1", "i4"}
    assert failed.json()["total"] == 0
    assert bad.status_code == 400 and "not one of pending, delivered, failed" in bad.json()["error"]
    assert unknown.status_code == 404
    with shop.client("write") as client:
        assert client.get("/v1/segments").status_code == 403
    # And in the warehouse, for SQL.
    assert shop.sql("SELECT member FROM segment_deliveries WHERE status = 'delivered' ORDER BY 1") == [
        ["u1"],
        ["u4"],
    ]


def test_bad_sql_and_a_missing_entity_fail_with_a_clear_error(shop: Server) -> None:
    broken = kawa("segments", "run", "broken", "--in-process", cwd=shop.root, check=False)
    assert broken.returncode == 1
    assert "segment 'broken': its SQL failed" in broken.stderr and "no_such_column" in broken.stderr
    missing = kawa("segments", "run", "no_entity", "--in-process", cwd=shop.root, check=False)
    assert missing.returncode == 1
    assert "its SQL returns no column 'user_id' (it returns sid)" in missing.stderr
    unknown = kawa("segments", "run", "nope", cwd=shop.root, check=False)
    assert unknown.returncode == 1 and "no segment named 'nope'" in unknown.stderr
