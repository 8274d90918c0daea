"""The suspicious-sellers template on a small demo shop: out of fold, with folds grouped by seller, the title
and seller model beats the price-only baseline; every item and seller is scored, and a seller nobody
labelled is found from its listings alone."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from kawa.config import Config
from kawa.demo import ShopConfig, generate
from kawa.demo.run import truth_tables
from kawa.models import Registry
from kawa.pipelines import RunRecord, run_pipeline
from kawa.runtime import Runtime
from kawa.serving.store import PredictionStore
from kawa.templates.catalog import templates
from kawa.templates.sellers import (
    LABEL,
    MODEL,
    SELLER_MODEL,
    item_features,
    precision_at_k,
    seller_folds,
    suspicious_sellers,
)
from kawa.warehouse.load import write_table
from tests.features._events import events_table, write_events

SHOP = ShopConfig(users=300, days=21, items=600, visitors=150, seed=7)
ITEMS = "SELECT item_id, title, category, price, seller_id FROM demo_items"
LABELS = "SELECT item_id, is_mass_produced AS label FROM demo_items"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    shop = generate(SHOP)
    rt = Runtime(Config(project="shop", root=str(tmp_path_factory.mktemp("sellers"))))
    warehouse = rt.warehouse()
    write_events(warehouse, events_table(shop.events))
    for name, table in truth_tables(shop).items():
        if name in ("demo_items", "demo_sellers"):
            write_table(warehouse, name, table)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture(scope="module")
def run(runtime: Runtime) -> RunRecord:
    return run_pipeline(runtime, suspicious_sellers, {})


def truth(runtime: Runtime) -> set[str]:
    rows = runtime.warehouse().query("SELECT seller_id FROM demo_sellers WHERE is_suspicious")
    return set(rows.column("seller_id").to_pylist())


@pytest.mark.slow
def test_the_model_beats_the_price_baseline_out_of_fold_and_is_promoted(
    run: RunRecord, runtime: Runtime
) -> None:
    assert run.status == "succeeded", run.error
    m = run.metrics
    assert m["items"] == 600 and m["labelled_items"] == 600 and m["sellers"] == 63
    # Measured on shops of seeds 1-3 and 7: model 1.0 on every ranking; the price-only baseline
    # 0.78-0.81 item AUC, 0.68-0.74 seller AUC, precision@k 0.5-0.58 (items) and 0.67 (sellers).
    assert m["auc"] > 0.95 and m["auc"] > m["baseline_auc"] + 0.1
    assert m["seller_auc"] > m["baseline_seller_auc"] + 0.1
    assert m["precision_at_k"] > m["baseline_precision_at_k"] + 0.2
    assert m["seller_precision_at_k"] == 1.0 and m["average_precision"] > 0.9
    assert 0.6 < m["baseline_auc"] < 0.95  # the baseline is a real model, not a straw man
    with Registry.from_runtime(runtime) as registry:
        assert registry.resolve("shop", MODEL, "production") == 1
        shown = registry.show("shop", MODEL, 1)
    assert shown.metrics["auc"] == m["auc"] and shown.metrics["baseline_auc"] == m["baseline_auc"]
    title = next(i for i in shown.signature["inputs"] if i["name"] == "title")
    assert title["kind"] == "text" and title["analyzer"] == "char_wb"


@pytest.mark.slow
def test_every_item_and_seller_is_scored_and_published(run: RunRecord, runtime: Runtime) -> None:
    assert run.status == "succeeded", run.error
    warehouse = runtime.warehouse()
    sellers = warehouse.query("SELECT * FROM seller_scores ORDER BY rank").to_pylist()
    assert len(sellers) == 63 and [s["rank"] for s in sellers] == list(range(1, 64))
    assert {s["seller_id"] for s in sellers[:3]} == truth(runtime)
    assert [s["suspicious"] for s in sellers] == [True] * 3 + [False] * 60
    assert sum(s["items"] for s in sellers) == 600
    items = warehouse.query("SELECT count(*) AS n, count(DISTINCT item_id) AS d FROM suspicious_item_scores")
    assert items.to_pylist() == [{"n": 600, "d": 600}]
    mean = warehouse.query(
        "SELECT avg(s.score) AS score FROM suspicious_item_scores s JOIN demo_items d USING (item_id) "
        f"WHERE d.seller_id = '{sellers[0]['seller_id']}'"
    )
    assert mean.column("score")[0].as_py() == pytest.approx(sellers[0]["score"])
    store = PredictionStore(runtime.online)
    top = store.get("shop", SELLER_MODEL, sellers[0]["seller_id"])
    assert top is not None and top.score == pytest.approx(sellers[0]["score"]) and top.model_version == 1
    assert store.get("shop", MODEL, "i_00001") is not None


def test_folds_never_split_a_seller(runtime: Runtime) -> None:
    table = item_features(runtime.warehouse(), ITEMS, LABELS, 28)
    sellers = np.array(table.column("seller_id").to_pylist())
    scored = np.zeros(table.num_rows, dtype=int)
    folds = seller_folds(table, 3, seed=0)
    assert len(folds) == 3
    for train, test in folds:
        assert not set(sellers[train]) & set(sellers[test])
        assert table.column(LABEL).to_numpy()[test].sum() > 0  # each fold scores a suspicious seller
        scored[test] += 1
    assert (scored == 1).all()


@pytest.mark.slow
def test_a_seller_nobody_labelled_is_found_from_its_listings(run: RunRecord, runtime: Runtime) -> None:
    """Labels of one suspicious seller and half the others are withheld: the model learns from the rest,
    and still ranks the unlabelled suspicious seller among the top three."""
    assert run.status == "succeeded", run.error
    hidden = sorted(truth(runtime))[0]
    labels = f"{LABELS} WHERE seller_id <> '{hidden}' AND (is_mass_produced OR hash(seller_id) % 2 = 0)"
    rerun = run_pipeline(runtime, suspicious_sellers, {"labels_sql": labels, "folds": 2, "promote_to": ""})
    assert rerun.status == "succeeded", rerun.error
    assert rerun.metrics["labelled_items"] < 400 and rerun.metrics["scored_items"] == 600
    ranks = runtime.warehouse().query("SELECT seller_id, rank, model_version FROM seller_scores").to_pylist()
    assert len(ranks) == 63 and {r["model_version"] for r in ranks} == {2}  # the run date's rows replaced
    assert next(r["rank"] for r in ranks if r["seller_id"] == hidden) <= 3
    with Registry.from_runtime(runtime) as registry:
        assert registry.resolve("shop", MODEL, "production") == 1  # promote_to="" leaves it alone


@pytest.mark.slow
def test_bad_catalogues_and_labels_are_explained(runtime: Runtime) -> None:
    without_title = "SELECT item_id, category, price, seller_id FROM demo_items"
    failed = run_pipeline(runtime, suspicious_sellers, {"items_sql": without_title, "promote_to": ""})
    assert failed.status == "failed"
    assert "items_sql returns item_id, category, price, seller_id but not title" in (failed.error or "")
    twice = f"{ITEMS} UNION ALL {ITEMS} LIMIT 700"
    failed = run_pipeline(runtime, suspicious_sellers, {"items_sql": twice, "promote_to": ""})
    assert "items_sql returns 700 rows for 600 item_ids; return one row per item" in (failed.error or "")
    one_kind = "SELECT item_id, false AS label FROM demo_items"
    failed = run_pipeline(runtime, suspicious_sellers, {"labels_sql": one_kind, "promote_to": ""})
    assert failed.status == "failed" and "labelled items of labels_sql are all clean" in (failed.error or "")


def test_an_item_labelled_twice_is_one_row_mass_produced_if_any_label_says_so(runtime: Runtime) -> None:
    both = f"{LABELS} UNION ALL SELECT item_id, false AS label FROM demo_items"
    table = item_features(runtime.warehouse(), ITEMS, both, 28)
    assert table.num_rows == 600 and table.column(LABEL).to_pylist().count(1) == 24


def test_precision_at_k_counts_positives_among_the_top_k() -> None:
    y = np.array([1, 0, 1, 0, 0])
    assert precision_at_k(y, np.array([0.9, 0.8, 0.7, 0.1, 0.0])) == 0.5
    assert precision_at_k(y, np.array([0.9, 0.1, 0.8, 0.2, 0.0])) == 1.0
    assert precision_at_k(np.zeros(3), np.zeros(3)) is None


def test_the_template_is_in_the_catalogue() -> None:
    template, module = templates()["suspicious_sellers"]
    assert module == "kawa.templates.sellers" and template.pipelines == ("suspicious_sellers",)
