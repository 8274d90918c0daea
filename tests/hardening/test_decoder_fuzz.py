"""Hypothesis over the event decoder, the body decompression, the Segment translation and the predict
body parser: arbitrary bytes and JSON-like structures give accepted events or clean rejects, never an
unexpected exception."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from kawa.events._nesting import NotJSON, pseudo_depth, shallow_batch, top_level_items
from kawa.events.collector import decompress
from kawa.events.segment import SEGMENT_TYPES, SegmentError, to_envelopes, write_key
from kawa.events.validate import Batch, BodyError, decode_batch
from kawa.serving.online import PredictRequestError, parse_rows

# No explain phase: on Python 3.11 it traces every line run by each example, which turns a failure into
# minutes of tracing instead of a report.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
RECEIVED = 1_780_000_000_000_000  # 2026-05-28, in microseconds
MAX_DEPTH, MAX_EVENT = 32, 4096

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    # JSON has no Infinity (Python's json.dumps writes it anyway; the bodies here must be JSON).
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ids = st.one_of(st.text(max_size=12), st.integers(), st.none(), st.floats(allow_nan=False), json_values)
# Events close to real ones, so the fuzz reaches the checks past the parser.
events = st.fixed_dictionaries(
    {},
    optional={
        "event_name": st.one_of(st.text(max_size=12), json_values),
        "keys": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"user_id": ids, "visitor_id": ids, "session_id": ids, "api_key": ids}
            ),
            json_values,
        ),
        "event_id": ids,
        "sync_date": st.one_of(
            st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30), json_values
        ),
        "timestamp": st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), json_values),
        "price": st.one_of(st.floats(allow_nan=False), json_values),
        "quantity": st.one_of(st.integers(), json_values),
        "properties": json_values,
    },
)


def nested(levels: int) -> bytes:
    """A JSON value `levels` arrays deep (written out: Python's own encoder recurses)."""
    return b"[" * levels + b"1" + b"]" * levels


def with_properties(event: dict[str, Any], properties: bytes) -> bytes:
    """The event's JSON with `properties` (JSON text) in place of its own."""
    rest = json.dumps({k: v for k, v in event.items() if k != "properties"}).encode()
    return rest[:-1] + (b", " if len(rest) > 2 else b"") + b'"properties": ' + properties + b"}"


bodies = st.one_of(
    st.binary(max_size=300),
    st.lists(events, max_size=6).map(lambda e: json.dumps(e).encode()),
    events.map(lambda e: json.dumps(e).encode()),
    st.lists(events, max_size=6).map(lambda e: b"\n".join(json.dumps(x).encode() for x in e)),
    st.tuples(events, st.integers(0, 3000)).map(
        lambda p: b"[" + json.dumps(p[0]).encode() + b"," + with_properties(p[0], nested(p[1])) + b"]"
    ),
    # Raw bytes (invalid UTF-8 too) inside a string of an otherwise fine event, alone or in a batch.
    st.tuples(
        events, st.binary(min_size=1, max_size=4).map(lambda b: b.replace(b'"', b"").replace(b"\\", b""))
    ).map(lambda p: json.dumps([{**p[0], "page": "@@"}] * 2).encode().replace(b"@@", p[1])),
    st.tuples(
        events, st.binary(min_size=1, max_size=4).map(lambda b: b.replace(b'"', b"").replace(b"\\", b""))
    ).map(lambda p: json.dumps({**p[0], "event_name": "@@"}).encode().replace(b"@@", p[1])),
    st.tuples(st.lists(events, min_size=1, max_size=3), st.binary(max_size=20), st.integers(0, 200)).map(
        lambda p: json.dumps(p[0]).encode()[: p[2]] + p[1]  # cut short, with noise after
    ),
)


def owner(key: str) -> str | None:
    return {"kw_w_good": "shop", "kw_w_theirs": "other"}.get(key)


def check_batch(batch: Batch, body: bytes) -> None:
    assert len(batch.lines) == len(batch.times)
    for line, ts in zip(batch.lines, batch.times, strict=True):
        event = msgspec.json.decode(line)
        assert isinstance(event, dict) and isinstance(event["event_name"], str) and event["event_name"]
        keys = event["keys"]
        assert keys.get("user_id") is not None or keys.get("visitor_id") is not None
        assert "api_key" not in keys  # keys never land in the lake
        assert isinstance(ts, int)
    for rejected in batch.rejected:
        assert rejected.reason and rejected.reason.startswith("event ")


@FUZZ
@given(body=bodies, ndjson=st.booleans(), keyed=st.booleans())
def test_the_decoder_accepts_or_rejects_cleanly(body: bytes, ndjson: bool, keyed: bool) -> None:
    try:
        batch = decode_batch(
            body,
            ndjson=ndjson,
            project="shop",
            received_at=RECEIVED,
            max_depth=MAX_DEPTH,
            max_event_bytes=MAX_EVENT,
            key_project=owner if keyed else None,
        )
    except BodyError as exc:
        assert str(exc)
        return
    check_batch(batch, body)


@FUZZ
@given(good=st.lists(events, max_size=5), bad=st.binary(max_size=50), levels=st.integers(0, 5000))
@example(good=[], bad=b"", levels=MAX_DEPTH - 1)  # exactly at the limit: kept
@example(good=[], bad=b"", levels=MAX_DEPTH)  # one past it: refused
def test_good_events_beside_bad_ones_are_kept(good: list[dict[str, Any]], bad: bytes, levels: int) -> None:
    """Each good event of an NDJSON body is accepted, whatever the lines beside it hold."""
    valid = {"event_name": "view", "keys": {"user_id": "u"}}
    lines = [json.dumps(valid).encode()] + [json.dumps(g).encode() for g in good]
    lines += [bad.replace(b"\n", b" "), with_properties(valid, nested(levels))]
    batch = decode_batch(
        b"\n".join(lines),
        ndjson=True,
        project="shop",
        received_at=RECEIVED,
        max_depth=MAX_DEPTH,
        max_event_bytes=1 << 20,
    )
    check_batch(batch, b"")
    assert lines[0] in batch.lines
    assert (lines[-1] in batch.lines) == (levels + 1 <= MAX_DEPTH)  # the event object is one level


@FUZZ
@given(items=st.lists(json_values, max_size=6), spaces=st.sampled_from(["", " ", "\n "]))
def test_top_level_items_finds_each_item_of_an_array(items: list[Any], spaces: str) -> None:
    text = ("[" + spaces + ("," + spaces).join(json.dumps(i) for i in items) + spaces + "]").encode()
    assert [json.loads(i) for i in top_level_items(text)] == items
    assert pseudo_depth(text) >= (1 if items or text else 0)


@FUZZ
@given(data=st.binary(max_size=200))
def test_top_level_items_never_raises_anything_but_not_json(data: bytes) -> None:
    try:
        top_level_items(b"[" + data)
    except NotJSON as exc:
        assert str(exc)


@FUZZ
@given(messages=st.lists(st.one_of(json_values, st.tuples(st.integers(0, 60))), max_size=5), rest=json_values)
def test_shallow_batch_parses_what_is_shallow_and_marks_what_is_deep(messages: list[Any], rest: Any) -> None:
    """A batch's messages (a 1-tuple here stands for a message nested that deep) split and parse alone.

    A tuple, not a bare int: json_values draws ints up to 2**70 too, and one of those taken for a depth
    made a body of hundreds of MB."""
    texts = [nested(m[0]) if isinstance(m, tuple) else json.dumps(m).encode() for m in messages]
    body = b'{"context": ' + json.dumps(rest).encode() + b', "batch": [' + b", ".join(texts) + b"]}"
    try:
        parsed, deep = shallow_batch(body, MAX_DEPTH)
    except NotJSON:
        assert pseudo_depth(json.dumps(rest).encode()) > MAX_DEPTH
        return
    assert parsed["context"] == rest
    assert deep == {i for i, t in enumerate(texts) if pseudo_depth(t) > MAX_DEPTH}
    for i, text in enumerate(texts):
        assert parsed["batch"][i] == (None if i in deep else json.loads(text))


compressed = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=2000).map(gzip.compress),
    st.binary(max_size=2000).map(zlib.compress),
    st.tuples(st.binary(max_size=500).map(gzip.compress), st.integers(0, 600), st.binary(max_size=10)).map(
        lambda p: p[0][: p[1]] + p[2]
    ),
)


@FUZZ
@given(body=compressed, encoding=st.sampled_from(["gzip", "deflate", "x-gzip", "br", "", "identity"]))
def test_decompression_is_bounded_and_clean(body: bytes, encoding: str) -> None:
    try:
        out = decompress(body, encoding, 1000)
    except BodyError as exc:
        assert str(exc)
        return
    assert len(out) <= 1000 or encoding in ("", "identity")


segment_messages = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(sorted(SEGMENT_TYPES)), json_values),
            "userId": ids,
            "anonymousId": ids,
            "event": st.one_of(st.text(max_size=10), json_values),
            "messageId": ids,
            "timestamp": st.one_of(st.datetimes().map(lambda d: d.isoformat()), json_values),
            "sentAt": st.one_of(st.datetimes().map(lambda d: d.isoformat()), json_values),
            "properties": json_values,
            "context": json_values,
            "integrations": json_values,
            "groupId": ids,
            "previousId": ids,
        },
    ),
)


@FUZZ
@given(
    message=segment_messages,
    batch=st.booleans(),
    path_type=st.sampled_from([*sorted(SEGMENT_TYPES), "batch"]),
    authorization=st.one_of(
        st.none(), st.text(max_size=30), st.text(max_size=20).map(lambda t: "Basic " + t)
    ),
)
def test_segment_translation_gives_envelopes_or_clean_errors(
    message: Any, batch: bool, path_type: str, authorization: str | None
) -> None:
    body = {"batch": [message, message]} if batch else message
    try:
        key = write_key(body, authorization)
        assert key is None or isinstance(key, str)
        envelopes, rejects = to_envelopes(body, path_type, received_at=datetime(2026, 5, 28, tzinfo=UTC))
    except SegmentError as exc:
        assert str(exc)
        return
    for envelope in envelopes:
        assert isinstance(envelope["event_name"], str)
        json.dumps(envelope)  # plain JSON, ready for the collector
    for index, reason, _ in rejects:
        assert isinstance(index, int) and reason


@FUZZ
@given(body=bodies)
def test_predict_bodies_parse_or_fail_cleanly(body: bytes) -> None:
    try:
        parse_rows(body, max_depth=MAX_DEPTH)
    except PredictRequestError as exc:
        assert str(exc)


def test_the_deepest_bodies_are_refused_without_recursion() -> None:
    def decode(body: bytes) -> Batch:
        return decode_batch(
            body, ndjson=False, project="p", received_at=RECEIVED, max_depth=32, max_event_bytes=1 << 30
        )

    deep = 100_000
    with pytest.raises(BodyError, match="deeper than"):
        decode(b'{"a":' * deep + b"1" + b"}" * deep)
    batch = decode(b"[" * deep + b"]" * deep)
    assert not batch.lines and "deeper than" in batch.rejected[0].reason
