"""Running totals across entities: every aggregation still matches the plain computation.

The compiled query sums over one stream sorted by (entity id, day) and reads each entity's values
as differences of probes, with the entity id packed into first/last times, min, max and last. So
the data here crowds many entities together, crosses the Unix epoch (negative times and days) and
has refunds (negative revenue), NULL revenue, NULL categories and users with no earlier events.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from kawa.features import USER, Entity, FeatureView, agg, training_set
from kawa.features._run import Shards, _shard_count, compute_view, shards_of
from kawa.warehouse import Warehouse

from ._events import ev, new_warehouse, write_events
from .test_training import SPECS, VIEW, WINDOWED, expected

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
START = EPOCH - timedelta(days=12)
DAY_US = 86_400_000_000


def crowded_events(rng: random.Random, users: int = 60, n: int = 700) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        name = rng.choice(["view", "view", "cart_add", "purchase", "purchase"])
        at = START + timedelta(microseconds=rng.randrange(24 * DAY_US))
        revenue = None
        if name == "purchase":
            revenue = rng.choice([round(rng.uniform(-80, 300), 2), round(rng.uniform(0, 5), 2), None])
        category = rng.choice(["shoes", "bags", "hats", None])
        user = rng.choice([f"u{rng.randrange(users)}", None])
        out.append(ev(name, at, user, session=f"s{i % 11}", revenue=revenue, category=category))
    return out


def cutoffs(rng: random.Random, events: list[dict[str, Any]], n: int, *, aligned: bool) -> pa.Table:
    users, times = [], []
    for _ in range(n):
        e = rng.choice(events)
        if aligned:
            at = START + rng.randrange(0, 26) * timedelta(days=1)
        else:
            at = rng.choice(
                [e["sync_date"], e["sync_date"] + timedelta(days=rng.choice([1, 3, 7])), EPOCH]
            ) + timedelta(microseconds=rng.choice([0, 1, -1, 5_000_000]))
        users.append(rng.choice([e["keys"]["user_id"], e["keys"]["user_id"], "u999", None]))
        times.append(at)
    return pa.table({"user_id": users, "cutoff": pa.array(times, pa.timestamp("us", tz="UTC"))})


@pytest.mark.parametrize("aligned", [True, False])
def test_crowded_entities_across_the_epoch_match_the_plain_computation(tmp_path: Path, aligned: bool) -> None:
    rng = random.Random(7 if aligned else 8)
    events = crowded_events(rng)
    assert any(e["revenue"] is not None and e["revenue"] < 0 for e in events)
    warehouse = new_warehouse(tmp_path, events)
    labels = cutoffs(rng, events, 250, aligned=aligned)
    rows = training_set(warehouse, labels, [VIEW, WINDOWED]).to_pylist()
    assert len(rows) == labels.num_rows
    empty = 0
    for row, label in zip(rows, labels.to_pylist(), strict=True):
        want = expected(events, label["user_id"], label["cutoff"])
        empty += want["events"] == 0
        assert {name: row[name] for name in SPECS} == want, f"label row {label}"
        windowed = {name: row[f"w_{name}"] for name in SPECS if f"w_{name}" in row}
        assert windowed == {name: want[name] for name in windowed}, f"label row {label}"
    assert 0 < empty < len(rows)  # both kinds of rows were checked


def test_views_of_one_kind_of_aggregate(tmp_path: Path) -> None:
    """A view whose features need no running totals, or only counts, or one count (no pair)."""
    rng = random.Random(9)
    events = crowded_events(rng, users=8, n=120)
    warehouse = new_warehouse(tmp_path, events)
    labels = cutoffs(rng, events, 60, aligned=False)
    views = [
        FeatureView("first", USER, {"age": agg.days_since_first()}),
        FeatureView("one_count", USER, {"n_7d": agg.count(window="7d")}),
        FeatureView(
            "counts", USER, {"n": agg.count(), "n_1d": agg.count(window="1d"), "v": agg.count(expr="revenue")}
        ),
    ]
    rows = training_set(warehouse, labels, views).to_pylist()
    for row, label in zip(rows, labels.to_pylist(), strict=True):
        user, cutoff = label["user_id"], label["cutoff"]
        mine = [
            e for e in events if user is not None and e["keys"]["user_id"] == user and e["sync_date"] < cutoff
        ]
        recent = [e for e in mine if e["sync_date"] >= cutoff - timedelta(days=7)]
        day = [e for e in mine if e["sync_date"] >= cutoff - timedelta(days=1)]
        age = (
            ((cutoff - min(e["sync_date"] for e in mine)) // timedelta(microseconds=1)) / DAY_US
            if mine
            else None
        )
        want = {
            "age": age,
            "n_7d": len(recent),
            "n": len(mine),
            "n_1d": len(day),
            "v": sum(e["revenue"] is not None for e in mine),
        }
        assert {name: row[name] for name in want} == want, f"label row {label}"


@pytest.mark.parametrize("aligned", [True, False])
def test_cutoffs_on_a_few_dates_match_the_plain_computation(tmp_path: Path, aligned: bool) -> None:
    """Snapshots on three dates: the days no probe separates are aggregated as one row per user.

    Not aligned, the middle date is at 05:00:00.000001, inside its day, so partial days are read too.
    """
    rng = random.Random(10 if aligned else 11)
    events = crowded_events(rng, users=25, n=500)
    warehouse = new_warehouse(tmp_path, events)
    inside = timedelta(0) if aligned else timedelta(hours=5, microseconds=1)
    dates = [START + timedelta(days=9), START + timedelta(days=16) + inside, START + timedelta(days=23)]
    users = [f"u{i}" for i in range(25)] + ["u999", None]
    labels = pa.table(
        {
            "user_id": [u for _ in dates for u in users],
            "cutoff": pa.array([d for d in dates for _ in users], pa.timestamp("us", tz="UTC")),
        }
    )
    # Given these cutoffs' days, the compiled query looks each day's segment up in a list.
    buckets = [((d - EPOCH) // timedelta(days=1), d.time() != EPOCH.time()) for d in dates]
    assert "greatest(least(__b" in VIEW.sql_for(0, 10**16, 0, cutoff_buckets=buckets)
    assert "greatest(least(__b" not in VIEW.sql_for(0, 10**16, 0)
    rows = training_set(warehouse, labels, [VIEW, WINDOWED]).to_pylist()
    assert len(rows) == labels.num_rows
    for row, label in zip(rows, labels.to_pylist(), strict=True):
        want = expected(events, label["user_id"], label["cutoff"])
        assert {name: row[name] for name in SPECS} == want, f"label row {label}"
        windowed = {name: row[f"w_{name}"] for name in SPECS if f"w_{name}" in row}
        assert windowed == {name: want[name] for name in windowed}, f"label row {label}"


def test_shards_give_the_rows_of_one_query(tmp_path: Path) -> None:
    """A warehouse with 2 threads runs a spec view as 2 single-threaded shards; 1 thread, as one query."""
    rng = random.Random(12)
    events = crowded_events(rng, users=40, n=600)
    labels = cutoffs(rng, events, 200, aligned=False)
    one = Warehouse(tmp_path / "lake", "t", threads=1)
    write_events(one, events)
    two = Warehouse(tmp_path / "lake", "t", threads=2)
    assert (shards_of(one).count, shards_of(two).count) == (1, 2)
    seen: list[int] = []
    with two.connect() as db:
        db.register("labels", labels.append_column("row", pa.array(range(labels.num_rows))))
        compute_view(
            db, VIEW, "SELECT user_id, cutoff, row FROM labels", "out", row_id="row", shards=_Spy(two, seen)
        )
        split = db.sql("SELECT * FROM out ORDER BY row").to_arrow_table().to_pylist()
    assert seen == [1, 1]  # both shards opened a connection of their own, each with one thread
    whole = training_set(one, labels, [VIEW]).to_pylist()
    assert [{k: r[k] for k in SPECS} for r in split] == [{k: r[k] for k in SPECS} for r in whole]
    assert training_set(two, labels, [VIEW]).to_pylist() == whole
    # Label rows whose entity column is not the key's type cannot be split alike: one query.
    numbers = pa.table({"user_id": pa.array([1, 2], pa.int64()), "cutoff": labels.column("cutoff")[:2]})
    with two.connect() as db:
        db.register("numbers", numbers)
        db.execute("CREATE TEMP VIEW cutoffs AS SELECT * FROM numbers")
        assert _shard_count(db, VIEW, shards_of(two)) == 1


class _Spy(Shards):
    """Shards of `warehouse` that note each connection's thread count."""

    def __init__(self, warehouse: Warehouse, seen: list[int]) -> None:
        @contextmanager
        def connect() -> Iterator[duckdb.DuckDBPyConnection]:
            with warehouse.connect(threads=1) as db:
                seen.append(db.execute("SELECT current_setting('threads')").fetchall()[0][0])
                yield db

        super().__init__(2, connect)


def test_a_key_whose_type_changes_on_the_way_to_the_shards(tmp_path: Path) -> None:
    """A UUID key reaches the shards as VARCHAR (Arrow has no UUID): same shards, same rows, same type."""
    rng = random.Random(13)
    events = crowded_events(rng, users=40, n=600)
    thing = Entity("thing", "md5(keys.user_id)::UUID")
    view = FeatureView(
        "things", thing, {"n": agg.count(), "n_3d": agg.count(window="3d"), "spend": agg.sum("revenue")}
    )
    one = Warehouse(tmp_path / "lake", "t", threads=1)
    write_events(one, events)
    two = Warehouse(tmp_path / "lake", "t", threads=2)
    cutoffs = (
        f"SELECT DISTINCT ({thing.key}) AS thing_id, TIMESTAMPTZ '{START + timedelta(days=20)}' AS cutoff "
        "FROM events WHERE keys.user_id IS NOT NULL"
    )
    found = []
    for warehouse in (one, two):
        with warehouse.connect() as db:
            compute_view(db, view, cutoffs, "out", shards=shards_of(warehouse))
            types = [str(t) for t in db.sql("SELECT * FROM out LIMIT 0").types]
            found.append((types, db.sql("SELECT * FROM out ORDER BY thing_id").fetchall()))
    assert found[0][0][0] == "UUID" and len(found[0][1]) > 20
    assert found[1] == found[0]
