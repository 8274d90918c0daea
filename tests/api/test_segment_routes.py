"""Segment's HTTP Tracking API against a real `kawa serve`: what a Segment library sends lands in `events`."""

from __future__ import annotations

import base64
import uuid

import httpx

from tests.conftest import Server


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_track_page_identify_and_batch(server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    auth = basic(server.keys["write_key"])
    track = {
        "type": "track",
        "messageId": f"m-{tag}-1",
        "userId": f"user-{tag}",
        "event": f"Order Completed {tag}",
        "properties": {"revenue": 42.5, "product_id": "sku-1", "category": "shoes"},
        "timestamp": "2026-11-01T10:00:00Z",
    }
    r1 = httpx.post(server.url + "/v1/track", json=track, headers=auth)
    r2 = httpx.post(
        server.url + "/v1/p",
        json={
            "type": "page",
            "anonymousId": f"anon-{tag}",
            "name": "Home",
            "properties": {"url": "https://x/"},
            "writeKey": server.keys["write_key"],
        },
        headers={"Content-Type": "text/plain"},
    )
    batch = {
        "batch": [
            {
                "type": "identify",
                "userId": f"user-{tag}",
                "traits": {"plan": "pro"},
                "messageId": f"m-{tag}-2",
            },
            {
                "type": "track",
                "anonymousId": f"anon-{tag}",
                "event": f"Viewed {tag}",
                "messageId": f"m-{tag}-3",
            },
            {"type": "track", "event": "no user at all"},
        ],
        "context": {"library": {"name": "analytics-python"}},
    }
    r3 = httpx.post(server.url + "/v1/batch", json=batch, headers=auth)
    assert [r.status_code for r in (r1, r2, r3)] == [200, 200, 200], (r1.text, r2.text, r3.text)
    assert r1.json()["success"] is True
    assert (r3.json()["accepted"], r3.json()["rejected"]) == (2, 1)
    rows = server.wait_for(
        f"SELECT event_id, event_name, keys.user_id, keys.visitor_id, revenue, item_id FROM events "
        f"WHERE event_id LIKE 'm-{tag}-%' ORDER BY event_id",
        [
            [f"m-{tag}-1", f"Order Completed {tag}", f"user-{tag}", None, 42.5, "sku-1"],
            [f"m-{tag}-2", "identify", f"user-{tag}", None, None, None],
            [f"m-{tag}-3", f"Viewed {tag}", None, f"anon-{tag}", None, None],
        ],
    )
    assert len(rows) == 3 and rows[0][4] == 42.5
    pages = server.wait_for(f"SELECT count(*) FROM events WHERE keys.visitor_id = 'anon-{tag}'", [[2]])
    assert pages == [[2]]
    # batch-level context was merged into each message
    ctx = server.sql(f"SELECT properties->>'$.context.library.name' FROM events WHERE event_id = 'm-{tag}-3'")
    assert ctx == [["analytics-python"]]


def test_segment_calls_need_a_valid_write_key(server: Server) -> None:
    msg = {"type": "track", "userId": "u", "event": "x"}
    assert httpx.post(server.url + "/v1/track", json=msg).status_code == 401
    assert (
        httpx.post(server.url + "/v1/track", json=msg, headers=basic("kw_w_unknown000_x")).status_code == 401
    )
    assert (
        httpx.post(server.url + "/v1/track", json=msg, headers=basic(server.keys["read_key"])).status_code
        == 403
    )


def test_a_bad_segment_body_is_a_400(server: Server) -> None:
    auth = basic(server.keys["write_key"])
    r = httpx.post(server.url + "/v1/batch", json={"batch": "nope"}, headers=auth)
    assert r.status_code == 400 and "batch" in r.json()["error"]
    r = httpx.post(server.url + "/v1/track", json={"type": "track", "userId": "u"}, headers=auth)
    assert r.status_code == 400 and "event" in r.text
