"""`kawa features list|show|materialize` on a project whose features.py defines views and a label."""

from __future__ import annotations

import json
from pathlib import Path

from kawa.config import load_config
from kawa.features import online_features
from kawa.stores.online import open_online_store
from kawa.warehouse import Warehouse
from tests.conftest import kawa

from ._events import DAY, T0, ev, write_events

FEATURES_PY = """
from kawa.features import USER, FeatureView, Label, agg
from kawa.features.presets import rfm_view

rfm = rfm_view()
carts = FeatureView(
    "carts",
    USER,
    {"cart_adds_7d": agg.count(where="event_name = 'cart_add'", window="7d")},
    description="cart adds in the last week",
)
bought = Label.event_within("bought_14d", USER, where="event_name = 'purchase'", horizon="14d")
"""


def _project(tmp_path: Path) -> Path:
    kawa("init", "--project", "shop", cwd=tmp_path)
    (tmp_path / "features.py").write_text(FEATURES_PY)
    config = load_config(tmp_path / "kawa.yaml")
    events = [ev("cart_add", T0 + k * DAY, "u1") for k in range(5)] + [
        ev("purchase", T0 + DAY, "u2", revenue=9.5)
    ]
    write_events(Warehouse(config.state_path / "lake", "shop"), events)
    return tmp_path


def test_list_show_and_materialize(tmp_path: Path) -> None:
    root = _project(tmp_path)
    listed = json.loads(kawa("features", "list", "--json", cwd=root).stdout)
    assert [(r["name"], r["kind"]) for r in listed] == [
        ("carts", "feature view"),
        ("rfm", "feature view"),
        ("bought_14d", "label"),
    ]
    assert listed[0]["features"] == ["cart_adds_7d"] and listed[0]["entity"] == "user"
    table = kawa("features", "list", cwd=root).stdout
    assert "carts" in table and "cart adds in the last week" in table
    shown = kawa("features", "show", "carts", cwd=root).stdout
    assert "cart_adds_7d: count where event_name = 'cart_add' window 7d" in shown and "FROM events" in shown

    done = kawa("features", "materialize", "carts", "--as-of", "2025-09-05", cwd=root).stdout
    assert "carts: 2 entities -> online store features/shop/carts" in done
    config = load_config(root / "kawa.yaml")
    with open_online_store("lmdb", config.state_path) as store:
        assert online_features(store, "shop", "carts", "u1") == {
            "cart_adds_7d": 4,
            "_as_of": "2025-09-05T00:00:00Z",
        }
        assert online_features(store, "shop", "rfm", "u1") is None
    everything = kawa("features", "materialize", "--as-of", "2025-09-10T12:00:00Z", cwd=root).stdout
    assert "carts: 2 entities" in everything and "rfm: 2 entities" in everything
    with open_online_store("lmdb", config.state_path) as store:
        rfm = online_features(store, "shop", "rfm", "u2")
        assert rfm is not None and rfm["revenue_30d"] == 9.5 and rfm["purchases_30d"] == 1


def test_errors_name_what_is_missing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    wrong = kawa("features", "materialize", "nope", cwd=root, check=False)
    assert wrong.returncode == 1 and "no feature view named 'nope'; known: carts, rfm" in wrong.stderr
    (root / "features.py").write_text("import nonexistent_module\n")
    broken = kawa("features", "list", cwd=root, check=False)
    assert broken.returncode == 1 and "features.py:1" in broken.stderr
    (root / "features.py").unlink()
    empty = kawa("features", "materialize", cwd=root, check=False)
    assert empty.returncode == 1 and "no feature views in the project's code" in empty.stderr
