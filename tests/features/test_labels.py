"""Labels: SQL yielding (entity, cutoff, label) rows, and the ready 'did X happen within N days' label."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from kawa.features import USER, FeatureError, Label, series, training_set
from kawa.features.presets import RFM

from ._events import DAY, T0, ev, new_warehouse

BOUGHT = Label.event_within("bought_14d", USER, where="event_name = 'purchase'", horizon="14d")


def test_event_within_labels_every_user_seen_before_each_cutoff(tmp_path: Path) -> None:
    cutoff = T0 + 10 * DAY
    events = [
        ev("view", T0 + DAY, "buyer"),
        ev("purchase", cutoff, "buyer"),  # at the cutoff: inside [cutoff, cutoff + 14d)
        ev("view", T0 + 2 * DAY, "late_buyer"),
        ev("purchase", cutoff + 14 * DAY, "late_buyer"),  # 14 days after: outside
        ev("view", T0 + 3 * DAY, "browser"),
        ev("purchase", cutoff - timedelta(microseconds=1), "early_buyer"),  # before: not a label
        ev("view", cutoff + DAY, "newcomer"),  # first seen after the cutoff: not in the rows
        ev("view", T0 + 40 * DAY, "someone"),  # so the 14 days after every cutoff are observed
    ]
    warehouse = new_warehouse(tmp_path, events)
    rows = BOUGHT.rows(warehouse, [cutoff]).to_pylist()
    got = {r["user_id"]: r["label"] for r in rows}
    assert got == {"buyer": 1, "late_buyer": 0, "browser": 0, "early_buyer": 0}
    assert all(r["cutoff"] == cutoff for r in rows)


def test_active_window_limits_the_population(tmp_path: Path) -> None:
    cutoff = T0 + 40 * DAY
    events = [
        ev("view", cutoff - 5 * DAY, "recent"),
        ev("view", cutoff - 31 * DAY, "dormant"),
        ev("view", cutoff - 30 * DAY, "just_in"),  # exactly 30 days before: active
        ev("view", cutoff + 20 * DAY, "someone"),
    ]
    warehouse = new_warehouse(tmp_path, events)
    label = Label.event_within("b", USER, where="event_name = 'purchase'", horizon="7d", active="30d")
    users = sorted(r["user_id"] for r in label.rows(warehouse, [cutoff]).to_pylist())
    assert users == ["just_in", "recent"]


def test_labels_feed_training_sets_and_refuse_unobserved_horizons(tmp_path: Path) -> None:
    events = [ev("view", T0 + k * DAY, f"u{k % 3}") for k in range(30)]
    events.append(ev("purchase", T0 + 12 * DAY, "u1", revenue=10.0))
    warehouse = new_warehouse(tmp_path, events)
    label = BOUGHT.with_cutoffs(series(T0 + 7 * DAY, T0 + 14 * DAY, every="1w"))
    table = training_set(warehouse, label, [RFM])
    assert table.num_rows == 6  # three users seen before each of the two cutoffs
    first = {r["user_id"]: r for r in table.to_pylist() if r["cutoff"] == T0 + 7 * DAY}
    assert first["u1"]["label"] == 1 and first["u1"]["purchases_30d"] == 0
    later = [r for r in table.to_pylist() if r["cutoff"] == T0 + 14 * DAY and r["user_id"] == "u1"]
    assert later[0]["purchases_30d"] == 1 and later[0]["label"] == 0
    with pytest.raises(FeatureError, match=r"ends after the last event .* use cutoffs up to 2025-09-16"):
        BOUGHT.rows(warehouse, [T0 + 20 * DAY])
    with pytest.raises(FeatureError, match="has no cutoffs"):
        BOUGHT.rows(warehouse)


def test_a_label_in_plain_sql(tmp_path: Path) -> None:
    warehouse = new_warehouse(tmp_path, [ev("view", T0, "u1"), ev("view", T0 + 3 * DAY, "u2")])
    spenders = Label(
        "seen_twice",
        USER,
        """SELECT e.keys.user_id AS user_id, c.cutoff, (count(*) > 1)::INTEGER AS label, count(*) AS n
           FROM cutoffs c JOIN events e ON e.sync_date < c.cutoff GROUP BY ALL ORDER BY user_id""",
        cutoffs=["2025-09-10"],
    )
    rows = spenders.rows(warehouse)
    assert rows.column_names == ["user_id", "cutoff", "label", "n"]
    assert rows.schema.field("cutoff").type == pa.timestamp("us", tz="UTC")
    assert rows.column("user_id").to_pylist() == ["u1", "u2"]
    wrong = Label("wrong", USER, "SELECT 1 AS user_id, cutoff FROM cutoffs", cutoffs=[T0])
    with pytest.raises(FeatureError, match=r"must return \['user_id', 'cutoff', 'label'\]"):
        wrong.rows(warehouse)
    broken = Label("broken", USER, "SELECT nope FROM cutoffs", cutoffs=[T0])
    with pytest.raises(FeatureError, match=r"label 'broken' failed: .*nope"):
        broken.rows(warehouse)


def test_series_and_cutoff_parsing() -> None:
    days = series("2025-09-01", "2025-09-30T12:00:00", every="2w")
    assert [d.isoformat() for d in days] == [
        "2025-09-01T00:00:00+00:00",
        "2025-09-15T00:00:00+00:00",
        "2025-09-29T00:00:00+00:00",
    ]
    with pytest.raises(FeatureError, match=r"ends .* before it starts"):
        series("2025-09-10", "2025-09-01")
    with pytest.raises(FeatureError, match="not an ISO date or time"):
        series("last tuesday", "2025-09-01")
    with pytest.raises(FeatureError, match="bad window '1 month'"):
        series("2025-09-01", "2025-10-01", every="1 month")
