"""The RFM template on a small demo shop: k-means trained with CREATE MODEL in SQL puts every buyer in a
cluster, explains more of the shop's hidden loyalty than spend quantiles, and serves each user's cluster;
a rerun with other parameters replaces its tables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date

import pytest

from kawa.demo import ShopConfig, generate
from kawa.demo.shop import Shop
from kawa.models import Registry
from kawa.pipelines import RunRecord, run_pipeline
from kawa.runtime import Runtime
from kawa.serving.store import PredictionStore
from kawa.templates.rfm import MODEL, rfm
from tests.templates._shop import shop_project

pytestmark = pytest.mark.slow  # each runs a pipeline on a generated shop

# Measured over seeds 1-7 at this size: the clusters explain 0.019-0.056 more of the hidden loyalty
# score's variance than 4 spend quantiles.
SHOP = ShopConfig(users=1000, days=28, items=100, visitors=100, seed=7)


@pytest.fixture(scope="module")
def shop() -> Shop:
    return generate(SHOP)


@pytest.fixture(scope="module")
def shop_events(shop: Shop) -> list[dict]:
    return list(shop.events)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, shop: Shop) -> Iterator[Runtime]:
    with shop_project(tmp_path_factory.mktemp("rfm"), shop, truth=["demo_users"]) as rt:
        yield rt


@pytest.fixture(scope="module")
def run(runtime: Runtime) -> RunRecord:
    return run_pipeline(runtime, rfm)


def _buyers(events: list[dict]) -> dict[str, tuple[float, int, date]]:
    """Spend, purchases and last purchase day per user, straight from the events."""
    spend: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    last: dict[str, date] = {}
    for e in events:
        user = e["keys"].get("user_id")
        if e["event_name"] == "purchase" and user:
            spend[user] += e["revenue"]
            count[user] += 1
            last[user] = max(last.get(user, date.min), date.fromisoformat(e["sync_date"][:10]))
    return {u: (spend[u], count[u], last[u]) for u in spend}


def test_clusters_explain_more_hidden_loyalty_than_spend_quantiles(run: RunRecord) -> None:
    assert run.status == "succeeded", run.error
    m = run.metrics
    assert m["clusters"] == 4 and m["buyers"] > 300
    # Seed 7: 0.166 vs 0.124.
    assert m["loyalty_explained"] > m["baseline_loyalty_explained"] + 0.02
    assert m["baseline_loyalty_explained"] > 0.05  # spend alone is a real baseline
    assert 0 < m["davies_bouldin_index"] < 3


def test_every_buyer_gets_one_cluster_with_its_rfm_values(
    run: RunRecord, runtime: Runtime, shop_events: list[dict]
) -> None:
    buyers = _buyers(shop_events)
    rows = runtime.warehouse().query("SELECT * FROM rfm_clusters").to_pylist()
    assert len(rows) == len(buyers) == run.metrics["buyers"]
    for row in rows:
        spend, purchases, last = buyers[row["user_id"]]
        assert row["monetary"] == pytest.approx(spend)
        assert (row["frequency"], row["recency"]) == (purchases, last)
        assert 1 <= row["cluster"] <= 4
    profiles = runtime.warehouse().query("SELECT * FROM rfm_profiles").to_pylist()
    assert sum(p["users"] for p in profiles) == len(buyers)
    spends = [p["monetary"] for p in profiles]
    assert spends == sorted(spends, reverse=True)


def test_the_sql_model_is_promoted_and_each_users_cluster_is_served(run: RunRecord, runtime: Runtime) -> None:
    with Registry.from_runtime(runtime) as registry:
        assert registry.resolve("shop", MODEL, "production") == 1
        shown = registry.show("shop", MODEL, 1)
    assert shown.params["model_type"] == "kmeans"
    assert [i["name"] for i in shown.signature["inputs"]] == ["log_monetary", "log_frequency", "recency"]
    clusters = runtime.warehouse().query("SELECT user_id, cluster FROM rfm_clusters").to_pylist()
    store = PredictionStore(runtime.online)
    for row in clusters[:50]:
        served = store.get("shop", MODEL, row["user_id"])
        assert served is not None and (served.score, served.model_version) == (row["cluster"], 1)


def test_a_rerun_with_other_parameters_replaces_the_clusters(run: RunRecord, runtime: Runtime) -> None:
    again = run_pipeline(runtime, rfm, {"num_clusters": 3})
    assert again.status == "succeeded", again.error
    [row] = (
        runtime.warehouse()
        .query("SELECT count(*) AS n, count(DISTINCT user_id) AS users, max(cluster) AS k FROM rfm_clusters")
        .to_pylist()
    )
    assert row == {"n": run.metrics["buyers"], "users": run.metrics["buyers"], "k": 3}
    with Registry.from_runtime(runtime) as registry:
        assert registry.resolve("shop", MODEL, "production") == 2
        assert registry.show("shop", MODEL, 2).params["options"]["num_clusters"] == 3
