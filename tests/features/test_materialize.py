"""Materialisation: the online value of every feature equals the offline one at the same moment."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from kawa.features import FeatureView, materialize, namespace, online_features, training_set
from kawa.features.materialize import AS_OF
from kawa.stores.online import open_online_store

from ._events import DAY, T0, new_warehouse
from .test_training import SPECS, VIEW, random_events


@pytest.mark.parametrize("backend", ["memory", "lmdb"])
def test_online_values_equal_offline_values_at_the_same_time(tmp_path: Path, backend: str) -> None:
    events = random_events(random.Random(7))
    warehouse = new_warehouse(tmp_path, events)
    as_of = T0 + 12 * DAY + timedelta(hours=9, microseconds=17)
    with open_online_store(backend, tmp_path / "state") as store:
        counts = materialize(warehouse, store, [VIEW], as_of=as_of, batch_size=2)
        users = sorted(
            {e["keys"]["user_id"] for e in events if e["keys"]["user_id"] and e["sync_date"] < as_of}
        )
        assert counts == {VIEW.name: len(users)}
        # Offline: the same moment as a label row, next to rows at other times of day.
        labels = pa.table(
            {
                "user_id": [*users, *users],
                "cutoff": pa.array([as_of] * len(users) + [T0 + 20 * DAY] * len(users)),
            }
        )
        offline = training_set(warehouse, labels, [VIEW]).to_pylist()[: len(users)]
        for row in offline:
            online = online_features(store, "t", VIEW, row["user_id"])
            assert online is not None
            assert online.pop(AS_OF) == "2025-09-13T09:00:00.000017Z"
            assert online == {name: row[name] for name in SPECS}
        assert online_features(store, "t", "everything", "nobody") is None
        assert sum(1 for _ in store.scan(namespace("t", VIEW.name))) == len(users)


def test_a_later_materialisation_replaces_values_and_sees_new_entities(tmp_path: Path) -> None:
    from ._events import ev

    warehouse = new_warehouse(tmp_path, [ev("view", T0, "u1"), ev("view", T0 + 5 * DAY, "u2")])
    view = FeatureView("seen", VIEW.entity, {"views": VIEW.features["events"]})
    with open_online_store("memory", tmp_path) as store:
        assert materialize(warehouse, store, [view], as_of=T0 + DAY) == {"seen": 1}
        assert online_features(store, "t", view, "u2") is None
        assert materialize(warehouse, store, [view], as_of="2025-09-10") == {"seen": 2}
        assert online_features(store, "t", view, "u1") == {"views": 1, AS_OF: "2025-09-10T00:00:00Z"}
        assert online_features(store, "t", view, "u2") == {"views": 1, AS_OF: "2025-09-10T00:00:00Z"}


def test_a_sql_view_materialises_like_its_training_rows(tmp_path: Path) -> None:
    from ._events import ev

    events = [ev("purchase", T0 + k * DAY, f"u{k % 2}", revenue=1.25 * k) for k in range(6)]
    warehouse = new_warehouse(tmp_path, events)
    spend = FeatureView(
        "spend",
        VIEW.entity,
        sql="""SELECT c.user_id, c.cutoff, sum(e.revenue) AS spend, max(e.sync_date) AS last_at
               FROM cutoffs c JOIN events e ON e.keys.user_id = c.user_id AND e.sync_date < c.cutoff
               GROUP BY ALL""",
    )
    as_of = T0 + 4 * DAY
    with open_online_store("memory", tmp_path) as store:
        assert materialize(warehouse, store, [spend], as_of=as_of) == {"spend": 2}
        offline = training_set(warehouse, pa.table({"user_id": ["u0", "u1"], "cutoff": [as_of] * 2}), [spend])
        for row in offline.to_pylist():
            online = online_features(store, "t", spend, row["user_id"])
            assert online is not None
            assert online["spend"] == row["spend"]
            assert online["last_at"] == row["last_at"].isoformat()
