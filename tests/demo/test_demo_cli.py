"""`kawa demo` end to end: the generated shop goes through a real `kawa serve` and lands once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kawa.demo.shop import ShopConfig, generate
from kawa.warehouse import Warehouse
from tests.conftest import kawa


@pytest.mark.slow
def test_demo_sends_the_shop_through_the_collector(tmp_path: Path) -> None:
    args = ("demo", "--dir", "demo", "--users", "60", "--days", "10", "--seed", "3", "--no-train")
    out = kawa(*args, cwd=tmp_path).stdout
    shop = generate(ShopConfig(users=60, days=10, seed=3))
    n = len(shop.events)
    assert f"{n:,} accepted, 0 rejected" in out
    lake = tmp_path / "demo" / ".kawa" / "lake"
    warehouse = Warehouse(lake, "shop")
    counts = warehouse.query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events").to_pylist()
    assert counts == [{"n": n, "d": n}]
    by_name = {
        r["event_name"]: r["n"]
        for r in warehouse.query("SELECT event_name, count(*) AS n FROM events GROUP BY 1").to_pylist()
    }
    expected: dict[str, int] = {}
    for e in shop.events:
        expected[e["event_name"]] = expected.get(e["event_name"], 0) + 1
    assert by_name == expected
    truth = warehouse.query("SELECT count(*) AS n, sum(is_bot::INT) AS bots FROM demo_users").to_pylist()[0]
    assert truth["n"] == len(shop.users) and truth["bots"] == sum(u.is_bot for u in shop.users)
    # a second run sends the same event_ids again: nothing lands twice
    kawa(*args, cwd=tmp_path)
    assert warehouse.query("SELECT count(*) AS n FROM events").to_pylist() == [{"n": n}]
