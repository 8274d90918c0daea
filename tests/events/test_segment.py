"""Segment HTTP Tracking API messages map to kawa envelopes; payloads follow Segment's documentation."""

from __future__ import annotations

import base64
import copy
import doctest
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from kawa.events import segment
from kawa.events.segment import (
    SEGMENT_PATHS,
    SEGMENT_TYPES,
    SegmentError,
    to_envelope,
    to_envelopes,
    write_key,
)

RECEIVED = datetime(2012, 12, 2, 0, 30, 10, 500_000, tzinfo=UTC)


def identify_call() -> dict[str, Any]:
    """The Identify example of Segment's HTTP API page."""
    return {
        "userId": "019mr8mf4r",
        "traits": {"email": "pgibbons@example.com", "name": "Peter Gibbons", "industry": "Technology"},
        "context": {"ip": "24.5.68.47"},
        "timestamp": "2012-12-02T00:30:08.276Z",
        "writeKey": "YOUR_WRITE_KEY",
    }


def analytics_js_page() -> dict[str, Any]:
    """A page call as analytics.js (analytics-next) posts it to /v1/p."""
    return {
        "timestamp": "2024-03-05T10:15:30.120Z",
        "integrations": {"Actions Amplitude": {"session_id": 1709633700000}},
        "type": "page",
        "properties": {
            "path": "/academy/",
            "referrer": "",
            "search": "",
            "title": "Analytics Academy",
            "url": "https://segment.com/academy/",
            "name": "Academy",
            "category": "Docs",
        },
        "name": "Academy",
        "category": "Docs",
        "context": {
            "page": {
                "path": "/academy/",
                "referrer": "",
                "search": "",
                "title": "Analytics Academy",
                "url": "https://segment.com/academy/",
            },
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
            "locale": "en-US",
            "library": {"name": "analytics.js", "version": "next-1.64.0"},
        },
        "messageId": "ajs-next-0c6d4d7e5b1c8a3f2e9d4b7a6c5e1f20",
        "anonymousId": "507f191e810c19729de860ea",
        "writeKey": "abc123",
        "userId": None,
        "sentAt": "2024-03-05T10:15:30.180Z",
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
    }


def track(event: str, properties: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "97980cfea0067", "event": event, "properties": properties, **fields}


# --- paths and types ---------------------------------------------------------------------------


def test_paths_cover_long_short_and_batch_endpoints() -> None:
    assert {"track", "page", "screen", "identify", "group", "alias"} == SEGMENT_TYPES
    expected = {f"/v1/{t}": t for t in SEGMENT_TYPES}
    expected |= {"/v1/t": "track", "/v1/p": "page", "/v1/s": "screen", "/v1/i": "identify"}
    expected |= {"/v1/g": "group", "/v1/a": "alias"}
    expected |= {"/v1/batch": "batch", "/v1/b": "batch", "/v1/import": "batch"}
    assert expected == SEGMENT_PATHS
    assert segment.SUCCESS_RESPONSE == {"success": True}


def test_docstring_examples_run() -> None:
    result = doctest.testmod(segment)
    assert result.attempted >= 3
    assert result.failed == 0


# --- the six calls -------------------------------------------------------------------------------


def test_identify_keeps_traits_and_context_and_drops_the_write_key() -> None:
    env = to_envelope(identify_call(), call_type="identify")
    assert env["event_name"] == "identify"
    assert env["type"] == "identify"
    assert env["keys"] == {"user_id": "019mr8mf4r"}
    assert env["traits"]["email"] == "pgibbons@example.com"
    assert env["context"] == {"ip": "24.5.68.47"}
    assert env["sync_date"] == "2012-12-02T00:30:08.276Z"
    assert env["originalTimestamp"] == "2012-12-02T00:30:08.276Z"
    assert "writeKey" not in json.dumps(env)
    assert "timestamp" not in env  # kawa reads `timestamp` as sync_date; the original has its own name


def test_track_maps_event_and_revenue() -> None:
    message = {
        "userId": "019mr8mf4r",
        "event": "Item Purchased",
        "properties": {"name": "Leap to Conclusions Mat", "revenue": 14.99},
        "context": {"ip": "24.5.68.47"},
        "timestamp": "2012-12-02T00:30:12.984Z",
        "writeKey": "YOUR_WRITE_KEY",
    }
    env = to_envelope(message, call_type="track")
    assert env["event_name"] == "Item Purchased"
    assert env["revenue"] == 14.99
    assert env["properties"] == {"name": "Leap to Conclusions Mat", "revenue": 14.99}
    assert "event" not in env


def test_analytics_js_page_call() -> None:
    env = to_envelope(analytics_js_page(), call_type=SEGMENT_PATHS["/v1/p"])
    assert env["event_id"] == "ajs-next-0c6d4d7e5b1c8a3f2e9d4b7a6c5e1f20"
    assert env["event_name"] == "page"
    assert env["name"] == "Academy"
    assert env["keys"] == {"visitor_id": "507f191e810c19729de860ea", "session_id": "1709633700000"}
    assert env["page"] == "https://segment.com/academy/"
    assert env["category"] == "Docs"
    assert env["context"]["library"]["name"] == "analytics.js"
    assert env["sentAt"] == "2024-03-05T10:15:30.180Z"
    assert "_metadata" not in env
    assert "writeKey" not in env


def test_page_url_prefers_the_page_calls_own_url() -> None:
    message = analytics_js_page()
    message["properties"]["url"] = "https://segment.com/academy/?ref=nav"
    assert to_envelope(message)["page"] == "https://segment.com/academy/?ref=nav"
    del message["properties"]["url"]
    assert to_envelope(message)["page"] == "https://segment.com/academy/"


def test_page_category_falls_back_to_the_top_level_field() -> None:
    message = {"type": "page", "anonymousId": "a1", "name": "Signup", "category": "Funnel"}
    env = to_envelope(message)
    assert env["category"] == "Funnel"
    assert env["extra"] == {"category": "Funnel"}


def test_screen_group_and_alias() -> None:
    screen = {"userId": "019mr8mf4r", "name": "Tracking HTTP API", "timestamp": "2012-12-02T00:31:29.738Z"}
    env = to_envelope(screen, call_type="screen")
    assert (env["event_name"], env["name"]) == ("screen", "Tracking HTTP API")

    group = {
        "userId": "019mr8mf4r",
        "groupId": "8e9df332ac",
        "traits": {"name": "Initech", "industry": "Technology", "employees": 420},
        "timestamp": "2012-12-02T00:31:38.208Z",
    }
    env = to_envelope(group, call_type="group")
    assert (env["event_name"], env["groupId"], env["traits"]["employees"]) == ("group", "8e9df332ac", 420)

    alias = {
        "previousId": "39239-239239-239239-23923",
        "userId": "019mr8mf4r",
        "timestamp": "2012-12-02T00:31:29.738Z",
    }
    env = to_envelope(alias, call_type="alias")
    assert (env["event_name"], env["previousId"]) == ("alias", "39239-239239-239239-23923")
    assert env["keys"] == {"user_id": "019mr8mf4r"}


def test_unknown_top_level_fields_pass_through_unless_they_clash_with_envelope_names() -> None:
    message = track("Signed Up", {}, email="test@example.org", price=3, keys={"x": 1}, channel="server")
    env = to_envelope(message)
    assert env["email"] == "test@example.org"
    assert env["channel"] == "server"
    assert env["extra"] == {"price": 3, "keys": {"x": 1}}
    assert "price" not in env
    assert env["keys"] == {"user_id": "97980cfea0067"}


def test_numeric_ids_become_strings() -> None:
    env = to_envelope({"type": "track", "userId": 42, "anonymousId": "", "event": "x", "messageId": 7})
    assert env["keys"] == {"user_id": "42"}
    assert env["event_id"] == "7"


def test_input_is_not_modified() -> None:
    body = {"batch": [analytics_js_page(), identify_call() | {"type": "identify"}], "context": {"ip": "1"}}
    before = copy.deepcopy(body)
    to_envelopes(body, "batch", received_at=RECEIVED)
    assert body == before


# --- sessions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"context": {"sessionId": "yyyy_662"}}, "yyyy_662"),
        ({"context": {"session_id": "s-1"}}, "s-1"),
        ({"properties": {"session_id": "s-2"}}, "s-2"),
        ({"integrations": {"Amplitude": {"session_id": 1709633700000}}}, "1709633700000"),
        (
            {"context": {"sessionId": "ctx"}, "integrations": {"Actions Amplitude": {"session_id": 1}}},
            "ctx",
        ),
        ({"properties": {"session_id": True}}, None),
        ({}, None),
    ],
)
def test_session_id_sources(fields: dict[str, Any], expected: str | None) -> None:
    message = {"type": "track", "anonymousId": "a1", "event": "Video Played", **fields}
    assert to_envelope(message)["keys"].get("session_id") == expected


# --- time ----------------------------------------------------------------------------------------


def test_clock_skew_is_corrected_from_sent_at_and_received_at() -> None:
    # The device clock is one hour and two seconds behind the server's.
    message = track(
        "Song Played", {}, timestamp="2012-12-01T23:30:05.000Z", sentAt="2012-12-01T23:30:08.500Z"
    )
    env = to_envelope(message, received_at=RECEIVED)
    # received_at - (sentAt - timestamp) = 00:30:10.5 - 3.5 s
    assert env["sync_date"] == "2012-12-02T00:30:07.000Z"
    assert env["originalTimestamp"] == "2012-12-01T23:30:05.000Z"


def test_original_timestamp_is_used_like_timestamp() -> None:
    message = track("x", {}, originalTimestamp="2012-12-02T00:30:00Z", sentAt="2012-12-02T00:30:01Z")
    assert to_envelope(message, received_at=RECEIVED)["sync_date"] == "2012-12-02T00:30:09.500Z"


def test_without_sent_at_the_client_time_is_kept_for_historical_imports() -> None:
    message = track("x", {}, timestamp="2015-02-02T00:30:12.984Z")
    assert to_envelope(message, received_at=RECEIVED)["sync_date"] == "2015-02-02T00:30:12.984Z"


def test_without_received_at_the_client_time_is_kept() -> None:
    message = track("x", {}, timestamp="2015-02-02T00:30:12.984Z", sentAt="2015-02-02T00:31:00Z")
    assert to_envelope(message)["sync_date"] == "2015-02-02T00:30:12.984Z"


def test_without_a_time_received_at_is_the_event_time() -> None:
    assert to_envelope(track("x", {}), received_at=RECEIVED)["sync_date"] == "2012-12-02T00:30:10.500Z"
    assert "sync_date" not in to_envelope(track("x", {}))


def test_a_replayed_segment_export_keeps_its_corrected_timestamp() -> None:
    exported = track(
        "x",
        {},
        timestamp="2015-12-10T04:08:31.905Z",
        originalTimestamp="2015-12-10T04:08:30.000Z",
        sentAt="2015-12-10T04:08:31.581Z",
        receivedAt="2015-12-10T04:08:31.909Z",
    )
    env = to_envelope(exported, received_at=RECEIVED)
    assert env["sync_date"] == "2015-12-10T04:08:31.905Z"
    assert env["originalTimestamp"] == "2015-12-10T04:08:30.000Z"
    assert env["receivedAt"] == "2015-12-10T04:08:31.909Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2012-12-02T09:30:08.276+09:00", "2012-12-02T00:30:08.276Z"),
        ("2012-12-01T19:30:08.276-0500", "2012-12-02T00:30:08.276Z"),
        ("2012-12-02T00:30:08.123456789Z", "2012-12-02T00:30:08.123456Z"),  # Go's nanoseconds
        ("2012-12-02T00:30:08.276431+00:00", "2012-12-02T00:30:08.276431Z"),  # Python's isoformat
        ("2012-12-02 00:30:08.276 UTC", "2012-12-02T00:30:08.276Z"),
        ("2012-12-02T00:30:08", "2012-12-02T00:30:08.000Z"),  # Segment's times are UTC
        ("2015-2-02T00:30:08.276Z", "2015-02-02T00:30:08.276Z"),  # as in Segment's batch example
    ],
)
def test_time_formats(text: str, expected: str) -> None:
    assert to_envelope(track("x", {}, timestamp=text))["sync_date"] == expected


def test_naive_received_at_is_utc_and_aware_ones_are_converted() -> None:
    message = track("x", {}, timestamp="2012-12-02T00:30:00Z", sentAt="2012-12-02T00:30:00Z")
    naive = to_envelope(message, received_at=RECEIVED.replace(tzinfo=None))
    tokyo = to_envelope(message, received_at=RECEIVED.astimezone(timezone(timedelta(hours=9))))
    assert naive["sync_date"] == tokyo["sync_date"] == "2012-12-02T00:30:10.500Z"


# --- e-commerce ----------------------------------------------------------------------------------


def test_product_viewed_fills_the_typed_columns() -> None:
    properties = {
        "product_id": "507f1f77bcf86cd799439011",
        "sku": "G-32",
        "category": "Games",
        "name": "Monopoly: 3rd Edition",
        "brand": "Hasbro",
        "variant": "200 pieces",
        "price": 18.99,
        "quantity": 1,
        "coupon": "MAYDEALS",
        "currency": "usd",
        "position": 3,
        "value": 18.99,
        "url": "https://www.example.com/product/path",
        "image_url": "https://www.example.com/product/path.jpg",
    }
    message = track("Product Viewed", properties, context={"page": {"url": "https://www.example.com/p/1"}})
    env = to_envelope(message)
    assert env["item_id"] == "507f1f77bcf86cd799439011"
    assert env["category"] == "Games"
    assert env["price"] == 18.99
    assert env["quantity"] == 1
    assert env["page"] == "https://www.example.com/p/1"  # where it happened, not the product's link
    assert "revenue" not in env
    assert env["properties"] == properties  # copied, not moved


def test_product_added_uses_sku_without_product_id_and_the_url_without_a_page_context() -> None:
    message = track(
        "Product Added",
        {"cart_id": "skdjsidjsdkdj29j", "sku": "G-32", "price": 19, "quantity": 2.0, "url": "https://x/p"},
    )
    env = to_envelope(message)
    assert (env["item_id"], env["quantity"], env["page"]) == ("G-32", 2, "https://x/p")
    assert env["price"] == 19.0 and isinstance(env["price"], float)
    assert isinstance(env["quantity"], int)


def order(event: str, **properties: Any) -> dict[str, Any]:
    products = [
        {"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "price": 19, "quantity": 1},
        {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "price": 3, "quantity": 2},
    ]
    return track(
        event, {"order_id": "50314b8e9bcf000000000000", "currency": "USD", "products": products, **properties}
    )


def test_order_completed_takes_revenue_and_leaves_products_in_properties() -> None:
    env = to_envelope(order("Order Completed", total=27.50, subtotal=22.50, revenue=25.00, shipping=3, tax=2))
    assert env["revenue"] == 25.0
    assert "item_id" not in env and "price" not in env
    assert len(env["properties"]["products"]) == 2


def test_order_completed_without_revenue_uses_total_but_other_events_do_not() -> None:
    assert to_envelope(order("Order Completed", total=27.5))["revenue"] == 27.5
    assert "revenue" not in to_envelope(order("Order Refunded", total=30))


@pytest.mark.parametrize(
    "properties",
    [
        {"price": "18.99", "quantity": "1", "category": 5, "product_id": {"id": 1}},
        {"price": True, "quantity": 1.5, "revenue": float("nan"), "sku": ""},
        {"revenue": 10**400, "quantity": False},
    ],
)
def test_values_of_the_wrong_type_stay_only_in_properties(properties: dict[str, Any]) -> None:
    env = to_envelope(track("Product Viewed", properties))
    for column in ("price", "quantity", "category", "item_id", "revenue"):
        assert column not in env
    assert env["properties"] == properties


def test_numeric_product_id_becomes_a_string() -> None:
    assert to_envelope(track("Product Viewed", {"product_id": 9714107479}))["item_id"] == "9714107479"


# --- batches -------------------------------------------------------------------------------------


def docs_batch() -> dict[str, Any]:
    """The Batch example of Segment's HTTP API page."""
    return {
        "batch": [
            {
                "type": "identify",
                "userId": "019mr8mf4r",
                "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26},
                "timestamp": "2012-12-02T00:30:08.276Z",
            },
            {
                "type": "track",
                "userId": "019mr8mf4r",
                "event": "Song Played",
                "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"},
                "timestamp": "2012-12-02T00:30:12.984Z",
            },
            {
                "type": "identify",
                "userId": "971mj8mk7p",
                "traits": {"email": "cindy@example.com", "name": "Cindy Gonzalez", "age": 23},
                "timestamp": "2015-2-02T00:30:08.276Z",
            },
            {
                "type": "track",
                "userId": "971mj8mk7p",
                "event": "Song Played",
                "properties": {"name": "Get Right", "artist": "Jennifer Lopez"},
                "timestamp": "2015-2-02T00:30:12.984Z",
                "context": {"device": {"name": "Jennifer's iPad"}, "ip": "24.5.68.47"},
            },
        ],
        "writeKey": "YOUR_WRITE_KEY",
        "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
    }


def test_batch_context_is_merged_into_each_message_and_the_message_wins() -> None:
    good, bad = to_envelopes(docs_batch(), SEGMENT_PATHS["/v1/batch"], received_at=RECEIVED)
    assert bad == []
    assert [e["event_name"] for e in good] == ["identify", "Song Played", "identify", "Song Played"]
    assert good[0]["context"] == {"device": {"type": "phone", "name": "Apple iPhone 6"}}
    assert good[3]["context"] == {"device": {"type": "phone", "name": "Jennifer's iPad"}, "ip": "24.5.68.47"}
    assert good[2]["sync_date"] == "2015-02-02T00:30:08.276Z"


def test_batch_integrations_merge_too() -> None:
    body = {
        "batch": [track("x", {}, integrations={"Mixpanel": True}), track("y", {})],
        "integrations": {"All": False, "Mixpanel": False},
    }
    good, _ = to_envelopes(body, "batch")
    assert good[0]["integrations"] == {"All": False, "Mixpanel": True}
    assert good[1]["integrations"] == {"All": False, "Mixpanel": False}


def test_analytics_js_batch_uses_the_batch_sent_at_for_clock_skew() -> None:
    # analytics.js batching (/v1/b) strips sentAt from each message and sends one for the batch.
    first = analytics_js_page() | {"timestamp": "2012-12-02T00:29:00.000Z"}
    second = analytics_js_page() | {"timestamp": "2012-12-02T00:29:30.000Z", "sentAt": "2012-12-02T00:29:30Z"}
    del first["sentAt"]
    body = {"writeKey": "abc123", "batch": [first, second], "sentAt": "2012-12-02T00:29:40.000Z"}
    good, bad = to_envelopes(body, SEGMENT_PATHS["/v1/b"], received_at=RECEIVED)
    assert bad == []
    # Batch sentAt: 00:30:10.5 - 40 s; the message's own sentAt wins for the second: 00:30:10.5 - 0 s.
    assert [e["sync_date"] for e in good] == ["2012-12-02T00:29:30.500Z", "2012-12-02T00:30:10.500Z"]
    assert good[0]["sentAt"] == "2012-12-02T00:29:40.000Z"


def test_one_bad_message_never_loses_the_rest() -> None:
    messages: list[Any] = [
        track("Product Viewed", {"product_id": "p1"}),
        "not an object",
        {"type": "track", "event": "Anonymous"},
        {"type": "launch", "userId": "u"},
        {"type": "track", "userId": "u"},
        track("Order Completed", {"revenue": 5}),
    ]
    good, bad = to_envelopes({"batch": messages}, "batch")
    assert [e["event_name"] for e in good] == ["Product Viewed", "Order Completed"]
    assert [(index, raw) for index, _, raw in bad] == [(i, messages[i]) for i in (1, 2, 3, 4)]
    reasons = [reason for _, reason, _ in bad]
    assert "JSON object" in reasons[0]
    assert "userId or anonymousId" in reasons[1]
    assert "'launch'" in reasons[2]
    assert "event" in reasons[3]


def test_single_calls_return_one_envelope_or_one_reject() -> None:
    good, bad = to_envelopes(identify_call(), "identify", received_at=RECEIVED)
    assert (len(good), bad) == (1, [])
    message = {"event": "x"}
    good, bad = to_envelopes(message, "track")
    assert good == []
    assert bad == [(0, bad[0][1], message)]
    assert "userId or anonymousId" in bad[0][1]


def test_empty_batch_is_fine() -> None:
    assert to_envelopes({"batch": []}, "batch") == ([], [])


def test_envelopes_pass_kawas_own_validation() -> None:
    from kawa.events.validate import decode_batch

    good, _ = to_envelopes(docs_batch(), "batch", received_at=RECEIVED)
    good += [to_envelope(analytics_js_page()), to_envelope(order("Order Completed", revenue=25.0))]
    body = json.dumps(good).encode()
    now_us = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
    batch = decode_batch(
        body,
        ndjson=False,
        project="p",
        received_at=now_us,
        max_depth=32,
        max_event_bytes=32_768,
    )
    assert [r.reason for r in batch.rejected] == []
    assert len(batch.lines) == len(good)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "call_type", "words"),
    [
        (["a", "list"], "track", "must be a JSON object, got a list"),
        (None, None, "got null"),
        ({"type": "track", "event": "x"}, None, "userId or anonymousId is required"),
        ({"type": "track", "event": "x", "userId": "", "anonymousId": ""}, None, "userId or anonymousId"),
        ({"type": "launch", "userId": "u"}, None, "unknown type 'launch'"),
        ({"userId": "u", "event": "x"}, None, "type is required"),
        ({"type": ["track"], "userId": "u"}, None, "type must be a string"),
        ({"type": "page", "userId": "u"}, "track", "does not match the track endpoint"),
        ({"userId": "u"}, "launch", "unknown call type"),
        ({"type": "track", "userId": "u"}, None, "a track call needs event"),
        ({"type": "track", "userId": "u", "event": "  "}, None, "a track call needs event"),
        ({"type": "track", "userId": "u", "event": 5}, None, "got the number 5"),
        ({"type": "track", "userId": {"id": 1}, "event": "x"}, None, "userId must be a string"),
        ({"type": "track", "anonymousId": True, "event": "x"}, None, "anonymousId must be a string"),
        ({"type": "track", "userId": "u", "event": "x", "messageId": 1.5}, None, "messageId must be"),
        ({"type": "track", "userId": "u", "event": "x", "properties": [1]}, None, "properties must be"),
        ({"type": "identify", "userId": "u", "traits": "vip"}, None, "traits must be a JSON object"),
        ({"type": "track", "userId": "u", "event": "x", "context": 3}, None, "context must be"),
        ({"type": "track", "userId": "u", "event": "x", "integrations": "All"}, None, "integrations must"),
        ({"type": "group", "userId": "u"}, None, "a group call needs groupId"),
        ({"type": "alias", "userId": "u"}, None, "an alias call needs previousId"),
        ({"type": "track", "userId": "u", "event": "x", "timestamp": 1354406008}, None, "timestamp must"),
        ({"type": "track", "userId": "u", "event": "x", "timestamp": "yesterday"}, None, "timestamp must"),
        ({"type": "track", "userId": "u", "event": "x", "timestamp": "2012-13-02T00:00:00Z"}, None, "real"),
        ({"type": "track", "userId": "u", "event": "x", "timestamp": "2012-12-02T00:00+99:00"}, None, "real"),
        ({"type": "track", "userId": "u", "event": "x", "originalTimestamp": "x"}, None, "originalTimestamp"),
        ({"type": "track", "userId": "u", "event": "x", "sentAt": "soon"}, None, "sentAt must be"),
    ],
)
def test_errors_name_the_field(message: Any, call_type: str | None, words: str) -> None:
    with pytest.raises(SegmentError, match=words.replace("(", r"\(").replace("[", r"\[")):
        to_envelope(message, call_type=call_type)


def test_clock_skew_overflow_is_an_error_not_a_crash() -> None:
    message = track("x", {}, timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T00:00:00Z")
    with pytest.raises(SegmentError, match="too far apart"):
        to_envelope(message, received_at=RECEIVED)


@pytest.mark.parametrize(
    ("body", "path_type", "words"),
    [
        ([track("x", {})], "batch", "request body must be a JSON object"),
        ({"batch": {"type": "track"}}, "batch", 'needs "batch": a list'),
        ({"messages": []}, "batch", 'needs "batch": a list of messages, got null'),
        ({"batch": [], "context": "web"}, "batch", "batch-level context must be a JSON object"),
        ({"batch": [], "integrations": [1]}, "batch", "batch-level integrations must be"),
        ({"batch": [], "sentAt": "now"}, "batch", "the batch-level sentAt must be"),
        ({"batch": []}, "/v1/batch", "unknown Segment endpoint type"),
    ],
)
def test_requests_wrong_as_a_whole_raise(body: Any, path_type: str, words: str) -> None:
    with pytest.raises(SegmentError, match=words):
        to_envelopes(body, path_type)


def test_deep_batch_context_merges_without_recursing_without_bound() -> None:
    def deep() -> dict[str, Any]:
        root: dict[str, Any] = {}
        node = root
        for _ in range(5_000):
            node["a"] = {}
            node = node["a"]
        return root

    env = to_envelope(track("x", {}, context=deep()), batch_context=deep() | {"ip": "8.8.8.8"})
    assert env["context"]["ip"] == "8.8.8.8"
    assert "a" in env["context"]


# --- write key -----------------------------------------------------------------------------------


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_write_key_from_basic_auth_or_body() -> None:
    assert write_key({}, basic("abc123:")) == "abc123"
    assert write_key({}, basic("abc123")) == "abc123"  # Segment's backward-compatible form
    assert write_key({"writeKey": "body-key"}, basic("abc123:")) == "abc123"
    assert write_key({"writeKey": "body-key"}, None) == "body-key"
    assert write_key({"writeKey": "body-key"}, "Bearer token") == "body-key"  # OAuth: key in the body
    assert write_key({"batch": []}, None) is None
    assert write_key({"writeKey": 5}, basic(":")) is None
    with pytest.raises(SegmentError, match="not valid HTTP Basic"):
        write_key({}, "Basic ***")
