"""Segment HTTP Tracking API compatibility: turn Segment messages into kawa event envelopes.

Segment's tracking libraries (analytics.js, the mobile and server SDKs) work unchanged once their API
host points at kawa. This module is pure: it maps parsed JSON to envelopes; the collector owns HTTP,
authentication, size limits and the answer (`SUCCESS_RESPONSE`, Segment's 200 `{"success": true}`).

Paths (`SEGMENT_PATHS`): `/v1/track|page|screen|identify|group|alias` and `/v1/batch`; analytics.js
posts to `/v1/` plus the first letter of the call type (`/v1/t`, `/v1/p`, `/v1/s`, `/v1/i`, `/v1/g`,
`/v1/a`) and, when batching, to `/v1/b`; analytics-ruby posts batches to `/v1/import`.

Message -> envelope (Segment's names are kept where no kawa name exists, so users find them):

    | Segment                                 | kawa envelope                                  |
    |-----------------------------------------|------------------------------------------------|
    | messageId                               | event_id                                       |
    | userId                                  | keys.user_id                                   |
    | anonymousId                             | keys.visitor_id                                |
    | context.sessionId, context.session_id,  | keys.session_id (first present, in this order) |
    |  properties.session_id / .sessionId,    |                                                |
    |  integrations["Actions Amplitude"]      |                                                |
    |  .session_id, integrations.Amplitude    |                                                |
    |  .session_id                            |                                                |
    | event (track); else the type: "page",   | event_name                                     |
    |  "screen", "identify", "group", "alias" |                                                |
    | timestamp / originalTimestamp, sentAt,  | sync_date (clock-skew corrected, see below)    |
    |  received_at                            |                                                |
    | timestamp (as sent by the client)       | originalTimestamp                              |
    | type, name, properties, traits,         | kept under the same names                      |
    |  context, integrations, groupId,        |                                                |
    |  previousId, sentAt, channel, version...|                                                |
    | top-level fields named like an envelope | extra.<name>                                   |
    |  field (category, price, keys, ...)     |                                                |
    | writeKey, _metadata                     | dropped (a credential; analytics.js internals) |

Typed columns are copied (never moved) from `properties` when the value has the right type; a value
of the wrong type stays only in `properties`:

    | column   | source (Segment e-commerce spec v2 names)                                   |
    |----------|-----------------------------------------------------------------------------|
    | page     | page calls: properties.url, else context.page.url; other calls:             |
    |          | context.page.url, else properties.url                                       |
    | item_id  | properties.product_id, else properties.sku (a whole number becomes a str)   |
    | category | properties.category; page calls also the top-level `category`              |
    | price    | properties.price (number)                                                   |
    | quantity | properties.quantity (whole number)                                          |
    | revenue  | properties.revenue; for "Order Completed" without it, properties.total      |

A batch's own `context` and `integrations` are merged into each of its messages, key by key; the
message's values win. A batch's `sentAt` applies to messages without their own.

A `products` array (Order Completed, Cart Viewed, Product List Viewed) stays in `properties`:
several products have no single item_id.

Time, as Segment computes it: the client's `timestamp` is the original time on the device; when the
message (or its batch) carries `sentAt` and the collector passes `received_at`, the device clock's
skew is removed: sync_date = received_at - (sentAt - originalTimestamp). Without `sentAt` the client's
time is used as given (server libraries importing history); without any time, `received_at`. A message
that carries both `timestamp` and `originalTimestamp` was already processed by Segment (an export
being replayed), so its `timestamp` is used as is. Times without a zone are UTC, as Segment's are.

Errors: a message that kawa cannot store raises `SegmentError` naming the field; `to_envelopes`
splits a batch into envelopes and (index, reason, raw message) rejects, so one bad message never
loses the rest.

Limits differ: Segment allows 32 KB per message and 500 KB per request; kawa applies its own
`ingest` settings (`max_event_bytes`, `max_body_bytes`, `max_events_per_request`). Measure a message's
size before mapping: the batch-level context copied into each message makes envelopes larger.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

SEGMENT_TYPES: frozenset[str] = frozenset({"track", "page", "screen", "identify", "group", "alias"})

SEGMENT_PATHS: dict[str, str] = {
    **{f"/v1/{t}": t for t in SEGMENT_TYPES},
    # analytics.js sends each call to "/v1/" + the first letter of its type.
    **{f"/v1/{t[0]}": t for t in SEGMENT_TYPES},
    "/v1/batch": "batch",
    "/v1/b": "batch",
    "/v1/import": "batch",
}

SUCCESS_RESPONSE: dict[str, bool] = {"success": True}

# Fields this module maps itself; everything else at a message's top level is passed through.
_MAPPED = frozenset(
    {"type", "messageId", "userId", "anonymousId", "event", "timestamp", "originalTimestamp", "sentAt"}
    | {"properties", "traits", "context", "integrations", "writeKey", "_metadata"}
)
# kawa envelope names: a Segment message's unknown top-level field with one of these names would be
# read as an envelope field, so it is kept under "extra" instead.
_ENVELOPE_NAMES = frozenset(
    {"event_id", "event_name", "sync_date", "timestamp", "keys", "extra"}
    | {"page", "item_id", "category", "price", "quantity", "revenue"}
)
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_MERGE_DEPTH = 8
_TIME = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[Tt ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(?:[Zz]|UTC|([+-])(\d{2}):?(\d{2}))?"
)


class SegmentError(ValueError):
    """A Segment message or request kawa cannot accept; the message names the field and the fix."""


def to_envelope(
    message: object,
    *,
    call_type: str | None = None,
    batch_context: Mapping[str, Any] | None = None,
    batch_integrations: Mapping[str, Any] | None = None,
    batch_sent_at: str | None = None,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """The kawa envelope for one Segment message; `call_type` is the endpoint's type, if not a batch.

    >>> env = to_envelope({"userId": "019mr8mf4r", "event": "Item Purchased",
    ...                    "properties": {"revenue": 14.99}}, call_type="track")
    >>> env["event_name"], env["keys"], env["revenue"]
    ('Item Purchased', {'user_id': '019mr8mf4r'}, 14.99)
    """
    if not isinstance(message, Mapping):
        raise SegmentError(f"a Segment message must be a JSON object, got {_json_kind(message)}")
    kind = _call_type(message, call_type)
    objects = _objects(message, batch_context, batch_integrations)
    props, context = objects.get("properties") or {}, objects.get("context") or {}
    keys = _keys(message, props, context, objects.get("integrations") or {})
    event_name = _event_name(message, kind)
    if kind == "group" and not _present(message.get("groupId")):
        raise SegmentError("a group call needs groupId: the id of the company or account")
    if kind == "alias" and not _present(message.get("previousId")):
        raise SegmentError("an alias call needs previousId: the id the user had before userId")

    envelope: dict[str, Any] = {}
    event_id = _identifier(message, "messageId")
    if event_id is not None:
        envelope["event_id"] = event_id
    envelope["event_name"] = event_name
    sync_date = _sync_date(message, batch_sent_at, received_at)
    if sync_date is not None:
        envelope["sync_date"] = sync_date
    envelope["keys"] = keys
    envelope["type"] = kind
    original = _first(message.get("originalTimestamp"), message.get("timestamp"))
    for name, value in (
        ("originalTimestamp", original),
        ("sentAt", _first(message.get("sentAt"), batch_sent_at)),
    ):
        if value is not None:
            envelope[name] = value
    extra: dict[str, Any] = {}
    for name, value in message.items():
        if name not in _MAPPED:
            (extra if name in _ENVELOPE_NAMES else envelope)[name] = value
    envelope.update(objects)
    if extra:
        envelope["extra"] = extra
    envelope.update(_typed_columns(kind, message, props, context))
    return envelope


def to_envelopes(
    body: object, path_type: str, *, received_at: datetime | None = None
) -> tuple[list[dict[str, Any]], list[tuple[int, str, Any]]]:
    """Envelopes and (index, reason, raw message) rejects for one request to a Segment endpoint.

    `path_type` is `SEGMENT_PATHS[path]`: "batch" or a call type. A request that is wrong as a whole
    (not an object, no `batch` list, a bad batch-level field) raises SegmentError: answer it 400.
    A single call that fails comes back as one reject at index 0.

    >>> good, bad = to_envelopes({"batch": [{"type": "page", "anonymousId": "a1"}, {"type": "x"}]},
    ...                          "batch")
    >>> [e["event_name"] for e in good], [(i, raw["type"]) for i, _, raw in bad]
    (['page'], [(1, 'x')])
    """
    if path_type != "batch" and path_type not in SEGMENT_TYPES:
        raise SegmentError(f"unknown Segment endpoint type {path_type!r}; use a value of SEGMENT_PATHS")
    if not isinstance(body, Mapping):
        raise SegmentError(f"the request body must be a JSON object, got {_json_kind(body)}")
    if path_type != "batch":
        try:
            return [to_envelope(body, call_type=path_type, received_at=received_at)], []
        except SegmentError as exc:
            return [], [(0, str(exc), body)]
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise SegmentError(f'a batch request needs "batch": a list of messages, got {_json_kind(messages)}')
    batch_context = body.get("context")
    batch_integrations = body.get("integrations")
    for name, value in (("context", batch_context), ("integrations", batch_integrations)):
        if value is not None and not isinstance(value, Mapping):
            raise SegmentError(f"the batch-level {name} must be a JSON object, got {_json_kind(value)}")
    batch_sent_at = body.get("sentAt")
    if batch_sent_at is not None:
        _parse_time(batch_sent_at, "the batch-level sentAt")
    envelopes: list[dict[str, Any]] = []
    rejects: list[tuple[int, str, Any]] = []
    for index, message in enumerate(messages):
        try:
            envelopes.append(
                to_envelope(
                    message,
                    batch_context=batch_context,
                    batch_integrations=batch_integrations,
                    batch_sent_at=batch_sent_at,
                    received_at=received_at,
                )
            )
        except SegmentError as exc:
            rejects.append((index, str(exc), message))
    return envelopes, rejects


def write_key(body: object, authorization: str | None = None) -> str | None:
    """The write key of a Segment request: the HTTP Basic user name, else the body's `writeKey`.

    Server and mobile SDKs send `Authorization: Basic base64(KEY:)`; analytics.js puts `writeKey` in
    the body (and sends it as `Content-Type: text/plain` to avoid a CORS preflight).

    >>> write_key({}, "Basic YWJjMTIzOg==")
    'abc123'
    >>> write_key({"writeKey": "abc123", "batch": []})
    'abc123'
    """
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except ValueError:  # not base64, not ASCII, or not UTF-8 underneath
                raise SegmentError(
                    "the Authorization header is not valid HTTP Basic: send base64 of 'WRITE_KEY:'"
                ) from None
            # Segment also accepts the key encoded without the colon.
            user = decoded.partition(":")[0]
            if user:
                return user
    key = body.get("writeKey") if isinstance(body, Mapping) else None
    return key if isinstance(key, str) and key else None


def _call_type(message: Mapping[str, Any], call_type: str | None) -> str:
    declared = message.get("type")
    if declared is not None and not isinstance(declared, str):
        raise SegmentError(f'type must be a string like "track", got {_json_kind(declared)}')
    if call_type is not None:
        if call_type not in SEGMENT_TYPES:
            raise SegmentError(f"unknown call type {call_type!r}; expected one of {sorted(SEGMENT_TYPES)}")
        if declared is not None and declared != call_type:
            raise SegmentError(
                f"type {declared!r} does not match the {call_type} endpoint it was sent to; "
                f"send it to /v1/{declared} or /v1/batch"
            )
        return call_type
    if declared is None:
        raise SegmentError(f"type is required in a batch message: one of {sorted(SEGMENT_TYPES)}")
    if declared not in SEGMENT_TYPES:
        raise SegmentError(f"unknown type {declared!r}; expected one of {sorted(SEGMENT_TYPES)}")
    return declared


def _objects(
    message: Mapping[str, Any],
    batch_context: Mapping[str, Any] | None,
    batch_integrations: Mapping[str, Any] | None,
) -> dict[str, dict[str, Any]]:
    """The message's object fields, with the batch-level context and integrations merged in."""
    objects: dict[str, dict[str, Any]] = {}
    for name in _OBJECT_FIELDS:
        value = message.get(name)
        if value is not None and not isinstance(value, Mapping):
            raise SegmentError(f"{name} must be a JSON object, got {_json_kind(value)}")
        if value is not None:
            objects[name] = dict(value)
    for name, shared in (("context", batch_context), ("integrations", batch_integrations)):
        if shared:
            # The message's own values win: they are the more specific.
            objects[name] = _merge(shared, objects.get(name, {}), _MERGE_DEPTH)
    return objects


def _keys(
    message: Mapping[str, Any],
    props: Mapping[str, Any],
    context: Mapping[str, Any],
    integrations: Mapping[str, Any],
) -> dict[str, str]:
    keys: dict[str, str] = {}
    user_id = _identifier(message, "userId")
    visitor_id = _identifier(message, "anonymousId")
    if user_id is None and visitor_id is None:
        raise SegmentError(
            "userId or anonymousId is required: set userId for a known user, anonymousId for a visitor"
        )
    if user_id is not None:
        keys["user_id"] = user_id
    if visitor_id is not None:
        keys["visitor_id"] = visitor_id
    session_id = _session_id(context, props, integrations)
    if session_id is not None:
        keys["session_id"] = session_id
    return keys


def _event_name(message: Mapping[str, Any], kind: str) -> str:
    if kind != "track":
        # A page's or screen's `name` stays a field of its own; event_name says what kind of call it was.
        return kind
    event = message.get("event")
    if not isinstance(event, str) or not event.strip():
        got = "it is missing" if event is None else f"got {_json_kind(event)}"
        raise SegmentError(f'a track call needs event: the action\'s name, like "Product Viewed"; {got}')
    return event


def _identifier(message: Mapping[str, Any], name: str) -> str | None:
    value = message.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise SegmentError(f"{name} must be a string, got {_json_kind(value)}")


def _session_id(
    context: Mapping[str, Any], props: Mapping[str, Any], integrations: Mapping[str, Any]
) -> str | None:
    amplitude = [integrations.get(n) for n in ("Actions Amplitude", "Amplitude")]
    candidates = [context.get("sessionId"), context.get("session_id")]
    candidates += [props.get("session_id"), props.get("sessionId")]
    candidates += [a.get("session_id") for a in amplitude if isinstance(a, Mapping)]
    for value in candidates:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _sync_date(
    message: Mapping[str, Any], batch_sent_at: str | None, received_at: datetime | None
) -> str | None:
    received = received_at.replace(tzinfo=UTC) if received_at and received_at.tzinfo is None else received_at
    if message.get("timestamp") is not None and message.get("originalTimestamp") is not None:
        return _format_time(_parse_time(message["timestamp"], "timestamp"))
    name = "timestamp" if message.get("timestamp") is not None else "originalTimestamp"
    original = _parse_time(message[name], name) if message.get(name) is not None else None
    sent_raw = _first(message.get("sentAt"), batch_sent_at)
    sent = _parse_time(sent_raw, "sentAt") if sent_raw is not None else None
    if original is None:
        return _format_time(received) if received is not None else None
    if sent is None or received is None:
        return _format_time(original)
    try:
        return _format_time(received - (sent - original))
    except OverflowError:
        raise SegmentError(f"{name} and sentAt are too far apart to correct the clock skew") from None


def _parse_time(value: object, name: str) -> datetime:
    hint = f"{name} must be an ISO-8601 time like 2012-12-02T00:30:08.276Z"
    if not isinstance(value, str):
        raise SegmentError(f"{hint}, got {_json_kind(value)}")
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise SegmentError(f"{hint}, got {value[:40]!r}")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        zone = timezone(-offset if sign == "-" else offset)
        parsed = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, zone
        )
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise SegmentError(f"{hint}; {value[:40]!r} is not a real time") from None


def _format_time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _typed_columns(
    kind: str, message: Mapping[str, Any], props: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    page_ctx = context.get("page")
    context_url = _text(page_ctx.get("url")) if isinstance(page_ctx, Mapping) else None
    prop_url = _text(props.get("url"))
    page = (prop_url or context_url) if kind == "page" else (context_url or prop_url)
    revenue = _number(props.get("revenue"))
    if revenue is None and kind == "track" and message.get("event") == "Order Completed":
        revenue = _number(props.get("total"))
    category = _text(props.get("category"))
    if category is None and kind == "page":
        category = _text(message.get("category"))
    columns = {
        "page": page,
        "item_id": _item_id(props.get("product_id")) or _item_id(props.get("sku")),
        "category": category,
        "price": _number(props.get("price")),
        "quantity": _whole(props.get("quantity")),
        "revenue": revenue,
    }
    return {name: value for name, value in columns.items() if value is not None}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _item_id(value: object) -> str | None:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else _text(value)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float column
        return None
    return number if math.isfinite(number) else None


def _whole(value: object) -> int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first(*values: object) -> object:
    return next((v for v in values if v is not None), None)


def _present(value: object) -> bool:
    return value is not None and value != ""


def _merge(base: Mapping[str, Any], override: Mapping[str, Any], depth: int) -> dict[str, Any]:
    """`base` overlaid with `override`; nested objects merge key by key, `override` winning."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if depth > 1 and isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = _merge(below, value, depth - 1)
        else:
            merged[key] = value
    return merged


def _json_kind(value: object) -> str:
    """How `value` looked in the JSON, for error messages."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, Mapping) else "?"
