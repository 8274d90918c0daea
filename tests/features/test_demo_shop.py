"""The ready RFM view on the demo shop: numbers that agree with plain SQL and with the shop's ground truth."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from kawa.demo import ShopConfig, generate
from kawa.features import USER, Label, training_set
from kawa.features.presets import RFM
from kawa.warehouse import Warehouse

from ._events import events_table, write_events

CUTOFF = datetime(2025, 10, 6, tzinfo=UTC)  # 35 days into the shop, a Monday


@pytest.fixture(scope="module")
def shop_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, dict[str, int]]]:
    shop = generate(ShopConfig(users=150, days=50, items=120, visitors=40))
    warehouse = Warehouse(Path(tmp_path_factory.mktemp("shop")) / "lake", "shop")
    write_events(warehouse, events_table(shop.events))
    yield warehouse, {u.user_id: u.loyalty for u in shop.users if not u.is_bot}


@pytest.fixture(scope="module")
def rfm_rows(shop_warehouse: tuple[Warehouse, dict[str, int]]) -> list[dict[str, object]]:
    warehouse, _ = shop_warehouse
    users = warehouse.query(
        "SELECT DISTINCT keys.user_id AS user_id FROM events WHERE keys.user_id IS NOT NULL "
        f"AND sync_date < '{CUTOFF.isoformat()}' ORDER BY 1"
    )
    labels = users.append_column("cutoff", pa.array([CUTOFF] * users.num_rows, pa.timestamp("us", tz="UTC")))
    return training_set(warehouse, labels, [RFM]).to_pylist()


def test_rfm_agrees_with_plain_sql(
    shop_warehouse: tuple[Warehouse, dict[str, int]], rfm_rows: list[dict]
) -> None:
    warehouse, _ = shop_warehouse
    start = (CUTOFF - timedelta(days=30)).isoformat()
    purchase = f"event_name = 'purchase' AND sync_date >= '{start}'"
    truth = {
        r["user_id"]: r
        for r in warehouse.query(
            f"""SELECT keys.user_id AS user_id,
                  count(*) FILTER ({purchase}) AS purchases_30d,
                  round(coalesce(sum(revenue) FILTER ({purchase}), 0), 2) AS revenue_30d,
                  count(*) FILTER (event_name = 'view' AND sync_date >= '{start}') AS views_30d,
                  count(DISTINCT category) FILTER (event_name = 'view') AS categories_viewed
                FROM events WHERE sync_date < '{CUTOFF.isoformat()}' AND keys.user_id IS NOT NULL
                GROUP BY 1"""
        ).to_pylist()
    }
    assert len(rfm_rows) == len(truth) > 100
    for row in rfm_rows:
        want = truth[row["user_id"]]
        assert row["purchases_30d"] == want["purchases_30d"]
        assert round(row["revenue_30d"], 2) == want["revenue_30d"]
        assert row["views_30d"] == want["views_30d"]
        assert row["categories_viewed"] == want["categories_viewed"]


def test_rfm_numbers_are_sensible(
    shop_warehouse: tuple[Warehouse, dict[str, int]], rfm_rows: list[dict]
) -> None:
    _, loyalty = shop_warehouse
    for row in rfm_rows:
        assert 0 <= row["days_since_last_seen"] <= row["days_since_first_seen"] <= 35
        assert row["purchases_30d"] <= row["purchases_90d"]
        assert row["revenue_30d"] <= row["revenue_90d"] + 1e-9
        assert (row["days_since_last_purchase"] is None) == (row["purchases_90d"] == 0)
        if row["avg_order_value_90d"] is not None:
            assert row["avg_order_value_90d"] > 0
    assert sum(r["views_30d"] for r in rfm_rows) > sum(r["cart_adds_30d"] for r in rfm_rows) > 0
    assert sum(r["sessions_30d"] for r in rfm_rows) > 0
    # The shop's hidden loyalty shows in the features: loyal users buy more and came back sooner.
    by_level = {
        level: [r for r in rfm_rows if loyalty.get(str(r["user_id"])) == level] for level in (0, 1, 2, 3)
    }
    loyal, fickle = by_level[3] or by_level[2], by_level[0] or by_level[1]
    assert statistics.mean(r["purchases_90d"] for r in loyal) > statistics.mean(
        r["purchases_90d"] for r in fickle
    )
    assert statistics.median(r["days_since_last_seen"] for r in loyal) < statistics.median(
        r["days_since_last_seen"] for r in fickle
    )


def test_loyalty_label_on_the_shop(shop_warehouse: tuple[Warehouse, dict[str, int]]) -> None:
    warehouse, loyalty = shop_warehouse
    label = Label.event_within(
        "bought_14d", USER, where="event_name = 'purchase'", horizon="14d", active="30d"
    )
    rows = label.rows(warehouse, [CUTOFF]).to_pylist()
    assert len(rows) > 50 and 0 < sum(r["label"] for r in rows) < len(rows)
    rate = {lv: [r["label"] for r in rows if loyalty.get(r["user_id"]) == lv] for lv in (0, 3)}
    assert statistics.mean(rate[3] or [0]) > statistics.mean(rate[0] or [0])
