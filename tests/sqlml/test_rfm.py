"""The RFM clustering query from the source talk, on the demo shop: only the purchase event's name changes
('buy' there, 'purchase' in kawa's demo), and the clusters it finds are k-means clusters of the shop's
visitors by spend, purchase count and last purchase date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from kawa.demo import ShopConfig, generate

from ..features._events import events_table, write_events
from .conftest import Project

RFM = """
CREATE OR REPLACE MODEL rfm_cluster OPTIONS (model_type='kmeans', num_clusters=4, standardize_features=TRUE) AS
SELECT * FROM (SELECT SUM(revenue) monetary, COUNT(*) frequency, MAX(_date) recency FROM events WHERE event_name = 'purchase' GROUP BY keys.visitor_id)
"""  # noqa: E501 - the talk's query as it was written
VISITORS = """
SELECT keys.visitor_id AS visitor_id, SUM(revenue) monetary, COUNT(*) frequency, MAX(_date) recency
FROM events WHERE event_name = 'purchase' GROUP BY keys.visitor_id
"""


@pytest.fixture(scope="module")
def shop(project: Project) -> Iterator[Project]:
    shop = generate(ShopConfig(users=150, days=21, items=80, visitors=20))
    write_events(project.warehouse, events_table(shop.events))
    yield project


def test_the_rfm_query_runs_as_written(shop: Project) -> None:
    [made] = shop.sql(RFM)
    [buyers] = shop.sql(
        "SELECT count(DISTINCT keys.visitor_id) AS n FROM events WHERE event_name = 'purchase'"
    )
    assert buyers["n"] > 40
    assert (made["model"], made["version"], made["model_type"]) == ("rfm_cluster", 1, "kmeans")
    assert made["training_rows"] == buyers["n"]

    clusters = shop.sql(
        "SELECT centroid_id, count(*) AS visitors "
        f"FROM ML.PREDICT(MODEL rfm_cluster, ({VISITORS})) GROUP BY 1 ORDER BY 1"
    )
    assert [c["centroid_id"] for c in clusters] == [1, 2, 3, 4]
    assert sum(c["visitors"] for c in clusters) == buyers["n"]

    [summary] = [m for m in shop.registry.list_models("shop") if m.name == "rfm_cluster"]
    assert summary.latest_version == 1
    [recency] = shop.registry.show("shop", "rfm_cluster").signature["inputs"][2:]
    assert (recency["name"], recency["type"]) == ("recency", "number")  # a date becomes days since 1970


def test_each_centroid_is_the_mean_of_its_visitors(shop: Project) -> None:
    shop.sql(RFM)
    members = shop.sql(
        "SELECT centroid_id, avg(monetary) AS monetary, avg(frequency) AS frequency, "
        "avg(date_diff('day', DATE '1970-01-01', recency)) AS recency "
        f"FROM ML.PREDICT(MODEL rfm_cluster, ({VISITORS})) GROUP BY 1"
    )
    centroids = {
        (c["centroid_id"], c["feature"]): c["numerical_value"]
        for c in shop.sql("SELECT * FROM ML.CENTROIDS(MODEL rfm_cluster)")
    }
    for group in members:
        for feature in ("monetary", "frequency", "recency"):
            assert centroids[(group["centroid_id"], feature)] == pytest.approx(
                float(group[feature]), rel=1e-9
            )
    days = [v for (_, f), v in centroids.items() if f == "recency"]
    first, last = (date(2025, 9, 1) - date(1970, 1, 1)).days, (date(2025, 9, 22) - date(1970, 1, 1)).days
    assert all(first <= d <= last for d in days)
    big_spenders = max(members, key=lambda g: g["monetary"])
    assert big_spenders["frequency"] == max(g["frequency"] for g in members)
