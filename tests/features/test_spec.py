"""Feature specs: what compiles, what is refused with a message that says what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from kawa.features import ITEM, USER, Entity, Feature, FeatureError, FeatureView, agg
from kawa.features.entity import entity_named
from kawa.features.presets import RFM
from kawa.features.spec import parse_window


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (
            Feature(agg="median", expr="revenue"),
            "feature 'f': unknown aggregation 'median'; use one of: count, sum",
        ),
        (Feature(agg="sum"), "feature 'f': sum needs an expression over events"),
        (Feature(agg="count", window="30days"), "feature 'f': bad window '30days'; write a whole number"),
        (Feature(agg="count", window="12h"), "bad window '12h'"),
        (Feature(agg="count", window="0d"), "window '0d' must be between 1 day and 3660 days"),
        (Feature(agg="days_since_first", window="7d"), "days_since_first looks at all history"),
        (Feature(agg="days_since_last", expr="revenue"), "days_since_last takes no expression"),
        (Feature(agg="count", where="  "), "where is empty"),
    ],
)
def test_bad_features_are_refused_with_the_fix(feature: Feature, message: str) -> None:
    with pytest.raises(FeatureError, match=message.replace("(", r"\(")):
        FeatureView("v", USER, {"f": feature})


def test_bad_views_are_refused() -> None:
    with pytest.raises(FeatureError, match="give either features"):
        FeatureView("v", USER)
    with pytest.raises(FeatureError, match="give either features"):
        FeatureView("v", USER, {"n": agg.count()}, sql="SELECT 1")
    with pytest.raises(FeatureError, match="has no features"):
        FeatureView("v", USER, {})
    with pytest.raises(FeatureError, match="feature view name 'My View' is not allowed"):
        FeatureView("My View", USER, {"n": agg.count()})
    with pytest.raises(FeatureError, match="'label' is taken by the label rows"):
        FeatureView("v", USER, {"label": agg.count()})
    with pytest.raises(FeatureError, match="'user_id' is taken"):
        FeatureView("v", USER, {"user_id": agg.count()})
    with pytest.raises(FeatureError, match="must be a Feature"):
        FeatureView("v", USER, {"n": "count(*)"})  # type: ignore[dict-item]
    with pytest.raises(
        FeatureError, match="unknown entity 'shopper'; use one of: user, visitor, session, item"
    ):
        entity_named("shopper")
    with pytest.raises(FeatureError, match="needs the SQL of its key"):
        Entity("store", " ")


def test_windows() -> None:
    assert [parse_window(w) for w in ("1d", "7d", " 30d ", "4w", "52w")] == [1, 7, 30, 28, 364]
    assert ITEM.column == "item_id" and Entity("shop", "properties->>'shop'", column="shop").column == "shop"


def test_yaml_compiles_to_the_same_sql_as_python(tmp_path: Path) -> None:
    python = FeatureView(
        "buyers",
        USER,
        {
            "purchases_30d": agg.count(where="event_name = 'purchase'", window="30d"),
            "revenue_90d": agg.sum("revenue", where="event_name = 'purchase'", window="90d"),
            "days_since_first_seen": agg.days_since_first(),
        },
    )
    text = """
name: buyers
entity: user
features:
  purchases_30d: {agg: count, where: "event_name = 'purchase'", window: 30d}
  revenue_90d: {agg: sum, expr: revenue, where: "event_name = 'purchase'", window: 90d}
  days_since_first_seen: {agg: days_since_first}
"""
    (tmp_path / "buyers.yaml").write_text(text)
    from_yaml = FeatureView.from_yaml(tmp_path / "buyers.yaml")
    assert from_yaml.features == python.features
    assert from_yaml.sql(origin_us=3600, until_us=10**15) == python.sql(origin_us=3600, until_us=10**15)
    custom = FeatureView.from_yaml(
        "name: shops\nentity: {name: shop, key: \"properties->>'shop'\"}\nfeatures:\n  n: {agg: count}\n"
    )
    assert custom.entity.column == "shop_id"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: v\nfeatures:\n  n: {agg: count, windw: 7d}\n",
            "feature 'n': Object contains unknown field `windw`",
        ),
        ("name: v\nfeatures:\n  n: {agg: median, expr: x}\n", "unknown aggregation 'median'"),
        ("name: v\nfeatures: [1, 2]\n", "features must be a mapping"),
        ("name: v\nentity: shopper\nfeatures:\n  n: {agg: count}\n", "unknown entity 'shopper'"),
        ("name: v\nfeature:\n  n: {agg: count}\n", r"unknown fields \['feature'\]"),
        ("features: {}\n", "give it a name"),
        ("- a\n- b\n", "must be a mapping"),
        ("name: [unclosed\n", "not valid"),
    ],
)
def test_bad_yaml_is_refused(text: str, message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        FeatureView.from_yaml(text)


def test_the_compiled_sql_reads_only_what_it_needs() -> None:
    sql = RFM.sql(origin_us=0, until_us=2_000_000_000_000_000)
    assert "epoch_us(sync_date) < 2000000000000000" in sql
    windowed = FeatureView("w", USER, {"n": agg.count(window="30d")})
    assert windowed.lookback_days == 30 and RFM.lookback_days is None
    assert "epoch_us(sync_date) >= 1" in windowed.sql_for(30 * 86_400_000_000 + 1, 10**16, 0)
    # Cutoffs on the bucket edges never read raw events a second time.
    assert "JOIN ev ON" not in windowed.sql_for(0, 10**16, 0, aligned=True)
    assert "JOIN ev ON" in windowed.sql_for(0, 10**16, 0, aligned=False)
