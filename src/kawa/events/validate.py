"""Turn a request body into accepted and rejected events, one typed decode per batch on the fast path.

The fast path decodes the whole body with a typed msgspec decoder in one call. Only when that fails does
the slow path look at events one by one, so a single bad event costs its batch a little time and never
loses the good events beside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, cast

import msgspec
import numpy as np

from kawa.events._nesting import NotJSON, pseudo_depth, top_level_items
from kawa.events._times import UNPARSED, event_times
from kawa.events.schema import Id, IncomingEvent, Keys, RejectedEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MAX_FUTURE_US = 7 * 24 * 3600 * 1_000_000
_MIN_TS_US = 946_684_800_000_000  # 2000-01-01
_MAX_PAYLOAD_KEPT = 65_536


class _FastKeys(msgspec.Struct, gc=False):
    """`Keys` for the fast path: the same fields and types, not tracked by the garbage collector."""

    user_id: Id | None = None
    visitor_id: Id | None = None
    session_id: Id | None = None
    api_key: str | None = None


class _FastEvent(msgspec.Struct, gc=False):
    """`IncomingEvent` made stricter for the fast path: an event this refuses takes the slow path.

    It accepts a subset of what `IncomingEvent` accepts (a name that is not empty, `keys` present), so a
    batch it decodes needs no per-event checks of those; `gc=False` because a batch makes thousands of
    these and the collector must not scan them.
    """

    event_name: Annotated[str, msgspec.Meta(min_length=1)]
    keys: _FastKeys
    event_id: Id | None = None
    sync_date: str | None = None
    timestamp: str | None = None
    page: str | None = None
    item_id: Id | None = None
    category: str | None = None
    price: float | None = None
    quantity: int | None = None
    revenue: float | None = None


_Event = IncomingEvent | _FastEvent

_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_raw_one = msgspec.json.Decoder(msgspec.Raw)
_fast_list = msgspec.json.Decoder(list[_FastEvent])
_fast_one = msgspec.json.Decoder(_FastEvent)
_typed_one = msgspec.json.Decoder(IncomingEvent)
_any = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class BodyError(ValueError):
    """The body as a whole cannot be read; the message says why. Maps to a 400."""


@dataclass
class Batch:
    """The outcome of one request body: the JSON text and time of each event to keep, and those refused."""

    lines: list[bytes] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)


def split_body(body: bytes, ndjson: bool, max_depth: int) -> tuple[list[msgspec.Raw | None], list[str]]:
    """Split a body into raw event objects; a line that is not JSON yields None and a reason."""
    if not body.strip():
        raise BodyError("the body is empty; send one JSON object, a JSON array, or NDJSON lines")
    # The array adds one level; pseudo_depth over-counts brackets in strings, so it only ever errs safe.
    limit = max_depth + (0 if ndjson else 1)
    if pseudo_depth(body) > limit:
        return _split_checked(body, ndjson, max_depth)
    try:
        if ndjson:
            return list(_raw_one.decode_lines(body)), []
        first = body.lstrip()[:1]
        if first == b"[":
            return list(_raw_list.decode(body)), []
        if first == b"{":
            return [_raw_one.decode(body)], []
        raise BodyError("the body must be a JSON object, a JSON array of objects, or NDJSON")
    except msgspec.DecodeError as exc:
        if ndjson:
            return _split_lines(body, max_depth)
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BodyError(f"the body is nested deeper than {max_depth} levels") from None


def _split_lines(body: bytes, max_depth: int) -> tuple[list[msgspec.Raw | None], list[str]]:
    raws: list[msgspec.Raw | None] = []
    reasons: list[str] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        reason = ""
        raw: msgspec.Raw | None = None
        if pseudo_depth(line) > max_depth:
            reason = f"line {number}: nested deeper than {max_depth} levels"
        else:
            try:
                raw = _raw_one.decode(line)
            except (msgspec.DecodeError, RecursionError) as exc:
                reason = f"line {number}: not valid JSON: {exc}"
        raws.append(raw)
        reasons.append(reason)
    return raws, reasons


def _split_checked(body: bytes, ndjson: bool, max_depth: int) -> tuple[list[msgspec.Raw | None], list[str]]:
    """The slow path for bodies that may be too deep: check each event's depth before parsing it."""
    if ndjson:
        return _split_lines(body, max_depth)
    first = body.lstrip()[:1]
    if first == b"{":
        raise BodyError(f"the event is nested deeper than {max_depth} levels")
    if first != b"[":
        raise BodyError("the body must be a JSON object, a JSON array of objects, or NDJSON")
    try:
        items = top_level_items(body)  # no parser sees an item before its depth is known
    except NotJSON as exc:
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    raws: list[msgspec.Raw | None] = []
    reasons: list[str] = []
    for item in items:
        raw, reason = None, f"nested deeper than {max_depth} levels"
        if pseudo_depth(item) <= max_depth:
            try:
                raw, reason = _raw_one.decode(item), ""
            except msgspec.DecodeError as exc:
                reason = f"not valid JSON: {exc}"
        raws.append(raw)
        reasons.append(reason)
    return raws, reasons


_API_KEY = re.compile(rb'"api_key"\s*:\s*"([^"\\]{1,200})"')


def first_api_key(body: bytes) -> str | None:
    """The first `keys.api_key` in a body (a candidate only: each event's key is checked again)."""
    match = _API_KEY.search(body, 0, 65_536)
    return match.group(1).decode("utf-8", "replace") if match else None


def parse_time(text: str) -> int:
    """Microseconds since the epoch for an RFC 3339 or `YYYY-MM-DD HH:MM:SS[.fff] UTC` time.

    >>> parse_time("1970-01-01 00:00:01.5 UTC")
    1500000
    >>> parse_time("2020-11-29T23:50:23.142Z") == parse_time("2020-11-29 23:50:23.142 UTC")
    True
    """
    if text.endswith(" UTC"):
        text = text[:-4]
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _US


def _stamp(ev: _Event | None) -> str | None:
    if ev is None:
        return None
    return ev.sync_date if ev.sync_date is not None else ev.timestamp


def _accept_all(events: list[_FastEvent], lines: list[bytes], received_at: int) -> Batch | None:
    """The batch when every event is good and carries no write key (the usual case); else None."""
    if any(
        [
            k.api_key is not None or (k.user_id is None and k.visitor_id is None)
            for k in (e.keys for e in events)
        ]
    ):
        return None
    stamps = [e.sync_date if e.sync_date is not None else e.timestamp for e in events]
    latest = received_at + _MAX_FUTURE_US
    if len(stamps) < 8:  # a request of a few events: plain Python beats array set-up
        small: list[int] = []
        for stamp in stamps:
            try:
                ts = received_at if stamp is None else parse_time(stamp)
            except ValueError:
                return None
            if not _MIN_TS_US <= ts <= latest:
                return None
            small.append(ts)
        return Batch(lines=lines, times=small)
    times = event_times(stamps, received_at)
    for i in np.flatnonzero(times == UNPARSED).tolist():
        try:
            times[i] = parse_time(stamps[i])  # type: ignore[arg-type]  # None is never left unparsed
        except ValueError:
            return None
    if not ((times >= _MIN_TS_US) & (times <= latest)).all():
        return None
    return Batch(lines=lines, times=times.tolist())


def _clean_ndjson(body: bytes, received_at: int, *, max_depth: int, max_event_bytes: int) -> Batch | None:
    """The batch of an NDJSON body whose events all pass and whose lines need no trimming; else None.

    Such a body's lines are its events' exact text, so it is cut with one `split` instead of a
    msgspec.Raw per event. JSON strings cannot hold a raw tab or CR, so without those, a line has no
    whitespace to trim when no line starts or ends with a space and none is empty.
    """
    if not body or b"\r" in body or b"\t" in body:
        return None
    data = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(data == 0x0A)
    last = len(body) - 1 - (len(ends) > 0 and ends[-1] == len(body) - 1)  # one closing newline may follow
    inner = ends[ends < last]
    edges = np.concatenate([inner - 1, inner + 1, [0, last]]) if last >= 0 else inner
    if last < 0 or ((data[edges] == 0x20) | (data[edges] == 0x0A)).any():
        return None  # a space beside a line break or at an end, or an empty line
    lines = body.split(b"\n")
    if len(lines) > len(inner) + 1:
        lines.pop()
    if max(map(len, lines)) > max_event_bytes or pseudo_depth(body) > max_depth:
        return None
    try:
        events = _fast_one.decode_lines(body)
    except msgspec.DecodeError:  # also a ValidationError: the careful path says which event and why
        return None
    return _accept_all(events, lines, received_at) if len(events) == len(lines) else None


def decode_batch(
    body: bytes,
    *,
    ndjson: bool,
    project: str,
    received_at: int,
    max_depth: int,
    max_event_bytes: int,
    key_project: Callable[[str], str | None] | None = None,
) -> Batch:
    """Validate the events of one request body; accepted ones keep their exact JSON text.

    `key_project` resolves a per-event `keys.api_key` to its project (or None when the key is not a
    valid write key); when given, each event must carry a key of `project`.
    """
    if ndjson and key_project is None:
        accepted = _clean_ndjson(body, received_at, max_depth=max_depth, max_event_bytes=max_event_bytes)
        if accepted is not None:
            return accepted
    raws, split_reasons = split_body(body, ndjson, max_depth)
    lines = [bytes(r) if r is not None else b"" for r in raws]
    events: list[_Event | None] = []
    reasons = split_reasons or [""] * len(raws)
    fast = not split_reasons and max(map(len, lines), default=0) <= max_event_bytes
    if fast:
        try:
            if ndjson:
                events = cast("list[_Event | None]", _fast_one.decode_lines(body))
            elif len(raws) == 1 and body.lstrip()[:1] == b"{":
                events = [_fast_one.decode(body)]
            else:
                events = cast("list[_Event | None]", _fast_list.decode(body))
        except msgspec.DecodeError:  # a bad field, or invalid UTF-8 the raw split let through
            fast = False
    if fast and key_project is None:
        accepted = _accept_all(events, lines, received_at)  # type: ignore[arg-type]
        if accepted is not None:
            return accepted
    if not fast:
        events = []
        for i, line in enumerate(lines):
            if raws[i] is None:
                events.append(None)
            elif len(line) > max_event_bytes:
                reasons[i] = f"event is {len(line)} bytes; the limit is {max_event_bytes}"
                events.append(None)
            else:
                try:
                    events.append(_typed_one.decode(line))
                except msgspec.ValidationError as exc:
                    reasons[i] = _explain(exc)
                    events.append(None)
                except msgspec.DecodeError as exc:  # e.g. invalid UTF-8 inside a string
                    reasons[i] = f"not valid JSON: {exc}"
                    events.append(None)

    batch = Batch()
    latest = received_at + _MAX_FUTURE_US
    parsed = event_times([_stamp(ev) for ev in events], received_at)
    for i, ev in enumerate(events):
        reason = reasons[i]
        if ev is not None and not reason:
            reason = _check(ev, key_project, project)
            if not reason:
                stamp = _stamp(ev)
                ts = int(parsed[i])  # received_at when there is no stamp
                if stamp is not None:
                    if ts == UNPARSED:
                        try:
                            ts = parse_time(stamp)
                        except ValueError:
                            ts = -1
                    if not _MIN_TS_US <= ts <= latest:
                        reason = (
                            f"sync_date {stamp!r} is not a time kawa can use; send RFC 3339 "
                            "(2026-01-31T12:00:00Z) or 'YYYY-MM-DD HH:MM:SS[.fff] UTC', "
                            "from 2000 up to a week ahead"
                        )
            if not reason:
                assert ev.keys is not None
                batch.lines.append(lines[i] if ev.keys.api_key is None else _strip_api_key(lines[i]))
                batch.times.append(ts)
                continue
        batch.rejected.append(
            RejectedEvent(
                project=project,
                received_at=received_at,
                reason=f"event {i}: {reason}",
                index=i,
                event_id=_event_id_of(ev, lines[i]),
                payload=lines[i][:_MAX_PAYLOAD_KEPT].decode("utf-8", "replace"),
            )
        )
    return batch


def _check(ev: _Event, key_project: Callable[[str], str | None] | None, project: str) -> str:
    if not ev.event_name:
        return "event_name is empty; name the event, e.g. 'view' or 'purchase'"
    keys = ev.keys
    if keys is None or (keys.user_id is None and keys.visitor_id is None):
        return "keys.user_id or keys.visitor_id is required"
    if key_project is not None:
        if keys.api_key is None:
            return "no write key: send Authorization: Bearer KEY or keys.api_key"
        owner = key_project(keys.api_key)
        if owner is None:
            return "keys.api_key is not a valid write key"
        if owner != project:
            return "keys.api_key belongs to another project than the request"
    return ""


def _explain(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    if "missing required field `event_name`" in text:
        return "event_name is missing; every event needs one, e.g. 'view' or 'purchase'"
    return text.replace("`$.", "`").replace("$.", "")


def _event_id_of(ev: _Event | None, line: bytes) -> str | None:
    if ev is not None:
        return None if ev.event_id is None else str(ev.event_id)
    try:
        obj = _any.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    value = obj.get("event_id") if isinstance(obj, dict) else None
    return str(value) if isinstance(value, str | int) else None


def _strip_api_key(line: bytes) -> bytes:
    """The event without its write key, so keys never land in the lake."""
    obj = _any.decode(line)
    keys = obj.get("keys")
    if isinstance(keys, dict):
        keys.pop("api_key", None)
    return _encoder.encode(obj)


__all__ = [
    "Batch",
    "BodyError",
    "Keys",
    "decode_batch",
    "event_times",
    "parse_time",
    "pseudo_depth",
    "split_body",
]
