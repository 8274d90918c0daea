"""Stream features and views: windows, what each aggregation takes, and errors that say what to change."""

from __future__ import annotations

from typing import Any

import pytest

from kawa.features import SESSION, USER
from kawa.streaming import StreamError, StreamFeature, StreamView, parse_window, stream


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("30s", 30_000_000),
        ("5m", 300_000_000),
        ("1h", 3_600_000_000),
        ("24h", 86_400_000_000),
        ("7d", 604_800_000_000),
    ],
)
def test_windows(text: str, us: int) -> None:
    assert parse_window(text) == us


@pytest.mark.parametrize("text", ["5", "5x", "0s", "31d", "1.5h", "-5m", "", "m5"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(StreamError, match="window"):
        parse_window(text)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: stream.sum("page"), ["sum needs a number field", "'page'"]),
        (lambda: stream.count_distinct("category", window=None), ["needs a window"]),  # type: ignore[arg-type]
        (lambda: stream.last_n("page_type", 0), ["last_n needs n"]),
        (lambda: stream.last_n("page_type", 5000), ["from 1 to 1000"]),
        (lambda: StreamFeature("seconds_since_previous", "page"), ["takes no field"]),
        (lambda: StreamFeature("seconds_since_previous", window="5m"), ["takes no window"]),
        (lambda: StreamFeature("median", "price"), ["unknown aggregation 'median'"]),
        (lambda: StreamFeature("sum"), ["sum needs a field"]),
        (lambda: StreamFeature("count", n=3), ["takes no n"]),
        (lambda: stream.count(where={"price": "cheap"}), ["where", "'price'"]),
        (lambda: stream.count(window="2 weeks"), ["bad window"]),
        (lambda: stream.avg("sync_date"), ["'sync_date'", "cannot be used"]),
    ],
)
def test_bad_features_are_refused(make: Any, words: list[str]) -> None:
    with pytest.raises(StreamError) as err:
        make()
    for word in words:
        assert word in str(err.value)


def test_view_columns_keys_and_horizon() -> None:
    view = StreamView(
        "session_activity",
        key="keys.session_id",
        features={
            "views_5m": stream.count(where={"event_name": "view"}, window="5m"),
            "revenue_24h": stream.sum("revenue", where={"event_name": "purchase"}, window="24h"),
            "since": stream.seconds_since_previous(),
            "last_pages": stream.last_n("page_type", 10, where={"event_name": "view"}),
        },
    )
    assert view.column == "session_id"
    assert view.horizon_us == 86_400_000_000
    assert view.feature_names == ["views_5m", "revenue_24h", "since", "last_pages"]
    assert view.key_of({"keys": {"session_id": "s_1"}}) == "s_1"
    assert view.key_of({"keys": {"session_id": 42}}) == "42"  # the lake keeps ids as text
    assert view.key_of({"keys": {"user_id": "u"}}) is None
    assert view.key_of({}) is None
    by_entity = StreamView("u", USER, {"n": stream.count()})
    assert (by_entity.key, by_entity.column) == ("keys.user_id", "user_id")
    assert StreamView("s", SESSION, {"n": stream.count()}).column == "session_id"
    assert StreamView("c", "context.campaign.source", {"n": stream.count()}).column == "source"
    assert StreamView("n", "item_id", {"n": stream.count()}, column="item").column == "item"


def test_views_round_trip_through_plain_data() -> None:
    view = StreamView(
        "v",
        key="keys.user_id",
        features={
            "pages": stream.last_n("page", 3, where={"event_name": ["view"]}, window="1h"),
            "spend": stream.sum("revenue", window="7d"),
        },
    )
    again = StreamView.from_mapping("v", view.to_dict())
    assert again.to_dict() == view.to_dict()
    assert again.fingerprint == view.fingerprint
    changed = StreamView("v", key="keys.user_id", features={"spend": stream.sum("revenue", window="1d")})
    assert changed.fingerprint != view.fingerprint


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: StreamView("Bad", "keys.user_id", {"n": stream.count()}), ["'Bad'"]),
        (lambda: StreamView("v", "price", {"n": stream.count()}), ["number column"]),
        (lambda: StreamView("v", "keys.user_id", {}), ["no features"]),
        (lambda: StreamView("v", "keys.user_id", {"user_id": stream.count()}), ["taken by the key column"]),
        (lambda: StreamView("v", "keys.user_id", {"n": 3}), ["'n' must be a StreamFeature"]),
        (lambda: StreamView("v", "keys.user-id", {"n": stream.count()}), ["plain name"]),
        (
            lambda: StreamView.from_mapping(
                "v", {"key": "page", "features": {"n": {"agg": "count", "x": 1}}}
            ),
            ["feature 'n'", "unknown key 'x'"],
        ),
        (lambda: StreamView.from_mapping("v", {"features": {}}), ["key and features"]),
    ],
)
def test_bad_views_are_refused(make: Any, words: list[str]) -> None:
    with pytest.raises(StreamError) as err:
        make()
    for word in words:
        assert word in str(err.value)
