"""Realistic shop events (views, cart adds, purchases) as NDJSON request bodies, made before the load starts.

Bodies are templates: every event_id holds the placeholder `TAG`, which the load generator swaps for a
fresh fixed-width counter with one `bytes.replace` per request, so ids stay unique across a long run
while generating a request costs one C call instead of 500 Python `encode`s. Likewise every event time
holds `CLOCK`, swapped for the current `HH:MM:SS`: events carry times of the moment they are sent, and
the copies of one template sent at different moments are different rows (the lake sorts by time, and
identical neighbours would compress far better than real traffic does).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import msgspec

TAG = b"@@@@@@@@@@"  # 10 bytes; replaced by a 10-character request counter
CLOCK = b"##:##:##"  # replaced by the time of day (UTC) when the request is sent
MARKER_PREFIX = "zz-marker-"  # sorts after every load event id, so Parquet min/max stats skip old rows

_CATEGORIES = ("shoes", "bags", "shirts", "dresses", "hats", "toys", "books", "garden", "kitchen", "beauty")
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 Version/18.1 Safari",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile",
)
_REFERRERS = ("https://www.google.com/", "https://www.instagram.com/", "", "https://news.example.org/deals")
_encoder = msgspec.json.Encoder()


def _stamp(us: int, rfc3339: bool, clock: str | None = None) -> str:
    dt = datetime.fromtimestamp(us / 1e6, tz=UTC)
    hms = clock or dt.strftime("%H:%M:%S")
    if rfc3339:
        return dt.strftime("%Y-%m-%dT") + hms + f".{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%d ") + hms + f".{dt.microsecond // 1000:03d} UTC"


def stamp_clock(seconds: float | None = None) -> bytes:
    """What replaces `CLOCK` in a body sent now."""
    return time.strftime("%H:%M:%S", time.gmtime(seconds)).encode()


def shop_event(rng: random.Random, serial: int, now_us: int) -> dict[str, object]:
    """One event of a shop's stream; `serial` makes its id unique within a template body."""
    user = int(rng.paretovariate(1.2) * 1000) % 500_000
    item = int(rng.paretovariate(1.1) * 100) % 80_000
    category = _CATEGORIES[item % len(_CATEGORIES)]
    name = rng.choices(("view", "cart_add", "purchase", "search"), (0.80, 0.12, 0.03, 0.05))[0]
    price = round(5 + (item * 7919 % 29_500) / 100, 2)
    segment_style = rng.random() < 0.2  # RFC 3339 `timestamp`, as Segment's libraries send it
    stamp = _stamp(now_us + rng.randrange(1_000_000), rfc3339=segment_style, clock=CLOCK.decode())
    event: dict[str, object] = {
        "event_name": name,
        "event_id": f"ev-{TAG.decode()}-{serial:06d}",
        "timestamp" if segment_style else "sync_date": stamp,
        "keys": {"user_id": f"user_{user}", "session_id": f"s{user}_{rng.randrange(40)}"},
        "page": f"https://shop.example.com/{category}/item-{item}?ref=home&pos={rng.randrange(48)}",
        "item_id": f"item_{item}",
        "category": category,
        "price": price,
        "user_agent": _AGENTS[user % len(_AGENTS)],
        "referrer": _REFERRERS[rng.randrange(len(_REFERRERS))],
    }
    if name == "search":
        event["query"] = rng.choice(_CATEGORIES) + " " + rng.choice(("red", "sale", "new", "kids", "xl"))
    if name in ("cart_add", "purchase"):
        event["quantity"] = rng.randrange(1, 4)
    if name == "purchase":
        event["revenue"] = round(price * int(event["quantity"]), 2)  # type: ignore[call-overload]
        event["order_id"] = f"o{rng.getrandbits(40):010x}"
    return event


def make_bodies(count: int, batch: int, seed: int = 7) -> list[bytes]:
    """`count` distinct NDJSON bodies of `batch` events each, with `TAG` in every event_id."""
    rng = random.Random(seed)
    now_us = time.time_ns() // 1000
    bodies = []
    for b in range(count):
        lines = [_encoder.encode(shop_event(rng, b * batch + i, now_us)) for i in range(batch)]
        bodies.append(b"\n".join(lines))
    return bodies


def marker_body(run: int, serial: int) -> bytes:
    """One JSON event whose arrival in the warehouse the freshness probe waits for."""
    return _encoder.encode(
        {
            "event_name": "bench_marker",
            "event_id": f"{MARKER_PREFIX}{run:02d}-{serial:06d}",
            "sync_date": _stamp(time.time_ns() // 1000, rfc3339=False),
            "keys": {"user_id": "bench"},
        }
    )
