"""The pipelines pages in a browser: graphs, schedules, the run form (admin only), runs a page at a time."""

from __future__ import annotations

import httpx
import pytest
import yaml

from kawa.config import load_config
from kawa.pipelines import RunStore
from kawa.runtime import Runtime
from tests.conftest import kawa
from tests.ui.conftest import DemoSite, login, screenshot
from tests.ui.graph import click_node, graph_edges, graph_nodes, wait_for_graph

pytestmark = pytest.mark.slow

LOYALTY_STEPS = {"labelled", "trained", "registered", "scored"}
BULK = "bulk"  # a project of its own, so its thousands of runs show on no other test's pages
BULK_RUNS = 3000
DASH = "\u2013"  # between the numbers of the first and last run shown


def test_each_pipeline_shows_its_graph_schedule_and_latest_run(page, site: DemoSite) -> None:  # type: ignore[no-untyped-def]
    login(page, site, next_path="/pipelines")
    card = page.locator("#pipeline-loyalty")
    assert "Loyal-customer score" in card.inner_text()
    wait_for_graph(page, "#graph-loyalty")
    assert set(graph_nodes(page, "#graph-loyalty")) == LOYALTY_STEPS
    edges = graph_edges(page, "#graph-loyalty")
    assert ("labelled", "trained") in edges and ("registered", "scored") in edges
    assert "manual runs only" in card.inner_text()  # the demo's pipeline has no schedule
    assert card.locator(".badge").count() >= 1  # its latest run's status (the demo ran it)
    screenshot(page, "pipelines")

    card.locator("h2 a").click()
    page.wait_for_url("**/pipelines/loyalty")
    wait_for_graph(page, "#pipeline-graph")
    click_node(page, "#pipeline-graph", "trained")
    page.wait_for_function("() => document.querySelector('#step-panel').innerText.includes('Step trained')")
    panel = page.locator("#step-panel").inner_text()
    assert "num_leaves" in panel and "memory=2GB" in panel
    fields = {
        name: page.input_value(f"[name='param.{name}']")
        for name in ("horizon_days", "weeks", "num_leaves", "learning_rate", "promote_to", "coupon_threshold")
    }
    assert fields == {
        "horizon_days": "14",
        "weeks": "4",
        "num_leaves": "15",
        "learning_rate": "0.05",
        "promote_to": "production",
        "coupon_threshold": "0.5",
    }
    experiments = page.locator("select[name=experiment] option").all_inner_texts()
    assert "default" in experiments and "demo" in experiments  # the demo's run made "demo"
    assert page.locator("#runs-table tr[data-run]").count() >= 1
    screenshot(page, "pipeline")


def test_bad_parameters_come_back_to_the_form_with_what_is_wrong(page, site: DemoSite) -> None:  # type: ignore[no-untyped-def]
    login(page, site, next_path="/pipelines/loyalty")
    with site.api("read") as api:
        before = api.get("/v1/runs").headers["x-total-count"]
    page.fill("input[name='param.weeks']", "many")
    page.click("#run-form button[type=submit]")
    error = page.locator("#start-error")
    assert "parameter 'weeks' takes a whole number" in error.inner_text()
    assert page.input_value("input[name='param.weeks']") == "many"  # what was typed stays
    with site.api("read") as api:
        assert api.get("/v1/runs").headers["x-total-count"] == before
    screenshot(page, "pipeline-bad-parameter")


def test_a_read_key_sees_no_run_controls_and_cannot_start_runs(page, site: DemoSite) -> None:  # type: ignore[no-untyped-def]
    login(page, site, "read", next_path="/pipelines/loyalty")
    wait_for_graph(page, "#pipeline-graph")
    assert page.locator("#run-form").count() == 0
    run_id = page.locator("#runs-table tr[data-run]").first.get_attribute("data-run")
    page.goto(f"/runs/{run_id}")
    assert page.locator("#run-status").count() == 1 and page.locator("#rerun-form").count() == 0
    screenshot(page, "run-read-only")
    # The routes refuse too, whatever the page shows.
    origin = {"Origin": site.url}
    form = page.request.post("/pipelines/loyalty/runs", form={"experiment": "x"}, headers=origin)
    assert form.status == 403 and "read key" in form.text()
    rerun = page.request.post(f"/runs/{run_id}/rerun", headers=origin)
    assert rerun.status == 403
    with site.api("read") as api:
        refused = api.post("/v1/pipelines/loyalty/runs", json={"params": {}})
        assert refused.status_code == 403 and "admin key" in refused.json()["error"]
        assert api.post(f"/v1/runs/{run_id}/rerun").status_code == 403


@pytest.fixture(scope="module")
def bulk_keys(site: DemoSite) -> dict[str, str]:
    """A project with thousands of recorded runs of the loyalty pipeline, and its keys."""
    kawa("keys", "create", "--project", BULK, cwd=site.root)
    keys: dict[str, str] = yaml.safe_load((site.root / "kawa.yaml").read_text())["projects"][BULK]
    runtime = Runtime(load_config(site.root / "kawa.yaml"))
    try:
        store = RunStore(runtime.metadata)
        for i in range(BULK_RUNS):
            store.create(
                project=BULK,
                pipeline="loyalty",
                experiment=f"batch-{i % 7}",
                kind="scheduled",
                params={"weeks": 4 + i % 3},
                logical_date=None,
                steps=[("labelled", {}), ("trained", {})],
            )
    finally:
        runtime.close()
    return keys


def test_thousands_of_runs_come_a_page_at_a_time(page, site: DemoSite, bulk_keys: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login?next=/pipelines/loyalty")
    page.fill("input[name=key]", bulk_keys["admin_key"])
    page.click("button[type=submit]")
    page.wait_for_url("**/pipelines/loyalty")
    rows = page.locator("#runs-table tr[data-run]")
    assert rows.count() == 25
    assert page.locator("#runs-range").inner_text() == f"runs 1{DASH}25 of {BULK_RUNS:,}"
    first_page = rows.evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert page.locator("#runs-newer").count() == 0
    screenshot(page, "pipeline-runs-paged")

    page.click("#runs-older")
    shows = "text => document.querySelector('#runs-range').innerText.startsWith(text)"
    page.wait_for_function(shows, arg=f"runs 26{DASH}50 ")
    second_page = rows.evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert len(second_page) == 25 and not set(second_page) & set(first_page)
    assert max(second_page) < min(first_page)  # older runs: run ids sort by creation time
    assert "before=" in page.url  # the address names the page, so it can be shared or reloaded

    page.click("#runs-newer")
    page.wait_for_function(shows, arg=f"runs 1{DASH}25 ")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.run)") == first_page
    # The API pages the same runs the same way.
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {bulk_keys['read_key']}"}) as api:
        listed = api.get("/v1/runs", params={"pipeline": "loyalty", "limit": 25})
        assert [r["run_id"] for r in listed.json()["runs"]] == first_page
        assert listed.headers["x-total-count"] == str(BULK_RUNS) and "next" in listed.links
