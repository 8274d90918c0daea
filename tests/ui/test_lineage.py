"""The lineage page in a browser: tables, models and pipelines as a graph; a clicked node shows its runs."""

from __future__ import annotations

import pytest

from tests.ui.conftest import DemoSite, login, screenshot
from tests.ui.graph import click_node, graph_edges, graph_nodes, wait_for_graph

pytestmark = pytest.mark.slow


def test_the_lineage_graph_and_a_clicked_node_with_its_runs_and_docs(page, site: DemoSite) -> None:  # type: ignore[no-untyped-def]
    login(page, site, next_path="/lineage")
    wait_for_graph(page, "#lineage-graph")
    nodes = graph_nodes(page, "#lineage-graph")
    # The demo's loyalty run read the events and wrote its tables and model.
    for node in ("table:events", "pipeline:loyalty", "table:loyalty_predictions", "model:loyalty"):
        assert node in nodes, sorted(nodes)
    assert nodes["model:loyalty"]["shape"] == "diamond" and nodes["table:events"]["shape"] == "barrel"
    edges = graph_edges(page, "#lineage-graph")
    assert ("table:events", "pipeline:loyalty") in edges
    assert ("pipeline:loyalty", "model:loyalty") in edges
    with site.api("read") as api:
        touching = api.get("/v1/lineage/table:loyalty_predictions/runs").json()["runs"]
    assert touching, "the demo's run wrote loyalty_predictions"

    click_node(page, "#lineage-graph", "table:loyalty_predictions")
    page.wait_for_selector("#lineage-panel #node-runs")
    panel = page.locator("#lineage-panel")
    assert "loyalty_predictions" in panel.locator("h2").inner_text()
    shown = panel.locator("#node-runs tr[data-run]").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert shown == [r["run_id"] for r in touching]
    assert "Written by" in panel.inner_text() and "loyalty" in panel.inner_text()
    screenshot(page, "lineage")

    click_node(page, "#lineage-graph", "table:events")
    page.wait_for_function("() => document.querySelector('#lineage-node').dataset.node === 'table:events'")
    # kawa documents its own tables: the catalog's description shows as the node's docs.
    assert "Every accepted event" in page.locator("#node-docs").inner_text()

    click_node(page, "#lineage-graph", "pipeline:loyalty")
    page.wait_for_function(
        "() => document.querySelector('#lineage-node').dataset.node === 'pipeline:loyalty'"
    )
    runs = page.locator("#lineage-panel #node-runs tr[data-run]")
    assert runs.count() >= 1
    first = runs.first.get_attribute("data-run")
    assert page.locator("#lineage-panel a[href='/pipelines/loyalty']").count() >= 1
    screenshot(page, "lineage-pipeline")
    runs.first.locator("a").click()
    page.wait_for_url(f"**/runs/{first}")

    # A link can open the page with a node picked, as the run page's table outputs do.
    page.goto("/lineage?node=model:loyalty")
    page.wait_for_function("() => document.querySelector('#lineage-node')?.dataset.node === 'model:loyalty'")
    assert "production" in page.locator("#lineage-panel").inner_text()
