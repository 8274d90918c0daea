"""POST /v1/events through a real `kawa serve`: formats, keys, bad input, and the warehouse view of it."""

from __future__ import annotations

import base64
import gzip
import json
import uuid

import httpx
import pytest

from tests.conftest import Server


def marker() -> str:
    return "t_" + uuid.uuid4().hex[:10]


def ev(name: str, **extra: object) -> dict[str, object]:
    return {"event_name": name, "keys": {"user_id": "u1", "session_id": "s1"}, **extra}


def count(server: Server, name: str, expected: int) -> int:
    rows = server.wait_for(f"SELECT count(*) FROM events WHERE event_name = '{name}'", [[expected]])
    return int(rows[0][0])


def test_single_object_array_and_ndjson_are_accepted(server: Server) -> None:
    name = marker()
    with server.client() as c:
        r1 = c.post("/v1/events", json=ev(name, page="/a"))
        r2 = c.post("/v1/events", json=[ev(name), ev(name, price=9.5)])
        lines = "\n".join(json.dumps(ev(name, item_id=i)) for i in range(3))
        r3 = c.post("/v1/events", content=lines, headers={"Content-Type": "application/x-ndjson"})
    assert [r.status_code for r in (r1, r2, r3)] == [200, 200, 200]
    assert [r.json()["accepted"] for r in (r1, r2, r3)] == [1, 2, 3]
    assert count(server, name, 6) == 6


def test_gzip_bodies_are_accepted(server: Server) -> None:
    name = marker()
    body = gzip.compress("\n".join(json.dumps(ev(name)) for _ in range(50)).encode())
    with server.client() as c:
        r = c.post(
            "/v1/events",
            content=body,
            headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
        )
    assert r.status_code == 200, r.text
    assert count(server, name, 50) == 50


def test_fields_land_in_typed_columns_and_properties(server: Server) -> None:
    name = marker()
    event = {
        "event_name": name,
        "event_id": name + "-1",
        "sync_date": "2020-11-29 23:50:23.142 UTC",
        "keys": {"user_id": "user_B", "visitor_id": 77, "session_id": "yyyy_662"},
        "page": "https://shop.example/items/1",
        "item_id": 12345,
        "category": "shoes",
        "price": 19.99,
        "quantity": 2,
        "revenue": 39.98,
        "nested": {"a": [1, 2, {"b": "c"}]},
    }
    with server.client() as c:
        assert c.post("/v1/events", json=event).status_code == 200
    count(server, name, 1)
    rows = server.sql(
        "SELECT event_id, keys.user_id, keys.visitor_id, keys.session_id, page, item_id, category, price,"
        " quantity, revenue, strftime(sync_date, '%Y-%m-%d %H:%M:%S.%g'), _date::VARCHAR,"
        f" properties->>'$.nested.a[2].b' FROM events WHERE event_name = '{name}'"
    )
    assert rows == [
        [
            name + "-1",
            "user_B",
            "77",
            "yyyy_662",
            "https://shop.example/items/1",
            "12345",
            "shoes",
            19.99,
            2,
            39.98,
            "2020-11-29 23:50:23.142",
            "2020-11-29",
            "c",
        ]
    ]


def test_write_key_in_basic_auth_and_in_the_event(server: Server) -> None:
    name = marker()
    basic = base64.b64encode(f"{server.keys['write_key']}:".encode()).decode()
    r1 = httpx.post(server.url + "/v1/events", json=ev(name), headers={"Authorization": f"Basic {basic}"})
    in_event = ev(name)
    in_event["keys"] = {"user_id": "u2", "api_key": server.keys["write_key"]}
    r2 = httpx.post(server.url + "/v1/events", json=[in_event, in_event])
    assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
    assert count(server, name, 3) == 3
    # the write key itself never lands in the lake
    assert server.sql(
        f"SELECT count(*) FROM events WHERE event_name = '{name}' AND properties LIKE '%kw_w_%'"
    ) == [[0]]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer kw_w_nope_nope"}, 401), ({"Authorization": "Bearer junk"}, 401)],
)
def test_missing_or_unknown_keys_are_refused(server: Server, headers: dict[str, str], status: int) -> None:
    r = httpx.post(server.url + "/v1/events", json=ev("x"), headers=headers)
    assert r.status_code == status
    assert "key" in r.json()["error"]


def test_read_key_cannot_send_events(server: Server) -> None:
    with server.client("read") as c:
        r = c.post("/v1/events", json=ev("x"))
    assert r.status_code == 403


def test_bad_events_are_rejected_with_reasons_and_the_rest_kept(server: Server) -> None:
    name = marker()
    body = [
        ev(name),
        {"keys": {"user_id": "u1"}},  # no event_name
        ev(name, sync_date="yesterday"),
        {"event_name": name, "keys": {}},  # no user or visitor
        ev(name, price="cheap"),
        ev(name, big="x" * 40_000),
        ev(name),
    ]
    with server.client() as c:
        r = c.post("/v1/events", json=body)
    assert r.status_code == 200
    result = r.json()
    assert (result["accepted"], result["rejected"]) == (2, 5)
    reasons = {e["index"]: e["reason"] for e in result["errors"]}
    assert "event_name" in reasons[1]
    assert "sync_date" in reasons[2]
    assert "user_id" in reasons[3]
    assert "price" in reasons[4]
    assert "32768" in reasons[5]
    assert count(server, name, 2) == 2
    rows = server.wait_for(
        f"SELECT count(*) FROM rejected_events WHERE payload LIKE '%{name}%' OR reason LIKE 'event 1:%'",
        [[5]],
    )
    assert rows[0][0] >= 4


def test_ndjson_with_a_broken_line_keeps_the_good_lines(server: Server) -> None:
    name = marker()
    body = json.dumps(ev(name)) + "\n{not json\n" + json.dumps(ev(name)) + "\n"
    with server.client() as c:
        r = c.post("/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200
    assert (r.json()["accepted"], r.json()["rejected"]) == (2, 1)
    assert "not valid JSON" in r.json()["errors"][0]["reason"]
    assert count(server, name, 2) == 2


def test_all_bad_is_a_400_that_still_keeps_the_rejects(server: Server) -> None:
    with server.client() as c:
        r = c.post("/v1/events", json=[{"keys": {"user_id": "u"}}])
    assert r.status_code == 400
    assert r.json()["rejected"] == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"this is not json", {"Content-Type": "application/json"}, 400, "JSON"),
        (b'[{"a": tru', {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"", {"Content-Type": "application/json"}, 400, "empty"),
        (b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"}, 400, "nested"),
        (b'{"event_name":"x","p":' + b"[" * 5000 + b"]" * 5000 + b"}", {}, 400, "nested"),
        (b"x" * 6_000_000, {"Content-Type": "application/json"}, 413, "limit"),
        (gzip.compress(b" " * 20_000_000), {"Content-Encoding": "gzip"}, 413, "decompressed"),
        (b"not gzip", {"Content-Encoding": "gzip"}, 400, "gzip"),
        (b"{}", {"Content-Encoding": "br"}, 400, "Content-Encoding"),
        (b'"a string"', {"Content-Type": "application/json"}, 400, "JSON object"),
    ],
    ids=[
        "not-json",
        "truncated",
        "empty",
        "deep-array",
        "deep-object",
        "too-large",
        "gzip-bomb",
        "bad-gzip",
        "brotli",
        "scalar",
    ],
)
def test_bad_bodies_get_a_clear_4xx(
    server: Server, body: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    with server.client() as c:
        r = c.post("/v1/events", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert words in r.text
    with server.client() as c:  # and the server is fine afterwards
        assert c.get("/healthz").status_code == 200


def test_deep_nesting_inside_one_ndjson_event_is_rejected_alone(server: Server) -> None:
    name = marker()
    nesting = "[" * 100 + "]" * 100
    deep = f'{{"event_name":"{name}","keys":{{"user_id":"u"}},"p":{nesting}}}'
    body = json.dumps(ev(name)) + "\n" + deep
    with server.client() as c:
        r = c.post("/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1)
    assert "nested" in r.json()["errors"][0]["reason"]


def test_events_are_queryable_within_five_seconds(server: Server) -> None:
    import time

    name = marker()
    with server.client() as c:
        assert c.post("/v1/events", json=ev(name)).status_code == 200
    acked = time.monotonic()
    rows = server.wait_for(f"SELECT count(*) FROM events WHERE event_name = '{name}'", [[1]], timeout=5)
    assert rows == [[1]], f"not queryable after {time.monotonic() - acked:.1f}s"


def test_openapi_documents_the_ingest_routes(server: Server) -> None:
    schema = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/events", "/v1/batch", "/v1/track", "/v1/sql"):
        assert path in schema["paths"]
