"""The models pages in a real browser: two loyalty versions side by side with their plots, promotion to
production through the UI, and the try-it form scoring a row as the predict API does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow.compute as pc
import pytest

from kawa.config import load_config
from kawa.models import Bundle, Registry
from kawa.runtime import Runtime
from tests.conftest import kawa
from tests.ui.conftest import DemoSite, login, screenshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def second_version(site: DemoSite) -> Iterator[int]:
    """A second loyalty version, registered unpromoted (the promotion is the test's).

    It is trained in the test's process on the pipeline's own feature table with the demo shop's hidden
    loyalty as the label: a second `kawa pipeline run loyalty` cannot train on the demo, whose events
    end weeks before the run-finished event of its first run (see the session's report).
    """
    from lightgbm import LGBMClassifier

    runtime = Runtime(load_config(site.root / "kawa.yaml"))
    try:
        data = runtime.warehouse(site.project).query(
            "SELECT f.* EXCLUDE (user_id, cutoff), (u.loyalty >= 2)::INTEGER AS label, "
            "row_number() OVER (ORDER BY f.user_id) % 4 = 0 AS holdout "
            "FROM loyalty_features f JOIN demo_users u USING (user_id)"
        )
        holdout = pc.field("holdout")
        train = data.filter(~holdout).drop_columns(["holdout"])
        test = data.filter(holdout).drop_columns(["holdout"])
        estimator = LGBMClassifier(n_estimators=60, num_leaves=7, min_child_samples=5, verbose=-1)
        bundle = Bundle.fit(train, label="label", estimator=estimator)
        registry = Registry.from_runtime(runtime)
        version = registry.register(
            site.project,
            "loyalty",
            bundle,
            metrics=bundle.evaluate(test),
            training={"label": "the demo shop's hidden loyalty >= 2", "features": "loyalty_features"},
        )
        registry.close()
    finally:
        runtime.close()
    yield version


def production(site: DemoSite) -> int:
    with site.api("read") as client:
        models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    return int(models["loyalty"]["aliases"]["production"])


def test_versions_side_by_side_with_their_plots(page, site: DemoSite, second_version: int) -> None:
    login(page, site, next_path="/models")
    listed = page.locator("#models tr[data-model='loyalty']")
    newest = listed.locator("td.num").nth(1).inner_text()  # "v2": the newest version
    assert int(newest.removeprefix("v")) >= second_version
    screenshot(page, "models")
    listed.locator("a").click()
    page.wait_for_url("**/models/loyalty")
    shown = page.locator("#compare th[data-version]").evaluate_all("ths => ths.map(t => +t.dataset.version)")
    assert second_version in shown and len(shown) >= 2
    auc = page.locator("#compare tr[data-metric='auc'] td").all_inner_texts()
    assert len(auc) == len(shown) and all(0.5 < float(a) <= 1 for a in auc)
    # Every plot is drawn by Chart.js; ROC and calibration overlay the versions.
    page.wait_for_function(
        "() => ['roc-chart', 'calibration-chart', 'importance-chart'].every(Chart.getChart)"
    )
    roc = page.evaluate("() => Chart.getChart('roc-chart').data.datasets.map(d => d.label)")
    assert f"v{second_version}" in roc and "chance" in roc and len(roc) >= 3
    bars = page.evaluate("() => Chart.getChart('importance-chart').data.labels")
    assert "days_since_last_seen" in bars and len(bars) >= 10
    screenshot(page, "model-loyalty")


def test_promote_the_second_version_to_production(page, site: DemoSite, second_version: int) -> None:
    login(page, site, next_path="/models/loyalty")
    assert production(site) != second_version
    page.select_option("#promote-form select[name=version]", str(second_version))
    page.fill("#promote-form input[name=alias]", "production")
    page.click("#promote-form button[type=submit]")
    page.wait_for_selector("#message")
    assert f"production now points at version {second_version}" in page.locator("#message").inner_text()
    badge = page.locator("#aliases .badge[data-alias='production']")
    assert badge.get_attribute("data-version") == str(second_version)
    # The registry says so, through the API and the CLI, and serving follows.
    assert production(site) == second_version
    listed = json.loads(kawa("models", "list", "--json", cwd=site.root).stdout)
    assert {m["name"]: m for m in listed}["loyalty"]["aliases"]["production"] == second_version
    with site.api("read") as client:
        example = client.get(f"/v1/models/loyalty/versions/{second_version}").json()["signature"]["example"]
        assert client.post("/v1/models/loyalty/predict", json=example).json()["version"] == second_version
    screenshot(page, "model-promoted")


def test_the_try_it_form_scores_a_row_like_the_api(page, site: DemoSite, second_version: int) -> None:
    login(page, site, next_path=f"/models/loyalty?version={second_version}")
    page.fill("input[name='input.views_7d']", "12")
    page.fill("input[name='input.days_since_last_seen']", "1.5")
    page.fill("input[name='input.avg_order_value_90d']", "")  # a blank is null
    page.click("#try-form button[type=submit]")
    score = page.locator("#try-score")
    score.wait_for()
    shown = float(score.inner_text())
    assert 0.0 <= shown <= 1.0
    assert page.locator("#try-prediction").get_attribute("data-version") == str(second_version)
    # The row the form sent, scored by the predict API: the same number.
    fields = page.locator("#try-form input[name^='input.']").evaluate_all(
        "inputs => Object.fromEntries(inputs.map(i => [i.name.slice(6), i.value]))"
    )
    row = {name: float(text) if text else None for name, text in fields.items()}
    with site.api("read") as client:
        answer = client.post(f"/v1/models/loyalty/predict?version={second_version}", json=row).json()
    assert round(answer["prediction"], 4) == shown
    screenshot(page, "model-try")

    page.fill("input[name='input.views_7d']", "lots")
    page.click("#try-form button[type=submit]")
    error = page.locator("#try-error")
    error.wait_for()
    assert "'views_7d' must be a number" in error.inner_text()


def test_a_read_key_cannot_promote(page, site: DemoSite, second_version: int) -> None:
    login(page, site, "read", next_path="/models/loyalty")
    assert page.locator("#promote-form").count() == 0
    assert page.locator("#try-form").count() == 1  # predicting is a read key's right
    before = production(site)
    answer = page.request.post(
        "/models/loyalty/promote",
        form={"alias": "production", "version": "1"},
        headers={"Origin": site.url, "Accept": "text/html"},
    )
    assert answer.status == 403
    assert production(site) == before
