"""Point-in-time training sets: every feature of a row comes from events strictly before its cutoff."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from kawa.features import USER, Entity, FeatureError, FeatureView, agg, training_set
from kawa.features.spec import Feature
from kawa.warehouse import Warehouse

from ._events import DAY, T0, ev, new_warehouse, write_events

US = timedelta(microseconds=1)
PURCHASE = "event_name = 'purchase'"

# name -> (feature, python filter over an event, python aggregation over the matching events)
Oracle = Callable[[list[dict[str, Any]], datetime], Any]


def _is_purchase(e: dict[str, Any]) -> bool:
    return bool(e["event_name"] == "purchase")


def _days(cutoff: datetime, at: datetime) -> float:
    return ((cutoff - at) // US) / 86_400_000_000


def _sum(es: list[dict[str, Any]], _: datetime) -> float:
    return float(sum((Decimal(str(e["revenue"])) for e in es if e["revenue"] is not None), Decimal(0)))


def _avg(es: list[dict[str, Any]], c: datetime) -> float | None:
    values = [e for e in es if e["revenue"] is not None]
    return _sum(values, c) / len(values) if values else None


def _last(es: list[dict[str, Any]], _: datetime) -> Any:
    values = [e for e in es if e["category"] is not None]
    return max(values, key=lambda e: (e["sync_date"], e["category"]))["category"] if values else None


def _recency(es: list[dict[str, Any]], c: datetime) -> float | None:
    return _days(c, max(e["sync_date"] for e in es)) if es else None


def _age(es: list[dict[str, Any]], c: datetime) -> float | None:
    return _days(c, min(e["sync_date"] for e in es)) if es else None


def _cats(es: list[dict[str, Any]], _: datetime) -> set[str]:
    return {e["category"] for e in es if e["category"] is not None}


SPECS: dict[str, tuple[Feature, Callable[[dict[str, Any]], bool] | None, int | None, Oracle]] = {
    "events": (agg.count(), None, None, lambda es, c: len(es)),
    "purchases_7d": (agg.count(where=PURCHASE, window="7d"), _is_purchase, 7, lambda es, c: len(es)),
    "purchases_1d": (agg.count(where=PURCHASE, window="1d"), _is_purchase, 1, lambda es, c: len(es)),
    "revenue": (agg.sum("revenue", where=PURCHASE), _is_purchase, None, _sum),
    "revenue_7d": (agg.sum("revenue", where=PURCHASE, window="7d"), _is_purchase, 7, _sum),
    "aov_2w": (agg.avg("revenue", where=PURCHASE, window="2w"), _is_purchase, 14, _avg),
    "cheapest": (
        agg.min("revenue"),
        None,
        None,
        lambda es, c: min((e["revenue"] for e in es if e["revenue"] is not None), default=None),
    ),
    "dearest_7d": (
        agg.max("revenue", window="7d"),
        None,
        7,
        lambda es, c: max((e["revenue"] for e in es if e["revenue"] is not None), default=None),
    ),
    "categories": (agg.count_distinct("category"), None, None, lambda es, c: len(_cats(es, c))),
    "categories_3d": (agg.count_distinct("category", window="3d"), None, 3, lambda es, c: len(_cats(es, c))),
    "first_category_7d": (
        agg.min("category", window="7d"),
        None,
        7,
        lambda es, c: min(_cats(es, c), default=None),
    ),
    "last_category": (agg.last("category"), None, None, _last),
    "last_category_2d": (agg.last("category", window="2d"), None, 2, _last),
    "days_since_purchase": (agg.days_since_last(where=PURCHASE), _is_purchase, None, _recency),
    "days_since_seen_3d": (agg.days_since_last(window="3d"), None, 3, _recency),
    "days_since_first_view": (
        agg.days_since_first(where="event_name = 'view'"),
        lambda e: bool(e["event_name"] == "view"),
        None,
        _age,
    ),
}

VIEW = FeatureView("everything", USER, {name: spec[0] for name, spec in SPECS.items()})
# Only windows: the query then skips events older than the earliest cutoff's longest window.
WINDOWED = FeatureView("windowed", USER, {f"w_{n}": s[0] for n, s in SPECS.items() if s[2] is not None})


def expected(events: list[dict[str, Any]], user: str | None, cutoff: datetime | None) -> dict[str, Any]:
    """The features computed the slow, obvious way, from the events strictly before the cutoff."""
    out = {}
    for name, (_, keep, days, oracle) in SPECS.items():
        chosen = [
            e
            for e in events
            if user is not None
            and cutoff is not None
            and e["keys"]["user_id"] == user
            and e["sync_date"] < cutoff
            and (days is None or e["sync_date"] >= cutoff - days * DAY)
            and (keep is None or keep(e))
        ]
        out[name] = oracle(chosen, cutoff) if cutoff is not None else oracle([], T0)
    return out


def random_events(rng: random.Random, n: int = 400) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        name = rng.choice(["view", "view", "cart_add", "purchase"])
        at = T0 + timedelta(microseconds=rng.randrange(30 * 86_400_000_000))
        revenue = round(rng.uniform(1, 200), 2) if name == "purchase" else None
        category = rng.choice(["shoes", "bags", "hats", "toys", None])
        user = rng.choice(["u1", "u2", "u3", "u4", "u5", None])
        out.append(ev(name, at, user, session=f"s{i % 37}", revenue=revenue, category=category))
    return out


def random_labels(rng: random.Random, events: list[dict[str, Any]], n: int = 300) -> pa.Table:
    """Cutoffs at midnight, at random times, exactly on events, and exactly a window after an event."""
    users, cutoffs = [], []
    for _ in range(n):
        e = rng.choice(events)
        kind = rng.randrange(5)
        if kind == 0:
            cutoff = T0 + rng.randrange(1, 32) * DAY
        elif kind == 1:
            cutoff = T0 + timedelta(microseconds=rng.randrange(32 * 86_400_000_000))
        elif kind == 2:
            cutoff = e["sync_date"]
        else:
            cutoff = (
                e["sync_date"]
                + rng.choice([1, 2, 3, 7, 14]) * DAY
                + rng.choice([timedelta(0), timedelta(0), US, -US])
            )
        users.append(rng.choice([e["keys"]["user_id"], "u1", "nobody", None]))
        cutoffs.append(cutoff)
    return pa.table({"user_id": users, "cutoff": pa.array(cutoffs, pa.timestamp("us", tz="UTC"))})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_aggregation_matches_the_obvious_computation(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    events = random_events(rng)
    warehouse = new_warehouse(tmp_path, events)
    labels = random_labels(rng, events)
    if seed == 3:  # every cutoff at one time of day: the path that reads no partial days
        labels = labels.set_column(
            1, "cutoff", pa.array([T0 + rng.randrange(1, 32) * DAY for _ in range(labels.num_rows)])
        )
    assert WINDOWED.lookback_days == 14
    result = training_set(warehouse, labels, [VIEW, WINDOWED]).to_pylist()
    assert len(result) == labels.num_rows
    for row, label in zip(result, labels.to_pylist(), strict=True):
        assert (row["user_id"], row["cutoff"]) == (label["user_id"], label["cutoff"])
        want = expected(events, label["user_id"], label["cutoff"])
        assert {name: row[name] for name in SPECS} == want, f"label row {label}"
        windowed = {name: row[f"w_{name}"] for name in SPECS if f"w_{name}" in row}
        assert windowed == {name: want[name] for name in windowed}, f"label row {label}"


def test_an_event_after_the_cutoff_changes_nothing_and_one_before_does(tmp_path: Path) -> None:
    cutoff = T0 + 10 * DAY + timedelta(hours=7)
    base = [ev("purchase", cutoff - k * DAY, "u1", revenue=20.0, category="shoes") for k in (1, 3, 8)]
    warehouse = new_warehouse(tmp_path, base)
    labels = pa.table({"user_id": ["u1"], "cutoff": [cutoff]})
    before = training_set(warehouse, labels, [VIEW]).to_pylist()[0]
    for later in (cutoff, cutoff + US, cutoff + timedelta(hours=1), cutoff + 2 * DAY):
        write_events(warehouse, [*base, ev("purchase", later, "u1", revenue=999.0, category="toys")])
        assert training_set(warehouse, labels, [VIEW]).to_pylist()[0] == before, f"leak from {later}"
    write_events(warehouse, [*base, ev("purchase", cutoff - US, "u1", revenue=5.0, category="toys")])
    after = training_set(warehouse, labels, [VIEW]).to_pylist()[0]
    assert after["events"] == before["events"] + 1
    assert after["revenue_7d"] == before["revenue_7d"] + 5.0
    assert after["last_category"] == "toys"
    assert after["days_since_purchase"] == pytest.approx(1e-6 / 86_400)


@pytest.mark.parametrize("time_of_day", [timedelta(0), timedelta(hours=13, minutes=5)])
def test_window_boundaries(tmp_path: Path, time_of_day: timedelta) -> None:
    """A 7d window at cutoff c is [c - 7 days, c): its first instant is in, the cutoff itself is out."""
    cutoff = T0 + 20 * DAY + time_of_day
    events = [
        ev("purchase", cutoff - 7 * DAY, "in_at_start", revenue=1.0),
        ev("purchase", cutoff - 7 * DAY - US, "out_before_start", revenue=1.0),
        ev("purchase", cutoff - US, "in_at_end", revenue=1.0),
        ev("purchase", cutoff, "out_at_cutoff", revenue=1.0),
    ]
    warehouse = new_warehouse(tmp_path, events)
    users = ["in_at_start", "out_before_start", "in_at_end", "out_at_cutoff"]
    # Another cutoff at a different time of day makes the first one fall inside a day bucket too.
    labels = pa.table({"user_id": [*users, "in_at_start"], "cutoff": [cutoff] * 4 + [T0 + 3 * DAY]})
    rows = training_set(warehouse, labels, [VIEW]).to_pylist()
    assert [r["purchases_7d"] for r in rows[:4]] == [1, 0, 1, 0]
    assert [r["revenue"] for r in rows[:4]] == [1.0, 1.0, 1.0, 0.0]


def test_every_label_row_comes_back_in_order_with_empty_values(tmp_path: Path) -> None:
    warehouse = new_warehouse(tmp_path, [ev("view", T0 + DAY, "u1", category="hats")])
    labels = pa.table(
        {
            "user_id": ["ghost", None, "u1", "u1", "ghost", "u1"],
            "cutoff": [T0 + 5 * DAY, T0 + 5 * DAY, T0 + 5 * DAY, None, T0, T0 + 5 * DAY],
            "label": [1, 0, 1, 0, 1, 1],
            "weight": [0.5, 1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    out = training_set(warehouse, labels, [VIEW])
    assert out.column_names[:4] == ["user_id", "cutoff", "label", "weight"]
    assert out.column("weight").to_pylist() == [0.5, 1.0, 2.0, 3.0, 4.0, 5.0]
    rows = out.to_pylist()
    empty = {name: rows[0][name] for name in SPECS}
    # Counts, sums and distinct counts are 0 with no earlier events; everything else is NULL.
    assert empty == {name: (0 if spec[0].empty == 0 else None) for name, spec in SPECS.items()}
    for i in (1, 3, 4):
        assert {name: rows[i][name] for name in SPECS} == empty
    assert rows[2]["events"] == rows[5]["events"] == 1
    assert rows[2]["last_category"] == "hats"


def test_dates_naive_times_and_iso_strings_as_cutoffs(tmp_path: Path) -> None:
    warehouse = new_warehouse(tmp_path, [ev("view", T0 + DAY + timedelta(hours=1), "u1")])
    day2 = (T0 + 2 * DAY).date()
    for cutoffs in (
        pa.array([day2], pa.date32()),
        pa.array([datetime(2025, 9, 3)], pa.timestamp("ns")),
        pa.array(["2025-09-03T00:00:00Z"]),
    ):
        out = training_set(warehouse, pa.table({"user_id": ["u1"], "cutoff": cutoffs}), [VIEW]).to_pylist()
        assert out[0]["events"] == 1
        assert out[0]["days_since_seen_3d"] == pytest.approx(23 / 24)


def test_views_on_two_entities_and_a_sql_view(tmp_path: Path) -> None:
    events = [
        ev("view", T0 + DAY, "u1", item_id="i1"),
        ev("view", T0 + 2 * DAY, "u2", item_id="i1"),
        ev("purchase", T0 + 3 * DAY, "u1", item_id="i2", revenue=3.0),
    ]
    warehouse = new_warehouse(tmp_path, events)
    item = Entity("item", "item_id")
    item_views = FeatureView("item_pop", item, {"item_views": agg.count(where="event_name = 'view'")})
    raw = FeatureView(
        "spend",
        USER,
        sql="""
        SELECT c.user_id, c.cutoff, coalesce(sum(e.revenue), 0) AS spend
        FROM cutoffs c LEFT JOIN events e ON e.keys.user_id = c.user_id AND e.sync_date < c.cutoff
        GROUP BY ALL""",
    )
    labels = pa.table(
        {
            "user_id": ["u1", "u2", "u1"],
            "item_id": ["i1", "i1", "i2"],
            "cutoff": [T0 + 10 * DAY, T0 + 2 * DAY, T0 + 10 * DAY],
        }
    )
    rows = training_set(warehouse, labels, [item_views, raw]).to_pylist()
    assert [(r["item_views"], r["spend"]) for r in rows] == [(2, 3.0), (1, 0.0), (0, 3.0)]


def test_clear_errors(tmp_path: Path) -> None:
    warehouse = new_warehouse(tmp_path, [ev("view", T0, "u1")])
    labels = pa.table({"user_id": ["u1"], "cutoff": [T0 + DAY]})
    with pytest.raises(FeatureError, match="no 'item_id' column"):
        training_set(warehouse, labels, [FeatureView("x", Entity("item", "item_id"), {"n": agg.count()})])
    with pytest.raises(FeatureError, match="'cutoff'"):
        training_set(warehouse, pa.table({"user_id": ["u1"]}), [VIEW])
    with pytest.raises(FeatureError, match="'events' of feature view 'again' is also in feature view"):
        training_set(warehouse, labels, [VIEW, FeatureView("again", USER, {"events": agg.count()})])
    bad = FeatureView("bad", USER, {"ok": agg.count(), "oops": agg.sum("revenu")})
    with pytest.raises(FeatureError, match=r"feature 'oops' expr `revenu` is not valid SQL"):
        training_set(warehouse, labels, [bad])
    broken = FeatureView("broken", USER, sql="SELECT user_id FROM cutoffs")
    with pytest.raises(FeatureError, match="must return the columns 'user_id' and 'cutoff'"):
        training_set(warehouse, labels, [broken])


def test_an_empty_warehouse_gives_empty_features(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "lake", "empty")
    rows = training_set(warehouse, pa.table({"user_id": ["u1"], "cutoff": [T0]}), [VIEW]).to_pylist()
    assert rows[0]["events"] == 0 and rows[0]["last_category"] is None


def test_a_view_of_windows_reads_back_exactly_to_its_longest_window(tmp_path: Path) -> None:
    first = T0 + 20 * DAY + timedelta(hours=5)
    events = [
        ev("purchase", first - 14 * DAY, "u1", revenue=10.0),  # the first instant of the 2w window
        ev("purchase", first - 14 * DAY - US, "u1", revenue=1000.0),  # just before it
        ev("purchase", first - DAY, "u1", revenue=20.0),
    ]
    warehouse = new_warehouse(tmp_path, events)
    labels = pa.table({"user_id": ["u1", "u1"], "cutoff": [first, first + 3 * DAY]})
    rows = training_set(warehouse, labels, [WINDOWED]).to_pylist()
    assert [r["w_aov_2w"] for r in rows] == [15.0, 20.0]
    assert [r["w_dearest_7d"] for r in rows] == [20.0, 20.0]
